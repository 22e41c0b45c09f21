"""FHIR R4 Bundles in: read through the declarative mapping (policies/fhir_mapping.yaml), written
back by `reasoner fhir`, every fact carrying the resource it came from into why / why-not."""
from __future__ import annotations

import copy
import datetime as dt
import json
import shutil

import pytest
from typer.testing import CliRunner

from reasoner.cli import app
from reasoner.errors import PolicyError
from reasoner.fhir.bundle import course
from reasoner.fhir.mapping import load_mapping
from reasoner.fhir.write import to_bundle
from reasoner.io.patient import load_patient
from reasoner.language.load import load
from reasoner.search import diff

from conftest import ROOT

LOADED = load(ROOT / "policies")
MAPPING = load_mapping(ROOT / "policies", LOADED.vocab)
PAYERS = [p.id for p in LOADED.program.current]
CHART = ROOT / "examples/fhir/chart_nonmalignant_implant.json"
EXAMPLES = sorted(p for p in (ROOT / "examples").iterdir() if p.suffix in (".yaml", ".json"))


def _write(tmp_path, bundle: dict, name: str = "bundle.json"):
    path = tmp_path / name
    path.write_text(json.dumps(bundle))
    return path


def _round_trip(tmp_path, reasoner, service: str, count: int, seed: int) -> int:
    people = diff.generate(LOADED, PAYERS, {"service": service}, count, seed=seed)
    for k, patient in enumerate(people):
        back = load_patient(_write(tmp_path, to_bundle(patient.facts, LOADED.vocab, MAPPING, f"m{k}")), LOADED.vocab)
        assert back.facts == patient.facts
        assert set(back.provenance) == set(patient.facts)  # every fact names the resource it came from
        assert [d.rule for d in reasoner.decide(back)] == [d.rule for d in reasoner.decide(patient)]
    return len(people)


@pytest.mark.slow  # several seconds: left to the full run, to keep `-m "not slow"` under two minutes
def test_generated_patients_written_as_fhir_read_back_the_same(tmp_path, reasoner):
    """Round trip: patient -> Bundle (valid R4B, checked by the reader) -> the same facts and the same
    decision from every payer."""
    assert _round_trip(tmp_path, reasoner, "implant", 40, seed=1) == 40


@pytest.mark.slow
@pytest.mark.parametrize("service", ["trial", "refill", "replacement", "continuation", "elastomeric_pump"])
def test_round_trip_for_every_service(tmp_path, reasoner, service):
    assert _round_trip(tmp_path, reasoner, service, 60, seed=2) == 60


@pytest.mark.parametrize("example", EXAMPLES, ids=lambda p: p.stem)
def test_the_sample_bundles_are_the_example_patients(example, at_root):
    """examples/fhir/<name>.json is what `reasoner fhir` writes for examples/<name>, and `check`
    prints the same table for both."""
    patient = load_patient(example, LOADED.vocab)
    bundle = ROOT / "examples/fhir" / f"{example.stem}.json"
    assert json.loads(bundle.read_text()) == to_bundle(patient.facts, LOADED.vocab, MAPPING, patient.id)
    runner = CliRunner()
    from_file = runner.invoke(app, ["check", str(example.relative_to(ROOT))])
    from_fhir = runner.invoke(app, ["check", str(bundle.relative_to(ROOT))])
    assert from_fhir.exit_code == 0 and from_fhir.output == from_file.output


def test_a_chart_like_bundle_derives_its_facts_from_dated_and_coded_resources(reasoner):
    """Standard codes (SOPT, CPT, RxNorm, SNOMED route and outcome, ICD-10-CM) and dated resources: the age
    from the birth date at the request date; the therapy course from twelve dated visits; a refuted
    diagnosis left out. Decisions equal those of the matching YAML patient."""
    patient = load_patient(CHART, LOADED.vocab)
    f = patient.facts
    assert (f["line_of_business"], f["age"], f["planned_drugs"], f["planned_route"]) == (
        "commercial", 54, ("morphine",), "intrathecal")
    assert f["diagnoses"] == ("failed_back_surgery",) and f["procedure_codes"] == ("62362",)
    assert (f["pt_visits"], f["pt_weeks"], f["pt_weeks_twice_weekly"], f["pt_outcome"]) == (12, 6, 6, "failed")
    last_visit, request = dt.date(2025, 10, 2), dt.date(2026, 3, 2)
    assert f["pt_months_since"] == pytest.approx((request - last_visit).days * 12 / 365.25, abs=0.01)
    assert f["medications.antidepressant.weeks"] == 3
    # ibuprofen by its RxNorm ingredient code is an NSAID tried; metformin, which no policy asks about, is not read
    assert (f["medications.nsaid.outcome"], patient.provenance["medications.nsaid.outcome"]) == (
        "failed", "MedicationStatement/med-nsaid")
    assert not any("metformin" in p for p in patient.provenance.values())
    assert [(n.where.split(": ")[-1], n.severity) for n in patient.notes] == [
        ("MedicationStatement/med-metformin.medicationCodeableConcept", "note")]  # not read, but said
    assert patient.provenance["age"] == "Patient/chart-fbss"
    assert patient.provenance["pt_visits"] == ", ".join(f"Procedure/pt-{k}" for k in range(1, 13))
    # a CPT-coded procedure's SNOMED outcome: a transforaminal epidural, a lumbar laminectomy
    assert (f["nerve_block_outcome"], patient.provenance["nerve_block_outcome"]) == ("failed", "Procedure/block-1")
    assert (f["prior_surgery"], patient.provenance["prior_surgery"]) == ("failed", "Procedure/surgery-1")
    # two 0-10 pain scores (LOINC 72514-3): the latest, 8, is in the severe band
    assert (f["pain_severity"], patient.provenance["pain_severity"]) == ("severe", "Observation/pain-score-2")
    yaml_patient = load_patient(ROOT / "examples/nonmalignant_implant.yaml", LOADED.vocab)
    assert [d.rule for d in reasoner.decide(patient)] == [d.rule for d in reasoner.decide(yaml_patient)]


