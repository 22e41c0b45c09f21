"""The FHIR mapping file (policies/fhir_mapping.yaml) as frozen data.

The mapping says which element of which resource gives which vocabulary fact; the reader
(`reasoner.fhir.bundle`) and the writer (`reasoner.fhir.write`) interpret it, so adding a code
system, a code or an Observation is an edit to the file, not to code. The file is checked against
the vocabulary when loaded: every concept, domain value and system it names must exist.
"""
from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from reasoner.errors import PolicyError, Problem
from reasoner.language.vocab import Vocabulary

FILE = "fhir_mapping.yaml"
FORMAT = "reasoner.fhir-mapping/1"
DERIVATIONS = ("age_at_request", "therapy_course")  # computations bundle.py knows by name
ANY = "*"  # in a `when` list: any code of that system


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class _ReadRow(_Strict):
    resource: str
    concept: str | None = None
    element: str | None = None
    code: dict[str, str] | None = None
    codes: dict[str, dict[str, str]] = {}
    prefix: bool = False
    optional: bool = False
    record: str | None = None
    fields: dict[str, str] = {}
    pass_: list[str] = Field([], alias="pass")  # `pass` is a Python keyword
    when: dict[str, list[str]] = {}
    when_element: str = "code"
    bands: dict[str, str] = {}
    latest: bool = False
    first_by: str | None = None
    in_force: str | None = None
    unlisted: Literal["report", "ignore", "other"] = "report"


class _DeriveRow(_Strict):
    name: str
    concept: str | None = None
    resource: str | None = None
    codes: dict[str, list[str]] = {}
    concepts: dict[str, str] = {}
    outcomes: dict[str, dict[str, str]] = {}


class _File(_Strict):
    format: str
    systems: dict[str, str]
    skip_status: dict[str, list[str]] = {}
    record_wins: list[str] = []
    read: list[_ReadRow]
    derive: list[_DeriveRow] = []


@dataclass(frozen=True)
class Read:
    """One element (or one Observation code) giving one concept, or a record's entries."""

    resource: str
    concept: str | None  # None for a record row
    element: str | None
    code: tuple[str, str] | None  # Observation code (system URL, code)
    codes: dict  # system URL -> {code: value}
    prefix: bool
    passes: tuple[str, ...]  # system URLs whose codes go to the vocabulary unchanged
    optional: bool  # an element that may also hold codings for another row
    record: str | None = None
    fields: tuple[tuple[str, str], ...] = ()  # record field -> element
    when: dict = None  # system URL -> ((first, last), ...): only resources whose code is in one range
    when_element: str = "code"  # the element `when` looks at
    bands: tuple = ()  # ((value, low, high), ...): a score read as the value of the band holding it
    latest: bool = False  # only the latest dated resource the row reads counts (a score taken often)
    unlisted: str = "report"  # a code of a listed system that the table lacks: "ignore" it, read it as "other"
    first_by: str | None = None  # an element (Coverage.order): only the resources of its lowest value are read
    in_force: str | None = None  # a Period element (Coverage.period): only resources in force at the request are read

    def rank(self, resource: dict) -> float | None:
        """Where a resource comes by `first_by`, lowest first; None when it does not say."""
        got = [v for v in element(resource, self.first_by or "") if isinstance(v, (int, float)) and not isinstance(v, bool)]
        return min(got) if got else None

    def ignores(self, codings: list[dict]) -> bool:
        """Whether codings no table maps are left unread without a word: with `unlisted: ignore`,
        when one of them is in a system whose table the row holds (a drug the table does not
        list); codings only in systems the row does not know are still reported."""
        return self.unlisted == "ignore" and self.listed(codings)

    def listed(self, codings: list[dict]) -> bool:
        """Whether one of the codings is in a system whose table the row holds."""
        return any(c.get("system") in self.codes for c in codings)

    def selects(self, resource: dict) -> bool:
        """Whether the row reads this resource: always without `when`; with it, when a coding of
        the resource's `when_element` (its code) falls in one of its ranges (codes compared as text
        of one length)."""
        if not self.when:
            return True
        return any(first == ANY or (first <= str(c.get("code")) <= last and len(str(c.get("code"))) == len(first))
                   for c in codings(element(resource, self.when_element))
                   for first, last in self.when.get(c.get("system"), ()))


def element(resource: dict, path: str) -> list:
    """Every value at a dotted element path, lists flattened (dosageInstruction.route)."""
    values = [resource]
    for part in path.split("."):
        nxt = []
        for v in values:
            got = v.get(part) if isinstance(v, dict) else None
            nxt += got if isinstance(got, list) else [] if got is None else [got]
        values = nxt
    return values


def codings(value) -> list[dict]:
    """The codings of a CodeableConcept (or of a list of them)."""
    items = value if isinstance(value, list) else [value]
    return [c for item in items if isinstance(item, dict) and isinstance(item.get("coding"), list)
            for c in item["coding"] if isinstance(c, dict)]  # a malformed coding is none (unvalidated Bulk input)


