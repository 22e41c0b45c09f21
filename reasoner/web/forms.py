"""Form values and patients: text in, a validated patient out, and back again.

A browser sends text. Here it becomes the values a patient file would hold (numbers through
`Decimal`, booleans from "true" / "false", sets split on commas) and is then checked by
`reasoner.io.patient.validate`, the same check `reasoner check` applies to a file, so a wrong value
shows the same message at its field as on the command line. Nothing submitted is ever evaluated:
text is parsed as a number or compared with the vocabulary's names, never run.

The patient travels in the address (`/member?age=54&indications=nonmalignant_pain`), one query
parameter per fact, records flat (`medications.nsaid.outcome=failed`). So a member page can be
bookmarked, a witness opened with a link, and a repair applied by following one; parameters
starting with "_" are the page's own state (which payer's reasoning is open), never facts.
"""
from __future__ import annotations

import datetime as dt
import json
import re
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Iterable
from urllib.parse import urlencode

from reasoner.errors import PatientError, Problem, notes_only
from reasoner.io.patient import (REQUEST, RESERVED, Patient, flatten, from_fhir, nested, read_json, read_yaml, short,
                                  to_yaml, validate)
from reasoner.language.vocab import Vocabulary, exact_problem

Raw = dict[str, tuple[str, ...]]  # field name -> the texts submitted for it
SOURCE = "member"  # how problems name the form ("member: field 'age'"), as a file name would
_FIELD = re.compile(r"^[^:]*: field '([^']+)'")
_SEPARATORS = re.compile(r"[,;\s]+")


@dataclass(frozen=True)
class Checked:
    """A form's values after the vocabulary's check: the patient, or the problems found."""

    raw: Raw
    patient: Patient | None  # None unless the values are valid and the request is complete
    problems: tuple[Problem, ...] = ()
    missing: tuple[str, ...] = ()  # request fields still empty (a form being filled, not an error)

    def messages(self, name: str) -> tuple[str, ...]:
        """What is wrong with one field, in the words `reasoner check` uses."""
        return tuple(p.message for p in self.problems if field_of(p) == name)

    def general(self, fields: Iterable[str]) -> tuple[Problem, ...]:
        """Problems that belong to no field on the form (an unknown concept in an opened file)."""
        known = set(fields)
        return tuple(p for p in self.problems if field_of(p) not in known)

    @property
    def savable(self) -> bool:
        """Every value fits the vocabulary (the request may still be incomplete, as in a draft)."""
        return not self.problems or bool(self.missing)


def field_of(problem: Problem) -> str | None:
    """The field a problem names, or None.

    >>> field_of(Problem("member: field 'age'", "got 'x'; expected a number"))
    'age'
    >>> field_of(Problem("member: field 'diagnoses' item 2", "got 'Q'"))
    'diagnoses'
    """
    m = _FIELD.match(problem.where)
    return m[1] if m else None


# ---------------------------------------------------------------- text in
def raw_from_pairs(pairs: Iterable[tuple[str, str]]) -> Raw:
    """Submitted (name, text) pairs as a Raw mapping: empty texts dropped (an empty field documents
    nothing), the page's own "_" parameters left out.

    >>> raw_from_pairs([("age", " 54 "), ("pain_disabling", ""), ("_panel", "uhc"), ("indications", "a"), ("indications", "b")])
    {'age': ('54',), 'indications': ('a', 'b')}
    """
    out: dict[str, list[str]] = {}
    for name, text in pairs:
        text = text.strip()
        if name.startswith("_") or not text:
            continue
        out.setdefault(name, []).append(text)
    return {k: tuple(v) for k, v in out.items()}


def number(text: str) -> tuple[object, str | None]:
    """A number typed in a form as the value a file would hold, or a problem with it.

    Text that is not a number is passed on unchanged, so validate names what was expected.

    >>> number("54"), number("1.5"), number("abc")
    ((54, None), (1.5, None), ('abc', None))
    >>> number("49.999999999999999999")[1]
    "the number '49.999999999999999999' has 20 significant digits; at most 15 can be compared exactly."
    """
    try:
        value = Decimal(text)
    except InvalidOperation:
        return text, None
    if not value.is_finite() or not text.isascii():
        return text, None
    problem = exact_problem(value) if value != 0 else None
    if problem:
        return None, f"the number {short(text, 30)} {problem}."
    if re.fullmatch(r"[-+]?[0-9]+", text):
        return int(text), None
    return float(value), None


def _typed(name: str, values: tuple[str, ...], vocab: Vocabulary) -> tuple[object, str | None]:
    concept = vocab.concepts.get(name)
    kind = concept.kind if concept else None
    if kind in ("set", "codes"):
        return [item for text in values for item in _SEPARATORS.split(text) if item], None
    if len(values) > 1:  # two values for a one-valued field: validate says what one looks like
        return list(values), None
    text = values[0]
    if kind == "boolean":
        return {"true": True, "false": False}.get(text, text), None
    if kind == "number":
        return number(text)
    return text, None


def typed(raw: Raw, vocab: Vocabulary) -> tuple[dict, list[Problem]]:
    """The values a patient file would hold, and the problems found before validation."""
    data, problems = {}, []
    for name, values in raw.items():
        value, problem = _typed(name, values, vocab)
        if problem:
            problems.append(Problem(f"{SOURCE}: field '{name}'", problem))
        else:
            data[name] = value
    return data, problems


