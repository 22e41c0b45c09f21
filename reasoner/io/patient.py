"""Patient files (YAML or JSON) checked against the vocabulary.

A pydantic model is generated from the vocabulary, so the vocabulary stays the single place where a
concept's kind, range and values are declared. Records are written nested
(`medications: {baclofen: {outcome: failed}}`) and become flat facts (`medications.baclofen.outcome`).
Every problem names the file, the field, a short quote of the value found and what was expected; a
patient with any problem is refused whole.

Files are read defensively: a size limit, regular files only (no FIFOs or devices), YAML 1.2 with no
aliases (an alias can expand a small file into gigabytes), numbers written in plain decimal with at
most 15 significant digits (what every backend compares exactly), no field given twice, and nesting
limited. These limits are far beyond any real patient record.
"""
from __future__ import annotations

import datetime as dt
import io
import json
import re
from dataclasses import dataclass, replace
from decimal import Decimal, InvalidOperation
from functools import lru_cache
from pathlib import Path
from typing import Annotated, Literal, Optional, Union

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, StrictBool, StrictInt, StrictStr, ValidationError, create_model
from ruamel.yaml import YAML
from ruamel.yaml.error import YAMLError
from ruamel.yaml.events import AliasEvent, MappingEndEvent, MappingStartEvent, ScalarEvent, SequenceEndEvent, SequenceStartEvent

from reasoner.errors import PatientError, Problem, did_you_mean, notes_only
from reasoner.language.check import REQUEST_KINDS
from reasoner.language.vocab import CODE_SYSTEMS, CPT_HCPCS, SIGNIFICANT, Concept, Vocabulary, exact_problem
from reasoner.paths import policies_dir

RESERVED = {"id": "a short name for the patient: text, or a whole number", "description": "free text about the scenario"}
MAX_BYTES = 1_000_000
MAX_DEPTH = 20
MAX_ITEMS = 10_000  # items in one list: a member's diagnoses, drugs or visits are far fewer
MAX_PROBLEMS = 20
REQUEST = tuple(REQUEST_KINDS)


@dataclass(frozen=True)
class Patient:
    id: str
    description: str
    facts: dict  # concept -> validated value (bool, int/float, str, tuple of str, date)
    source: str
    provenance: dict | None = None  # concept -> where the fact was read (e.g. "Observation/trial-1")
    notes: tuple = ()  # Problems of severity "note": what the input holds that was deliberately not read


# ---------------------------------------------------------------- messages
def short(value, limit: int = 60) -> str:
    """repr of a value cut to `limit` characters: error messages quote what was found, never a
    whole (possibly enormous) document.

    >>> short("x" * 100)[-5:]
    'xxxx…'
    """
    if isinstance(value, dict):
        return f"a mapping of {len(value)} field(s)"
    if isinstance(value, (list, tuple)) and len(repr(value)) > limit:
        return f"a list of {len(value)} item(s)"
    text = repr(value)
    return text if len(text) <= limit else text[:limit - 1] + "…"


def _capped(problems: list[Problem], source: str, total: int | None = None) -> list[Problem]:
    """At most MAX_PROBLEMS problems and a count of the others (`total`: how many there are in all)."""
    total = len(problems) if total is None else total
    if total <= MAX_PROBLEMS:
        return problems
    return problems[:MAX_PROBLEMS] + [Problem(source, f"… and {total - MAX_PROBLEMS} more problem(s).")]


# ---------------------------------------------------------------- the model
ISO_DATE = re.compile(r"^[0-9]{4}-[0-9]{2}-[0-9]{2}$")


def _no_numbers(value):
    """Dates are written as text (YYYY-MM-DD) or YAML dates: a number, or text of digits, is
    never read as a timestamp ("86400" would silently become 1970-01-02)."""
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        raise ValueError("a number is not a date")
    if isinstance(value, str) and not ISO_DATE.match(value):
        raise ValueError("a date is written YYYY-MM-DD")
    return value


StrictDate = Annotated[dt.date, BeforeValidator(_no_numbers)]


