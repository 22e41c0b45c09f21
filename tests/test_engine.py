"""The pyDatalog engine: exact thresholds, counts, isolation between patients and engines."""
import dataclasses

import pytest

from reasoner.results.decide import Reasoner
from reasoner.language.load import load
from reasoner.io.patient import load_patient, validate

from conftest import ROOT


@pytest.fixture(scope="module")
def base(loaded):
    return load_patient(ROOT / "examples/nonmalignant_implant.yaml", loaded.vocab)


def decide(reasoner, patient, **changes):
    changed = dataclasses.replace(patient, facts={**patient.facts, **changes})
    (d,) = reasoner.decide(changed, ["geisinger"])
    return d.kind, d.rule


def test_example_is_covered(reasoner, base):
    assert decide(reasoner, base) == ("covered", "nonmalignant_implant")


@pytest.mark.parametrize("relief, kind", [(49.9999999, "denied"), (49, "denied"), (50, "covered"), (50.0000001, "covered")])
def test_at_least_50_percent_is_not_strict_and_not_rounded(reasoner, base, relief, kind):
    assert decide(reasoner, base, trial_pain_relief=relief)[0] == kind


@pytest.mark.parametrize("classes, kind", [
    ((), "denied"), (("nsaid",), "denied"), (("nsaid", "opioid"), "denied"),
    (("nsaid", "opioid", "steroid"), "covered"), (("nsaid", "opioid", "steroid", "aspirin"), "covered"),
])
def test_count_of_failed_drug_classes(reasoner, base, classes, kind):
    assert decide(reasoner, base, analgesic_classes_failed=classes)[0] == kind


def test_contraindication_to_every_class_replaces_the_count(reasoner, loaded, base):
    every = tuple(loaded.vocab.domains["analgesic_class"])
    assert decide(reasoner, base, analgesic_classes_failed=(), analgesic_classes_contraindicated=every)[0] == "covered"
    assert decide(reasoner, base, analgesic_classes_failed=(), analgesic_classes_contraindicated=every[:-1])[0] == "denied"


def test_unless_exception_and_rule_order(reasoner, base):
    assert decide(reasoner, base, opioid_addiction=True) == ("denied", "contraindicated")
    assert decide(reasoner, base, line_of_business="medicaid", opioid_addiction=True) == ("review", "medicaid_case_by_case")
    assert decide(reasoner, base, line_of_business="medicare") == ("review", "medicare_ncd")


def test_absent_fact_is_not_documented(reasoner, base):
    facts = dict(base.facts)
    del facts["pt_chiro_same_body_area"]
    assert decide(reasoner, dataclasses.replace(base, facts=facts))[0] == "denied"


def test_no_leak_between_patients(reasoner, loaded, base):
    """Deciding a patient leaves nothing behind: a near-empty patient stays uncovered afterwards."""
    sparse = validate({"service": "implant", "indication": "nonmalignant_pain", "line_of_business": "commercial"}, loaded.vocab)
    before = reasoner.decide(sparse, ["geisinger"])
    assert decide(reasoner, base)[0] == "covered"
    assert reasoner.decide(sparse, ["geisinger"]) == before
    assert before[0].rule == "pump_criteria_not_met"


def test_no_rule_applies_gives_not_addressed(reasoner, loaded):
    refill = validate({"service": "refill", "indication": "nonmalignant_pain", "line_of_business": "commercial"}, loaded.vocab)
    (d,) = reasoner.decide(refill, ["geisinger"])
    assert d.kind == "not_addressed" and d.rule is None


def test_two_engines_in_one_thread_do_not_mix(loaded, base, tmp_path):
    """A second program loaded in the same thread must not change the first one's answers."""
    (tmp_path / "vocabulary.vocab").write_text((ROOT / "policies/vocabulary.vocab").read_text())
    strict = (ROOT / "policies/geisinger.policy").read_text().replace("trial_pain_relief >= 50 %            \"pain reduced",
                                                                       "trial_pain_relief > 50 %            \"pain reduced")
    assert strict != (ROOT / "policies/geisinger.policy").read_text()
    (tmp_path / "geisinger.policy").write_text(strict)
    other = Reasoner(load(tmp_path))
    first = Reasoner(loaded)
    assert decide(other, base)[0] == "denied"
    assert decide(first, base)[0] == "covered"
    assert decide(other, base)[0] == "denied"


def test_detail_reads_every_node(reasoner, base):
    evaluation = reasoner.engine.evaluate(base.facts, detail=True)
    assert evaluation.nodes["geisinger/pharmacologic_failure"] is True
    assert evaluation.nodes["geisinger/contraindication"] is False
    assert evaluation.fired["geisinger/nonmalignant_implant"] is True
    assert evaluation.fired["geisinger/pump_criteria_not_met"] is True  # fires, but a rule before it decides
