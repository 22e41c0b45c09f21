"""`reasoner questionnaire`: a payer's questions for one request, as a valid FHIR R4 Questionnaire
holding exactly the facts that payer's rules for the request can read."""
from __future__ import annotations

import json

import pytest
from fhir.resources.R4B.questionnaire import Questionnaire
from typer.testing import CliRunner

from reasoner.cli import EXIT_USAGE, app
from reasoner.fhir.questionnaire import REQUEST, facts_read, questionnaire
from reasoner.io.patient import Patient
from reasoner.language import ir
from reasoner.language.load import load
from reasoner.search import diff

from conftest import ROOT

LOADED = load(ROOT / "policies")
PAYERS = [p.id for p in LOADED.program.current]
REQUESTS = [("implant", "nonmalignant_pain"), ("trial", "spasticity"), ("implant", "cancer_pain"),
            ("refill", None), ("replacement", "spasticity")]


def _items(q: dict) -> list[dict]:
    return [item for group in q["item"] for item in group["item"]]


def _parse(q: dict) -> Questionnaire:
    return Questionnaire.model_validate(q) if hasattr(Questionnaire, "model_validate") else Questionnaire.parse_obj(q)


@pytest.mark.parametrize("payer", PAYERS)
@pytest.mark.parametrize("service,indication", REQUESTS)
def test_each_questionnaire_is_valid_fhir_and_asks_what_the_rules_read(payer, service, indication):
    q = questionnaire(LOADED.program, LOADED.vocab, payer, service, indication)
    parsed = _parse(q)
    assert parsed.status == "draft" and parsed.subjectType == ["Patient"]
    asked = [i["linkId"] for i in _items(q)]
    assert sorted(asked) == sorted(facts_read(LOADED.program.policy(payer), LOADED.vocab, service, indication))
    topics = [LOADED.vocab.concepts[name].topic for name in asked]
    assert topics == sorted(topics, key=LOADED.vocab.topics.index)  # grouped in the vocabulary's order
    # the request fixes the service, and the indication when it names one; for any, the form asks it
    assert len(asked) == len(set(asked)) and "service" not in asked and ("indications" in asked) == (indication is None)
    assert all(group["item"] for group in q["item"])  # no empty topic


def test_items_carry_the_vocabularys_kinds_ranges_units_and_values():
    q = questionnaire(LOADED.program, LOADED.vocab, "qualchoice", "implant", "nonmalignant_pain")
    seen = set()
    for item in _items(q):
        concept = LOADED.vocab.concepts[item["linkId"]]
        seen.add(concept.kind)
        if concept.kind == "number":
            ext = {e["url"].rsplit("/", 1)[1]: e for e in item["extension"]}
            key = "valueInteger" if concept.whole else "valueDecimal"
            assert (ext["minValue"][key], ext["maxValue"][key]) == (float(concept.low), float(concept.high))
            assert ext["questionnaire-unit"]["valueCoding"]["display"] == concept.unit
        elif concept.kind in ("enum", "set"):
            assert [o["valueCoding"]["code"] for o in item["answerOption"]] == list(LOADED.vocab.values_of(concept.name))
            assert item.get("repeats", False) == (concept.kind == "set")
        else:
            assert item["type"] == {"boolean": "boolean", "date": "date", "codes": "string"}[concept.kind]
    assert {"number", "enum", "boolean"} <= seen


def test_a_payer_that_reads_few_facts_asks_few_questions():
    """The questionnaires differ by payer as their rules do: CAM 70141 asks far less than QualChoice."""
    sizes = {p: len(_items(questionnaire(LOADED.program, LOADED.vocab, p, "implant", "nonmalignant_pain")))
             for p in PAYERS}
    assert sizes["cam70141"] < sizes["qualchoice"]
    # and an unscoped request (every indication) asks at least what each indication asks
    every = set(facts_read(LOADED.program.policy("qualchoice"), LOADED.vocab, "implant", None))
    assert every >= set(facts_read(LOADED.program.policy("qualchoice"), LOADED.vocab, "implant", "spasticity"))


@pytest.mark.slow
@pytest.mark.parametrize("service,indication", REQUESTS[:3])
def test_facts_not_asked_cannot_change_the_decision(reasoner, service, indication):
    """The questionnaire is complete: deleting every fact it does not ask (the request kept)
    leaves each payer's decision, on generated patients, exactly as it was."""
    fixed = {"service": service, "indications": [indication]}
    people = diff.generate(LOADED, PAYERS, fixed, 60, seed=11)
    changed = 0
    for payer in PAYERS:
        keep = set(facts_read(LOADED.program.policy(payer), LOADED.vocab, service, indication)) | set(REQUEST)
        for patient in people:
            trimmed = Patient(patient.id, patient.description,
                              {k: v for k, v in patient.facts.items() if k in keep}, patient.source)
            (full,) = reasoner.decide(patient, [payer], by_date=False)
            (asked,) = reasoner.decide(trimmed, [payer], by_date=False)
            assert asked.rule == full.rule, (payer, patient.facts)
            changed += len(patient.facts) - len(trimmed.facts)
    assert changed > 0  # the patients held facts the questionnaires leave out


