"""Patient files (YAML or JSON) checked against the vocabulary.

A pydantic model is generated from the vocabulary, so the vocabulary stays the single place where
a concept's kind, range and values are declared. Every problem names the file, the field, the
value found and what was expected. A patient with any problem is refused whole.
"""
from __future__ import annotations

import datetime as dt
import json
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Annotated, Literal, Optional

import yaml
from pydantic import BaseModel, ConfigDict, Field, StrictBool, StrictStr, ValidationError, create_model

from reasoner.errors import PatientError, Problem, did_you_mean
from reasoner.language.vocab import Concept, Vocabulary

RESERVED = {"id": "a short name for the patient", "description": "free text about the scenario"}
_CODE = r"^[A-Z0-9][A-Z0-9.]{1,9}$"


@dataclass(frozen=True)
class Patient:
    id: str
    description: str
    facts: dict  # concept -> validated value (bool, int/float, str, tuple of str, date)
    source: str


def _field_type(c: Concept, vocab: Vocabulary):
    if c.kind == "boolean":
        return StrictBool
    if c.kind == "number":
        return Annotated[float, Field(ge=float(c.low), le=float(c.high), strict=True, allow_inf_nan=False)]
    if c.kind == "date":
        return dt.date
    if c.kind == "codes":
        return list[Annotated[StrictStr, Field(pattern=_CODE)]]
    if vocab.codes[c.domain]:  # names or codes: codes are mapped (by prefix) in _normalise
        return StrictStr if c.kind == "enum" else list[StrictStr]
    values = tuple(vocab.domains[c.domain])
    return Literal[values] if c.kind == "enum" else list[Literal[values]]


@lru_cache(maxsize=8)
def _model(vocab: Vocabulary) -> type[BaseModel]:
    fields = {name: (Optional[_field_type(c, vocab)], None) for name, c in vocab.concepts.items()}
    fields["id"] = (Optional[StrictStr], None)
    fields["description"] = (Optional[StrictStr], None)
    return create_model("PatientFacts", __config__=ConfigDict(extra="forbid"), **fields)


class _StrictLoader(yaml.SafeLoader):
    """Safe YAML that refuses a key given twice: silently keeping the last would hide a typo."""

    def construct_mapping(self, node, deep=False):
        seen = set()
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=deep)
            if key in seen:
                raise yaml.constructor.ConstructorError(None, None, f"the field {key!r} is given twice",
                                                        key_node.start_mark)
            seen.add(key)
        return super().construct_mapping(node, deep)

    def construct_yaml_timestamp(self, node):
        try:
            return super().construct_yaml_timestamp(node)
        except ValueError as err:  # 2025-02-30 looks like a date to YAML but is none
            raise yaml.constructor.ConstructorError(None, None, f"{node.value!r} is not a date ({err})",
                                                    node.start_mark) from None


_StrictLoader.add_constructor("tag:yaml.org,2002:timestamp", _StrictLoader.construct_yaml_timestamp)


def _json_object(pairs: list) -> dict:
    keys = [k for k, _ in pairs]
    twice = sorted({k for k in keys if keys.count(k) > 1})
    if twice:
        raise ValueError(f"the field {twice[0]!r} is given twice")
    return dict(pairs)


