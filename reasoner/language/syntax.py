"""The syntax tree: what a policy or vocabulary file says, with where it says it.

Plain frozen data with no Lark types, so later stages never depend on the parser.
Every node carries a `Span`, which is how every later error points back at the text.
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from decimal import Decimal
from typing import Union


@dataclass(frozen=True)
class Span:
    """A position in a source file (1-based line and column)."""

    file: str
    line: int
    column: int

    def __str__(self) -> str:
        return f"{self.file}:{self.line}:{self.column}"


# ------------------------------------------------------------------ vocabulary
@dataclass(frozen=True)
class DomainValue:
    name: str
    meaning: str
    codes: tuple[str, ...]
    span: Span


@dataclass(frozen=True)
class Domain:
    name: str
    meaning: str
    values: tuple[DomainValue, ...]
    span: Span
    system: str | None = None  # the code system of its values' codes, e.g. "ICD-10-CM"


@dataclass(frozen=True)
class Kind:
    """How a concept is valued: boolean, number, enum, set, codes or date."""

    name: str  # one of KIND_NAMES
    unit: str | None = None
    low: Decimal | None = None
    high: Decimal | None = None
    domain: str | None = None  # for enum and set
    system: str | None = None  # for codes: the coding system, e.g. "CPT/HCPCS"
    whole: bool = False  # numbers: only whole values are meaningful (ages, visits, scores)


@dataclass(frozen=True)
class ConceptDecl:
    name: str
    kind: Kind
    meaning: str
    span: Span
    topic: str = ""  # the `topic` heading it stands under


@dataclass(frozen=True)
class Record:
    """A family of concepts, one record per value of `key_domain`, each with the same fields."""

    name: str
    key_domain: str
    meaning: str
    fields: tuple[ConceptDecl, ...]
    span: Span
    topic: str = ""


@dataclass(frozen=True)
class Subset:
    """A named set of a domain's values that policies can cite (e.g. opioids among drugs)."""

    name: str
    domain: str
    meaning: str
    values: tuple[str, ...]
    span: Span


@dataclass(frozen=True)
class TableRow:
    values: tuple[str, ...]
    cite: "Cite"
    span: Span


@dataclass(frozen=True)
class Table:
    """Knowledge that is not about patients (e.g. the routes and indications on drug labels)."""

    name: str
    meaning: str
    columns: tuple[tuple[str, str], ...]  # (column, domain)
    source: str
    rows: tuple[TableRow, ...]
    span: Span


@dataclass(frozen=True)
class VocabularyFile:
    name: str
    title: str
    domains: tuple[Domain, ...]
    concepts: tuple[ConceptDecl, ...]
    span: Span
    records: tuple[Record, ...] = ()
    subsets: tuple[Subset, ...] = ()
    tables: tuple[Table, ...] = ()


# ------------------------------------------------------------------ criteria
@dataclass(frozen=True)
class NameRef:
    """A bare name: a boolean concept that must be true, or a named criterion."""

    name: str
    span: Span


@dataclass(frozen=True)
class Compare:
    concept: str
    op: str
    value: Decimal
    unit: str | None
    span: Span


@dataclass(frozen=True)
class CompareDate:
    concept: str
    op: str
    value: "date"
    span: Span


@dataclass(frozen=True)
class IsFalse:
    """The boolean concept is documented as false (`not x` also holds when x is undocumented)."""

    concept: str
    span: Span


@dataclass(frozen=True)
class Member:
    """The concept's value (enum) or one of its members (set) is among `values`."""

    concept: str
    values: tuple[str, ...]
    span: Span


@dataclass(frozen=True)
class InNamed:
    """The concept holds a value of a named set: a policy's code set, or a vocabulary subset."""

    concept: str
    name: str
    span: Span


@dataclass(frozen=True)
class Same:
    """Two concepts of one domain are documented with the same value (enums) or set (sets)."""

    left: str
    op: str
    right: str
    span: Span