def _field_type(c: Concept, vocab: Vocabulary):
    if c.kind == "boolean":
        return StrictBool
    if c.kind == "number":
        return Annotated[float, Field(ge=float(c.low), le=float(c.high), strict=True, allow_inf_nan=False)]
    if c.kind == "date":
        return StrictDate
    if c.kind == "codes":  # a CPT code written unquoted in YAML or JSON is a number: read it as its digits
        return list[Union[StrictStr, StrictInt]]
    if vocab.codes[c.domain]:  # names or codes: codes are mapped (by prefix) in _normalise
        return StrictStr if c.kind == "enum" else list[StrictStr]
    values = tuple(vocab.domains[c.domain])
    return Literal[values] if c.kind == "enum" else list[Literal[values]]


def id_text(value: str | int | None) -> str | None:
    """A patient's id as text: a whole number is its decimal digits (`validate` takes no other)."""
    return None if value is None else str(value)


@lru_cache(maxsize=8)
def _model(vocab: Vocabulary) -> type[BaseModel]:
    fields = {name: (Optional[_field_type(c, vocab)], None) for name, c in vocab.plain().items()}
    for name, record in vocab.records.items():
        entry = create_model(f"{name}_record", __config__=ConfigDict(extra="forbid"),
                             **{f: (Optional[_field_type(c, vocab)], None) for f, c in record.fields.items()})
        keys = tuple(vocab.domains[record.key_domain])
        # an entry written null (`baclofen:` with nothing after it, a Parquet struct field that is
        # NULL) records nothing, like a field written null
        fields[name] = (Optional[dict[Literal[keys], Optional[entry]]], None)
    fields["id"] = (Optional[Union[StrictStr, StrictInt]], None)  # member ids are often numbers (a Parquet int64 column)
    fields["description"] = (Optional[StrictStr], None)
    return create_model("PatientFacts", __config__=ConfigDict(extra="forbid"), **fields)


# ---------------------------------------------------------------- reading files
def _read_text(path: Path) -> str:
    try:
        if not path.is_file():
            what = "does not exist" if not path.exists() else "is not a regular file (a folder, device or pipe)"
            raise PatientError([Problem(str(path), f"cannot read the file: it {what}.")])
        with path.open("rb") as handle:
            data = handle.read(MAX_BYTES + 1)
    except OSError as err:
        raise PatientError([Problem(str(path), f"cannot read the file: {err.strerror or err}.")]) from None
    if len(data) > MAX_BYTES:
        raise PatientError([Problem(str(path), f"the file is larger than {MAX_BYTES // 1_000_000} MB; a patient "
                                               "file describes one member and is far smaller.")])
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as err:
        raise PatientError([Problem(f"{path}", f"the file is not UTF-8 text (byte {err.start + 1}).")]) from None


def json_object(pairs: list) -> dict:
    """A JSON object that refuses a key given twice (keeping the last would hide a typo)."""
    out = {}
    for key, value in pairs:
        if key in out:
            raise ValueError(f"the field {short(key)} is given twice")
        out[key] = value
    return out


def _json_number(text: str):
    problem = exact_problem(Decimal(text)) if text.strip("-0.eE+") else None
    if problem:
        raise ValueError(f"the number {short(text, 30)} {problem}")
    return float(text) if any(ch in text for ch in ".eE") else int(text) if len(text) <= 20 else float(text)


def read_json(text: str, where: str) -> object:
    try:
        return json.loads(text, object_pairs_hook=json_object, parse_float=_json_number, parse_int=_json_number)
    except json.JSONDecodeError as err:
        raise PatientError([Problem(f"{where}:{err.lineno}:{err.colno}", f"invalid JSON: {err.msg}.")]) from None
    except RecursionError:
        raise PatientError([Problem(where, "invalid JSON: nested too deeply.")]) from None
    except (ValueError, InvalidOperation) as err:
        raise PatientError([Problem(where, f"invalid JSON: {str(err)[:200]}.")]) from None


_DECIMAL = re.compile(r"^[-+]?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][-+]?[0-9]+)?$|^[-+]?\.[0-9]+$")
# What some YAML 1.1 or 1.2 resolver reads as a number: digits with dots, underscores, colons
# (sexagesimal) or an exponent; hexadecimal, octal and binary; infinities and NaN. Text such as
# 001-abc is not number-like and stays text.
_NUMERIC = re.compile(r"^(?=[-+]?\.?[0-9])[-+]?([0-9][0-9_]*)?(\.[0-9_]*)?(:[0-9_.]+)*([eE][-+]?[0-9]+)?$"
                      r"|^[-+]?0[xob][0-9a-fA-F_]+$|^[-+]?\.(inf|nan|Inf|NaN|INF|NAN)$")
