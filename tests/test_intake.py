"""The vectorized intake (engines/intake.py) is sound: every row its SQL accepts, `validate` (the
checks and messages of `reasoner check`) accepts too, with the same facts laid out the same way.
Rows it does not accept go to `validate`, so the batch path gives check's verdicts on every row."""
from __future__ import annotations

import json

import duckdb
import pyarrow as pa
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from reasoner.engines.intake import intake_query
from reasoner.engines.sql import layout
from reasoner.errors import InputError
from reasoner.io.batch import _json
from reasoner.io.patient import nested, validate
from reasoner.language.load import load
from reasoner.search.strategies import patients

from conftest import ROOT

LOADED = load(ROOT / "policies")
LAYOUT = layout(LOADED.program, LOADED.vocab)
QUERY = intake_query(LOADED.vocab, LAYOUT, "chunk")
CON = duckdb.connect()


def _stage(texts: list[str]) -> list[dict]:
    CON.register("chunk", pa.table({"line": pa.array(range(1, len(texts) + 1), pa.int64()), "j": pa.array(texts, pa.string())}))
    try:
        return CON.sql(QUERY).to_arrow_table().to_pylist()
    finally:
        CON.unregister("chunk")


def _verdict(text: str):
    """What the per-file path says of a row: its Patient, or None when refused."""
    data = _json(text)
    if isinstance(data, InputError):
        return None
    try:
        return validate(data, LOADED.vocab, "row")
    except InputError:
        return None


def _assert_sound(texts: list[str]) -> int:
    """Each accepted row is valid with the same layout row; returns how many were accepted."""
    accepted = 0
    for text, staged in zip(texts, _stage(texts)):
        if not staged["ok"]:
            continue
        accepted += 1
        patient = _verdict(text)
        assert patient is not None, f"SQL accepted a row validate refuses: {text}"
        expected = dict(zip((c.name for c in LAYOUT.columns), LAYOUT.row(patient.facts, LOADED.vocab)))
        got = {c.name: staged[c.name] for c in LAYOUT.columns}
        assert got == expected, text
    return accepted


def _mutations(data: dict) -> st.SearchStrategy:
    """A patient mapping with one field changed to something a file might hold."""
    odd = st.one_of(st.none(), st.booleans(), st.integers(-10**20, 10**20), st.floats(allow_nan=False),
                    st.text(max_size=12), st.lists(st.text(max_size=6), max_size=3),
                    st.sampled_from(["M96.1", "G90.5ZZZ", "2024-02-30", "2024-01-01", "62350", "nonmalignant_pain",
                                     "failed", "\ud800", "1e400", " 40", "true"]),
                    st.dictionaries(st.text(max_size=8), st.integers(), max_size=2))
    keys = st.sampled_from(sorted(set(data) | set(LOADED.vocab.plain()) | {"medications", "id", "unknown"}))
    return st.tuples(keys, odd).map(lambda kv: {**data, kv[0]: kv[1]})


def _collect(strategy, n: int) -> list:
    """n examples of a strategy, the same on every run, staged together in one query (the intake
    query takes a moment to plan, so rows are checked a thousand at a time, not one by one)."""
    out = []

    @settings(max_examples=n, deadline=None, derandomize=True, database=None, suppress_health_check=list(HealthCheck))
    @given(strategy)
    def collect(x):
        out.append(x)

    collect()
    return out


@pytest.mark.slow
def test_generated_patients_are_accepted_with_the_same_facts():
    batch = _collect(patients(LOADED), 600)
    texts = [json.dumps(nested(p.facts, LOADED.vocab) | {"id": p.id}, default=str) for p in batch]
    assert _assert_sound(texts) == len(texts)  # every valid generated patient takes the fast path


@pytest.mark.slow
def test_mutated_patients_are_never_accepted_when_validate_refuses_them():
    mutated = _collect(patients(LOADED).flatmap(lambda p: _mutations(nested(p.facts, LOADED.vocab))), 1500)
    texts = [json.dumps(r, default=str) for r in mutated]
    accepted = _assert_sound(texts)
    assert 0 < accepted < len(texts)  # both paths are exercised


@pytest.mark.parametrize("text", [
    '{"service": "implant", "indications": ["nonmalignant_pain"], "line_of_business": "commercial", "age": 40, "age": 41}',
    '{"service": "implant", "indications": ["nonmalignant_pain", "nonmalignant_pain"], "line_of_business": "commercial"}',
    '{"service": "implant", "indications": ["nonmalignant_pain"], "line_of_business": "commercial", "id": "\\ud800"}',
    '{"service": "implant", "indications": ["nonmalignant_pain"], "line_of_business": "commercial", "age": 40.5}',
    '{"service": "implant", "indications": ["nonmalignant_pain"], "line_of_business": "commercial", "age": true}',
    '{"service": "implant", "indications": ["nonmalignant_pain"], "line_of_business": "commercial", "age": "40"}',
    '{"service": "implant", "indications": ["nonmalignant_pain"], "line_of_business": "commercial", "diagnoses": ["G90.5ZZZZ"]}',
    '{"service": "implant", "indications": ["nonmalignant_pain"], "line_of_business": "commercial", "medications": {"baclofen": 5}}',
    '{"service": "implant", "indications": ["nonmalignant_pain"], "line_of_business": "commercial", "medications": {"x": {}}}',
    '{"service": "implant", "indications": ["nonmalignant_pain"], "line_of_business": "commercial", "request_date": "2024-02-30"}',
    '{"service": "implant", "indications": ["nonmalignant_pain"], "line_of_business": "commercial", "request_date": 20240101}',
    '{"service": "implant", "indications": ["nonmalignant_pain"]}',
    '{"service": "implant", "indications": [], "line_of_business": "commercial"}',
    '[1, 2]', 'null', '{"service": "implant"', '{"age": 1' + '0' * 5000 + '}', '[' * 5000 + ']' * 5000,
])
def test_rows_validate_refuses_are_not_accepted(text):
    assert _verdict(text) is None
    assert not _stage([text])[0]["ok"]


def test_codes_map_by_the_longest_prefix_as_validate_does():
    base = {"service": "implant", "indications": ["nonmalignant_pain"], "line_of_business": "commercial"}
    texts = [json.dumps(dict(base, diagnoses=[code])) for code in ("M96.1", "G89.4", "C50.911", "Z99.9", "G90.51")]
    texts.append(json.dumps(dict(base, medications={"baclofen": None, "nsaid": {"outcome": "failed", "weeks": None}})))
    assert _assert_sound(texts) == len(texts)