def _read(path: Path) -> object:
    """The parsed document; syntax errors carry line and column."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as err:
        raise PatientError([Problem(str(path), f"cannot read the file: {err}")]) from None
    if path.suffix.lower() == ".json":
        try:
            return json.loads(text, object_pairs_hook=_json_object)
        except json.JSONDecodeError as err:
            raise PatientError([Problem(f"{path}:{err.lineno}:{err.colno}", f"invalid JSON: {err.msg}.")]) from None
        except ValueError as err:
            raise PatientError([Problem(str(path), f"invalid JSON: {err}.")]) from None
    try:
        return yaml.load(text, Loader=_StrictLoader)  # a SafeLoader: builds plain data only
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        where = f"{path}:{mark.line + 1}:{mark.column + 1}" if mark else str(path)
        raise PatientError([Problem(where, f"invalid YAML: {getattr(err, 'problem', None) or err}.")]) from None


def _problem(path: str, err: dict, vocab: Vocabulary) -> Problem:
    loc = err["loc"]
    name = str(loc[0]) if loc else "?"
    if err["type"] == "extra_forbidden":
        known = list(vocab.concepts) + list(RESERVED)
        return Problem(f"{path}: field '{name}'", f"unknown concept '{name}'.{did_you_mean(name, known)}")
    where = f"{path}: field '{name}'" + (f" item {loc[1] + 1}" if len(loc) > 1 and isinstance(loc[1], int) else "")
    concept = vocab.concepts.get(name)
    expected = concept.expected(vocab) if concept else RESERVED.get(name, "text")
    return Problem(where, f"got {err['input']!r}; expected {expected}.")


def domain_value(value: str, domain: str, vocab: Vocabulary) -> str | None:
    """The domain value named by `value`, or by the longest declared code that prefixes it.

    ICD-10 is hierarchical, so a declared "G90.5" stands for G90.50 to G90.59.
    """
    if value in vocab.domains[domain]:
        return value
    code = value.upper()
    prefixes = [p for p in vocab.codes[domain] if code.startswith(p.upper())]
    return vocab.codes[domain][max(prefixes, key=len)] if prefixes else None


def _normalise(c: Concept, value, vocab: Vocabulary, source: str) -> tuple[object, list[Problem]]:
    """Codes mapped onto domain values, whole numbers as int, lists as sorted tuples."""
    if c.kind == "number":
        return (int(value) if float(value).is_integer() else value), []
    if c.kind == "codes":
        return tuple(sorted(set(value))), []
    if c.kind not in ("enum", "set"):
        return value, []
    items = [value] if c.kind == "enum" else list(value)
    mapped = [domain_value(v, c.domain, vocab) for v in items]
    problems = [Problem(f"{source}: field '{c.name}'", f"got {v!r}; expected {c.expected(vocab)} "
                        f"(or one of their codes: {', '.join(vocab.codes[c.domain])}).")
                for v, m in zip(items, mapped) if m is None]
    if c.kind == "set" and len(set(mapped)) != len(mapped) and not problems:
        problems.append(Problem(f"{source}: field '{c.name}'", f"got {value!r}; a value is listed twice (codes included)."))
    return (mapped[0] if c.kind == "enum" else tuple(sorted(mapped))), problems


def short(value, limit: int = 60) -> str:
    """repr of a value cut to `limit` characters: error messages quote what was found, never a
    whole (possibly enormous or alias-expanded) document."""
    text = repr(value) if not isinstance(value, (list, dict, tuple)) else _shallow(value)
    return text if len(text) <= limit else text[:limit - 1] + "…"


def _shallow(value) -> str:
    if isinstance(value, dict):
        return f"a mapping of {len(value)} field(s)"
    return f"a list of {len(value)} item(s)"


def _encodable(value) -> bool:
    if isinstance(value, str):
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            return False
        return True
    if isinstance(value, (list, tuple)):
        return all(_encodable(v) for v in value[:10_000])
    return True


def validate(data: object, vocab: Vocabulary, source: str = "<patient>") -> Patient:
    """Check one patient mapping; raise PatientError listing every problem."""
    if not isinstance(data, dict):
        got = "nothing" if data is None else type(data).__name__
        raise PatientError([Problem(source, f"a patient file must be a mapping of concept: value, not {got}.")])
    bad_keys = [k for k in data if not isinstance(k, str)]
    if bad_keys:
        raise PatientError([Problem(source, f"field names must be text, got {short(bad_keys[0])}.")])
    broken = [k for k, v in data.items() if not _encodable(k) or not _encodable(v)]
    if broken:
        raise PatientError([Problem(f"{source}: field {short(k)}", "holds text that is not valid Unicode "
                                    "(bytes that are not UTF-8, or a lone surrogate).") for k in broken])
    try:
        parsed = _model(vocab).model_validate(data)
    except ValidationError as err:
        raise PatientError([_problem(source, e, vocab) for e in err.errors()]) from None
    problems: list[Problem] = []
    facts = {}
    for name, c in vocab.concepts.items():
        value = getattr(parsed, name)
        if value is None:
            continue
        if isinstance(value, list) and len(set(value)) != len(value):
            problems.append(Problem(f"{source}: field '{name}'", f"got {value!r}; a value is listed twice."))
            continue
        facts[name], found = _normalise(c, value, vocab, source)
        problems += found
    if problems:
        raise PatientError(problems)
    return Patient(parsed.id or Path(source).stem, parsed.description or "", facts, source)


def load_patient(path: Path | str, vocab: Vocabulary) -> Patient:
    path = Path(path)
    return validate(_read(path), vocab, str(path))
