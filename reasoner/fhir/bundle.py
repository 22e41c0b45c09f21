"""A FHIR R4 Bundle (JSON) read as one patient, through the mapping file.

The bundle is validated whole with the R4B models (`fhir.resources`) first, so nothing is read
from a bundle that is not FHIR. Then each resource is read through the rows of
`policies/fhir_mapping.yaml` (see that file for what maps to what), facts that are computed from
dated resources are derived, and the facts are merged: a set gathers every resource's values; a
single value given differently by two resources is a conflict, reported with both resources.
The result goes through `validate` like any patient file, so every value check and message is the
same, and each fact keeps the resources it was read from (`Patient.provenance`).

Errors name the resource and element (`Condition/c2.code`, `Observation/o1.valueQuantity.unit`);
any error refuses the whole bundle, so nothing is half-read.
"""
from __future__ import annotations

import datetime as dt
import functools
import re
from collections import defaultdict
from decimal import Decimal

from reasoner.errors import PatientError, Problem
from reasoner.fhir.mapping import Derive, Mapping, Read, codings, element
from reasoner.fhir.questionnaire import UCUM_CODES
from reasoner.language.vocab import Concept, Vocabulary

RESOURCE = "Bundle"
NOT_A_DIAGNOSIS = {"refuted", "entered-in-error"}
SUBJECT = ("subject", "patient", "beneficiary")  # where a resource names its patient
ABOUT = ("focus",)  # a resource about someone else than its subject (e.g. the member's mother)
DATE = re.compile(r"^\d{4}-\d{2}-\d{2}(T\d{2}:\d{2}(:\d{2}(\.\d+)?)?(Z|[+-]\d{2}:\d{2})?)?$")
MAX_SHOWN = 80  # characters of an input value repeated in a message
MAX_RULE = 400  # characters of a validator's own message (it quotes the rule, e.g. the value[x] choices)
VALUES = ("valueQuantity", "valueBoolean", "valueInteger", "valueDateTime", "valueString", "valueCodeableConcept")
MEDICATION = "medicationCodeableConcept"  # the element a Medication resource may stand in for (medicationReference)
PATIENT_REF = r"Patient/[A-Za-z0-9.-]{1,64}"  # a relative reference to a Patient (also in bulk.py's SQL)
VERSION_REF = r"/_history/[A-Za-z0-9.-]{1,64}"  # the version part of a versioned reference
VERSIONED = re.compile(rf"(?:^|/)({PATIENT_REF})(?:{VERSION_REF})?$")
DAYS_PER_MONTH = Decimal("365.25") / 12


def is_bundle(data: object) -> bool:
    return isinstance(data, dict) and data.get("resourceType") == RESOURCE


def read_bundle(data: dict, vocab: Vocabulary, mapping: Mapping, source: str,
                validate: bool = True) -> tuple[dict, dict, tuple[Problem, ...]]:
    """(patient mapping, provenance, notes) from a Bundle's JSON; PatientError naming resource and
    element. The notes say what the bundle holds that was deliberately not read (see `_Reader.note`).

    `validate` False skips the R4B model validation (about 40 ms for a 40-resource chart, 40 times
    the reading itself): Bulk Data exports of whole populations rely on the reader's own checks of
    every element it reads; the resources' other elements are not read at all."""
    _shape(data, source)
    if validate:
        _validate(data, source)
    resources = [e["resource"] for e in data.get("entry") or [] if isinstance(e.get("resource"), dict)]
    reader = _Reader(vocab, mapping, source)
    patient = reader.patient(resources, data)
    for resource in resources:
        reader.resource(resource, patient)
    reader.settle()
    reader.derive(resources, patient)
    return reader.result(patient)


def _shape(data: dict, source: str) -> None:
    """What every later step relies on, said plainly before the models' own messages: entries are
    objects whose resource names a resource type the R4B models know, ids are unique, and no
    resource carries a modifierExtension (FHIR forbids reading such a resource as if it had none)."""
    entries = data.get("entry")
    if entries is not None and not isinstance(entries, list):
        raise PatientError([Problem(f"{source}: {RESOURCE}.entry", "must be a list of entries.")])
    problems, seen = [], set()
    for k, entry in enumerate(entries or []):
        resource = entry.get("resource") if isinstance(entry, dict) else None
        where = f"{source}: {RESOURCE}.entry[{k}]"
        if not isinstance(entry, dict) or not isinstance(resource, dict):
            problems.append(Problem(where, "is not an entry holding a resource (an object with a resource object)."))
            continue
        kind = resource.get("resourceType")
        if not (isinstance(kind, str) and _known_type(kind)):
            problems.append(Problem(f"{where}.resource.resourceType", f"{_short(kind)} is not a FHIR R4 resource type."))
            continue
        name = name_of(resource)
        if resource.get("id") is not None and name in seen:
            problems.append(Problem(f"{source}: {name}", "appears twice in the bundle; give each resource its own id."))
        seen.add(name)
        if resource.get("modifierExtension"):
            problems.append(Problem(f"{source}: {name}.modifierExtension", "changes the resource's meaning in a way this "
                                                                           "reader does not understand; FHIR forbids "
                                                                           "reading it as if absent."))
    if problems:
        raise PatientError(problems[:20])


