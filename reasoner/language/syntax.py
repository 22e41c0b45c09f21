"""The syntax tree: what a policy or vocabulary file says, with where it says it.

Plain frozen data with no Lark types, so later stages never depend on the parser.
Every node carries a `Span`, which is how every later error points back at the text.
"""
from __future__ import annotations

from dataclasses import dataclass
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


@dataclass(frozen=True)
class Kind:
    """How a concept is valued: boolean, number, enum, set, codes or date."""

    name: str  # one of KIND_NAMES
    unit: str | None = None
    low: Decimal | None = None
    high: Decimal | None = None
    domain: str | None = None  # for enum and set
    system: str | None = None  # for codes: the coding system, e.g. "CPT/HCPCS"


@dataclass(frozen=True)
class ConceptDecl:
    name: str
    kind: Kind
    meaning: str
    span: Span


@dataclass(frozen=True)
class VocabularyFile:
    name: str
    title: str
    domains: tuple[Domain, ...]
    concepts: tuple[ConceptDecl, ...]
    span: Span


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
class Member:
    """The concept's value (enum) or one of its members (set) is among `values`."""

    concept: str
    values: tuple[str, ...]
    span: Span


@dataclass(frozen=True)
class InCodes:
    """The concept (a code list) holds a code of the named code set."""

    concept: str
    codeset: str
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


Expr = Union[NameRef, Compare, Member, InCodes, HasAll, Count, Documented, Not, Block]


# ------------------------------------------------------------------ policy
@dataclass(frozen=True)
class Cite:
    section: str
    span: Span


@dataclass(frozen=True)
class HeaderField:
    key: str  # payer, document, version, lines
    values: tuple[str, ...]
    cite: Cite | None
    span: Span


@dataclass(frozen=True)
class Header:
    policy_id: str
    fields: tuple[HeaderField, ...]
    span: Span


@dataclass(frozen=True)
class CodeSet:
    name: str
    label: str
    cite: Cite | None
    codes: tuple[str, ...]
    span: Span


@dataclass(frozen=True)
class Define:
    name: str
    label: str
    cite: Cite | None
    expr: Expr
    span: Span


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


@dataclass(frozen=True)
class PolicyFile:
    header: Header
    codesets: tuple[CodeSet, ...]
    defines: tuple[Define, ...]
    rules: tuple[RuleDecl, ...]
    span: Span