def _shown(q: dict, facts: dict) -> dict:
    """The facts a person filling the questionnaire in order would give: a question is shown only
    when the questions it is enabled by are answered (and themselves shown)."""
    kept = {k: v for k, v in facts.items() if k in REQUEST}
    for item in _items(q):
        if item["linkId"] in facts and all(w["question"] in kept for w in item.get("enableWhen", ())):
            kept[item["linkId"]] = facts[item["linkId"]]
    return kept


@pytest.mark.parametrize("service,indication", REQUESTS[:3])
def test_questions_hidden_by_enable_when_cannot_change_the_decision(reasoner, service, indication):
    """enableWhen is sound: a question shown only after another is answered cannot change the
    decision while that other is unanswered, so dropping every fact a person would not be asked
    leaves each payer's decision as it was."""
    fixed = {"service": service, "indications": [indication]}
    people = diff.generate(LOADED, PAYERS, fixed, 40, seed=13)
    hidden = 0
    for payer in PAYERS:
        q = questionnaire(LOADED.program, LOADED.vocab, payer, service, indication)
        asked = {i["linkId"] for i in _items(q)}
        for patient in people:
            facts = {k: v for k, v in patient.facts.items() if k in asked or k in REQUEST}
            shown = _shown(q, facts)
            (full,) = reasoner.decide(Patient(patient.id, "", facts, ""), [payer], by_date=False)
            (filled,) = reasoner.decide(Patient(patient.id, "", shown, ""), [payer], by_date=False)
            assert filled.rule == full.rule, (payer, sorted(set(facts) - set(shown)))
            hidden += len(facts) - len(shown)
    assert hidden > 0  # enableWhen hid questions the patients had answered


def test_enable_when_names_earlier_questions_only():
    for payer in PAYERS:
        q = questionnaire(LOADED.program, LOADED.vocab, payer, "implant", "nonmalignant_pain")
        order = [i["linkId"] for i in _items(q)]
        for item in _items(q):
            for when in item.get("enableWhen", ()):
                assert order.index(when["question"]) < order.index(item["linkId"]) and when["operator"] == "exists"
    q = questionnaire(LOADED.program, LOADED.vocab, "cmm210", "trial", "spasticity")
    weeks = next(i for i in _items(q) if i["linkId"] == "pt_weeks")
    assert [w["question"] for w in weeks["enableWhen"]] == ["pt_outcome"]  # a course's length matters once it is told


def test_a_request_is_not_asked_what_only_another_indication_needs():
    """The request fixes the indication, so a branch it decides is not asked: a spasticity implant
    is not asked qualchoice's opioid-screening facts, which only a pain request reads; cmm210 asks
    a pain request the therapy's outcome but not its length (only its spasticity branch reads it)."""
    def asked(payer, service, indication):
        return {i["linkId"] for i in _items(questionnaire(LOADED.program, LOADED.vocab, payer, service, indication))}

    spasticity, pain = asked("qualchoice", "implant", "spasticity"), asked("qualchoice", "implant", "nonmalignant_pain")
    assert {"dire_score", "ort_score"} <= pain and not {"dire_score", "ort_score"} & spasticity
    assert len(spasticity) < len(pain) / 2
    assert "pt_outcome" in asked("cmm210", "implant", "nonmalignant_pain")
    assert "pt_weeks" not in asked("cmm210", "implant", "nonmalignant_pain")
    assert "pt_weeks" in asked("cmm210", "implant", "spasticity")


def test_cli_writes_the_questionnaire_and_refuses_unknown_names(tmp_path):
    out = tmp_path / "q.json"
    done = CliRunner().invoke(app, ["questionnaire", "--payer", "GEISINGER", "--service", "implant",
                                    "--indication", "spasticity", "--out", str(out)])
    assert done.exit_code == 0, done.output
    q = json.loads(out.read_text())
    assert q["id"] == "geisinger-implant-spasticity" and _parse(q)
    printed = CliRunner().invoke(app, ["questionnaire", "--payer", "geisinger", "--service", "implant",
                                       "--indication", "spasticity"])
    assert json.loads(printed.output) == q
    for args, message in ((["--payer", "nobody", "--service", "implant"], "unknown payer"),
                          (["--payer", "uhc", "--service", "pump"], "unknown service"),
                          (["--payer", "uhc", "--service", "implant", "--indication", "pain"], "unknown indications")):
        bad = CliRunner().invoke(app, ["questionnaire", *args])
        assert bad.exit_code == EXIT_USAGE and message in bad.output and "Traceback" not in bad.output