def test_why_and_why_not_show_where_each_fact_was_read():
    runner = CliRunner()
    text = runner.invoke(app, ["--width", "250", "why", str(CHART), "--payer", "geisinger"]).output
    assert "pt_visits = 12 ← Procedure/pt-1 … Procedure/pt-12 (12 resources)" in text
    assert "diagnoses = {failed_back_surgery} ← Condition/dx-1" in text
    data = json.loads(runner.invoke(app, ["why-not", str(CHART), "--payer", "cam70141", "--json"]).output)
    facts = [f for f in _walk(data) if f.get("concept") == "pain_trial_relief"]  # CAM wants more than half
    assert facts and all(f["source"] == "Observation/trial-relief" for f in facts)
    assert all(f["resources"] == ["Observation/trial-relief"] for f in facts)
    data = json.loads(runner.invoke(app, ["why", str(CHART), "--payer", "geisinger", "--json"]).output)
    visits = [f for f in _walk(data) if f.get("concept") == "pt_visits"]  # every visit, as a list, in JSON
    assert visits and all(f["resources"] == [f"Procedure/pt-{k}" for k in range(1, 13)] for f in visits)
    yaml_text = runner.invoke(app, ["why", str(ROOT / "examples/nonmalignant_implant.yaml"), "--payer", "uhc"]).output
    assert "←" not in yaml_text  # a patient file has no resources to name


def _walk(node):
    if isinstance(node, dict):
        if "concept" in node and "value" in node:
            yield node
        for v in node.values():
            yield from _walk(v)
    elif isinstance(node, list):
        for v in node:
            yield from _walk(v)


def test_a_course_with_one_light_week_counts_the_longest_twice_weekly_run():
    monday = dt.date(2025, 1, 6)
    days = [monday + dt.timedelta(weeks=w, days=d) for w in range(6) for d in ((0,) if w == 3 else (0, 2))]
    got = course(days, monday + dt.timedelta(days=365))
    assert (got["visits"], got["weeks"], got["twice_weekly_weeks"]) == (11, 6, 3)
    assert got["months_since"] == pytest.approx((365 - 37) * 12 / 365.25, abs=0.01)


# ---------------------------------------------------------------- bad bundles
def _chart() -> dict:
    return json.loads(CHART.read_text())


def _resource(bundle: dict, rid: str) -> dict:
    return next(e["resource"] for e in bundle["entry"] if e["resource"]["id"] == rid)


def _edit(rid: str, **changes):
    def change(bundle):
        _resource(bundle, rid).update(changes)
        return bundle
    return change


def _add(resource: dict):
    def change(bundle):
        bundle["entry"].append({"resource": resource})
        return bundle
    return change


