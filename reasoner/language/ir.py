"""Rules as plain data: the engine-neutral intermediate representation.

Every backend (pyDatalog now, SQL later) is compiled from these classes and nothing else.
Every node keeps its citation and a label, so any answer can be traced to the policy text.
Names have been resolved, units converted to the concept's unit, and named criteria shared:
a criterion used twice is the same `Node` (same id), so it is evaluated and explained once.
"""
from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from typing import Union


@dataclass(frozen=True)
class Citation:
    document: str
    section: str

    def __str__(self) -> str:
        return f"{self.document} § {self.section}"


# ---------------------------------------------------------------- tests on facts
@dataclass(frozen=True)
class IsTrue:
    concept: str


@dataclass(frozen=True)
class Compare:
    concept: str
    op: str  # one of < <= == >= >
    value: Decimal  # in the concept's unit
    unit: str


@dataclass(frozen=True)
class OneOf:
    """An enum concept's value, or some member of a set/codes concept, is among `values`."""

    concept: str
    values: tuple[str, ...]


@dataclass(frozen=True)
class HasAll:
    concept: str
    values: tuple[str, ...]


@dataclass(frozen=True)
class CountAtLeast:
    """At least `n` distinct members of the set concept are among `values`."""

    concept: str
    values: tuple[str, ...]
    n: int


@dataclass(frozen=True)
class Documented:
    concept: str


# ---------------------------------------------------------------- combinations
@dataclass(frozen=True)
class All:
    children: tuple["Node", ...]


@dataclass(frozen=True)
class Any:
    children: tuple["Node", ...]


@dataclass(frozen=True)
class AtLeast:
    n: int
    children: tuple["Node", ...]


@dataclass(frozen=True)
class Not:
    child: "Node"


Leaf = Union[IsTrue, Compare, OneOf, HasAll, CountAtLeast, Documented]
Test = Union[Leaf, All, Any, AtLeast, Not]
LEAVES = (IsTrue, Compare, OneOf, HasAll, CountAtLeast, Documented)


@dataclass(frozen=True)
class Node:
    """One criterion: what is tested, in words of our own, and where the policy says so."""

    id: str
    label: str
    cite: Citation
    test: Test
    name: str | None = None  # set for a named (define'd) criterion
    macro: str | None = None  # the policy's own wording of a construct lowered into this subtree
    #                           (e.g. "planned_route == pain_trial_route"): shown instead of its parts


@dataclass(frozen=True)
class Outcome:
    kind: str  # covered | denied | review | not_addressed
    subkind: str | None  # e.g. not_medically_necessary, investigational, excluded, case_by_case, external
    detail: str | None  # e.g. "InterQual CP: Procedures ..." for an external review
    prior_auth: str | None  # required | not_required | None (policy silent)


@dataclass(frozen=True)
class Rule:
    """A decision rule: within its scope, when every condition holds and no exception does."""

    id: str
    name: str
    label: str
    cite: Citation
    scope: tuple[Node, ...]  # tests on service, indication, line of business
    conditions: tuple[Node, ...]
    exceptions: tuple[Node, ...]
    outcome: Outcome
    where: str = ""  # file:line:column of the rule in its policy file

    def scope_values(self, concept: str) -> tuple[str, ...] | None:
        """The values the rule is limited to on `concept`, or None when it is not limited."""
        for node in self.scope:
            if isinstance(node.test, OneOf) and node.test.concept == concept:
                return node.test.values
        return None


@dataclass(frozen=True)
class Policy:
    """One payer's policy; its rules are tried in order and the first that fires decides."""

    id: str
    payer: str
    document: str
    title: str
    version: str
    lines: tuple[str, ...]
    rules: tuple[Rule, ...]
    source: str  # the file it was read from
    lines_assumed: bool = False  # the document names no line of business; its scope is a reading
    effective: tuple = (None, None)  # (first day, last day) of the version's period; None: open
    extends: str | None = None  # the parent policy of a local edition (its rules are already flat here)
    changes: object = None  # what the edition changes of its parent's (language.family.Changes)


@dataclass(frozen=True)
class Program:
    policies: tuple[Policy, ...]

    def policy(self, policy_id: str) -> Policy:
        return next(p for p in self.policies if p.id == policy_id)


def walk(node: Node):
    """Every node under `node` (itself included), each shared node once, parents first."""
    seen: set[str] = set()
    stack = [node]
    while stack:
        current = stack.pop()
        if current.id in seen:
            continue
        seen.add(current.id)
        yield current
        stack.extend(reversed(children(current)))


def children(node: Node) -> tuple[Node, ...]:
    test = node.test
    if isinstance(test, (All, Any, AtLeast)):
        return test.children
    if isinstance(test, Not):
        return (test.child,)
    return ()


def rule_nodes(rule: Rule) -> tuple[Node, ...]:
    return rule.scope + rule.conditions + rule.exceptions


def criteria_of(node: Node) -> list[Node]:
    """The criteria a condition stands for in compact output: an all-of is its parts (each can fail
    on its own, and saying "all of" fails tells a reader nothing), recursively; any other node
    (any-of, at least n, not, a leaf, a construct the policy names as one) is one criterion."""
    if isinstance(node.test, All) and not node.macro:
        return [x for c in children(node) for x in criteria_of(c)]
    return [node]
