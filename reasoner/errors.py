"""One exception tree. Every error says where it happened and, where it can, how to fix it.

The CLI prints `str(error)` and exits; users never see a traceback for bad input.
"""
from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Problem:
    """One finding about an input file: where, how bad, and what to do about it."""

    where: str  # "file:line:column" or "file: field 'x'"
    message: str
    severity: str = "error"  # "error", "warning", "note" (information, e.g. what a child policy changes), or
    # "hint" (what would explain an error, should one follow: shown only when the input is refused)

    def __str__(self) -> str:
        return f"{self.where}: {self.severity}: {self.message}"


def notes_only(problems) -> tuple[Problem, ...]:
    """The notes among an input's findings, without the hints: a hint explains a refusal and is
    shown only with one; a note says what was deliberately not read, whatever the outcome."""
    return tuple(p for p in problems if p.severity == "note")


class ReasonerError(Exception):
    """Root of every error the reasoner reports to a user."""


class InputError(ReasonerError):
    """A file could not be used; carries every problem found, not just the first."""

    def __init__(self, problems: list[Problem] | tuple[Problem, ...]):
        self.problems = tuple(problems)
        super().__init__("\n".join(str(p) for p in self.problems))


class PolicyError(InputError):
    """A policy or vocabulary file is malformed or inconsistent."""


class PatientError(InputError):
    """A patient file is malformed or does not fit the vocabulary."""


class OutputError(InputError):
    """An output file could not be written (missing folder, in use by another run, disk full, ...)."""


def did_you_mean(name: str, known) -> str:
    """A hint naming the closest known name, or '' when nothing is close.

    >>> did_you_mean("trial_relief", ["trial_pain_relief", "age"])
    " Did you mean 'trial_pain_relief'?"
    """
    import difflib

    close = difflib.get_close_matches(name, list(known), n=1, cutoff=0.6)
    return f" Did you mean '{close[0]}'?" if close else ""