@dataclass(frozen=True)
class Derive:
    name: str
    concept: str | None
    resource: str | None
    codes: dict  # system URL -> frozenset of codes
    concepts: dict  # quantity -> concept
    outcomes: dict = None  # system URL -> {code: outcome value}: the resources' outcome codes


@dataclass(frozen=True)
class Mapping:
    source: str
    systems: dict  # short name -> URL
    reads: tuple[Read, ...]
    derives: tuple[Derive, ...]
    vocabulary: str  # the vocabulary's name, for its own systems
    skip: dict = None  # resource type (or "*") -> statuses whose resources are not read
    record_wins: frozenset = frozenset()  # concepts where the record beats a questionnaire's answer

    def skipped(self, resource: str) -> frozenset[str]:
        skip = self.skip or {}
        return skip.get(resource, frozenset()) | skip.get("*", frozenset())

    def domain_system(self, domain: str) -> str:
        return own_system(self.vocabulary, domain)

    @property
    def concept_system(self) -> str:
        return f"urn:reasoner:{self.vocabulary}:concept"

    @cached_property
    def _by_resource(self) -> dict[str, tuple[Read, ...]]:
        out: dict[str, list[Read]] = {}
        for r in self.reads:
            out.setdefault(r.resource, []).append(r)
        return {k: tuple(v) for k, v in out.items()}

    def rows(self, resource: str) -> tuple[Read, ...]:
        return self._by_resource.get(resource, ())

    def derive(self, name: str) -> Derive | None:
        return next((d for d in self.derives if d.name == name), None)


def mapping_file(folder: Path) -> Path:
    return Path(folder) / FILE


def load_mapping(folder: Path, vocab: Vocabulary) -> Mapping:
    """The mapping beside the vocabulary; PolicyError naming the file and entry when it is wrong."""
    from reasoner.io.patient import read_yaml

    path = str(mapping_file(folder))
    if not Path(path).exists():
        raise PolicyError([Problem(path, "no FHIR mapping here; FHIR input needs the mapping file beside the "
                                         "vocabulary (the bundled policies/fhir_mapping.yaml is a start).")])
    try:
        raw = _File.model_validate(read_yaml(Path(path).read_text(encoding="utf-8"), path))
    except ValidationError as err:
        raise PolicyError([Problem(f"{path}: {'.'.join(map(str, e['loc']))}", e["msg"] + ".")
                           for e in err.errors()[:20]]) from None
    except Exception as err:  # a YAML syntax error arrives as PatientError from read_yaml
        raise PolicyError([Problem(path, str(err))]) from None
    mapping = _build(path, raw, vocab)
    problems = _check(mapping, raw, vocab)
    if problems:
        raise PolicyError(problems)
    return mapping


def _url(systems: dict, name: str, problems: list, where: str) -> str:
    if name not in systems:
        problems.append(Problem(where, f"names the code system {name!r}, which `systems` does not define."))
    return systems.get(name, name)


def _build(path: str, raw: _File, vocab: Vocabulary) -> Mapping:
    s = raw.systems
    reads = tuple(Read(r.resource, r.concept, r.element, _code(s, r.code),
                       {s.get(k, k): dict(v) for k, v in r.codes.items()}, r.prefix,
                       tuple(s.get(p, p) for p in r.pass_), r.optional, r.record, tuple(r.fields.items()),
                       when={_when_system(s, vocab, k): tuple(_range(c) for c in v) for k, v in r.when.items()},
                       when_element=r.when_element, bands=tuple((value, *_band(text)) for value, text in r.bands.items()),
                       latest=r.latest, unlisted=r.unlisted, first_by=r.first_by, in_force=r.in_force)
                  for r in raw.read)
    derives = tuple(Derive(d.name, d.concept, d.resource, {s.get(k, k): frozenset(v) for k, v in d.codes.items()},
                           dict(d.concepts), {s.get(k, k): dict(v) for k, v in d.outcomes.items()}) for d in raw.derive)
    skip = {k: frozenset(v) for k, v in raw.skip_status.items()}
    return Mapping(path, dict(s), reads, derives, vocab.name, skip, frozenset(raw.record_wins))


def _range(text: str) -> tuple[str, str]:
    """'64400-64530' -> ('64400', '64530'); a single code is a range of one; '*' any code."""
    if text.strip() == ANY:
        return ANY, ANY
    first, _, last = text.partition("-")
    return first.strip(), (last or first).strip()


def _good_range(first: str, last: str) -> bool:
    return first == ANY or (bool(first) and len(first) == len(last) and first <= last)


def _when_system(systems: dict, vocab: Vocabulary, name: str) -> str:
    """A `when` key: a system the file names, or a domain of the vocabulary (its own system)."""
    if name in systems:
        return systems[name]
    return own_system(vocab.name, name) if name in vocab.domains else name


def own_system(vocabulary: str, domain: str) -> str:
    """The vocabulary's own code system for a domain's values (questionnaires answer in it too)."""
    return f"urn:reasoner:{vocabulary}:{domain}"


def _band(text: str) -> tuple[float, float] | tuple[None, None]:
    """'7-10' -> (7.0, 10.0), bounds included; (None, None) when the text is no such range."""
    low, _, high = str(text).partition("-")
    try:
        return float(low), float(high or low)
    except ValueError:
        return None, None