SUBJECT = {"reference": "Patient/chart-fbss"}
RXNORM = "http://www.nlm.nih.gov/research/umls/rxnorm"
BAD_BUNDLES = {
    "not FHIR": (_edit("trial-relief", valueQuantity="fifty"), "Observation/trial-relief.valueQuantity",
                 "not valid FHIR R4"),
    "a required element missing": (_edit("trial-relief", status=None), "Observation/trial-relief.status",
                                   "not valid FHIR R4: field required"),
    "two values of one choice element": (_edit("trial-relief", valueInteger=60), "Observation/trial-relief",
                                         "'valueQuantity'"),
    "a code system the mapping does not know": (
        _edit("dx-1", code={"coding": [{"system": "http://example.org/local-problem-list", "code": "FBSS"}]}),
        "Condition/dx-1.code", "no coding this reader maps to diagnoses"),
    "another member's resource": (_edit("trial-relief", subject={"reference": "Patient/someone-else"}),
                                  "Observation/trial-relief.subject", "not the bundle's Patient"),
    "two members": (_add({"resourceType": "Patient", "id": "second"}), "Bundle.entry", "2 Patient resources"),
    "conflicting values": (_add({"resourceType": "Observation", "id": "age-2", "status": "final", "subject": SUBJECT,
                                 "code": {"coding": [{"system": "http://loinc.org", "code": "30525-0"}]},
                                 "valueQuantity": {"value": 61, "unit": "a", "system": "http://unitsofmeasure.org",
                                                   "code": "a"}}),
                           "Observation/age-2", "give age different values"),
    "a unit that is not the concept's": (
        _edit("trial-hours", valueQuantity={"value": 1, "unit": "d", "system": "http://unitsofmeasure.org", "code": "d"}),
        "Observation/trial-hours.valueQuantity.code", "is in hours"),
    "a concept the vocabulary lacks": (
        _edit("trial-hours", code={"coding": [{"system": "urn:reasoner:intrathecal_pumps:concept", "code": "mood"}]}),
        "Observation/trial-hours.code", "not a concept of the vocabulary"),
    "a partial date": (_edit("req-1", authoredOn="2026-03"), "ServiceRequest/req-1.authoredOn", "not a full date"),
    "an age with no date to count it at": (_edit("req-1", authoredOn=None), "Patient/chart-fbss.birthDate",
                                           "add the request date"),
    "a drug course with no start": (_edit("med-nsaid", effectivePeriod={"end": "2025-01-01"}),
                                    "MedicationStatement/med-nsaid.effectivePeriod", "needs a start"),
    "a drug course going on since after the request": (_edit("med-nsaid", effectivePeriod={"start": "2027-01-01"}),
                                                       "MedicationStatement/med-nsaid.effectivePeriod",
                                                       "after the request"),
    "a therapy visit with no date": (_edit("pt-3", performedDateTime=None), "Procedure/pt-3.performed[x]", "missing"),
    "an unknown resource type": (_edit("trial-hours", resourceType="Obzervation"), "Bundle.entry[",
                                 "'Obzervation' is not a FHIR R4 resource type"),
    "a code the vocabulary's own system lacks": (
        _edit("med-nsaid", medicationCodeableConcept={"coding": [
            {"system": "urn:reasoner:intrathecal_pumps:medication_kind", "code": "aspirinz"}]}),
        "MedicationStatement/med-nsaid.medicationCodeableConcept", "has no such value"),
    "a bound instead of a value": (
        _edit("trial-relief", valueQuantity={"value": 60, "comparator": "<", "unit": "%",
                                             "system": "http://unitsofmeasure.org", "code": "%"}),
        "Observation/trial-relief.valueQuantity.comparator", "a bound is not a value"),
    "a quantity with no value": (_edit("trial-relief", valueQuantity={"unit": "%"}),
                                 "Observation/trial-relief.valueQuantity.value", "is missing"),
    "a modifier extension": (_edit("trial-relief", modifierExtension=[{"url": "http://example.org/x",
                                                                       "valueBoolean": True}]),
                             "Observation/trial-relief.modifierExtension", "forbids reading it"),
    "about someone else": (_edit("trial-relief", focus=[{"reference": "Patient/mother"}]),
                           "Observation/trial-relief.focus", "not the bundle's Patient"),
    "a subject without a reference": (_edit("trial-relief", subject={"identifier": {"value": "123"}}),
                                      "Observation/trial-relief.subject", "without a reference"),
    "two resources with one id": (_add({"resourceType": "Observation", "id": "trial-relief", "status": "final",
                                        "subject": SUBJECT, "code": {"text": "x"}}),
                                  "Observation/trial-relief", "appears twice"),
    "a date with trailing text": (_edit("req-1", authoredOn="2026-03-02junk"), "ServiceRequest/req-1.authoredOn",
                                  "date"),
    "an age that the dates make negative": (_edit("chart-fbss", birthDate="2030-01-01"),
                                            "field 'age' (read from Patient/chart-fbss)", "between 0 and 130"),
    "a procedure outcome the vocabulary has no value for": (
        _edit("block-1", outcome={"coding": [{"system": "http://snomed.info/sct", "code": "385670004"}]}),
        "Procedure/block-1.outcome", "no coding this reader maps to nerve_block_outcome"),
    "two procedures whose outcomes differ": (
        _add({"resourceType": "Procedure", "id": "block-2", "status": "completed", "subject": SUBJECT,
              "code": {"coding": [{"system": "http://www.ama-assn.org/go/cpt", "code": "64493"}]},
              "outcome": {"coding": [{"system": "http://snomed.info/sct", "code": "385669000"}]}}),
        "Procedure/block-1, Procedure/block-2", "give nerve_block_outcome different values"),
    "a latest pain score in no band": (_edit("pain-score-2", valueInteger=0), "Observation/pain-score-2.valueInteger",
                                       "is in no band the mapping reads as pain_severity"),
    "a pain score with no date": (_edit("pain-score-1", effectiveDateTime=None), "Observation/pain-score-1.effective[x]",
                                  "latest score"),
    "two scores of the last day in different bands": (
        _edit("pain-score-1", effectiveDateTime="2026-02-20"), "Observation/pain-score-1, Observation/pain-score-2",
        "give pain_severity different values"),
    "a pain score given as text": (_edit("pain-score-2", valueInteger=None, valueString="8/10"),
                                   "Observation/pain-score-2.value[x]", "read from a score"),
    "a drug tried coded only in a system the mapping does not know": (
        _edit("med-nsaid", medicationCodeableConcept={"coding": [{"system": "http://hl7.org/fhir/sid/ndc",
                                                                   "code": "0904-5853-61"}]}),
        "MedicationStatement/med-nsaid.medicationCodeableConcept", "no coding this reader maps to medications"),
    "a Patient with no id": (_edit("chart-fbss", id=None), "Patient.id", "is missing"),
    "a value out of the vocabulary's range": (
        _edit("trial-relief", valueQuantity={"value": 150, "unit": "%", "system": "http://unitsofmeasure.org",
                                             "code": "%"}), "field 'pain_trial_relief'", "between"),
}