_DATE = re.compile(r"^[0-9]{4}-[0-9]{1,2}-[0-9]{1,2}$")


def _reader() -> YAML:
    """A YAML 1.2 safe reader. ruamel uses its libyaml-based parser when ruamel.yaml.clib is
    installed (a dependency) and its pure-Python one otherwise; the two build the same documents,
    and the C parser reads a 1 MB file in a second where the pure one took a minute."""
    return YAML(typ="safe")


def _yaml_events_problem(text: str, where: str) -> Problem | None:
    """What makes a YAML text unsafe or ambiguous to read, found from its events (no document is
    built): an alias, nesting deeper than MAX_DEPTH, a list longer than MAX_ITEMS, or a number not
    in plain decimal."""
    depth, lists = 0, []  # lists: item counts of the open sequences (None for an open mapping)
    for event in _reader().parse(text):
        line = f"{where}:{event.start_mark.line + 1}:{event.start_mark.column + 1}"
        if isinstance(event, AliasEvent):
            return Problem(line, "aliases (*name) are not allowed in patient files; write the value out.")
        if lists and lists[-1] is not None and isinstance(event, (ScalarEvent, MappingStartEvent, SequenceStartEvent)):
            lists[-1] += 1
            if lists[-1] > MAX_ITEMS:
                return Problem(line, f"a list of more than {MAX_ITEMS:,} items; no fact of one member needs as many.")
        if isinstance(event, (MappingStartEvent, SequenceStartEvent)):
            depth += 1
            lists.append(0 if isinstance(event, SequenceStartEvent) else None)
            if depth > MAX_DEPTH:
                return Problem(line, f"the document is nested more than {MAX_DEPTH} levels deep.")
        elif isinstance(event, (MappingEndEvent, SequenceEndEvent)):
            depth -= 1
            lists.pop()
        elif isinstance(event, ScalarEvent) and not event.style and _DATE.match(event.value or ""):
            try:
                dt.date.fromisoformat(event.value)
            except ValueError as err:
                return Problem(line, f"{short(event.value, 30)} is not a date ({err}); write YYYY-MM-DD.")
        elif isinstance(event, ScalarEvent) and not event.style and _NUMERIC.match(event.value or ""):
            value = event.value
            if not _DECIMAL.match(value):
                return Problem(line, f"{short(value, 30)} is not a plain decimal number (hexadecimal, octal, "
                                     "leading zeros, infinities and times are refused); write e.g. 54 or 1.5, "
                                     "or quote it if it is text.")
            problem = exact_problem(Decimal(value)) if value.strip("-+0.eE") else None
            if problem:
                return Problem(line, f"the number {short(value, 30)} {problem}.")
    return None


def read_yaml(text: str, where: str) -> object:
    try:
        problem = _yaml_events_problem(text, where)
        if problem:
            raise PatientError([problem])
        return _reader().load(text)
    except PatientError:
        raise
    except UnicodeError:  # a lone surrogate: the C parser refuses to encode it, the pure one to read it
        raise PatientError([Problem(where, "invalid YAML: the text holds a character that is not valid Unicode "
                                           "(a lone surrogate).")]) from None
    except YAMLError as err:
        mark = getattr(err, "problem_mark", None) or getattr(err, "context_mark", None)
        place = f"{where}:{mark.line + 1}:{mark.column + 1}" if mark else where
        what = getattr(err, "problem", None) or str(err).splitlines()[0]
        if "duplicate key" in str(err).lower():
            what = "a field is given twice"
        raise PatientError([Problem(place, f"invalid YAML: {str(what)[:200]}.")]) from None
    except (ValueError, TypeError, RecursionError) as err:  # e.g. a date that does not exist, a list as a key
        raise PatientError([Problem(where, f"invalid YAML: {str(err)[:200] or type(err).__name__}.")]) from None


def _read(path: Path) -> object:
    text = _read_text(path)
    return read_json(text, str(path)) if path.suffix.lower() == ".json" else read_yaml(text, str(path))