@functools.lru_cache(maxsize=256)
def _known_type(kind: str) -> bool:
    """Whether the R4B models know this resource type (asked once per type: a Bulk export asks
    for every one of its millions of resources)."""
    from fhir.resources.R4B import get_fhir_model_class

    try:
        return get_fhir_model_class(kind) is not None
    except (KeyError, LookupError, ValueError, AttributeError):
        return False


def _validate(data: dict, source: str) -> None:
    from fhir.resources.R4B.bundle import Bundle

    try:
        Bundle.parse_obj(data)  # fhir.resources 7 models are pydantic v1; entries are validated by type
    except RecursionError:
        raise PatientError([Problem(f"{source}: {RESOURCE}", "not valid FHIR R4: nested too deeply.")]) from None
    except ValueError as err:
        errors = err.errors() if hasattr(err, "errors") else [{"loc": (), "msg": str(err)}]
        raise PatientError([Problem(f"{source}: {_where(data, e['loc'])}", f"not valid FHIR R4: {e['msg'][:MAX_RULE].rstrip('.!')}.")
                            for e in errors[:20]]) from None


def _where(data: dict, loc) -> str:
    """A validation error's location, naming the entry's resource (Observation/o1.valueQuantity)."""
    loc = [part for part in loc if part != "__root__"]  # pydantic's name for a whole-object check
    if len(loc) >= 3 and loc[0] == "entry" and isinstance(loc[1], int) and loc[2] == "resource":
        try:
            resource = data["entry"][loc[1]]["resource"]
            name = f"{resource.get('resourceType', '?')}/{resource.get('id', '?')}"
        except (KeyError, IndexError, TypeError, AttributeError):
            name = f"entry[{loc[1]}].resource"
        return ".".join([name, *map(str, loc[3:])])
    return ".".join([RESOURCE, *map(str, loc)])


def name_of(resource: dict) -> str:
    return f"{resource.get('resourceType')}/{_short(resource.get('id') or '?', quote=False)}"


def _short(value, quote: bool = True) -> str:
    text = repr(value) if quote else str(value)
    return text if len(text) <= MAX_SHOWN else text[:MAX_SHOWN] + f"… ({len(text):,} characters)"