def test_a_drug_the_table_does_not_list_is_said_to_be_unread_in_text_and_json(tmp_path):
    """A clinical-drug code (RxNorm SCD) where the table lists ingredients is not guessed at, and
    not dropped without a word: `check` says which resource and code it did not read, on stderr
    after the table (stdout stays the table), and under "notes" with --json; `why` says it too."""
    bundle = _chart()
    _resource(bundle, "med-nsaid")["medicationCodeableConcept"] = {"coding": [
        {"system": RXNORM, "code": "310965", "display": "ibuprofen 200 MG Oral Tablet"}]}
    path = str(_write(tmp_path, bundle))
    text = CliRunner().invoke(app, ["check", path])
    assert text.exit_code == 0, text.output
    assert "Not read from the input (2):" in text.stderr and "Not read" not in text.stdout
    assert "MedicationStatement/med-nsaid.medicationCodeableConcept: rxnorm 310965 ('ibuprofen 200 MG Oral " \
           "Tablet'): not in the mapping's table for medications" in text.stderr
    notes = json.loads(CliRunner().invoke(app, ["check", path, "--json"]).stdout)["notes"]
    assert [n["where"].split(": ")[-1] for n in notes] == ["MedicationStatement/med-nsaid.medicationCodeableConcept",
                                                          "MedicationStatement/med-metformin.medicationCodeableConcept"]
    why = json.loads(CliRunner().invoke(app, ["why", path, "--payer", "uhc", "--json"]).stdout)
    assert len(why["notes"]) == 2
    assert "medications.nsaid.outcome" not in load_patient(path, LOADED.vocab).facts


def test_the_requests_reason_in_icd10_is_a_diagnosis_and_the_indication_is_not_guessed(tmp_path):
    """An order's reasonCode in ICD-10-CM (chronic pain syndrome, G89.4) beside the indication in
    the vocabulary's system adds a documented diagnosis; with the ICD-10 code alone, the diagnosis
    is read and the indication is still asked for (`check` names it, not the reasonCode); a reason
    in a system no row reads is reported at the element."""
    bundle = _chart()
    reasons = _resource(bundle, "req-1")["reasonCode"]
    reasons.append({"coding": [{"system": "http://hl7.org/fhir/sid/icd-10-cm", "code": "G89.4"}]})
    patient = load_patient(_write(tmp_path, bundle), LOADED.vocab)
    assert patient.facts["indications"] == ("nonmalignant_pain",)
    assert set(patient.facts["diagnoses"]) == {"failed_back_surgery", "other"}  # G89.4: no listed kind
    assert "ServiceRequest/req-1" in patient.provenance["diagnoses"]
    del reasons[0]
    _resource(bundle, "req-1")["code"] = {"coding": [{"system": "http://www.ama-assn.org/go/cpt", "code": "62362"}]}
    done = CliRunner().invoke(app, ["check", str(_write(tmp_path, bundle)), "--json"])
    errors = json.loads(done.output[done.output.index("{"):])["errors"]
    assert done.exit_code == 3 and [e["where"].split(": ")[-1] for e in errors if e["severity"] == "error"] == [
        "field 'service'", "field 'indications'"]
    hints = {e["where"].split(": ")[-1]: e["message"] for e in errors if e["severity"] == "hint"}
    assert "do not tell a trial, an implant, a replacement or a refill apart" in hints["ServiceRequest/req-1.code"]
    assert "a diagnosis does not say what the pump is to treat" in hints["ServiceRequest/req-1.reasonCode"]
    answered = tmp_path / "answers.yaml"  # given otherwise, the hints are not shown: nothing is wrong
    answered.write_text("service: implant\nindications: [nonmalignant_pain]\n")
    done = CliRunner().invoke(app, ["check", str(_write(tmp_path, bundle)), "--with", str(answered), "--json"])
    assert done.exit_code == 0, done.output
    assert [n["where"].split(": ")[-1] for n in json.loads(done.stdout).get("notes", [])] == [
        "MedicationStatement/med-metformin.medicationCodeableConcept"]
    reasons[0] = {"coding": [{"system": "http://example.org/local-reasons", "code": "back"}]}
    done = CliRunner().invoke(app, ["check", str(_write(tmp_path, bundle)), "--json"])
    assert done.exit_code == 3 and "ServiceRequest/req-1.reasonCode" in done.output
    assert "no coding this reader maps to indications or diagnoses" in done.output


def _ingredient(code: str) -> dict:
    return {"itemCodeableConcept": {"coding": [{"system": RXNORM, "code": code}]}}


def test_a_clinical_drug_is_read_by_its_ingredients(tmp_path):
    """A drug tried given as a Medication (contained in the statement, as EHR exports write it)
    whose code is a clinical drug the table does not list is read by its RxNorm ingredients;
    each ingredient of a combination is a class tried; ingredients the table lacks are noted."""
    bundle = _chart()
    statement = _resource(bundle, "med-nsaid")
    del statement["medicationCodeableConcept"]
    statement["medicationReference"] = {"reference": "#ibu600"}
    statement["contained"] = [{"resourceType": "Medication", "id": "ibu600", "code": {"coding": [
        {"system": RXNORM, "code": "197806", "display": "ibuprofen 600 MG Oral Tablet"}]},
        "ingredient": [_ingredient("5640")]}]
    path = _write(tmp_path, bundle)
    patient = load_patient(path, LOADED.vocab)
    assert patient.facts["medications.nsaid.outcome"] == "failed"
    assert [n.where.split(": ")[-1] for n in patient.notes] == [  # the SCD itself is not noted: it was read
        "MedicationStatement/med-metformin.medicationCodeableConcept"]
    statement["contained"][0]["ingredient"] = [_ingredient("5640"), _ingredient("25480")]
    facts = load_patient(_write(tmp_path, bundle), LOADED.vocab).facts
    assert facts["medications.nsaid.outcome"] == facts["medications.gabapentin.outcome"] == "failed"
    statement["contained"][0]["ingredient"] = [_ingredient("6809")]  # metformin: not a class the table lists
    patient = load_patient(_write(tmp_path, bundle), LOADED.vocab)
    assert "medications.nsaid.outcome" not in patient.facts
    assert any("med-nsaid.medicationReference -> Medication.ingredient" in n.where for n in patient.notes)
    statement["medicationReference"] = {"reference": "#elsewhere"}
    done = CliRunner().invoke(app, ["check", str(_write(tmp_path, bundle)), "--json"])
    assert done.exit_code == 3 and "nor one it contains" in done.output