def check(raw: Raw, vocab: Vocabulary, require_request: bool = True) -> Checked:
    """Check a form's values as `reasoner check` checks a file. A form whose request is not yet
    complete is not wrong, only unfinished: its missing request fields are listed apart, with the
    library's own message for each (or, without `require_request`, accepted, as for a draft)."""
    data, problems = typed(raw, vocab)
    if problems:
        return Checked(raw, None, tuple(problems))
    try:
        patient = validate(data, vocab, SOURCE, require_request=False)
    except PatientError as err:
        return Checked(raw, None, err.problems)
    missing = tuple(name for name in REQUEST if name in vocab.concepts and not patient.facts.get(name))
    if not missing or not require_request:
        return Checked(raw, patient)
    try:
        validate(data, vocab, SOURCE)
    except PatientError as err:
        return Checked(raw, None, err.problems, missing)
    return Checked(raw, patient)  # pragma: no cover - validate accepted what it just called incomplete


# ---------------------------------------------------------------- values out
def texts(value) -> tuple[str, ...]:
    """A fact's value as the texts a form shows for it.

    >>> texts(True), texts(50.0), texts(("a", "b")), texts(dt.date(2024, 1, 2)), texts(None)
    (('true',), ('50',), ('a', 'b'), ('2024-01-02',), ())
    """
    if value is None:
        return ()
    if isinstance(value, bool):
        return ("true" if value else "false",)
    if isinstance(value, (list, tuple)):
        return tuple(t for v in value for t in texts(v))
    if isinstance(value, dt.date):
        return (value.isoformat(),)
    if isinstance(value, float):
        return (format(Decimal(repr(value)).normalize(), "f"),)
    if isinstance(value, dict):
        return (json.dumps(value, default=str),)
    return (str(value),)


def raw_from_facts(facts: dict, vocab: Vocabulary) -> Raw:
    """Facts (flat or as a file nests them) as form values, in the vocabulary's order."""
    flat = flatten(dict(facts), vocab)
    order = {name: i for i, name in enumerate([*RESERVED, *vocab.concepts])}
    names = sorted(flat, key=lambda n: (order.get(n, len(order)), n))
    return {n: texts(flat[n]) for n in names if texts(flat[n])}


def raw_from_patient(patient: Patient, vocab: Vocabulary) -> Raw:
    extra = {k: v for k, v in (("id", patient.id), ("description", patient.description)) if v}
    return raw_from_facts({**extra, **patient.facts}, vocab)


def query(raw: Raw, **state: str) -> str:
    """The address query for a form's values (and the page's "_" state).

    >>> query({"age": ("54",), "indications": ("a", "b")}, _panel="uhc")
    'age=54&indications=a&indications=b&_panel=uhc'
    """
    pairs = [(name, text) for name, values in raw.items() for text in values]
    pairs += [(f"_{k.lstrip('_')}", v) for k, v in state.items() if v]
    return urlencode(pairs)


def read_upload(name: str, data: bytes, vocab: Vocabulary, limit: int,
                folder: Path | None = None) -> tuple[Raw, tuple[Problem, ...]]:
    """An uploaded patient file as form values, with the notes on what a FHIR input holds that was
    deliberately not read; PatientError when it cannot be read at all.

    The file is read as `reasoner check` reads one (JSON by its suffix, else YAML 1.2 without
    aliases; a FHIR Bundle or QuestionnaireResponse through the same reader, with the FHIR mapping
    of the policy `folder`); whether its values fit the vocabulary is left to `check`, so they can
    be shown, and fixed, at their fields."""
    if len(data) > limit:
        raise PatientError([Problem(name, f"the file is larger than {limit // 1_000_000} MB; a patient file "
                                          "describes one member and is far smaller.")])
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as err:
        raise PatientError([Problem(name, f"the file is not UTF-8 text (byte {err.start + 1}).")]) from None
    parsed = read_json(text, name) if name.lower().endswith(".json") else read_yaml(text, name)
    fhir = from_fhir(parsed, vocab, folder, name)
    notes = ()
    if fhir is not None:
        parsed, _, found = fhir
        notes = notes_only(found)  # hints explain a refusal; the form shows its own, field by field
    if not isinstance(parsed, dict):
        got = "nothing" if parsed is None else type(parsed).__name__
        raise PatientError([Problem(name, f"a patient file must be a mapping of concept: value, not {got}.")])
    bad = [k for k in parsed if not isinstance(k, str)]
    if bad:
        raise PatientError([Problem(name, f"field names must be text, got {short(bad[0])}.")])
    return raw_from_facts(parsed, vocab), notes


# ---------------------------------------------------------------- files out
def patient_document(patient: Patient, vocab: Vocabulary) -> dict:
    """A patient as a file holds it: id and description first, records nested."""
    head = {k: v for k, v in (("id", patient.id), ("description", patient.description)) if v}
    return {**head, **nested(patient.facts, vocab)}


as_yaml = to_yaml  # the one writer of patient YAML (reasoner.io.patient)


def as_json(document: dict) -> str:
    return json.dumps(document, indent=2, ensure_ascii=False, default=str) + "\n"


def file_name(patient_id: str, suffix: str) -> str:
    """A safe download name from a patient id.

    >>> file_name("../x y", "yaml")
    'x-y.yaml'
    """
    stem = re.sub(r"[^A-Za-z0-9_.-]+", "-", patient_id).strip(".-") or "patient"
    return f"{stem[:80]}.{suffix}"