# ---------------------------------------------------------------- checking values
def _problem(path: str, err: dict, vocab: Vocabulary) -> Problem:
    loc = [str(x) if not isinstance(x, int) else x for x in err["loc"]]
    name = str(loc[0]) if loc else "?"
    if name in vocab.records and len(loc) >= 2:
        record = vocab.records[name]
        if len(loc) == 2 or loc[2] == "[key]" or str(loc[1]) not in vocab.domains[record.key_domain]:
            keys = list(vocab.domains[record.key_domain])
            return Problem(f"{path}: field '{name}'", f"{short(loc[1])} is not a key of {name}; expected one of: "
                                                       f"{', '.join(keys)}.{did_you_mean(str(loc[1]), keys)}")
        if err["type"] == "extra_forbidden":
            return Problem(f"{path}: field '{name}.{loc[1]}'", f"unknown field {short(loc[2])}; a {name} record has: "
                                                                f"{', '.join(record.fields)}.")
        if err["type"] == "dict_type" and len(loc) == 2:
            return Problem(f"{path}: field '{name}'", f"got {short(err['input'])}; expected a mapping of key: record.")
        concept = vocab.concepts[record.concept(str(loc[1]), str(loc[2]))] if len(loc) >= 3 else None
        flat = f"{name}.{loc[1]}" + (f".{loc[2]}" if len(loc) >= 3 else "")
        expected = concept.expected(vocab) if concept else "a mapping of field: value"
        return Problem(f"{path}: field '{flat}'", f"got {short(err['input'])}; expected {expected}.")
    if name in vocab.records:
        return Problem(f"{path}: field '{name}'", f"got {short(err['input'])}; expected a mapping of key: record, "
                                                   f"e.g. {name}: {{{next(iter(vocab.domains[vocab.records[name].key_domain]))}: {{...}}}}.")
    if err["type"] == "extra_forbidden":
        known = list(vocab.plain()) + list(vocab.records) + list(RESERVED)
        return Problem(f"{path}: field {short(name)}", f"unknown concept {short(name)}.{did_you_mean(name, known)}")
    where = f"{path}: field '{name}'" + (f" item {loc[1] + 1}" if len(loc) > 1 and isinstance(loc[1], int) else "")
    concept = vocab.concepts.get(name)
    expected = concept.expected(vocab) if concept else RESERVED.get(name, "text")
    return Problem(where, f"got {short(err['input'])}; expected {expected}.")


def domain_value(value: str, domain: str, vocab: Vocabulary) -> str | None:
    """The domain value named by `value`, or by the longest declared code that prefixes it.

    A code must be well formed in the domain's code system first: "G90.5ZZZZ" or "M96.1 " name no
    ICD-10-CM code, so they match nothing rather than whatever shares their first characters.
    """
    if value in vocab.domains[domain]:
        return value
    pattern = CODE_SYSTEMS.get(vocab.systems.get(domain, ""))
    if pattern is None or not pattern.match(value):
        return None
    prefixes = [p for p in vocab.codes[domain] if value.startswith(p)]
    if prefixes:
        return vocab.codes[domain][max(prefixes, key=len)]
    return "other" if "other" in vocab.domains[domain] else None


def _normalise(c: Concept, value, vocab: Vocabulary, source: str) -> tuple[object, list[Problem]]:
    """Codes mapped onto domain values, whole numbers as int, lists as sorted tuples."""
    where = f"{source}: field '{c.name}'"
    if c.kind == "number":
        if c.whole and not float(value).is_integer():
            return None, [Problem(where, f"got {short(value)}; expected {c.expected(vocab)}.")]
        return (int(value) if float(value).is_integer() else value), []
    if c.kind == "codes":
        value = [str(v) if isinstance(v, int) and not isinstance(v, bool) else v for v in value]
        bad = [v for v in value if not isinstance(v, str) or not CPT_HCPCS.match(v)]
        if bad:
            return None, [Problem(where, f"got {short(bad[0])}; expected {c.expected(vocab)}.")]
        if len(set(value)) != len(value):
            return None, [Problem(where, f"got {short(value)}; a code is listed twice.")]
        return tuple(sorted(value)), []
    if c.kind not in ("enum", "set"):
        return value, []
    items = [value] if c.kind == "enum" else list(value)
    if c.kind == "set" and len(set(items)) != len(items):
        return None, [Problem(where, f"got {short(value)}; a value is listed twice.")]
    mapped = [domain_value(v, c.domain, vocab) for v in items]
    codes = f" (or a well-formed {vocab.systems[c.domain]} code, e.g. {next(iter(vocab.codes[c.domain]))}1)" \
        if vocab.codes[c.domain] else ""
    problems = [Problem(where, f"got {short(v)}; expected {c.expected(vocab)}{codes}.")
                for v, m in zip(items, mapped) if m is None]
    if c.kind == "enum":
        return mapped[0], problems
    return tuple(sorted(set(m for m in mapped if m))), problems  # two codes of one value name it once


