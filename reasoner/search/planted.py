"""Copies of a bundled policy with one deliberate change, to measure what `reasoner diff` finds.

Each planted change edits the policy *text* (as an analyst editing a policy would), gives the copy
its own id, and loads it next to the original. A search that is worth anything must then report a
class of disagreement between the original and the copy whose responsible criteria name the
changed concept.
"""
from __future__ import annotations

import re
import tempfile
from dataclasses import dataclass
from pathlib import Path

from reasoner.language.load import VOCABULARY_FILE, Loaded, load
from reasoner.paths import policies_dir


@dataclass(frozen=True)
class Planted:
    name: str
    policy: str
    before: str  # a fragment of the policy text, found exactly once
    after: str
    concept: str  # the concept the disagreement must be about (or the start of its name, for a record)
    service: str
    indication: str


PLANTED = (
    Planted("threshold moved: trial relief 50% -> 60%", "uhc", "pain_trial_relief >= 50 %", "pain_trial_relief >= 60 %",
            "pain_trial_relief", "implant", "nonmalignant_pain"),
    Planted("strict bound made non-strict: trial relief > 50% -> >= 50%", "cam70141", "pain_trial_relief > 50 %",
            "pain_trial_relief >= 50 %", "pain_trial_relief", "implant", "nonmalignant_pain"),
    Planted("criterion dropped: the trial route", "cam70141",
            'pain_trial_route == planned_route  "by the route planned for the pump"\n', "",
            "pain_trial_route", "implant", "nonmalignant_pain"),
    Planted("duration moved: six months of conservative care -> five", "cmm210", "conservative_care_months >= 6 months",
            "conservative_care_months >= 5 months", "conservative_care_months", "trial", "nonmalignant_pain"),
    Planted("count changed: three drug classes -> two", "geisinger",
            "at_least 3 of {\n      medications.nsaid", "at_least 2 of {\n      medications.nsaid",
            "medications.", "implant", "nonmalignant_pain"),
)


def copy_id(p: Planted) -> str:
    return f"{p.policy}_planted"


def load_with(p: Planted, folder: Path | None = None) -> Loaded:
    """The original policy and its changed copy (id `<policy>_planted`), loaded together."""
    folder = Path(folder) if folder else policies_dir()
    text = (folder / f"{p.policy}.policy").read_text(encoding="utf-8")
    if text.count(p.before) != 1:
        raise ValueError(f"{p.name}: the fragment to change must occur once in {p.policy}.policy")
    changed = re.sub(rf"^policy {p.policy} {{", f"policy {copy_id(p)} {{", text.replace(p.before, p.after), flags=re.M)
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        for vocab in folder.glob("*.vocab"):  # the vocabulary and the knowledge tables beside it
            (tmp / vocab.name).write_text(vocab.read_text(encoding="utf-8"), encoding="utf-8")
        (tmp / f"{p.policy}.policy").write_text(text, encoding="utf-8")
        (tmp / f"{copy_id(p)}.policy").write_text(changed, encoding="utf-8")
        return load(tmp)
