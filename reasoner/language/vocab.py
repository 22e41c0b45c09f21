"""The concepts patients are described in: kind, values, ranges, units.

One vocabulary is shared by every payer, so that "trial pain relief" means the same fact in all
five policies. It drives patient validation now and patient generation later.
"""
from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path

from reasoner.language import syntax as s
from reasoner.errors import PolicyError, Problem, did_you_mean
from reasoner.language.parse import parse_file

KINDS = ("boolean", "number", "enum", "set", "codes", "date")

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


def canonical_unit(unit: str) -> str:
    return _SINGULAR.get(unit, unit)


def convert(value: Decimal, unit: str, to: str) -> Decimal | None:
    """`value` in `unit` expressed in `to`, or None when the units measure different things.

    >>> convert(Decimal(1), "years", "months")
    Decimal('12')
    """
    (dim_a, fa), (dim_b, fb) = UNITS[canonical_unit(unit)], UNITS[canonical_unit(to)]
    return value * fa / fb if dim_a == dim_b else None


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

    def expected(self, vocab: "Vocabulary") -> str:
        """What a valid value looks like, in words, for error messages."""
        if self.kind == "boolean":
            return "true or false"
        if self.kind == "number":
            return f"a number in {self.unit} between {self.low} and {self.high}"
        if self.kind == "date":
            return "a date written YYYY-MM-DD"
        if self.kind == "codes":
            return f"a list of {self.system} codes (letters and digits, e.g. \"62362\")"
        values = ", ".join(vocab.domains[self.domain])
        return f"one of: {values}" if self.kind == "enum" else f"a list of distinct values from: {values}"


@dataclass(frozen=True, eq=False)  # identity-hashed: cached per loaded vocabulary
class Vocabulary:
    name: str
    concepts: dict[str, Concept]
    domains: dict[str, dict[str, str]]  # domain -> value -> meaning
    codes: dict[str, dict[str, str]]  # domain -> code prefix -> value (e.g. ICD-10)

    def values_of(self, concept: str) -> tuple[str, ...]:
        return tuple(self.domains[self.concepts[concept].domain])


def _domain_problems(domain: s.Domain, seen_codes: dict) -> list[Problem]:
    problems, names = [], set()
    for value in domain.values:
        if value.name in names:
            problems.append(Problem(str(value.span), f"value '{value.name}' is listed twice in domain '{domain.name}'."))
        names.add(value.name)
        for code in value.codes:
            if code in seen_codes:
                problems.append(Problem(str(value.span), f"code {code!r} already maps to '{seen_codes[code]}'."))
            seen_codes[code] = value.name
    return problems


def _concept_problems(decl: s.ConceptDecl, domains: dict) -> list[Problem]:
    k, where = decl.kind, str(decl.span)
    if k.name in ("enum", "set") and k.domain not in domains:
        return [Problem(where, f"concept '{decl.name}' uses unknown domain '{k.domain}'.{did_you_mean(k.domain, domains)}")]
    if k.name == "number":
        if canonical_unit(k.unit) not in UNITS:
            return [Problem(where, f"unknown unit '{k.unit}' for '{decl.name}'; known units: {', '.join(UNITS)}.")]
        if k.low > k.high:
            return [Problem(where, f"the range of '{decl.name}' is empty ({k.low} > {k.high}).")]
    return []


def build_vocabulary(tree: s.VocabularyFile) -> Vocabulary:
    """Check a parsed vocabulary file and turn it into the lookup tables the rest uses."""
    problems: list[Problem] = []
    domains: dict[str, dict[str, str]] = {}
    codes: dict[str, dict[str, str]] = {}
    for domain in tree.domains:
        if domain.name in domains:
            problems.append(Problem(str(domain.span), f"domain '{domain.name}' is declared twice."))
        seen: dict[str, str] = {}
        problems += _domain_problems(domain, seen)
        domains[domain.name] = {v.name: v.meaning for v in domain.values}
        codes[domain.name] = seen
    concepts: dict[str, Concept] = {}
    for decl in tree.concepts:
        if decl.name in concepts or decl.name in domains:
            problems.append(Problem(str(decl.span), f"the name '{decl.name}' is declared twice."))
        problems += _concept_problems(decl, domains)
        k = decl.kind
        unit = canonical_unit(k.unit) if k.unit else None
        concepts[decl.name] = Concept(decl.name, k.name, decl.meaning, unit, k.low, k.high, k.domain, k.system)
    if problems:
        raise PolicyError(problems)
    return Vocabulary(tree.name, concepts, domains, codes)


def load_vocabulary(path: Path) -> Vocabulary:
    tree = parse_file(path)
    if not isinstance(tree, s.VocabularyFile):
        raise PolicyError([Problem(f"{path}:1:1", "expected a vocabulary file (starting with 'vocabulary').")])
    return build_vocabulary(tree)