class _Reader:
    """Gathers (value, resource) per concept, and the problems, over one bundle."""

    def __init__(self, vocab: Vocabulary, mapping: Mapping, source: str):
        self.vocab, self.mapping, self.source = vocab, mapping, source
        self.found: dict[str, list[tuple[object, str]]] = defaultdict(list)
        self.problems: list[Problem] = []
        self.notes: list[Problem] = []  # what is deliberately not read (see `note`)
        self.medications: dict[str, dict] = {}  # reference -> Medication resource (for medicationReference)
        self.dated: dict[str, list] = defaultdict(list)  # concept -> (moment, score, resource) for `latest` rows
        self.ongoing: list[tuple] = []  # (concept, start, resource, element): courses with no end yet
        self.ranked: list[tuple] = []  # (row, rank, resource) for `first_by` rows
        self.explicit: set[str] = set()  # concept Observations: a fact stated as such, read over what it sums up

    def problem(self, where: str, message: str) -> None:
        self.problems.append(Problem(f"{self.source}: {where}", message))

    def _reported(self, where: str) -> bool:
        """Whether a problem was already said at this place (one message a place, not one a cause)."""
        return any(p.where.endswith(where) for p in self.problems)

    def note(self, where: str, message: str) -> None:
        """Something the input says that is deliberately not read (a drug the table does not list):
        not an error, but said, so that nothing is dropped without a word."""
        self.notes.append(Problem(f"{self.source}: {where}", message, "note"))

    def _codes(self, found: list[dict], row: Read) -> str:
        """The codings of a row's systems, as a person reads them: rxnorm 310965 ('Ibuprofen 200 MG …')."""
        names = {url: name for name, url in self.mapping.systems.items()}
        return ", ".join(f"{names.get(c.get('system'), c.get('system'))} {c.get('code')}"
                         + (f" ({_short(c['display'])})" if c.get("display") else "")
                         for c in found if c.get("system") in row.codes)

    # ------------------------------------------------------------ the patient and references
    def patient(self, resources: list[dict], bundle: dict) -> dict | None:
        patients = [r for r in resources if r.get("resourceType") == "Patient"]
        if len(patients) > 1:
            self.problem(f"{RESOURCE}.entry", f"holds {len(patients)} Patient resources "
                                              f"({', '.join(name_of(p) for p in patients)}); a bundle describes one member.")
        if not patients and resources:
            self.problem(f"{RESOURCE}.entry", "holds no Patient resource; a bundle describes one member, whose "
                                              "Patient resource the other resources point at.")
        self.refs = {f"Patient/{p.get('id')}" for p in patients if p.get("id")}
        self.refs |= {e.get("fullUrl") for e in bundle.get("entry") or []
                      if isinstance(e.get("resource"), dict) and e["resource"].get("resourceType") == "Patient"
                      and e.get("fullUrl")}
        self.anonymous = bool(patients) and not patients[0].get("id")  # resources may still use its fullUrl
        for entry in bundle.get("entry") or []:
            medication = entry.get("resource") or {}
            if medication.get("resourceType") == "Medication":
                self.medications[f"Medication/{medication.get('id')}"] = medication
                if entry.get("fullUrl"):
                    self.medications[entry["fullUrl"]] = medication
        return patients[0] if patients else None

    def _points_at_patient(self, resource: dict) -> bool:
        """Whether the resource is about the bundle's member: its subject (patient, beneficiary)
        references the Patient, and nothing says it is about someone else."""
        for key in SUBJECT + ABOUT:
            for ref in resource.get(key) if isinstance(resource.get(key), list) else [resource.get(key)]:
                if ref is None or not (self.refs or self.anonymous):
                    continue
                target = ref.get("reference") if isinstance(ref, dict) else None
                if target is None:
                    self.problem(f"{name_of(resource)}.{key}", "names its patient without a reference; reference the "
                                                               "bundle's Patient (Patient/<id>).")
                    return False
                if target in self.refs or _relative(target) in self.refs:
                    continue
                if not self.anonymous:
                    self.problem(f"{name_of(resource)}.{key}", f"points at {_short(target)}, which is not the "
                                                               "bundle's Patient; a bundle describes one member.")
                elif not self._reported("Patient.id"):  # said once, not per resource
                    self.problem("Patient.id", f"is missing, so {_short(target)} (from {name_of(resource)}."
                                               f"{key}) and the like point at no Patient; give the Patient an id.")
                return False
        return True

    # ------------------------------------------------------------ one resource
    def resource(self, resource: dict, patient: dict | None) -> None:
        kind = resource.get("resourceType")
        if kind == "Patient" or not self._points_at_patient(resource):
            return
        if resource.get("status") in self.mapping.skipped(kind) or _refuted(resource):
            return
        if kind == "Observation":
            self._observation(resource)
        shared: dict[str, list] = {}  # element -> (concept, values read) of its optional rows
        for row in self.mapping.rows(kind):
            if row.code is None and row.selects(resource):
                if row.first_by or row.in_force:
                    self.ranked.append((row, row.rank(resource), resource))  # read in `settle`, which picks
                    continue
                got = self._row(resource, row)
                if row.optional:
                    shared.setdefault(row.element, []).append((row.concept, got))
        for path, rows in shared.items():
            self._unread(resource, path, rows)

    def _unread(self, resource: dict, path: str, rows: list) -> None:
        """Optional rows share an element (ServiceRequest.reasonCode: an indication in the
        vocabulary's system, a diagnosis in ICD-10-CM): a coding none of them reads is reported,
        as for any row."""
        where = f"{name_of(resource)}.{path}"
        found = codings(element(resource, path))
        if found and not any(got for _, got in rows) and not self._reported(where):
            systems = ", ".join(dict.fromkeys(str(c.get("system") or "no system") for c in found))
            self.problem(where, f"has no coding this reader maps to {' or '.join(c for c, _ in rows)} (systems: "
                                f"{systems}); code it in a system the mapping lists, or add the code to "
                                f"{self.mapping.source}.")

    def _row(self, resource: dict, row: Read) -> int:
        """Read one row from a resource; how many values it gave."""
        if row.record:
            self._record(resource, row)
            return 1
        concept = self.vocab.concepts[row.concept]
        where = f"{name_of(resource)}.{row.element}"
        values = element(resource, row.element)
        if not values and row.element == MEDICATION:
            got = self._medication_values(resource, row, concept, where)
        else:
            got = [one for value in values for one in
                   ([_date(value, where, self)] if concept.kind == "date" else self._coded(value, concept, row, where))]
        for one in got:
            self.add(row.concept, one, resource)
        return sum(one is not None for one in got)

    def _medication_values(self, resource: dict, row: Read, concept: Concept, where: str) -> list:
        """A drug given as a reference to a Medication (in the bundle, or contained): the values of
        its code; or, when the row's tables do not know that code (a clinical drug, ibuprofen 600 MG
        Oral Tablet), of its ingredients, each of a combination a value."""
        where = where.replace(f".{MEDICATION}", ".medicationReference")
        found = self._medication(resource, row.element) or {}
        code = [found["code"]] if found.get("code") else []
        parts = [i["itemCodeableConcept"] for i in found.get("ingredient") or []
                 if isinstance(i, dict) and isinstance(i.get("itemCodeableConcept"), dict)]
        got = [k for v in code for k in self._coded(v, concept, row, where, quiet=bool(parts))]
        return got or list(dict.fromkeys(k for v in parts for k in self._coded(
            v, concept, row, f"{where} -> Medication.ingredient")))

    def _coded(self, value, concept: Concept, row: Read | None, where: str, quiet: bool = False) -> list:
        """A CodeableConcept's values for a concept: own system, code tables, passed systems
        (`quiet`: a code none of them maps is neither noted nor reported, as something else, a
        Medication's ingredients, may still say it)."""
        own = self.mapping.domain_system(concept.domain) if concept.domain else None
        out, seen = [], []
        for coding in codings(value):
            system, code = coding.get("system"), coding.get("code")
            seen.append(system or "no system")
            if code is None:
                continue
            if system == own and concept.domain:
                if code not in self.vocab.domains[concept.domain]:
                    self.problem(where, f"codes {_short(code)} in {own}, which has no such value; known: "
                                        f"{', '.join(self.vocab.domains[concept.domain])}.")
                    return []
                out.append(code)
            elif row and system in row.codes:
                mapped = _lookup(row.codes[system], code, row.prefix)
                if mapped is not None:
                    out.append(mapped)
            elif row and system in row.passes:
                out.append(code)
        if not out and quiet:
            return []
        if not out and row and row.ignores(codings(value)):
            self.note(where, f"{self._codes(codings(value), row)}: not in the mapping's table for {concept.name}, so "
                             f"not read; add the code to {self.mapping.source} if a policy should see it.")
            return []
        if not out and row and row.unlisted == "other" and row.listed(codings(value)):
            return ["other"]  # a code of a known system that names none of the listed values
        if not out and not (row and row.optional) and not self._reported(where):
            self.problem(where, f"has no coding this reader maps to {concept.name} (systems: "
                                f"{', '.join(dict.fromkeys(map(str, seen))) or 'none'}); code it in "
                                f"{own or 'a system the mapping lists'} or add the code to {self.mapping.source}.")
        return out

    def _record(self, resource: dict, row: Read) -> None:
        record = self.vocab.records[row.record]
        key_concept = Concept(record.name, "enum", record.meaning, domain=record.key_domain)
        where = f"{name_of(resource)}.{row.element}"
        values = element(resource, row.element)
        if values:  # one record per drug, under the first class its codings name
            keys = [k for v in values for k in self._coded(v, key_concept, row, where)][:1]
        else:  # a Medication resource: the class of its code, or else of each ingredient (each a class tried)
            keys = list(dict.fromkeys(self._medication_values(resource, row, key_concept, where)))
        for key in keys:
            for field, path in row.fields:
                concept = self.vocab.concepts[record.concept(key, field)]
                for value in element(resource, path):
                    got = self._field(value, concept, f"{name_of(resource)}.{path}")
                    if isinstance(got, dt.date):  # a course still going on: measured to the request
                        self.ongoing.append((concept.name, got, resource, f"{name_of(resource)}.{path}"))
                    elif got is not None:
                        self.add(concept.name, got, resource)

    def _medication(self, resource: dict, path: str) -> dict | None:
        """The Medication a medicationReference points at: one of the bundle, or one contained in
        the resource itself (#id, as EHR exports often write it)."""
        if path != MEDICATION or "medicationReference" not in resource:
            return None
        target = (resource.get("medicationReference") or {}).get("reference")
        if isinstance(target, str) and target.startswith("#"):
            found = next((c for c in resource.get("contained") or [] if isinstance(c, dict)
                          and c.get("resourceType") == "Medication" and c.get("id") == target[1:]), None)
        else:
            found = self.medications.get(target)
        if found is None:
            self.problem(f"{name_of(resource)}.medicationReference", f"points at {_short(target)}, which is not a "
                                                                     "Medication resource of this bundle, nor one it "
                                                                     "contains.")
        return found

    def _field(self, value, concept: Concept, where: str):
        """A record field's value: a code, or a course's length in weeks from its period (a period
        with no end is a course still going on: its start, measured once the request date is known)."""
        if isinstance(value, dict) and ("start" in value or "end" in value):
            start, end = _date(value.get("start"), where, self), _date(value.get("end"), where, self)
            if start is None:
                if value.get("start") is None:  # a start that is no date is reported as such
                    self.problem(where, "needs a start to give the course's length.")
                return None
            return start if "end" not in value else None if end is None else _number(Decimal((end - start).days) / 7)
        got = self._coded(value, concept, None, where, quiet=True)
        if not got and not self._reported(where):  # a reason in words or another system
            own = self.mapping.domain_system(concept.domain) if concept.domain else "the vocabulary's system"
            said = (value.get("text") if isinstance(value, dict) else None) or ", ".join(
                f"{c.get('system')} {c.get('code')}" for c in codings(value)) or _short(value)
            self.note(where, f"{_short(said)}: not coded in {own}, so {concept.name} is not read (a payer asking for "
                             f"it sees it undocumented); code it there, or give it by concept Observation.")
        return got[0] if got else None

    # ------------------------------------------------------------ Observations
    def _observation(self, resource: dict) -> None:
        for coding in codings(resource.get("code")):
            system, code = coding.get("system"), coding.get("code")
            if system == self.mapping.concept_system:
                concept = self.vocab.concepts.get(code)
                if concept is None:
                    self.problem(f"{name_of(resource)}.code", f"names {_short(code)}, which is not a concept of the "
                                                              "vocabulary.")
                    return
                self._value(resource, concept)
                self.explicit.add(name_of(resource))
                return
            for row in self.mapping.rows("Observation"):
                if row.code == (system, code):
                    concept = self.vocab.concepts[row.concept]
                    if row.bands:
                        self._banded(resource, concept, row)
                    else:
                        self._value(resource, concept)
                    return

    def _banded(self, resource: dict, concept: Concept, row: Read) -> None:
        """A score (valueInteger, or a Quantity in {score}) read as the band holding it; with
        `latest`, kept with its time until every resource is read, and only the latest is read
        (see `settle`): an earlier score, even one in no band, says nothing about now."""
        name = name_of(resource)
        quantity = resource.get("valueQuantity")
        if "valueInteger" in resource:
            score, where = resource["valueInteger"], f"{name}.valueInteger"
        elif isinstance(quantity, dict) and quantity.get("code", quantity.get("unit")) in (None, "{score}", "1"):
            score, where = quantity.get("value"), f"{name}.valueQuantity"
        else:
            self.problem(f"{name}.value[x]", f"{concept.name} is read from a score here: give valueInteger, or a "
                                             "valueQuantity in {score}.")
            return
        if not row.latest:
            self._band(concept, row, score, where, resource)
            return
        when = resource.get("effectiveDateTime") or resource.get("effectiveInstant") or \
            (resource.get("effectivePeriod") or {}).get("end")
        moment = _moment(when, f"{name}.effective[x]", self)
        if moment is None:
            if when is None:
                self.problem(f"{name}.effective[x]", f"is missing; {concept.name} is read from the latest score, "
                                                     "which needs each score's date.")
            return
        self.dated[concept.name].append((moment, (row, score, where), resource))

    def _band(self, concept: Concept, row: Read, score, where: str, resource: dict) -> None:
        number = isinstance(score, (int, float)) and not isinstance(score, bool)
        band = next((v for v, low, high in row.bands if number and low <= score <= high), None)
        if band is None:
            shown = ", ".join(f"{v} {low:g}-{high:g}" for v, low, high in row.bands)
            self.problem(where, f"{_short(score)} is in no band the mapping reads as {concept.name} ({shown}); "
                                f"record {concept.name} itself (an Observation by concept name).")
            return
        self.add(concept.name, band, resource)

    def settle(self) -> None:
        """What needs every resource read first: rows read from the first resource by an element
        (the primary Coverage, by its order); courses still going on, measured to the request
        date; and facts read from the latest resource only: those of the latest moment (a day, or
        a time when each says its time). Two firsts or two latest that differ are a conflict, as
        ever; so are two resources when one does not say its rank (all are then read)."""
        request = self._request_date()
        ranked = [(row, rank, r) for row, rank, r in self.ranked if self._in_force(row, r, request)]
        for row, rank, resource in ranked:
            ranks = [r for w, r, _ in ranked if w is row]
            if not row.first_by or None in ranks or rank == min(ranks):  # one not saying its rank may be first
                self._row(resource, row)
        for name, start, resource, where in self.ongoing:
            if request is None:
                self.problem(where, "has no end: a course still going on is measured to the request date, "
                                    "which no resource gives (ServiceRequest.authoredOn).")
            elif request < start:
                self.problem(where, f"starts {start.isoformat()}, after the request ({request.isoformat()}).")
            else:
                self.add(name, _number(Decimal((request - start).days) / 7), resource)
        for concept, found in self.dated.items():
            found = self._until(found, request, concept)
            if not found:
                continue
            last = max(moment for moment, _, _ in found)
            for moment, (row, score, where), resource in found:
                if moment == last:
                    self._band(self.vocab.concepts[concept], row, score, where, resource)

    def _in_force(self, row: Read, resource: dict, request: dt.date | None) -> bool:
        """Whether a resource is in force at the request by its `in_force` period (a coverage
        that ended before it, or starts after it, is not the member's then; without a period, or a
        request date, it is); one that is not is noted."""
        if not row.in_force or request is None:
            return True
        where = f"{name_of(resource)}.{row.in_force}"
        for period in element(resource, row.in_force):
            start, end = (_date(period.get(k), where, self) if isinstance(period, dict) else None for k in ("start", "end"))
            if (start and start > request) or (end and end < request):
                self.note(where, f"runs {start or '…'} to {end or '…'}, which does not cover the request "
                                 f"({request.isoformat()}): not read.")
                return False
        return True

    def _until(self, found: list, request: dt.date | None, concept: str) -> list:
        """The dated scores up to the request's day (a score charted after the request says
        nothing of the member then); those after it are noted."""
        if request is None:
            return found
        for moment, (_, _, where), _ in found:
            if moment[0] > request:
                self.note(where, f"is dated {moment[0].isoformat()}, after the request ({request.isoformat()}): "
                                 f"not read as {concept}.")
        return [f for f in found if f[0][0] <= request]

    def _value(self, resource: dict, concept: Concept) -> None:
        name = name_of(resource)
        present = [k for k in VALUES if k in resource]
        if not present:
            self.problem(f"{name}.value[x]", f"is missing; {concept.name} needs a value "
                                             f"({concept.expected(self.vocab)}).")
            return
        key = present[0]
        value, where = resource[key], f"{name}.{key}"
        if key == "valueQuantity":
            self.add(concept.name, self._quantity(value, concept, where), resource)
        elif key == "valueCodeableConcept":
            for got in self._coded(value, concept, None, where):
                self.add(concept.name, got, resource)
        elif key == "valueDateTime":
            self.add(concept.name, _date(value, where, self), resource)
        else:
            self.add(concept.name, value, resource)

    def _quantity(self, quantity: dict, concept: Concept, where: str):
        """A Quantity's value, exactly as written, in the concept's unit: the UCUM code decides when
        there is one (the unit text is for people); a comparator (< 60 %) is not a measured value."""
        unit, code = quantity.get("unit"), quantity.get("code")
        wanted = UCUM_CODES.get(concept.unit or "")
        if quantity.get("comparator"):
            self.problem(f"{where}.comparator", f"{_short(quantity['comparator'])}: a bound is not a value; "
                                                f"{concept.name} needs the measured value.")
            return None
        if quantity.get("value") is None:
            self.problem(f"{where}.value", f"is missing; {concept.name} needs a value ({concept.expected(self.vocab)}).")
            return None
        if not isinstance(quantity["value"], (int, float)) or isinstance(quantity["value"], bool):
            self.problem(f"{where}.value", f"is {_short(quantity['value'])}, not a number (FHIR writes a decimal "
                                           "unquoted: 60, not \"60\").")
            return None
        ok = code == wanted if code is not None else unit in (concept.unit, wanted)
        if concept.unit and not ok:
            self.problem(f"{where}.{'code' if code is not None else 'unit'}",
                         f"is {_short(code if code is not None else unit)}; {concept.name} is in {concept.unit}"
                         + (f" (UCUM {wanted!r})" if wanted else "") + "; convert it.")
            return None
        return _exact(Decimal(str(quantity["value"])))

    # ------------------------------------------------------------ derived facts
    def derive(self, resources: list[dict], patient: dict | None) -> None:
        for rule in self.mapping.derives:
            if rule.name == "age_at_request" and patient and patient.get("birthDate"):
                self._age(patient, rule)
            elif rule.name == "therapy_course":
                self._therapy(resources, rule)

    def _age(self, patient: dict, rule: Derive) -> None:
        born = _date(patient["birthDate"], f"{name_of(patient)}.birthDate", self)
        at = self._request_date()
        if born is None:
            return
        if at is None:
            self.problem(f"{name_of(patient)}.birthDate", "gives the age only at a date: add the request date "
                                                          "(ServiceRequest.authoredOn) or an Age Observation.")
            return
        years = at.year - born.year - ((at.month, at.day) < (born.month, born.day))
        self.found[rule.concept].append((years, name_of(patient)))

    def _therapy(self, resources: list[dict], rule: Derive) -> None:
        visits: dict[dt.date, str] = {}
        outcomes = []
        outcome = self.vocab.concepts.get(rule.concepts.get("outcome", ""))
        table = outcome and Read(rule.resource, outcome.name, "outcome", None, rule.outcomes or {}, False, (), False)
        for r in resources:
            if r.get("resourceType") != rule.resource or r.get("status") in self.mapping.skipped(rule.resource):
                continue
            if not any(c.get("code") in rule.codes.get(c.get("system"), ()) for c in codings(r.get("code"))):
                continue
            when = r.get("performedDateTime") or (r.get("performedPeriod") or {}).get("start")
            day = _date(when, f"{name_of(r)}.performed[x]", self)
            if day is None:
                self.problem(f"{name_of(r)}.performed[x]", "is missing; a therapy visit needs its date.")
                continue
            visits.setdefault(day, name_of(r))
            if r.get("outcome") and outcome:
                outcomes += [(v, name_of(r)) for v in self._coded(r["outcome"], outcome, table, f"{name_of(r)}.outcome")]
        if not visits:
            return
        source = ", ".join(visits.values())  # every visit (text output abbreviates a long list)
        for quantity, value in course(sorted(visits), self._request_date()).items():
            if quantity in rule.concepts and value is not None:
                self.found[rule.concepts[quantity]].append((value, source))
        for value, where in outcomes:
            self.found[rule.concepts["outcome"]].append((value, where))

    # ------------------------------------------------------------ merging
    def add(self, concept: str, value, resource: dict) -> None:
        if value is not None:
            self.found[concept].append((value, name_of(resource)))

    def _request_hints(self) -> None:
        """Where the request's service and indication would come from, when the bundle gives
        neither in the vocabulary's system (as EHRs do not): said if the request is then refused
        for lacking them, naming the ServiceRequest (a CPT code does not tell an implant from a
        replacement, nor a diagnosis what the pump is for)."""
        requests = list(dict.fromkeys(w for c in ("procedure_codes", "request_date", "diagnoses")
                                      for _, w in self.found.get(c, []) if w.startswith("ServiceRequest/")))
        wanted = [(c, path, why) for c, path, why in (
            ("service", "code", "its CPT/HCPCS codes do not tell a trial, an implant, a replacement or a refill apart"),
            ("indications", "reasonCode", "a diagnosis does not say what the pump is to treat"))
            if c in self.vocab.concepts and c not in self.found]
        for concept, path, why in wanted:
            system = self.mapping.domain_system(self.vocab.concepts[concept].domain)
            where = f"{requests[0]}.{path}" if requests else f"{RESOURCE}.entry"
            said = f"gives no {concept} ({why})" if requests else "holds no ServiceRequest for the pump"
            self.notes.append(Problem(f"{self.source}: {where}", f"{said}: code the {concept} in {system} there, "
                                      f"or give it by concept Observation or questionnaire (`--with`).", "hint"))

    def _request_date(self) -> dt.date | None:
        """The request's date (the one read over the others, when a concept Observation states it)."""
        found = self.chosen("request_date")
        return found[0][0] if found else None

    def chosen(self, name: str) -> list[tuple]:
        """The (value, resource) found for a single-valued concept, those of concept Observations
        only when there are any and the resources disagree: a fact stated as such is read over the
        records it sums up (two drugs of one class tried differently; a trial's request and the
        implant's), so a true chart need not be edited to be read."""
        found = self.found.get(name, [])
        if not self.explicit or len(found) < 2:  # the usual case, asked for every fact of every member
            return found
        stated = [(v, w) for v, w in found if w in self.explicit]
        if stated and len({v for v, _ in found}) > 1:
            return stated
        return found

    def result(self, patient: dict | None) -> tuple[dict, dict, tuple[Problem, ...]]:
        self._request_hints()
        data: dict = {"id": patient.get("id")} if patient and patient.get("id") else {}
        provenance: dict = {}
        for name, found in self.found.items():
            concept = self.vocab.concepts[name]
            sources = list(dict.fromkeys(w for _, w in found))
            if concept.kind in ("set", "codes"):
                data[name] = list(dict.fromkeys(v for v, _ in found))
            else:
                chosen = self.chosen(name)
                values = list(dict.fromkeys(v for v, _ in chosen))
                if len(values) > 1:
                    self.problem(", ".join(sources), f"give {name} different values ({', '.join(map(str, values))}); "
                                                     f"{self._resolve(name)}")
                    continue
                data[name] = values[0].isoformat() if isinstance(values[0], dt.date) else values[0]
                if len(chosen) < len(found):  # the stated fact, and what it was read over
                    over = [w for w in sources if w not in self.explicit]
                    sources = [f"{', '.join(dict.fromkeys(w for _, w in chosen))} (over {', '.join(over)})"]
            provenance[name] = ", ".join(sources)
        if self.problems:
            raise PatientError(self.problems)
        return data, provenance, tuple(self.notes)

    def _resolve(self, name: str) -> str:
        """How to settle two resources giving one fact differently, when both may be true."""
        ranked = next((r.first_by for r in self.mapping.reads if r.concept == name and r.first_by), None)
        by_order = f" give their {ranked} (the first is read)," if ranked else ""
        return (f"if one is wrong, mark it entered-in-error;{by_order} if both are true (two drugs of one class, "
                f"tried differently), state {name} itself by an Observation coded {self.mapping.concept_system}|"
                f"{name}, which is read over them.")