def test_the_planned_drug_may_be_a_clinical_drug_given_as_a_medication_with_its_ingredients(tmp_path):
    """The pump's drug ordered as a contained Medication coded as a clinical drug the table does
    not list (preservative-free morphine for injection) is read by its ingredient; without
    ingredients, the refusal names the reference the code came through."""
    bundle = _chart()
    plan = _resource(bundle, "plan-1")
    del plan["medicationCodeableConcept"]
    plan["medicationReference"] = {"reference": "#pf-morphine"}
    plan["contained"] = [{"resourceType": "Medication", "id": "pf-morphine", "code": {"coding": [
        {"system": RXNORM, "code": "1731522"}]}, "ingredient": [_ingredient("7052")]}]
    patient = load_patient(_write(tmp_path, bundle), LOADED.vocab)
    assert (patient.facts["planned_drugs"], patient.provenance["planned_drugs"]) == (("morphine",), "MedicationRequest/plan-1")
    del plan["contained"][0]["ingredient"]
    done = CliRunner().invoke(app, ["check", str(_write(tmp_path, bundle)), "--json"])
    assert done.exit_code == 3 and "MedicationRequest/plan-1.medicationReference" in done.output
    assert "plan-1.medicationCodeableConcept" not in done.output


@pytest.mark.parametrize("reason", [{"text": "not effective"},
                                    {"coding": [{"system": "http://snomed.info/sct", "code": "410536001"}]}],
                         ids=["in words", "in another system"])
def test_a_drugs_outcome_not_coded_in_the_vocabulary_is_noted_not_refused(tmp_path, reason):
    """A statusReason in words or in a system the reader has no table for: the drug is read as
    tried, its outcome is not (undocumented to every payer), and a note says why; the chart is
    not refused for it."""
    bundle = _chart()
    _resource(bundle, "med-nsaid")["statusReason"] = [reason]
    patient = load_patient(_write(tmp_path, bundle), LOADED.vocab)
    assert "medications.nsaid.outcome" not in patient.facts and patient.facts["medications.nsaid.weeks"]
    note = next(n for n in patient.notes if "med-nsaid.statusReason" in n.where)
    assert "so medications.nsaid.outcome is not read" in note.message


def test_two_true_courses_of_one_class_are_read_through_the_class_stated_as_such(tmp_path):
    """Ibuprofen for 11 weeks and then diclofenac for 8 (both true): the vocabulary records one
    course per class, so the chart is refused, with advice that does not call a true record wrong;
    stating the class's course by concept Observation settles it, and the provenance says what the
    stated fact was read over."""
    bundle = _chart()
    second = copy.deepcopy(_resource(bundle, "med-nsaid"))
    second.update(id="med-nsaid-2", effectivePeriod={"start": "2024-01-01", "end": "2024-02-26"},
                  medicationCodeableConcept={"coding": [{"system": RXNORM, "code": "3355"}]})
    bundle["entry"].append({"resource": second})
    done = CliRunner().invoke(app, ["check", str(_write(tmp_path, bundle)), "--json"])
    assert done.exit_code == 3 and "give medications.nsaid.weeks different values" in done.output
    assert "if both are true (two drugs of one class, tried differently), state medications.nsaid.weeks" in done.output
    stated = copy.deepcopy(_resource(bundle, "trial-hours"))
    stated.update(id="nsaid-weeks", code={"coding": [{"system": "urn:reasoner:intrathecal_pumps:concept",
                                                       "code": "medications.nsaid.weeks"}]},
                  valueQuantity={"value": 19, "unit": "wk", "system": "http://unitsofmeasure.org", "code": "wk"})
    bundle["entry"].append({"resource": stated})
    patient = load_patient(_write(tmp_path, bundle), LOADED.vocab)
    assert patient.facts["medications.nsaid.weeks"] == 19
    assert patient.provenance["medications.nsaid.weeks"] == (
        "Observation/nsaid-weeks (over MedicationStatement/med-nsaid, MedicationStatement/med-nsaid-2)")


def _coverage(cid: str, sopt: str, order: int | None) -> dict:
    return {"resourceType": "Coverage", "id": cid, "status": "active", "beneficiary": SUBJECT,
            "payor": [{"display": "a payer"}], **({"order": order} if order is not None else {}),
            "type": {"coding": [{"system": "urn:oid:2.16.840.1.113883.3.221.5", "code": sopt}]}}