def _encodable(value) -> bool:
    if isinstance(value, str):
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            return False
    elif isinstance(value, (list, tuple)):
        return all(_encodable(v) for v in value)
    elif isinstance(value, dict):
        return all(_encodable(k) and _encodable(v) for k, v in value.items())
    return True


def unflatten(data: dict, vocab: Vocabulary) -> dict:
    """Accept a record's fields written flat ("medications.baclofen.outcome": ...), as facts,
    CSV columns and forms carry them, beside the nested form files use (copies; never mutates)."""
    if not any("." in k for k in data):
        return data
    out: dict = {k: v for k, v in data.items() if "." not in k or vocab.concepts.get(k) is None
                 or vocab.concepts[k].record is None}
    for key, value in data.items():
        c = vocab.concepts.get(key) if "." in key else None
        if c is None or c.record is None:
            continue
        holder = out.get(c.record)
        holder = dict(holder) if isinstance(holder, dict) else {}
        entry = holder.get(c.key)
        entry = dict(entry) if isinstance(entry, dict) else {}
        entry[c.field] = list(value) if isinstance(value, tuple) else value
        holder[c.key] = entry
        out[c.record] = holder
    return out


def flatten(data: dict, vocab: Vocabulary) -> dict:
    """A patient mapping with its records written flat (the inverse of `nested`). A record that is
    not a mapping of mappings is kept whole, for `validate` to say what it should be."""
    out = {}
    for key, value in data.items():
        if key in vocab.records and _nested_ok(value):
            record = vocab.records[key]
            for k, entry in value.items():
                for f, v in (entry or {}).items():
                    out[record.concept(k, f)] = v
        else:
            out[key] = value
    return out


def _nested_ok(value: object) -> bool:
    return isinstance(value, dict) and all(isinstance(e, dict) or e is None for e in value.values())


def _flat(parsed: BaseModel, vocab: Vocabulary):
    """(concept, value) for every documented fact, records flattened."""
    for name in vocab.plain():
        value = getattr(parsed, name)
        if value is not None:
            yield name, value
    for name, record in vocab.records.items():
        for key, entry in (getattr(parsed, name) or {}).items():
            if entry is None:
                continue
            for field_name in record.fields:
                value = getattr(entry, field_name)
                if value is not None:
                    yield record.concept(key, field_name), value


def validate(data: object, vocab: Vocabulary, source: str = "<patient>", require_request: bool = True,
             provenance: dict | None = None, notes: tuple = ()) -> Patient:
    """Check one patient mapping; raise PatientError listing every problem.

    A file is a request: unless `require_request` is False (a partial record, e.g. while a form is
    being filled), its service, indications and line of business must be documented, since every
    payer's decision depends on them."""
    if not isinstance(data, dict):
        got = "nothing" if data is None else type(data).__name__
        raise PatientError([Problem(source, f"a patient file must be a mapping of concept: value, not {got}.")])
    bad_keys = [k for k in data if not isinstance(k, str)]
    if bad_keys:
        raise PatientError([Problem(source, f"field names must be text, got {short(bad_keys[0])}.")])
    data = unflatten(data, vocab)
    broken = [k for k, v in data.items() if not _encodable(k) or not _encodable(v)]
    if broken:
        raise PatientError(_capped([Problem(f"{source}: field {short(k)}", "holds text that is not valid Unicode "
                                            "(bytes that are not UTF-8, or a lone surrogate).") for k in broken], source))
    try:
        parsed = _model(vocab).model_validate(data)
    except ValidationError as err:
        errors = err.errors()
        found = list(dict.fromkeys(_problem(source, e, vocab) for e in errors[:MAX_PROBLEMS]))  # a bad key and its value: one
        raise PatientError(_capped(found, source, len(errors))) from None
    problems: list[Problem] = []
    facts = {}
    for name, value in _flat(parsed, vocab):
        if isinstance(value, list) and not value:
            continue  # an empty list documents nothing, as every engine reads it
        facts[name], found = _normalise(vocab.concepts[name], value, vocab, source)
        problems += found
    if require_request:
        problems += [Problem(f"{source}: field '{name}'", f"the request must state its {name.replace('_', ' ')} "
                                                          f"({vocab.concepts[name].expected(vocab)}): every payer's "
                                                          "decision depends on it.")
                     for name in REQUEST if name in vocab.concepts and not facts.get(name)]
    if problems:
        raise PatientError(_capped(problems, source))
    return Patient(id_text(parsed.id) or Path(source).stem, parsed.description or "", facts, source, provenance, tuple(notes))