def _code(systems: dict, code: dict | None) -> tuple[str, str] | None:
    if not code:
        return None
    name, value = next(iter(code.items()))  # one entry: _check refuses others
    return systems.get(name, name), value


def _unknown_values(where: str, row: _ReadRow, allowed: set, domain: str | None) -> list[Problem]:
    return [Problem(where, f"maps {system} code {code!r} to {value!r}, which is not a value of {domain}.")
            for system, table in row.codes.items() for code, value in table.items() if value not in allowed]


def _check(mapping: Mapping, raw: _File, vocab: Vocabulary) -> list[Problem]:
    """Every name the file uses exists: formats, systems, concepts, domain values, derivations."""
    problems: list[Problem] = []
    if raw.format != FORMAT:
        problems.append(Problem(f"{mapping.source}: format", f"is {raw.format!r}; this reader knows {FORMAT!r}."))
    for k, row in enumerate(raw.read):
        where = f"{mapping.source}: read[{k}]"
        if row.code is not None and len(row.code) != 1:
            problems.append(Problem(where, "`code` names one system and one code ({system: code})."))
            continue
        for name in [*row.codes, *row.pass_, *(row.code or {}), *(w for w in row.when if w not in vocab.domains)]:
            _url(raw.systems, name, problems, where)
        problems += [Problem(where, f"`when` range {text!r} needs two codes of one length, the first not after "
                                    "the last (64400-64530), or one code.")
                     for texts in row.when.values() for text in texts if not _good_range(*_range(text))]
        if row.unlisted != "report" and not row.codes:
            problems.append(Problem(where, f"`unlisted: {row.unlisted}` is about the codes its `codes` table lacks: "
                                           "give the table."))
        if row.unlisted == "other" and "other" not in vocab.domains.get(
                getattr(vocab.concepts.get(row.concept or ""), "domain", None) or "", {}):
            problems.append(Problem(where, "`unlisted: other` reads an unlisted code as the value other, which the "
                                           "concept's domain lacks."))
        if (row.concept is None) == (row.record is None):
            problems.append(Problem(where, "needs exactly one of `concept` or `record`."))
            continue
        if row.record is not None:
            record = vocab.records.get(row.record)
            if record is None:
                problems.append(Problem(where, f"record {row.record!r} is not in the vocabulary."))
                continue
            problems += [Problem(where, f"record {row.record!r} has no field {f!r}.")
                         for f in row.fields if f not in record.fields]
            problems += _unknown_values(where, row, set(vocab.domains.get(record.key_domain, {})), record.key_domain)
            continue
        concept = vocab.concepts.get(row.concept)
        if concept is None:
            problems.append(Problem(where, f"concept {row.concept!r} is not in the vocabulary."))
            continue
        allowed = set(vocab.domains.get(concept.domain or "", {}))
        problems += _unknown_values(where, row, allowed, concept.domain)
        problems += [Problem(where, f"band {value!r} is not a value of {concept.domain}.")
                     for value in row.bands if value not in allowed]
        problems += [Problem(where, f"band {value!r}: {text!r} is not a range of scores (low-high, 7-10).")
                     for value, text in row.bands.items() if None in _band(text) or _band(text)[0] > _band(text)[1]]
        if row.bands and row.code is None:
            problems.append(Problem(where, "`bands` read an Observation's score: give the Observation `code`."))
        if row.latest and not row.bands:
            problems.append(Problem(where, "`latest` keeps the latest of a row's scores: it needs `bands`."))
        for option in ("first_by", "in_force"):
            if getattr(row, option) and (row.code is not None or row.record is not None):
                problems.append(Problem(where, f"`{option}` picks among the resources a concept row reads by an "
                                               "element; an Observation code or record row does not take it."))
        if row.when and row.code is not None:
            problems.append(Problem(where, "`code` already names the one Observation code this row reads; drop `when`."))
    problems += [Problem(f"{mapping.source}: record_wins", f"concept {c!r} is not in the vocabulary.")
                 for c in raw.record_wins if c not in vocab.concepts]
    for k, row in enumerate(raw.derive):
        where = f"{mapping.source}: derive[{k}]"
        if row.name not in DERIVATIONS:
            problems.append(Problem(where, f"{row.name!r} is not a derivation this reader knows ({', '.join(DERIVATIONS)})."))
        problems += [Problem(where, f"concept {c!r} is not in the vocabulary.")
                     for c in [row.concept, *row.concepts.values()] if c and c not in vocab.concepts]
        for name in [*row.codes, *row.outcomes]:
            _url(raw.systems, name, problems, where)
        outcome = vocab.concepts.get(row.concepts.get("outcome", ""))
        problems += [Problem(where, f"maps {system} outcome {code!r} to {value!r}, which is not a value of "
                                    f"{outcome.domain if outcome else 'the outcome concept'}.")
                     for system, table in row.outcomes.items() for code, value in table.items()
                     if outcome is None or value not in vocab.domains.get(outcome.domain or "", {})]
    return problems