@dataclass(frozen=True)
class RecordCount:
    """At least `n` (every, when n is None) of the records keyed by `keys` meet `where`, whose
    bare names are the record's fields."""

    n: int | None
    record: str
    keys: tuple[str, ...] | str  # listed values, or the name of a subset
    where: "Expr"
    span: Span


@dataclass(frozen=True)
class EveryListed:
    """The set concept is documented and every value in it has a row of `table` whose other
    columns match the bindings (column = concept)."""

    concept: str
    table: str
    bindings: tuple[tuple[str, str], ...]
    span: Span


@dataclass(frozen=True)
class HasAll:
    concept: str
    values: tuple[str, ...]
    span: Span


@dataclass(frozen=True)
class Count:
    concept: str
    values: tuple[str, ...]
    op: str
    n: int
    span: Span


@dataclass(frozen=True)
class Documented:
    concept: str
    span: Span


@dataclass(frozen=True)
class Not:
    child: "Expr"
    span: Span


@dataclass(frozen=True)
class Item:
    """One entry of a block, with its optional label and citation."""

    expr: "Expr"
    label: str | None
    cite: str | None
    span: Span


@dataclass(frozen=True)
class Block:
    """all / any / at_least N of a list of items."""

    op: str  # "all", "any" or "at_least"
    items: tuple[Item, ...]
    n: int
    span: Span


Expr = Union[NameRef, Compare, CompareDate, IsFalse, Member, InNamed, Same, HasAll, Count, Documented, Not, Block, RecordCount, EveryListed]


# ------------------------------------------------------------------ policy
@dataclass(frozen=True)
class Cite:
    section: str
    span: Span


@dataclass(frozen=True)
class HeaderField:
    key: str  # payer, document, version, lines, effective, superseded_by
    values: tuple[str, ...]  # for lines: () means every line of business; effective: start[, end], detail
    cite: Cite | None
    span: Span
    assumed: bool = False  # lines: the document names none; the scope is the encoder's reading


@dataclass(frozen=True)
class Header:
    policy_id: str
    fields: tuple[HeaderField, ...]
    span: Span
    extends: str | None = None  # the parent policy's id


@dataclass(frozen=True)
class CodeSet:
    name: str
    label: str
    cite: Cite | None
    codes: tuple[str, ...]
    span: Span
    origin: str | None = None  # inherited: the parent document its citation points into


@dataclass(frozen=True)
class Define:
    name: str
    label: str
    cite: Cite | None
    expr: Expr
    span: Span
    origin: str | None = None  # inherited: the parent document its citations point into


@dataclass(frozen=True)
class Decision:
    kind: str  # covered, denied, review, not_addressed
    subkind: str | None
    detail: str | None  # e.g. the external criteria a review defers to
    prior_auth: str | None  # required, not_required, or None when the policy is silent
    span: Span


@dataclass(frozen=True)
class Scope:
    dimension: str  # service, indication or lines
    values: tuple[str, ...]
    span: Span


@dataclass(frozen=True)
class RuleDecl:
    name: str
    label: str
    cite: Cite | None
    scopes: tuple[Scope, ...]
    when: tuple[Item, ...]
    unless: tuple[Item, ...]
    decisions: tuple[Decision, ...]
    span: Span
    origin: str | None = None  # inherited: the parent document its criteria's own citations point into


@dataclass(frozen=True)
class PolicyFile:
    header: Header
    codesets: tuple[CodeSet, ...]
    defines: tuple[Define, ...]
    rules: tuple[RuleDecl, ...]
    span: Span
    # a child policy's rule list in file order (its own rules and inherited ones), and its removals
    inherits: tuple["Inherit", ...] = ()
    removes: tuple["Remove", ...] = ()
    order: tuple[str, ...] = ()


@dataclass(frozen=True)
class Inherit:
    """`inherit NAME cite "..."`: the parent's rule, placed here and cited in this policy's text."""

    name: str
    cite: Cite
    span: Span


@dataclass(frozen=True)
class Remove:
    """`remove NAME`: a rule of the parent this policy does not have."""

    name: str
    cite: Cite | None
    span: Span