def test_a_questionnaire_for_any_indication_asks_it_and_its_response_reads_back(tmp_path):
    """Without --indication the request does not fix the indication, so the form asks it; the
    prefilled response then reads back to the patient's decisions."""
    out = tmp_path / "qr.json"
    example = str(ROOT / "examples/nonmalignant_implant.yaml")
    done = CliRunner().invoke(app, ["questionnaire", "--payer", "geisinger", "--service", "implant",
                                    "--prefill", example, "--out", str(out)])
    assert done.exit_code == 0, done.output
    from_form = CliRunner().invoke(app, ["check", str(out), "--payer", "geisinger", "--json"])
    from_file = CliRunner().invoke(app, ["check", example, "--payer", "geisinger", "--json"])
    assert from_form.exit_code == 0, from_form.output
    rule = lambda done: [(d["policy"], d["rule"]) for d in json.loads(done.stdout)["decisions"]]  # noqa: E731
    assert rule(from_form) == rule(from_file)


def test_as_of_asks_the_questions_of_the_version_in_force_then():
    """A request dated before a policy's revision is decided by the earlier version, so it is asked
    that version's questions; its own id names it too; a date that is none is refused."""
    args = ["questionnaire", "--payer", "cam70141", "--service", "implant", "--indication", "nonmalignant_pain"]
    dated = json.loads(CliRunner().invoke(app, [*args, "--as-of", "2016-06-01"]).output)
    by_id = json.loads(CliRunner().invoke(app, [*args[:2], "cam70141_pre2018", *args[3:]]).output)
    now = json.loads(CliRunner().invoke(app, args).output)
    assert dated == by_id and dated["id"] == "cam70141-pre2018-implant-nonmalignant-pain" and _parse(dated)
    assert now["id"] == "cam70141-implant-nonmalignant-pain" and now["title"] != dated["title"]
    bad = CliRunner().invoke(app, [*args, "--as-of", "2016-13-01"])
    assert bad.exit_code == EXIT_USAGE and "--as-of" in bad.output


# ---------------------------------------------------------------- completed questionnaires in
def _response_file(tmp_path, response: dict, name: str = "qr.json"):
    path = tmp_path / name
    path.write_text(json.dumps(response))
    return path


@pytest.mark.slow
@pytest.mark.parametrize("payer", PAYERS)
def test_a_prefilled_response_reads_back_as_the_asked_facts_and_the_same_decision(reasoner, tmp_path, payer):
    """Round trip: patient -> prefilled QuestionnaireResponse (valid FHIR) -> patient gives back
    every asked fact and the payer's decision, with each fact's provenance."""
    from fhir.resources.R4B.questionnaireresponse import QuestionnaireResponse

    from reasoner.fhir.questionnaire import prefill
    from reasoner.io.patient import load_patient

    service, indication = "implant", "nonmalignant_pain"
    q = questionnaire(LOADED.program, LOADED.vocab, payer, service, indication)
    asked = {i["linkId"] for i in _items(q)}
    people = diff.generate(LOADED, PAYERS, {"service": service, "indications": [indication]}, 40, seed=3)
    for k, patient in enumerate(people):
        response = prefill(q, patient.facts, LOADED.vocab, f"member-{k}")
        QuestionnaireResponse.parse_obj(response)
        back = load_patient(_response_file(tmp_path, response), LOADED.vocab)
        kept = _shown(q, {n: v for n, v in patient.facts.items() if n in asked or n in REQUEST})
        assert back.facts == kept
        assert back.provenance == {n: f"QuestionnaireResponse/member-{k} item {n}" for n in kept if n not in REQUEST}
        assert [d.rule for d in reasoner.decide(back, [payer], by_date=False)] == [d.rule for d in reasoner.decide(patient, [payer], by_date=False)]


def _good_response() -> dict:
    from reasoner.fhir.questionnaire import prefill
    from reasoner.io.patient import load_patient

    q = questionnaire(LOADED.program, LOADED.vocab, "uhc", "implant", "nonmalignant_pain")
    patient = load_patient(ROOT / "examples/nonmalignant_implant.yaml", LOADED.vocab)
    return prefill(q, patient.facts, LOADED.vocab, "r1")


def _set_answer(response: dict, link: str, answers: list) -> dict:
    for group in response["item"]:
        for item in group["item"]:
            if item["linkId"] == link:
                item["answer"] = answers
    return response