def test_the_line_of_business_is_the_primary_coverages(tmp_path):
    """A member with Medicare first and a commercial plan second (Coverage.order 1 and 2) is a
    Medicare member, whichever the bundle lists first; without orders, neither is known to be the
    primary, and their lines are a conflict naming both."""
    bundle = _chart()
    _resource(bundle, "cov-1")["order"] = 2
    bundle["entry"].append({"resource": _coverage("cov-2", "1", 1)})
    patient = load_patient(_write(tmp_path, bundle), LOADED.vocab)
    assert (patient.facts["line_of_business"], patient.provenance["line_of_business"]) == ("medicare", "Coverage/cov-2")
    _resource(bundle, "cov-2")["order"] = 3
    assert load_patient(_write(tmp_path, bundle), LOADED.vocab).facts["line_of_business"] == "commercial"
    del _resource(bundle, "cov-1")["order"]
    done = CliRunner().invoke(app, ["check", str(_write(tmp_path, bundle)), "--json"])
    assert done.exit_code == 3 and "Coverage/cov-1, Coverage/cov-2" in done.output
    assert "give line_of_business different values" in done.output


def test_what_was_not_so_at_the_request_date_is_noted_not_read(tmp_path):
    """A Medicare coverage that ended years before the request is not the member's line then; a
    pain score charted after the request says nothing of the member then: both are noted, and
    the line and the severity are those at the request."""
    bundle = _chart()
    ended = _coverage("cov-old", "1", None)
    ended["period"] = {"start": "2010-01-01", "end": "2019-12-31"}
    bundle["entry"].append({"resource": ended})
    later = copy.deepcopy(_resource(bundle, "pain-score-2"))
    later.update(id="pain-score-3", effectiveDateTime="2027-01-01", valueInteger=2)
    bundle["entry"].append({"resource": later})
    patient = load_patient(_write(tmp_path, bundle), LOADED.vocab)
    assert (patient.facts["line_of_business"], patient.facts["pain_severity"]) == ("commercial", "severe")
    noted = {n.where.split(": ")[-1]: n.message for n in patient.notes}
    assert "does not cover the request (2026-03-02)" in noted["Coverage/cov-old.period"]
    assert "after the request (2026-03-02)" in noted["Observation/pain-score-3.valueInteger"]


@pytest.mark.parametrize("case", list(BAD_BUNDLES))
def test_a_bad_bundle_is_refused_naming_the_resource_and_element(tmp_path, case):
    change, where, message = BAD_BUNDLES[case]
    bundle = change(copy.deepcopy(_chart()))
    for entry in bundle["entry"]:  # a None set by _edit removes the element
        for key in [k for k, v in entry["resource"].items() if v is None]:
            del entry["resource"][key]
    done = CliRunner().invoke(app, ["check", str(_write(tmp_path, bundle)), "--json"])
    assert done.exit_code == 3, done.output
    assert "Traceback" not in done.output
    errors = json.loads(done.output[done.output.index("{"):])["errors"]
    assert any(where in e["where"] and message in e["message"] for e in errors), errors
    assert not any("__root__" in e["where"] for e in errors), errors  # the validator's internal name


def test_values_are_read_as_written_and_what_did_not_happen_is_not_read(tmp_path):
    """49.995 % stays below 50 % (no rounding of measured values); a drug not taken, a cancelled
    Observation, a therapy visit still in preparation, a nerve block not done, a surgery with no
    outcome and a procedure no row lists document nothing; a drug given as a
    reference to a Medication resource is read from it."""
    bundle = _chart()
    _resource(bundle, "trial-relief")["valueQuantity"]["value"] = 49.995
    _resource(bundle, "med-nsaid")["status"] = "not-taken"
    _resource(bundle, "obs-pain-disabling")["status"] = "cancelled"
    _resource(bundle, "pt-12")["status"] = "preparation"
    _resource(bundle, "block-1")["status"] = "not-done"
    del _resource(bundle, "surgery-1")["outcome"]  # the surgery was done; how it went is not said
    bundle["entry"].append({"resource": {  # a procedure no row lists: its outcome is nobody's fact
        "resourceType": "Procedure", "id": "visit-1", "status": "completed", "subject": SUBJECT,
        "code": {"coding": [{"system": "http://www.ama-assn.org/go/cpt", "code": "99213"}]},
        "outcome": {"coding": [{"system": "http://snomed.info/sct", "code": "385669000"}]}}})
    plan = _resource(bundle, "plan-1")
    plan["medicationReference"] = {"reference": "Medication/morphine-pf"}
    del plan["medicationCodeableConcept"]
    bundle["entry"].append({"resource": {"resourceType": "Medication", "id": "morphine-pf", "code": {"coding": [
        {"system": "http://www.nlm.nih.gov/research/umls/rxnorm", "code": "7052"}]}}})
    facts = load_patient(_write(tmp_path, bundle), LOADED.vocab).facts
    assert facts["pain_trial_relief"] == 49.995
    assert "medications.nsaid.outcome" not in facts and "pain_disabling" not in facts
    assert "nerve_block_outcome" not in facts and "prior_surgery" not in facts
    assert facts["pt_visits"] == 11 and facts["planned_drugs"] == ("morphine",)