def course(days: list[dt.date], request: dt.date | None) -> dict:
    """A therapy course from its visit dates: visits, weeks spanned (calendar weeks, Monday first,
    first to last inclusive), the longest run of consecutive weeks with at least two visits, and
    months from the last visit to the request (days × 12 / 365.25, two decimals)."""
    monday = [d - dt.timedelta(days=d.weekday()) for d in days]
    per_week: dict[dt.date, int] = defaultdict(int)
    for m in monday:
        per_week[m] += 1
    weeks = (monday[-1] - monday[0]).days // 7 + 1
    best = run = 0
    week = monday[0]
    while week <= monday[-1]:
        run = run + 1 if per_week.get(week, 0) >= 2 else 0
        best = max(best, run)
        week += dt.timedelta(days=7)
    months = None if request is None else _number(Decimal((request - days[-1]).days) / DAYS_PER_MONTH)
    return {"visits": len(days), "weeks": weeks, "twice_weekly_weeks": best, "months_since": months}


def _lookup(table: dict, code: str, prefix: bool):
    if not prefix:
        return table.get(code)
    for k in range(len(code), 0, -1):
        if code[:k] in table:
            return table[code[:k]]
    return None


def _exact(value: Decimal):
    """A measured value as written (no rounding: 49.995 % is not 50 %)."""
    return int(value) if value == value.to_integral_value() else float(value)


