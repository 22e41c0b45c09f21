"""Golden cases: patient scenarios with the decision each payer must reach, and the deciding rule.

A case file (tests/cases/<payer>/*.yaml) has a `base` patient and `scenarios`, each of which may
`set` and `unset` facts (a record's field by its dotted name, e.g. medications.nsaid.outcome) and
lists, per payer, the expected decision, sub-kind, rule, prior auth, and (for a payer with several
versions) the version that decides.
"""
from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from reasoner.io.patient import validate

from conftest import scenario_data

CASES = Path(__file__).resolve().parent / "cases"
FIELDS = {"decision": "kind", "subkind": "subkind", "rule": "rule", "prior_auth": "prior_auth"}


def _scenarios():
    for path in sorted(CASES.rglob("*.yaml")):
        doc = yaml.safe_load(path.read_text())
        for i, sc in enumerate(doc["scenarios"]):
            yield pytest.param(doc["base"], sc, id=f"{path.parent.name}/{path.stem}/{i}-{sc['name'][:40]}")


@pytest.mark.parametrize("base, scenario", list(_scenarios()))
def test_golden_case(reasoner, loaded, base, scenario):
    """Each payer decides by its version in force at the request's date, as `check` does; `version`
    names the version expected to decide (a payer with earlier versions)."""
    patient = validate(scenario_data(base, scenario, loaded.vocab), loaded.vocab, scenario["name"])
    for payer, wanted in scenario["expect"].items():
        (decision,) = reasoner.decide(patient, [payer])
        actual = {key: decision.policy if key == "version" else getattr(decision, FIELDS[key]) for key in wanted}
        assert actual == wanted, f"{payer}: {scenario['name']}"
