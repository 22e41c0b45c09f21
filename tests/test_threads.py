"""One Reasoner used from several threads at once decides exactly as it does alone (robustness H5)."""
from __future__ import annotations

import pytest

from concurrent.futures import ThreadPoolExecutor

import yaml

from reasoner.io.patient import validate

from conftest import ROOT, scenario_data


def _patients(loaded):
    out = []
    for path in sorted((ROOT / "tests/cases/all_payers").glob("*.yaml")):
        doc = yaml.safe_load(path.read_text())
        out += [validate(scenario_data(doc["base"], sc, loaded.vocab), loaded.vocab, sc["name"]) for sc in doc["scenarios"]]
    return out


@pytest.mark.slow
def test_a_shared_reasoner_is_safe_across_threads(reasoner, loaded):
    patients = _patients(loaded) * 6
    alone = [[(d.policy, d.kind, d.rule) for d in reasoner.decide(p)] for p in patients]
    with ThreadPoolExecutor(max_workers=4) as pool:
        together = list(pool.map(lambda p: [(d.policy, d.kind, d.rule) for d in reasoner.decide(p)], patients))
    assert together == alone