def test_other_orders_and_drugs_of_a_chart_are_not_read_as_the_request(tmp_path):
    """A chart holds other orders: an MRI ordered for another reason, dated otherwise, is not the
    pump request (a ServiceRequest is read only when its code says the pump service or procedure);
    a prescription taken by mouth is not the pump's drug (a MedicationRequest is read only with a
    route only a pump uses)."""
    bundle = _chart()
    bundle["entry"].append({"resource": {
        "resourceType": "ServiceRequest", "id": "sr-mri", "status": "active", "intent": "order", "subject": SUBJECT,
        "code": {"coding": [{"system": "http://www.ama-assn.org/go/cpt", "code": "72148"}]},
        "reasonCode": [{"coding": [{"system": "http://hl7.org/fhir/sid/icd-10-cm", "code": "M54.50"}]}],
        "authoredOn": "2025-12-01"}})
    bundle["entry"].append({"resource": {
        "resourceType": "MedicationRequest", "id": "rx-lisinopril", "status": "active", "intent": "order",
        "subject": SUBJECT, "medicationCodeableConcept": {"coding": [{"system": RXNORM, "code": "29046"}]},
        "dosageInstruction": [{"route": {"coding": [{"system": "http://snomed.info/sct", "code": "26643006"}]}}]}})
    patient = load_patient(_write(tmp_path, bundle), LOADED.vocab)
    assert (patient.facts["planned_drugs"], patient.facts["planned_route"]) == (("morphine",), "intrathecal")
    assert patient.facts["request_date"] == dt.date(2026, 3, 2) and patient.provenance["request_date"] == "ServiceRequest/req-1"
    assert patient.facts["procedure_codes"] == ("62362",)


def test_a_condition_coded_only_in_snomed_is_read(tmp_path):
    """SNOMED CT concepts the mapping lists give their diagnosis; any other SNOMED code (diabetes)
    is a diagnosis of kind other, as an unlisted ICD-10-CM code is; the chart is still read."""
    bundle = _chart()
    bundle["entry"].append({"resource": {"resourceType": "Condition", "id": "dx-ms", "subject": SUBJECT, "code": {
        "coding": [{"system": "http://snomed.info/sct", "code": "24700007", "display": "Multiple sclerosis"}]}}})
    bundle["entry"].append({"resource": {"resourceType": "Condition", "id": "dx-dm", "subject": SUBJECT, "code": {
        "coding": [{"system": "http://snomed.info/sct", "code": "44054006", "display": "Diabetes mellitus type 2"}]}}})
    patient = load_patient(_write(tmp_path, bundle), LOADED.vocab)
    assert set(patient.facts["diagnoses"]) == {"failed_back_surgery", "multiple_sclerosis", "other"}
    assert "Condition/dx-dm" in patient.provenance["diagnoses"]


def test_a_therapy_outcome_coded_in_snomed_is_read(tmp_path):
    bundle = _chart()
    _resource(bundle, "pt-12")["outcome"] = {"coding": [{"system": "http://snomed.info/sct", "code": "385671000"}]}
    patient = load_patient(_write(tmp_path, bundle), LOADED.vocab)
    assert (patient.facts["pt_outcome"], patient.provenance["pt_outcome"]) == ("failed", "Procedure/pt-12")


def test_a_drug_still_taken_is_measured_to_the_request_date(tmp_path):
    """A MedicationStatement whose period has no end is a course still going on: its length runs to
    the request date (ServiceRequest.authoredOn, 2026-03-02), wherever the request comes in the bundle."""
    bundle = _chart()
    _resource(bundle, "med-nsaid").update(status="active", effectivePeriod={"start": "2025-12-01"})
    bundle["entry"].append(bundle["entry"].pop(next(k for k, e in enumerate(bundle["entry"])
                                                    if e["resource"]["id"] == "req-1")))  # the request last
    patient = load_patient(_write(tmp_path, bundle), LOADED.vocab)
    assert patient.facts["medications.nsaid.weeks"] == pytest.approx((dt.date(2026, 3, 2) - dt.date(2025, 12, 1)).days / 7, abs=0.01)
    assert patient.provenance["medications.nsaid.weeks"] == "MedicationStatement/med-nsaid"


def test_only_the_latest_pain_score_is_read(tmp_path):
    """An earlier score says nothing about now, even one in no band; on one day the later time wins
    (times compared in UTC); two scores of one moment that differ still conflict."""
    bundle = _chart()
    _resource(bundle, "pain-score-1")["valueInteger"] = 0  # 2025: no pain then, in no band
    assert load_patient(_write(tmp_path, bundle), LOADED.vocab).facts["pain_severity"] == "severe"
    _resource(bundle, "pain-score-1").update(valueInteger=5, effectiveDateTime="2026-02-20T16:00:00+03:00")  # 13:00 UTC
    _resource(bundle, "pain-score-2")["effectiveDateTime"] = "2026-02-20T09:00:00-05:00"  # 14:00 UTC: later
    patient = load_patient(_write(tmp_path, bundle), LOADED.vocab)
    assert (patient.facts["pain_severity"], patient.provenance["pain_severity"]) == ("severe", "Observation/pain-score-2")
    _resource(bundle, "pain-score-1")["effectiveDateTime"] = "2026-02-20T14:00:00Z"
    done = CliRunner().invoke(app, ["check", str(_write(tmp_path, bundle))])
    assert done.exit_code == 3 and "give pain_severity different values" in done.output


