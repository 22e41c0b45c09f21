"""The concepts patients are described in: kind, values, ranges, units; and shared knowledge.

One vocabulary is shared by every payer, so that "trial pain relief" means the same fact in all
policies. It drives patient validation, patient generation, forms and questionnaires.

A *record* (e.g. `medications`, keyed by drug) is a family of concepts with the same fields, one per
key: `medications.baclofen.outcome`, `medications.baclofen.weeks`, ... Every later stage sees these
flattened names as ordinary concepts, so no engine needs to know records exist; patient files write
them nested (`medications: {baclofen: {outcome: failed}}`).

A *table* holds knowledge that is not about patients (which routes and indications a drug's label
covers); a *subset* names some values of a domain (the opioids among drugs) for policies to cite.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path

from reasoner.language import syntax as s
from reasoner.errors import PolicyError, Problem, did_you_mean
from reasoner.language.parse import parse_file

KINDS = ("boolean", "number", "enum", "set", "codes", "date")
# what a request must state: its service (one), what it is for (one or more), the member's line
REQUEST_KINDS = {"service": ("enum",), "indications": ("set", "enum"), "line_of_business": ("enum",)}
SIGNIFICANT = 15  # a decimal of at most 15 significant digits survives a round trip through a float

# unit -> (dimension, factor to the dimension's base unit). Conversions are exact only:
# weeks and days convert, months and weeks do not (a month is not a whole number of weeks).
UNITS: dict[str, tuple[str, Decimal]] = {
    "%": ("percent", Decimal(1)),
    "hours": ("short_time", Decimal(1)),
    "days": ("short_time", Decimal(24)),
    "weeks": ("short_time", Decimal(168)),
    "months": ("long_time", Decimal(1)),
    "years": ("long_time", Decimal(12)),
    "visits": ("visits", Decimal(1)),
    "visits_per_week": ("visit_rate", Decimal(1)),
    "points": ("points", Decimal(1)),
    "ms": ("milliseconds", Decimal(1)),
    "agents": ("agents", Decimal(1)),
}
_SINGULAR = {"hour": "hours", "day": "days", "week": "weeks", "month": "months", "year": "years",
             "visit": "visits", "point": "points", "agent": "agents", "percent": "%"}

# How the codes of a domain's values are written, and whether a longer code falls under a declared
# one. ICD-10-CM is hierarchical: a declared "G90.5" stands for G90.50 to G90.59.
CODE_SYSTEMS = {
    "ICD-10-CM": re.compile(r"^[A-TV-Z][0-9][0-9A-Z](\.[0-9A-Z]{1,4})?$"),
}
CPT_HCPCS = re.compile(r"^([0-9]{4}[0-9FTU]|[A-V][0-9]{4})$")


def canonical_unit(unit: str) -> str:
    return _SINGULAR.get(unit, unit)


def convert(value: Decimal, unit: str, to: str) -> Decimal | None:
    """`value` in `unit` expressed in `to`, or None when the units measure different things.

    >>> convert(Decimal(1), "years", "months")
    Decimal('12')
    """
    (dim_a, fa), (dim_b, fb) = UNITS[canonical_unit(unit)], UNITS[canonical_unit(to)]
    return value * fa / fb if dim_a == dim_b else None


def exact_problem(value: Decimal) -> str | None:
    """Why a number cannot be compared exactly by every backend, or None.

    Backends compare numbers as binary floats; a decimal of at most 15 significant digits (and a
    magnitude a float holds) maps to a float that orders exactly like the decimal, so policies
    and patients are held to that.

    >>> exact_problem(Decimal("49.999999999999999999"))
    'has 20 significant digits; at most 15 can be compared exactly'
    """
    if not value.is_finite():
        return "is not a finite number"
    sign, digit_tuple, exponent = value.as_tuple()  # no arithmetic: it can overflow the decimal context
    significant = "".join(map(str, digit_tuple)).lstrip("0")
    digits = len(significant.rstrip("0") or "0")
    magnitude = len(significant) + exponent  # the position of the leading digit
    if significant and not -14 <= magnitude <= 16:
        return "is outside the magnitudes that can be compared exactly (1e-15 to 1e15)"
    if digits > SIGNIFICANT:
        return f"has {digits} significant digits; at most {SIGNIFICANT} can be compared exactly"
    return None


@dataclass(frozen=True)
class Concept:
    name: str
    kind: str
    meaning: str
    unit: str | None = None
    low: Decimal | None = None
    high: Decimal | None = None
    domain: str | None = None
    system: str | None = None
    whole: bool = False
    topic: str = ""
    record: str | None = None  # for a record's field: the record, its key and the field's name
    key: str | None = None
    field: str | None = None

    def expected(self, vocab: "Vocabulary") -> str:
        """What a valid value looks like, in words, for error messages."""
        if self.kind == "boolean":
            return "true or false"
        if self.kind == "number":
            what = "a whole number" if self.whole else "a number"
            return f"{what} in {self.unit} between {self.low} and {self.high}"
        if self.kind == "date":
            return "a date written YYYY-MM-DD"
        if self.kind == "codes":
            return f"a list of {self.system} codes (e.g. \"62362\" or \"E0783\")"
        values = ", ".join(vocab.domains[self.domain])
        return f"one of: {values}" if self.kind == "enum" else f"a list of distinct values from: {values}"


@dataclass(frozen=True)
class Record:
    name: str
    key_domain: str
    meaning: str
    fields: dict[str, Concept]  # field name -> the field's kind (name = the field's own name)
    topic: str = ""

    def concept(self, key: str, field_name: str) -> str:
        return f"{self.name}.{key}.{field_name}"


@dataclass(frozen=True)
class Row:
    values: dict[str, str]  # column -> value
    cite: str


@dataclass(frozen=True)
class Table:
    name: str
    meaning: str
    columns: dict[str, str]  # column -> domain
    source: str
    rows: tuple[Row, ...]


@dataclass(frozen=True, eq=False)  # identity-hashed: cached per loaded vocabulary
class Vocabulary:
    name: str
    concepts: dict[str, Concept]  # records' fields included, as "record.key.field"
    domains: dict[str, dict[str, str]]  # domain -> value -> meaning
    codes: dict[str, dict[str, str]]  # domain -> code prefix -> value (e.g. ICD-10)
    records: dict[str, Record] = field(default_factory=dict)
    subsets: dict[str, tuple[str, tuple[str, ...]]] = field(default_factory=dict)  # name -> (domain, values)
    tables: dict[str, Table] = field(default_factory=dict)
    systems: dict[str, str] = field(default_factory=dict)  # domain -> code system
    topics: tuple[str, ...] = ()

    def values_of(self, concept: str) -> tuple[str, ...]:
        return tuple(self.domains[self.concepts[concept].domain])

    def plain(self) -> dict[str, Concept]:
        """The concepts that are not fields of a record, in declaration order."""
        return {n: c for n, c in self.concepts.items() if c.record is None}


def _domain_problems(domain: s.Domain, seen_codes: dict) -> list[Problem]:
    problems, names = [], set()
    pattern = CODE_SYSTEMS.get(domain.system or "")
    if domain.system and pattern is None:
        problems.append(Problem(str(domain.span), f"unknown code system '{domain.system}'; known: {', '.join(CODE_SYSTEMS)}."))
    for value in domain.values:
        if value.name in names:
            problems.append(Problem(str(value.span), f"value '{value.name}' is listed twice in domain '{domain.name}'."))
        names.add(value.name)
        if value.codes and not domain.system:
            problems.append(Problem(str(value.span), f"value '{value.name}' lists codes, but domain '{domain.name}' "
                                                     "names no code system (codes \"ICD-10-CM\")."))
        for code in value.codes:
            if not code or not re.fullmatch(r"[A-Z][0-9A-Z.]*", code):
                problems.append(Problem(str(value.span), f"code {code!r} is not a code prefix (a capital letter, "
                                                         "then capital letters, digits and dots)."))
            if code in seen_codes:
                problems.append(Problem(str(value.span), f"code {code!r} already maps to '{seen_codes[code]}'."))
            seen_codes[code] = value.name
    return problems


def _kind_problems(name: str, k: s.Kind, span, domains: dict) -> list[Problem]:
    where = str(span)
    if k.name in ("enum", "set") and k.domain not in domains:
        return [Problem(where, f"concept '{name}' uses unknown domain '{k.domain}'.{did_you_mean(k.domain, domains)}")]
    if k.name == "number":
        if canonical_unit(k.unit) not in UNITS:
            return [Problem(where, f"unknown unit '{k.unit}' for '{name}'; known units: {', '.join(UNITS)}.")]
        for bound in (k.low, k.high):
            problem = exact_problem(bound) if bound != 0 else None
            if problem:
                return [Problem(where, f"the bound {bound} of '{name}' {problem}.")]
        if k.low > k.high:
            return [Problem(where, f"the range of '{name}' is empty ({k.low} > {k.high}).")]
    return []


def _concept(name: str, decl: s.ConceptDecl, topic: str, **where) -> Concept:
    k = decl.kind
    unit = canonical_unit(k.unit) if k.unit else None
    return Concept(name, k.name, decl.meaning, unit, k.low, k.high, k.domain, k.system, k.whole, topic, **where)


class _Builder:
    """Collects every declaration of one or more vocabulary files into one Vocabulary."""

    def __init__(self):
        self.problems: list[Problem] = []
        self.names: dict[str, str] = {}  # every declared name -> where
        self.domains: dict[str, dict[str, str]] = {}
        self.codes: dict[str, dict[str, str]] = {}
        self.systems: dict[str, str] = {}
        self.concepts: dict[str, Concept] = {}
        self.records: dict[str, Record] = {}
        self.subsets: dict[str, tuple[str, tuple[str, ...]]] = {}
        self.tables: dict[str, Table] = {}
        self.topics: list[str] = []

    def claim(self, name: str, span) -> None:
        if name in self.names:
            self.problems.append(Problem(str(span), f"the name '{name}' is declared twice (first at {self.names[name]})."))
        self.names.setdefault(name, str(span))

    def add(self, tree: s.VocabularyFile) -> None:
        for domain in tree.domains:
            self.claim(domain.name, domain.span)
            seen: dict[str, str] = {}
            self.problems.extend(_domain_problems(domain, seen))
            self.domains[domain.name] = {v.name: v.meaning for v in domain.values}
            self.codes[domain.name] = seen
            if domain.system:
                self.systems[domain.name] = domain.system
        for decl in tree.concepts:
            self.claim(decl.name, decl.span)
            self.problems.extend(_kind_problems(decl.name, decl.kind, decl.span, self.domains))
            if decl.name in REQUEST_KINDS and decl.kind.name not in REQUEST_KINDS[decl.name]:
                self.problems.append(Problem(str(decl.span), f"'{decl.name}' describes the request, which rules scope on: "
                                                             f"it must be {' or '.join(REQUEST_KINDS[decl.name])} of a "
                                                             f"domain, not {decl.kind.name}."))
            self.concepts[decl.name] = _concept(decl.name, decl, decl.topic)
            self._topic(decl.topic)
        for record in tree.records:
            self.record(record)
        for subset in tree.subsets:
            self.subset(subset)
        for table in tree.tables:
            self.table(table)

    def _topic(self, topic: str) -> None:
        if topic and topic not in self.topics:
            self.topics.append(topic)

    def record(self, record: s.Record) -> None:
        self.claim(record.name, record.span)
        self._topic(record.topic)
        if record.key_domain not in self.domains:
            self.problems.append(Problem(str(record.span), f"record '{record.name}' is keyed by unknown domain "
                                                           f"'{record.key_domain}'.{did_you_mean(record.key_domain, self.domains)}"))
            return
        fields: dict[str, Concept] = {}
        for decl in record.fields:
            if decl.name in fields:
                self.problems.append(Problem(str(decl.span), f"field '{decl.name}' is declared twice in record '{record.name}'."))
            self.problems.extend(_kind_problems(decl.name, decl.kind, decl.span, self.domains))
            fields[decl.name] = _concept(decl.name, decl, record.topic)
        built = Record(record.name, record.key_domain, record.meaning, fields, record.topic)
        self.records[record.name] = built
        for key in self.domains[record.key_domain]:
            for name, decl in zip(fields, record.fields):
                flat = built.concept(key, name)
                self.concepts[flat] = _concept(flat, decl, record.topic, record=record.name, key=key, field=name)

    def subset(self, subset: s.Subset) -> None:
        self.claim(subset.name, subset.span)
        known = self.domains.get(subset.domain)
        if known is None:
            self.problems.append(Problem(str(subset.span), f"subset '{subset.name}' is of unknown domain '{subset.domain}'."))
            return
        for v in subset.values:
            if v not in known:
                self.problems.append(Problem(str(subset.span), f"'{v}' is not a value of {subset.domain}.{did_you_mean(v, known)}"))
        self.subsets[subset.name] = (subset.domain, subset.values)

    def table(self, table: s.Table) -> None:
        self.claim(table.name, table.span)
        columns = dict(table.columns)
        for column, domain in table.columns:
            if domain not in self.domains:
                self.problems.append(Problem(str(table.span), f"column '{column}' of table '{table.name}' uses unknown "
                                                              f"domain '{domain}'.{did_you_mean(domain, self.domains)}"))
                return
        rows, seen = [], set()
        for row in table.rows:
            if len(row.values) != len(columns):
                self.problems.append(Problem(str(row.span), f"a row of '{table.name}' needs {len(columns)} values "
                                                            f"({', '.join(columns)}), not {len(row.values)}."))
                continue
            for value, (column, domain) in zip(row.values, table.columns):
                if value not in self.domains[domain]:
                    self.problems.append(Problem(str(row.span), f"'{value}' is not a value of {domain} (column "
                                                                f"'{column}').{did_you_mean(value, self.domains[domain])}"))
            if row.values in seen:
                self.problems.append(Problem(str(row.span), f"the row {', '.join(row.values)} is listed twice."))
            seen.add(row.values)
            if not row.cite.section.strip():
                self.problems.append(Problem(str(row.span), "the row has an empty citation."))
            rows.append(Row(dict(zip(columns, row.values)), row.cite.section))
        self.tables[table.name] = Table(table.name, table.meaning, columns, table.source, tuple(rows))


def build_vocabulary(*trees: s.VocabularyFile) -> Vocabulary:
    """Check parsed vocabulary files and turn them into the lookup tables the rest uses. The first
    file names the vocabulary; the others (e.g. knowledge tables) add to it."""
    builder = _Builder()
    for tree in trees:
        builder.add(tree)
    if builder.problems:
        raise PolicyError(builder.problems)
    return Vocabulary(trees[0].name, builder.concepts, builder.domains, builder.codes, builder.records,
                      builder.subsets, builder.tables, builder.systems, tuple(builder.topics))


def parse_vocabulary(path: Path) -> s.VocabularyFile:
    tree = parse_file(path)
    if not isinstance(tree, s.VocabularyFile):
        raise PolicyError([Problem(f"{path}:1:1", "expected a vocabulary file (starting with 'vocabulary').")])
    return tree


def load_vocabulary(path: Path, extra: list[Path] | tuple[Path, ...] = ()) -> Vocabulary:
    """The vocabulary of `path`, with the declarations of the `extra` files added to it."""
    problems, trees = [], []
    for p in [path, *extra]:
        try:
            trees.append(parse_vocabulary(p))
        except PolicyError as err:
            problems += err.problems
    if problems:
        raise PolicyError(problems)
    return build_vocabulary(*trees)
