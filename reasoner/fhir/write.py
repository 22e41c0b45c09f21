"""A patient's facts written as a FHIR R4 Bundle (type collection) that reads back to the same facts.

The writer uses the mapping's own rows, so what it writes is what the reader reads: the member
(Patient, with a birth date when the request date fixes the age), the Coverage (line of
business), the request (ServiceRequest: service and CPT/HCPCS codes, indications, date), the
planned drugs and route (MedicationRequest), one Condition per diagnosis (its first ICD-10-CM
code where the vocabulary declares one), one MedicationStatement per drug tried (outcome as its
status reason, the course as its period when the weeks are whole days), a Procedure where a
`when` row reads the fact from a procedure's outcome (nerve blocks, spine surgery), LOINC
Observations where the mapping has a code, and an Observation by concept name for every other fact. Used for sample
bundles, for the round-trip tests, and by `reasoner fhir PATIENT`.
"""
from __future__ import annotations

import datetime as dt
import json
import uuid
from decimal import Decimal

from reasoner.fhir.mapping import Mapping
from reasoner.fhir.questionnaire import UCUM, UCUM_CODES, _id
from reasoner.language.vocab import CODE_SYSTEMS, CPT_HCPCS, Concept, Vocabulary

ANCHOR = dt.date(2020, 1, 1)  # where a drug course's period ends when the request has no date


def to_bundle(facts: dict, vocab: Vocabulary, mapping: Mapping, patient_id: str = "member") -> dict:
    """The Bundle JSON for one patient's (validated, flat) facts."""
    w = _Writer(facts, vocab, mapping, _id(patient_id) or "member")
    w.patient()
    w.coverage()
    w.request()
    w.planned()
    w.diagnoses()
    w.medications()
    w.procedures()
    w.observations()
    return {"resourceType": "Bundle", "type": "collection",
            "entry": [{"fullUrl": f"urn:uuid:{uuid.uuid5(uuid.NAMESPACE_URL, r['resourceType'] + '/' + r['id'])}",
                       "resource": r}
                      for r in w.resources]}


