"""Shared fixtures: the bundled program is loaded once per test session."""
from __future__ import annotations

from pathlib import Path

import pytest

from reasoner.results.decide import Reasoner
from reasoner.language.load import load

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="session")
def loaded():
    return load(ROOT / "policies")


@pytest.fixture(scope="session")
def reasoner(loaded):
    return Reasoner(loaded)


def scenario_data(base: dict, scenario: dict, vocab) -> dict:
    """A golden scenario's patient: the base (records flattened), `set` applied, `unset` removed."""
    from reasoner.io.patient import flatten

    return {k: v for k, v in {**flatten(base, vocab), **scenario.get("set", {})}.items()
            if k not in scenario.get("unset", [])}


@pytest.fixture
def at_root(monkeypatch):
    """Run from the repository root so that file names in messages are stable."""
    monkeypatch.chdir(ROOT)
    return ROOT
