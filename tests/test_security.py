"""Policy and patient files are data: nothing in them can make Python run.

pyDatalog's `load()` and `ask()` exec/eval their text. The engine never calls them: clauses are
built from engine objects and constants are passed as values. These tests put Python-looking
payloads everywhere a file can hold text, and prove that nothing runs.
"""
from pathlib import Path

import pytest
from pyDatalog import pyDatalog, pyParser

from reasoner.results.decide import Reasoner
from reasoner.errors import InputError
from reasoner.language.load import load
from reasoner.io.patient import validate

from conftest import ROOT

MARK = "/tmp/reasoner-pwned-marker"
PAYLOAD = f"__import__('os').system('touch {MARK}')"


@pytest.fixture(autouse=True)
def no_exec(monkeypatch):
    """Fail loudly if anything reaches pyDatalog's text interfaces."""
    Path(MARK).unlink(missing_ok=True)

    def refuse(*args, **kwargs):
        raise AssertionError("pyDatalog text interface called")

    for name in ("load", "ask"):
        monkeypatch.setattr(pyDatalog, name, refuse)
        monkeypatch.setattr(pyParser, name, refuse, raising=False)
    yield
    assert not Path(MARK).exists()


def test_payloads_in_labels_citations_and_details_stay_text(tmp_path):
    (tmp_path / "vocabulary.vocab").write_text((ROOT / "policies/vocabulary.vocab").read_text())
    quoted = PAYLOAD.replace('"', "'")
    (tmp_path / "evil.policy").write_text(f'''
policy evil {{ payer "{quoted}" document "{quoted}" "{quoted}" version "{quoted}" lines commercial cite "{quoted}" }}
rule r "{quoted}" cite "{quoted}" {{
  if active_infection "{quoted}" cite "{quoted}"
  decide review external "{quoted}"
}}
''')
    reasoner = Reasoner(load(tmp_path))
    patient = validate({"active_infection": True, "id": PAYLOAD, "description": PAYLOAD, "service": "implant",
                        "indications": ["nonmalignant_pain"], "line_of_business": "commercial"}, reasoner.loaded.vocab)
    (d,) = reasoner.decide(patient)
    assert d.kind == "review" and d.detail == quoted and d.rule_label == quoted


@pytest.mark.parametrize("field, value", [
    ("service", PAYLOAD), ("diagnoses", [PAYLOAD]), ("procedure_codes", [PAYLOAD]),
    ("age", PAYLOAD), ("active_infection", PAYLOAD), (PAYLOAD, 1), ("request_date", PAYLOAD),
])
def test_payloads_in_patient_values_are_rejected(loaded, field, value):
    with pytest.raises(InputError):
        validate({field: value}, loaded.vocab)


@pytest.mark.parametrize("name", ["__import__", "os.system", "a;b", "Import", "x y"])
def test_payloads_in_names_do_not_parse(tmp_path, name):
    (tmp_path / "vocabulary.vocab").write_text((ROOT / "policies/vocabulary.vocab").read_text())
    (tmp_path / "p.policy").write_text(f'policy p {{ payer "P" document "D" "T" version "v" lines commercial cite "L" }}\n'
                                        f'rule {name} "R" cite "s" {{ decide covered }}\n')
    with pytest.raises(InputError):
        load(tmp_path)


def test_decisions_use_no_text_interface(reasoner, loaded):
    patient = validate({"service": "implant", "indications": ["spasticity"], "line_of_business": "commercial"}, loaded.vocab)
    assert reasoner.decide(patient, ["geisinger"])[0].kind == "denied"