class _Writer:
    def __init__(self, facts: dict, vocab: Vocabulary, mapping: Mapping, pid: str):
        self.facts, self.vocab, self.mapping, self.pid = dict(facts), vocab, mapping, pid
        self.resources: list[dict] = []
        self.subject = {"reference": f"Patient/{pid}"}

    def take(self, name: str):
        return self.facts.pop(name, None)

    def add(self, kind: str, suffix: str, body: dict) -> None:
        self.resources.append({"resourceType": kind, "id": _id(f"{self.pid}-{suffix}"), **body})

    def coding(self, concept: str, value: str) -> dict:
        domain = self.vocab.concepts[concept].domain
        return {"system": self.mapping.domain_system(domain), "code": value,
                "display": self.vocab.domains[domain].get(value, value)}

    def patient(self) -> None:
        age, date = self.facts.get("age"), self.facts.get("request_date")
        body: dict = {}
        if age is not None and date is not None and self.mapping.derive("age_at_request"):
            self.take("age")
            body["birthDate"] = _years_before(date, int(age)).isoformat()
        self.resources.append({"resourceType": "Patient", "id": self.pid, **body})

    def coverage(self) -> None:
        line = self.take("line_of_business")
        if line is not None:
            self.add("Coverage", "coverage", {"status": "active", "type": {"coding": [self.coding("line_of_business", line)]},
                                              "beneficiary": self.subject, "payor": [{"display": "the member's plan"}]})

    def request(self) -> None:
        service, codes = self.take("service"), self.take("procedure_codes") or ()
        indications, date = self.take("indications") or (), self.take("request_date")
        if service is None and not codes and not indications and date is None:
            return
        body: dict = {"status": "active", "intent": "order", "subject": self.subject}
        coded = ([self.coding("service", service)] if service else []) + [_procedure(c, self.mapping) for c in codes]
        if coded:
            body["code"] = {"coding": coded}
        if indications:
            body["reasonCode"] = [{"coding": [self.coding("indications", i)]} for i in indications]
        if date is not None:
            body["authoredOn"] = date.isoformat()
        self.add("ServiceRequest", "request", body)

    def planned(self) -> None:
        """The planned drugs as MedicationRequests with the pump's route; without a route, which is
        what marks a MedicationRequest as the pump's (the mapping's `when`), as Observations."""
        drugs = self.facts.get("planned_drugs") or ()
        if not drugs or self.facts.get("planned_route") is None:
            return
        self.take("planned_drugs")
        route = self.take("planned_route")
        for drug in drugs:
            body = {"status": "draft", "intent": "plan", "subject": self.subject,
                    "medicationCodeableConcept": {"coding": [self.coding("planned_drugs", drug)]}}
            body["dosageInstruction"] = [{"route": {"coding": [self.coding("planned_route", route)]}}]
            self.add("MedicationRequest", f"planned-{drug}", body)

    def diagnoses(self) -> None:
        for value in self.take("diagnoses") or ():
            code = _first_code(self.vocab, "diagnosis_kind", value)
            system = self.mapping.systems.get("icd10cm")
            coding = {"system": system, "code": code} if code and system else self.coding("diagnoses", value)
            self.add("Condition", f"dx-{value}", {"subject": self.subject, "code": {"coding": [coding]}})

    def medications(self) -> None:
        record = self.vocab.records.get("medications")
        if record is None or not any(r.record == "medications" for r in self.mapping.reads):
            return
        end = self.facts.get("request_date") or ANCHOR
        for key in self.vocab.domains[record.key_domain]:
            outcome = self.take(record.concept(key, "outcome"))
            weeks = self.facts.get(record.concept(key, "weeks"))
            days = None if weeks is None else Decimal(str(weeks)) * 7
            whole = days is not None and days == days.to_integral_value()
            if outcome is None and not whole:
                continue
            body: dict = {"status": "completed", "subject": self.subject, "medicationCodeableConcept": {
                "coding": [{"system": self.mapping.domain_system(record.key_domain), "code": key}]}}
            if outcome is not None:
                body["statusReason"] = [{"coding": [self.coding(record.concept(key, "outcome"), outcome)]}]
            if whole:
                self.take(record.concept(key, "weeks"))
                body["effectivePeriod"] = {"start": (end - dt.timedelta(days=int(days))).isoformat(), "end": end.isoformat()}
            self.add("MedicationStatement", f"med-{key}", body)

    def procedures(self) -> None:
        """A fact a `when` row reads from a procedure's outcome, as that procedure (its first listed
        code) with the outcome's code; a value no outcome code gives (not_tried) stays an Observation."""
        for row in self.mapping.reads:
            if not row.when or row.element != "outcome" or row.concept not in self.facts:
                continue
            back = {value: (system, code) for system, table in row.codes.items() for code, value in table.items()}
            if self.facts[row.concept] not in back:
                continue
            system, code = back[self.take(row.concept)]
            what, ranges = next(iter(row.when.items()))
            self.add("Procedure", row.concept.replace("_", "-"), {
                "status": "completed", "subject": self.subject,
                "code": {"coding": [{"system": what, "code": ranges[0][0]}]},
                "outcome": {"coding": [{"system": system, "code": code}]}})

    def observations(self) -> None:
        coded = {r.concept: r.code for r in self.mapping.reads if r.code and not r.bands}  # a band is no score
        for name, value in list(self.facts.items()):
            concept = self.vocab.concepts.get(name)
            if concept is None:
                continue
            system, code = coded.get(name) or (self.mapping.concept_system, name)
            for k, one in enumerate(value if isinstance(value, (list, tuple)) else [value]):
                body = {"status": "final", "subject": self.subject,
                        "code": {"coding": [{"system": system, "code": code}]}, **self.value(concept, one)}
                self.add("Observation", f"{name}-{k}" if k else name, body)


    def value(self, concept: Concept, value) -> dict:
        if concept.kind == "boolean":
            return {"valueBoolean": value}
        if concept.kind == "number":
            unit = UCUM_CODES.get(concept.unit or "")
            quantity = {"value": value, "unit": concept.unit}
            return {"valueQuantity": {**quantity, "system": UCUM, "code": unit} if unit else quantity}
        if concept.kind == "date":
            return {"valueDateTime": value.isoformat()}
        if concept.kind == "codes":
            return {"valueCodeableConcept": {"coding": [{"system": concept.system, "code": value}]}}
        return {"valueCodeableConcept": {"coding": [self.coding(concept.name, value)]}}


def _years_before(date: dt.date, years: int) -> dt.date:
    try:
        return date.replace(year=date.year - years)
    except ValueError:  # 29 February in a year without one: the day before still gives `years` completed
        return date.replace(year=date.year - years, day=28)


def _first_code(vocab: Vocabulary, domain: str, value: str) -> str | None:
    """The value's first declared code that is a whole code (a bare chapter letter such as C is not)."""
    form = CODE_SYSTEMS.get(vocab.systems.get(domain, ""))
    return next((code for code, v in vocab.codes.get(domain, {}).items()
                 if v == value and form is not None and form.match(code)), None)


def _procedure(code: str, mapping: Mapping) -> dict:
    system = mapping.systems.get("cpt") if CPT_HCPCS.match(code) and code[0].isdigit() else mapping.systems.get("hcpcs")
    return {"system": system, "code": code}


def write_bulk(patients, folder, vocab: Vocabulary, mapping: Mapping) -> int:
    """A FHIR Bulk Data export of (id, facts) pairs: one NDJSON file per resource type in `folder`,
    written a member at a time (memory flat). Returns the number of members written."""
    from pathlib import Path

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    handles: dict = {}
    count = 0
    try:
        for patient_id, facts in patients:
            for entry in to_bundle(facts, vocab, mapping, patient_id)["entry"]:
                kind = entry["resource"]["resourceType"]
                if kind not in handles:
                    handles[kind] = (folder / f"{kind}.ndjson").open("w", encoding="utf-8")
                handles[kind].write(json.dumps(entry["resource"], ensure_ascii=False) + "\n")
            count += 1
    finally:
        for handle in handles.values():
            handle.close()
    return count