def nested(facts: dict, vocab: Vocabulary) -> dict:
    """Flat facts written back the way a patient file holds them (records nested, lists for sets)."""
    out: dict = {}
    for name, value in facts.items():
        c = vocab.concepts.get(name)
        value = list(value) if isinstance(value, tuple) else value.isoformat() if isinstance(value, dt.date) else value
        if c is not None and c.record:
            out.setdefault(c.record, {}).setdefault(c.key, {})[c.field] = value
        else:
            out[name] = value
    return out


def from_fhir(data: object, vocab: Vocabulary, folder: Path | None, source: str) -> tuple[dict, dict, tuple] | None:
    """(patient mapping, provenance, notes) when `data` is FHIR JSON: a Bundle (through the FHIR mapping of
    the policy `folder`, by default the bundled one) or a QuestionnaireResponse; None when it is not
    FHIR at all; PatientError for another FHIR resource."""
    from reasoner.fhir.bundle import is_bundle, read_bundle
    from reasoner.fhir.mapping import load_mapping
    from reasoner.fhir.response import is_response, read_response

    if is_response(data):
        return read_response(data, vocab, source)
    if is_bundle(data):
        return read_bundle(data, vocab, load_mapping(folder or policies_dir(), vocab), source)
    if isinstance(data, dict) and isinstance(data.get("resourceType"), str):
        raise PatientError([Problem(source, f"a FHIR {short(data['resourceType'])} is not read; give a patient "
                                            "file, a FHIR Bundle, or a QuestionnaireResponse answering a "
                                            "questionnaire from `reasoner questionnaire`.")])
    return None


def load_patient(path: Path | str, vocab: Vocabulary, folder: Path | None = None, also=()) -> Patient:
    """A patient file; or FHIR read as one (a Bundle, or a completed questionnaire). With `also`,
    more inputs about the same member, merged with it (see `merge`)."""
    if not also:
        return _one(Path(path), _read(Path(path)), vocab, folder)
    paths, documents, parts = [Path(p) for p in (path, *also)], [], []
    for each in paths:  # each file read once, and checked in order
        documents.append(_read(each))
        parts.append(_one(each, documents[-1], vocab, folder, require_request=False))
    _one_member(paths, documents)
    return merge(parts, vocab, folder)


def _one_member(paths: list[Path], documents: list) -> None:
    """Inputs merged must be about one member: the Patient of a Bundle and the subject of a
    completed questionnaire, where they name one, must be the same (a patient file names nobody
    FHIR can compare)."""
    named: dict[str, str] = {}  # Patient/<id> -> where it is named
    for path, data in zip(paths, documents):
        if not isinstance(data, dict):
            continue
        if data.get("resourceType") == "Bundle":
            for entry in data.get("entry") or []:
                resource = entry.get("resource") if isinstance(entry, dict) else None
                if isinstance(resource, dict) and resource.get("resourceType") == "Patient":
                    named.setdefault(f"Patient/{resource.get('id')}", f"{path}: Patient/{resource.get('id')}")
        elif data.get("resourceType") == "QuestionnaireResponse":
            ref = (data.get("subject") or {}).get("reference") if isinstance(data.get("subject"), dict) else None
            if isinstance(ref, str) and ref.startswith("Patient/"):
                named.setdefault(ref, f"{path}: QuestionnaireResponse.subject ({ref})")
    if len(named) > 1:
        raise PatientError([Problem(" + ".join(map(str, paths)), f"the inputs are about different members "
                                                                 f"({'; '.join(named.values())}); merge only "
                                                                 "inputs about one member.")])