def test_a_wrong_mapping_file_is_named_with_its_entry(tmp_path):
    folder = tmp_path / "policies"
    shutil.copytree(ROOT / "policies", folder)
    path = folder / "fhir_mapping.yaml"
    path.write_text(path.read_text().replace("concept: qtc_interval", "concept: qtc")
                    .replace('"5": commercial', '"5": employer').replace('"64400-64530"', '"64530-64400"')
                    .replace('severe: "7-10"', 'extreme: "7-10"')
                    .replace('# Age\n    concept: age', '# Age\n    concept: age\n    latest: true')
                    .replace('"3322": diazepam', '"3322": valium'))
    with pytest.raises(PolicyError) as err:
        load_mapping(folder, LOADED.vocab)
    found = {(p.where.split(": ")[-1], p.message) for p in err.value.problems}
    assert any(w.startswith("read[") and "'qtc' is not in the vocabulary" in m for w, m in found), found
    assert any("'employer', which is not a value of line_kind" in m for _, m in found), found
    assert any("`when` range '64530-64400' needs two codes" in m for _, m in found), found
    assert any("band 'extreme' is not a value of severity_kind" in m for _, m in found), found
    assert any("`latest` keeps the latest of a row's scores: it needs `bands`" in m for _, m in found), found
    assert any("code '3322' to 'valium', which is not a value of medication_kind" in m for _, m in found), found
    done = CliRunner().invoke(app, ["check", str(CHART), "--policies", str(folder)])
    assert done.exit_code == 3 and "fhir_mapping.yaml: read[" in done.output and "Traceback" not in done.output
    linted = CliRunner().invoke(app, ["lint", "--policies", str(folder)])
    assert linted.exit_code == 1 and "'qtc' is not in the vocabulary" in linted.output  # lint checks it too


# ---------------------------------------------------------------- a bundle and a questionnaire together
def _coded_chart_and_answers(tmp_path):
    """The chart's coded resources only (no documentation Observations), and geisinger's
    questionnaire answered from the YAML example."""
    from reasoner.fhir.questionnaire import prefill, questionnaire

    bundle = _chart()
    bundle["entry"] = [e for e in bundle["entry"] if e["resource"]["resourceType"] != "Observation"]
    yaml_patient = load_patient(ROOT / "examples/nonmalignant_implant.yaml", LOADED.vocab)
    q = questionnaire(LOADED.program, LOADED.vocab, "geisinger", "implant", "nonmalignant_pain")
    answers = prefill(q, yaml_patient.facts, LOADED.vocab, "qr1")
    return _write(tmp_path, bundle, "coded.json"), answers


def _answer(response: dict, link: str, answer: list) -> dict:
    for group in response["item"]:
        for item in group["item"]:
            if item["linkId"] == link:
                item["answer"] = answer
    return response


def test_a_bundle_and_a_questionnaire_merge_and_the_record_wins_where_the_mapping_says(tmp_path, reasoner):
    coded, answers = _coded_chart_and_answers(tmp_path)
    alone = load_patient(coded, LOADED.vocab)
    (denied,) = reasoner.decide(alone, ["geisinger"])
    assert not any(i["linkId"] == "age" for g in answers["item"] for i in g["item"])  # geisinger does not ask it
    answers["item"][0]["item"].append({"linkId": "age", "answer": [{"valueInteger": 70}]})  # the chart says 54
    merged = load_patient(coded, LOADED.vocab, also=[_write(tmp_path, answers, "qr.json")])
    (covered,) = reasoner.decide(merged, ["geisinger"])
    assert (denied.kind, covered.kind) == ("denied", "covered")
    # the record wins, and what it overrode is said where the fact's source is
    assert merged.facts["age"] == 54
    assert merged.provenance["age"] == "Patient/chart-fbss (over QuestionnaireResponse/qr1 item age gave 70)"
    assert merged.facts["pt_months_since"] == alone.facts["pt_months_since"]  # computed from visits, not the answer
    assert merged.provenance["psychological_evaluation"] == "QuestionnaireResponse/qr1 item psychological_evaluation"
    assert merged.provenance["medications.nsaid.outcome"] == (
        "MedicationStatement/med-nsaid; QuestionnaireResponse/qr1 item medications.nsaid.outcome")


def test_a_fact_the_two_inputs_give_differently_is_reported_with_both_sources(tmp_path):
    coded, answers = _coded_chart_and_answers(tmp_path)
    answers = _answer(answers, "medications.nsaid.outcome", [{"valueCoding": {
        "system": "urn:reasoner:intrathecal_pumps:outcome_kind", "code": "effective"}}])
    done = CliRunner().invoke(app, ["check", str(coded), "--with", str(_write(tmp_path, answers, "qr.json"))])
    assert done.exit_code == 3 and "Traceback" not in done.output
    text = " ".join(done.output.split())
    assert "field 'medications.nsaid.outcome'" in text
    assert "MedicationStatement/med-nsaid gives 'failed', QuestionnaireResponse/qr1 item medications.nsaid.outcome gives 'effective'" in text


def test_inputs_about_different_members_are_not_merged(tmp_path):
    """A completed questionnaire whose subject is another Patient than the bundle's is refused,
    naming both; the same subject merges."""
    coded, answers = _coded_chart_and_answers(tmp_path)
    other = _write(tmp_path, {**answers, "subject": {"reference": "Patient/someone-else"}}, "other.json")
    done = CliRunner().invoke(app, ["check", str(coded), "--with", str(other)])
    assert done.exit_code == 3 and "Traceback" not in done.output
    text = " ".join(done.output.split())
    assert "the inputs are about different members" in text and "Patient/chart-fbss" in text
    assert "QuestionnaireResponse.subject (Patient/someone-else)" in text
    same = _write(tmp_path, {**answers, "subject": {"reference": "Patient/chart-fbss"}}, "same.json")
    assert CliRunner().invoke(app, ["check", str(coded), "--with", str(same)]).exit_code == 0
