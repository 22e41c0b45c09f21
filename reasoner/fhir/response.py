"""A completed questionnaire (FHIR R4 QuestionnaireResponse) read as a patient.

The response must answer a questionnaire `reasoner questionnaire` wrote: its canonical URL names the
request (payer, service, indication), each answered item's linkId is a vocabulary concept, and a
coded answer uses the concept's domain system. The answers become a patient mapping that goes
through `validate` like any patient file, so every value check and message is the same; each fact
keeps where it was read ("QuestionnaireResponse/<id> item <linkId>").

Bad input is named by resource and element: invalid FHIR (from the R4B model's validation), an
item that is not a concept, a coding from another system, two answers to a one-answer question,
the same question answered twice with different values.
"""
from __future__ import annotations

import datetime as dt
from decimal import Decimal

from reasoner.errors import PatientError, Problem
from reasoner.fhir.questionnaire import URL
from reasoner.language.vocab import Vocabulary

# The code systems a vocabulary domain may declare, by their FHIR URLs: a question about diagnoses
# (names or ICD-10-CM codes) takes an ICD-10-CM Coding too, read as the vocabulary reads the code.
FHIR_SYSTEMS = {"ICD-10-CM": "http://hl7.org/fhir/sid/icd-10-cm"}
RESOURCE = "QuestionnaireResponse"


def is_response(data: object) -> bool:
    return isinstance(data, dict) and data.get("resourceType") == RESOURCE


def read_response(data: dict, vocab: Vocabulary, source: str) -> tuple[dict, dict, tuple]:
    """(patient mapping, provenance, notes) from a QuestionnaireResponse's JSON; PatientError
    otherwise. Every answer is read, so there are no notes (the bundle reader's may have some)."""
    from fhir.resources.R4B.questionnaireresponse import QuestionnaireResponse

    try:
        response = QuestionnaireResponse.parse_obj(data)  # fhir.resources 7 models are pydantic v1
    except ValueError as err:  # pydantic (v1 or v2) validation errors are ValueErrors with .errors()
        errors = err.errors() if hasattr(err, "errors") else [{"loc": (), "msg": str(err)}]
        raise PatientError([Problem(f"{source}: {RESOURCE}.{_path(e['loc'])}", f"not valid FHIR R4: {e['msg']}.")
                            for e in errors[:20]]) from None
    name = f"{RESOURCE}/{response.id or '?'}"
    request = _request(response.questionnaire, f"{source}: {name}.questionnaire")
    answers: dict[str, list] = {}
    where: dict[str, str] = {}
    problems: list[Problem] = []
    for item in _answered(response.item or []):
        at = f"{source}: {name} item '{item.linkId}'"
        concept = vocab.concepts.get(item.linkId)
        if concept is None:
            problems.append(Problem(at, "is not a concept of the vocabulary; answer the questionnaire "
                                        "`reasoner questionnaire` wrote (its linkIds are concept names)."))
            continue
        values = [_value(a, concept, vocab, at, problems) for a in item.answer]
        if item.linkId in answers and answers[item.linkId] != values:
            problems.append(Problem(at, f"is answered twice with different values ({_show(answers[item.linkId])} "
                                        f"and {_show(values)}); keep one."))
        if concept.kind not in ("set", "codes") and len(values) > 1:
            problems.append(Problem(at, f"has {len(values)} answers; this question takes one."))
        answers[item.linkId], where[item.linkId] = values, f"{name} item {item.linkId}"
    if problems:
        raise PatientError(problems)
    mapping: dict = {"id": response.id or None, **request}
    for concept_name, values in answers.items():
        many = vocab.concepts[concept_name].kind in ("set", "codes")
        mapping[concept_name] = values if many else values[0]
    return {k: v for k, v in mapping.items() if v is not None}, where, ()


def _request(canonical: str | None, at: str) -> dict:
    """service and indications from the questionnaire's canonical URL (urn:reasoner:questionnaire:...)."""
    prefix = URL.format(payer="", service="", indication="").split("::")[0] + ":"
    parts = (canonical or "").split("|")[0].removeprefix(prefix).split(":")
    if not canonical:
        raise PatientError([Problem(at, "is missing; a response names the questionnaire it answers (the `url` of "
                                        "the one `reasoner questionnaire` wrote), which says the request's "
                                        "service and indication.")])
    if not canonical.startswith(prefix) or len(parts) != 3:
        raise PatientError([Problem(at, f"{canonical!r} is not a questionnaire `reasoner questionnaire` wrote; the "
                                        "request's service and indication are read from its URL.")])
    _, service, indication = parts
    return {"service": service, "indications": [] if indication == "any" else [indication]}


def _answered(items):
    """Every item with answers, however deep (groups, and items nested under answers)."""
    for item in items:
        if item.answer:
            yield item
        yield from _answered(item.item or [])
        for answer in item.answer or []:
            yield from _answered(answer.item or [])


def _value(answer, concept, vocab: Vocabulary, at: str, problems: list[Problem]):
    for kind in ("valueBoolean", "valueDecimal", "valueInteger", "valueDate", "valueString", "valueCoding"):
        value = getattr(answer, kind, None)
        if value is None:
            continue
        if kind == "valueCoding":
            system = f"urn:reasoner:{vocab.name}:{concept.domain}"
            coded = FHIR_SYSTEMS.get(vocab.systems.get(concept.domain, ""))  # ICD-10-CM for diagnoses
            if value.system not in (system, coded):
                offered = system + (f", or {coded}" if coded else "")
                problems.append(Problem(at, f"the coding's system {value.system!r} is not the one this question "
                                            f"offers ({offered})."))
            return value.code
        if isinstance(value, Decimal):
            return int(value) if value == value.to_integral_value() else float(value)
        return value.isoformat() if isinstance(value, dt.date) else value
    problems.append(Problem(at, "an answer holds no value of a type this reader knows (boolean, decimal, integer, "
                                "date, string, Coding)."))
    return None


def _path(loc) -> str:
    return ".".join(str(x) for x in loc if x != "__root__") or "(root)"  # pydantic's name for a whole-object check


def _show(values: list) -> str:
    return ", ".join(map(str, values)) or "nothing"