BAD_RESPONSES = {
    "not FHIR": (lambda r: {**r, "status": 7, "item": "x"}, "QuestionnaireResponse.item", "not valid FHIR R4"),
    "another questionnaire": (lambda r: {**r, "questionnaire": "http://example.org/Questionnaire/prior-auth"},
                              "QuestionnaireResponse/r1.questionnaire", "is not a questionnaire"),
    "no questionnaire named": (lambda r: {k: v for k, v in r.items() if k != "questionnaire"},
                               "QuestionnaireResponse/r1.questionnaire", "is missing; a response names the questionnaire"),
    "unknown item": (lambda r: {**r, "item": r["item"] + [{"linkId": "g9", "item": [
        {"linkId": "favourite_colour", "answer": [{"valueString": "blue"}]}]}]},
        "item 'favourite_colour'", "is not a concept"),
    "foreign coding": (lambda r: _set_answer(r, "line_of_business", [{"valueCoding": {
        "system": "http://terminology.hl7.org/CodeSystem/v3-ActCode", "code": "commercial"}}]),
        "item 'line_of_business'", "is not the one this question offers"),
    "two answers to one question": (lambda r: _set_answer(r, "age", [{"valueInteger": 54}, {"valueInteger": 55}]),
                                    "item 'age'", "this question takes one"),
    "conflicting repeats": (lambda r: {**r, "item": r["item"] + [{"linkId": "g9", "item": [
        {"linkId": "age", "answer": [{"valueInteger": 70}]}]}]}, "item 'age'", "answered twice"),
    "value out of range": (lambda r: _set_answer(r, "age", [{"valueInteger": 540}]), "field 'age'", "between"),
}


@pytest.mark.parametrize("case", list(BAD_RESPONSES))
def test_a_bad_response_is_refused_naming_the_resource_and_element(tmp_path, case):
    change, where, message = BAD_RESPONSES[case]
    path = _response_file(tmp_path, change(_good_response()))
    done = CliRunner().invoke(app, ["check", str(path), "--json"])
    assert done.exit_code == 3, done.output
    assert "Traceback" not in done.output
    errors = json.loads(done.output[done.output.index("{"):])["errors"]
    assert any(where in e["where"] and message in e["message"] for e in errors), errors


def test_other_fhir_resources_are_refused_plainly(tmp_path):
    path = _response_file(tmp_path, {"resourceType": "Observation", "status": "final", "code": {"text": "x"}})
    done = CliRunner().invoke(app, ["check", str(path)])
    assert done.exit_code == 3 and "FHIR 'Observation' is not read" in done.output


def test_cli_prefills_from_a_patient_file_and_checks_the_response(tmp_path):
    out = tmp_path / "qr.json"
    done = CliRunner().invoke(app, ["questionnaire", "--payer", "uhc", "--service", "implant", "--indication",
                                    "nonmalignant_pain", "--prefill", str(ROOT / "examples/nonmalignant_implant.yaml"),
                                    "--out", str(out)])
    assert done.exit_code == 0, done.output
    from_response = CliRunner().invoke(app, ["check", str(out), "--payer", "uhc", "--json"])
    from_file = CliRunner().invoke(app, ["check", str(ROOT / "examples/nonmalignant_implant.yaml"), "--payer", "uhc",
                                         "--json"])
    strip = lambda d: [{k: v for k, v in x.items() if k != "patient"} for x in json.loads(d.output)["decisions"]]
    assert strip(from_response) == strip(from_file)


def test_a_diagnosis_answered_as_an_icd10_coding_is_read_as_the_code(tmp_path):
    """The diagnoses question takes names or ICD-10-CM codes: an ICD-10-CM Coding is read as the
    vocabulary reads the code (M96.1, postlaminectomy syndrome: failed back surgery); a Coding in
    another system is refused, naming both systems the question takes."""
    from reasoner.fhir.questionnaire import prefill
    from reasoner.io.patient import load_patient

    q = questionnaire(LOADED.program, LOADED.vocab, "geisinger", "implant", "nonmalignant_pain")  # asks diagnoses
    patient = load_patient(ROOT / "examples/nonmalignant_implant.yaml", LOADED.vocab)
    response = prefill(q, patient.facts, LOADED.vocab, "r1")
    assert any(i["linkId"] == "diagnoses" for g in response["item"] for i in g["item"])
    icd = "http://hl7.org/fhir/sid/icd-10-cm"
    _set_answer(response, "diagnoses", [{"valueCoding": {"system": icd, "code": "M96.1"}}])
    facts = load_patient(_response_file(tmp_path, response), LOADED.vocab).facts
    assert facts["diagnoses"] == ("failed_back_surgery",)
    _set_answer(response, "diagnoses", [{"valueCoding": {"system": "http://snomed.info/sct", "code": "24700007"}}])
    done = CliRunner().invoke(app, ["check", str(_response_file(tmp_path, response)), "--json"])
    assert done.exit_code == 3 and f"or {icd})" in done.output