def _one(path: Path, data: object, vocab: Vocabulary, folder: Path | None, require_request: bool = True) -> Patient:
    """One input, already read from `path`, as a patient (FHIR through its reader)."""
    fhir = from_fhir(data, vocab, folder, str(path))
    if fhir is None:
        return validate(data, vocab, str(path), require_request=require_request)
    data, provenance, notes = fhir
    try:
        patient = validate(data, vocab, str(path), require_request=require_request, provenance=provenance, notes=notes)
    except PatientError as err:  # a value the vocabulary refuses: name the resources it was read from
        raise PatientError([sourced(p, provenance) for p in err.problems] + list(notes)) from None
    if not require_request:  # a part of a merge: its hints explain what the merged whole may still lack
        return patient
    return replace(patient, notes=notes_only(notes))


def _is_answers(patient: Patient) -> bool:
    return any(" item " in str(w) for w in (patient.provenance or {}).values())


def merge(parts: list[Patient], vocab: Vocabulary, folder: Path | None = None) -> Patient:
    """Several inputs about one member as one patient. A fact given by one input is taken; given
    alike by several, kept with all their sources; given differently, a conflict reported with
    both sources, except that the record (a patient file or Bundle) beats a questionnaire's answer
    for the concepts the FHIR mapping lists under `record_wins` (e.g. the age, the diagnoses)."""
    from reasoner.fhir.mapping import load_mapping

    wins = load_mapping(folder or policies_dir(), vocab).record_wins
    facts: dict = {}
    where: dict[str, tuple[str, bool]] = {}  # concept -> (its sources, read from a record)
    problems: list[Problem] = []
    for part in parts:
        record = not _is_answers(part)
        for name, value in part.facts.items():
            source = (part.provenance or {}).get(name) or part.source
            if name not in facts:
                facts[name], where[name] = value, (source, record)
            elif facts[name] == value:
                where[name] = (f"{where[name][0]}; {source}", where[name][1] or record)
            elif name in wins and where[name][1] != record:  # the record wins; what it overrode is said
                if record:
                    overridden = f"{where[name][0]} gave {_shown(facts[name])}"
                    facts[name], where[name] = value, (f"{source} (over {overridden})", record)
                else:
                    where[name] = (f"{where[name][0]} (over {source} gave {_shown(value)})", True)
            else:
                problems.append(Problem(f"{' + '.join(p.source for p in parts)}: field '{name}'",
                                        f"{where[name][0]} gives {_shown(facts[name])}, {source} gives "
                                        f"{_shown(value)}; correct one of them."))
    if problems:
        raise PatientError(problems)
    first = parts[0]
    merged = {"id": first.id, **({"description": first.description} if first.description else {}),
              **nested(facts, vocab)}
    notes = tuple(n for part in parts for n in part.notes)
    try:
        patient = validate(merged, vocab, " + ".join(p.source for p in parts),
                           provenance={k: w for k, (w, _) in where.items()}, notes=notes)
    except PatientError as err:  # what the inputs did not give, with what would explain it
        raise PatientError(list(err.problems) + list(notes)) from None
    return replace(patient, notes=notes_only(notes))


def _shown(value) -> str:
    """A fact's value as a message quotes it: a set as [a, b] (not a Python tuple), a date as written."""
    if isinstance(value, tuple):
        text = "[" + ", ".join(map(str, value)) + "]"
        return text if len(text) <= 60 else text[:59] + "…"
    return short(value.isoformat() if isinstance(value, dt.date) else value)


def sourced(problem: Problem, provenance: dict) -> Problem:
    """A problem about a fact, naming the resources (or answers) it was read from."""
    match = re.search(r"field '([^']+)'", problem.where)
    source = provenance.get(match.group(1)) if match else None
    return Problem(f"{problem.where} (read from {source})", problem.message, problem.severity) if source else problem


def to_yaml(data: dict) -> str:
    """A patient mapping as YAML 1.2 text, what patient files are read as (dates as text, so they
    read back the same); the CLI's saved witnesses and the workbench's downloads both write this."""
    yaml = YAML(typ="safe", pure=True)
    yaml.default_flow_style = None
    buffer = io.StringIO()
    yaml.dump(data, buffer)
    return buffer.getvalue()