def _number(value: Decimal):
    """A computed value (weeks from days, months from days), to two decimals."""
    value = value.quantize(Decimal("0.01")).normalize()
    return int(value) if value == value.to_integral_value() else float(value)


def _date(value, where: str, reader: _Reader) -> dt.date | None:
    """A FHIR date or dateTime's calendar date; a partial date (year or year-month) is refused."""
    if value is None:
        return None
    text = str(value)
    try:
        if not DATE.match(text):
            raise ValueError(text)
        return dt.date.fromisoformat(text[:10])
    except ValueError:
        reader.problem(where, f"{_short(text)} is not a full date (YYYY-MM-DD, or a dateTime); a fact needs the day.")
        return None


def _moment(value, where: str, reader: _Reader) -> tuple | None:
    """When a dated resource was recorded, to find the latest: (day, time), in UTC when the time
    gives its zone; a date alone counts as the start of its day."""
    day = _date(value, where, reader)
    if day is None:
        return None
    text = str(value)
    try:
        stamp = dt.datetime.fromisoformat(text.replace("Z", "+00:00")) if "T" in text else None
    except ValueError:
        stamp = None
    if stamp is None:
        return (day, dt.time(0))
    if stamp.tzinfo is not None:
        stamp = stamp.astimezone(dt.timezone.utc)
    return (stamp.date(), stamp.time().replace(tzinfo=None))


def _relative(reference) -> str | None:
    """An absolute reference (https://server/fhir/Patient/p1) as the relative one it ends with
    (Patient/p1), and a reference to one version (Patient/p1/_history/2) as one to the Patient:
    a Bulk export's resources may point at their Patient any of these ways."""
    found = VERSIONED.search(reference) if isinstance(reference, str) else None
    return found.group(1) if found else None


def _refuted(resource: dict) -> bool:
    status = {c.get("code") for c in codings(resource.get("verificationStatus"))}
    return bool(status & NOT_A_DIAGNOSIS)
