"""The member form, laid out from the vocabulary: one section per topic, one field per concept.

Nothing about the form is written by hand: a concept added to `policies/vocabulary.vocab` appears
on the form with its unit, range and values, in its topic, the next time the server starts. Each
field says how it is entered (`control`): a yes / no / not documented choice for a boolean (so "not
documented" is never mistaken for "no"), a list of values for an enum, boxes for a set, text for a
number with its unit and range beside it.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache

from reasoner.language.vocab import Concept, Record, Vocabulary


@dataclass(frozen=True)
class Option:
    value: str
    meaning: str
    codes: tuple[str, ...] = ()  # ICD-10-CM prefixes that name this value


@dataclass(frozen=True)
class Field:
    name: str  # the concept, records flat ("medications.nsaid.outcome")
    dom_id: str
    label: str
    meaning: str
    kind: str  # boolean | number | enum | set | codes | date
    control: str  # tristate | number | select | checkboxes | codes | date
    unit: str | None = None
    low: str | None = None
    high: str | None = None
    whole: bool = False
    options: tuple[Option, ...] = ()
    system: str | None = None  # the code system a set's values may also be given in

    @property
    def hint(self) -> str:
        """Unit and range in words, e.g. "% · 0 to 100", "years · whole number, 0 to 130"."""
        if self.kind != "number":
            return ""
        whole = "whole number, " if self.whole else ""
        return f"{self.unit} · {whole}{self.low} to {self.high}"


@dataclass(frozen=True)
class Table:
    """A record: one row per key (a drug tried, a substance), one column per field."""

    name: str
    dom_id: str
    label: str
    meaning: str
    columns: tuple[tuple[str, str], ...]  # field name, its meaning
    rows: tuple[tuple[Option, tuple[Field, ...]], ...]  # the key, its fields

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(f.name for _, fields in self.rows for f in fields)


@dataclass(frozen=True)
class Section:
    topic: str
    dom_id: str
    items: tuple[Field | Table, ...]

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(n for item in self.items for n in (item.names if isinstance(item, Table) else (item.name,)))


CONTROL = {"boolean": "tristate", "number": "number", "enum": "select", "set": "checkboxes", "codes": "codes",
           "date": "date"}


def dom_id(name: str) -> str:
    """An element id for a field name (dots and other characters CSS would need escaped replaced).

    >>> dom_id("medications.nsaid.outcome")
    'f-medications--nsaid--outcome'
    """
    return "f-" + re.sub(r"[^A-Za-z0-9_-]", "--", name)


def humanize(name: str) -> str:
    """ "pain_trial_relief" -> "Pain trial relief" """
    text = name.replace("_", " ").strip()
    return text[:1].upper() + text[1:]


def _plain(value) -> str | None:
    return None if value is None else format(value.normalize(), "f")


def field(concept: Concept, vocab: Vocabulary, label: str | None = None) -> Field:
    options = ()
    if concept.domain:
        codes: dict[str, list[str]] = {}
        for code, value in vocab.codes.get(concept.domain, {}).items():
            codes.setdefault(value, []).append(code)
        options = tuple(Option(v, m, tuple(codes.get(v, ()))) for v, m in vocab.domains[concept.domain].items())
    return Field(concept.name, dom_id(concept.name), label or humanize(concept.name), concept.meaning, concept.kind,
                 CONTROL[concept.kind], concept.unit, _plain(concept.low), _plain(concept.high), concept.whole, options,
                 vocab.systems.get(concept.domain or ""))


def table(record: Record, vocab: Vocabulary) -> Table:
    rows = []
    for key, meaning in vocab.domains[record.key_domain].items():
        fields = tuple(field(vocab.concepts[record.concept(key, f)], vocab, humanize(f)) for f in record.fields)
        rows.append((Option(key, meaning), fields))
    columns = tuple((name, c.meaning) for name, c in record.fields.items())
    return Table(record.name, dom_id(record.name), humanize(record.name), record.meaning, columns, tuple(rows))


@lru_cache(maxsize=4)
def sections(vocab: Vocabulary) -> tuple[Section, ...]:
    """Every concept and record of the vocabulary, by topic, in declaration order."""
    items: dict[str, list] = {topic: [] for topic in vocab.topics}
    for concept in vocab.plain().values():
        items.setdefault(concept.topic or "Other", []).append(field(concept, vocab))
    for record in vocab.records.values():
        items.setdefault(record.topic or "Other", []).append(table(record, vocab))
    return tuple(Section(topic, f"topic-{i}", tuple(found)) for i, (topic, found) in enumerate(items.items()) if found)


def field_names(vocab: Vocabulary) -> frozenset[str]:
    """Every name the form has a place for (the reserved id and description included)."""
    return frozenset(["id", "description", *(n for s in sections(vocab) for n in s.names)])
