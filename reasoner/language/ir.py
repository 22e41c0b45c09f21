"""Rules as plain data: the engine-neutral intermediate representation.

Every backend (pyDatalog now, SQL later) is compiled from these classes and nothing else.
Every node keeps its citation and a label, so any answer can be traced to the policy text.
Names have been resolved, units converted to the concept's unit, and named criteria shared:
a criterion used twice is the same `Node` (same id), so it is evaluated and explained once.
"""
from __future__ import annotations

import datetime as dt
import functools
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
    superseded_by: str | None = None  # the later version of the same document (this one is earlier)


@dataclass(frozen=True)
class Program:
    """The loaded policies. An earlier version of a document names the policy that superseded it
    (`superseded by`); the versions live side by side, the latest is the payer's current policy,
    and a request is decided by the version in force at its date (`in_force`)."""

    policies: tuple[Policy, ...]

    def policy(self, policy_id: str) -> Policy:
        return next(p for p in self.policies if p.id == policy_id)

    def latest(self, policy_id: str) -> str:
        """The current version of a policy: its `superseded by` chain followed to the end (a name
        that is not loaded, a policy of another document, or a cycle ends it; lint reports each)."""
        return self._latest[policy_id]

    @functools.cached_property
    def _latest(self) -> dict[str, str]:
        """Every policy's current version, computed once (decisions ask per patient)."""
        ids, out = {p.id: p for p in self.policies}, {}
        for start in ids:
            policy_id, seen = start, {start}
            while (later := ids[policy_id].superseded_by) in ids and later not in seen \
                    and _document(ids[later]) == _document(ids[policy_id]):
                seen.add(later)
                policy_id = later
            out[start] = policy_id
        return out

    def versions(self, policy_id: str) -> tuple[Policy, ...]:
        """Every version of the policy's document, earliest period first (itself alone when it has none)."""
        return self._versions[self.latest(policy_id)]

    @functools.cached_property
    def _versions(self) -> dict[str, tuple[Policy, ...]]:
        """Each current policy's versions, sorted once (every decision asks for them)."""
        by_head: dict[str, list[Policy]] = {}
        for p in self.policies:
            by_head.setdefault(self.latest(p.id), []).append(p)
        return {head: tuple(sorted(found, key=_start)) for head, found in by_head.items()}

    @property
    def current(self) -> tuple[Policy, ...]:
        """One policy per document: its latest version (the payers a table shows by default)."""
        return tuple(p for p in self.policies if self.is_current(p.id))

    def is_current(self, policy_id: str) -> bool:
        return self.latest(policy_id) == policy_id

    def in_force(self, policy_id: str, day) -> Policy:
        """The version of a policy that decides a request dated `day` (see `selection`). An earlier
        version named by its own id is that version whatever the date."""
        if day is None or not self.is_current(policy_id):
            return self.policy(policy_id)
        return self.policy(next(pid for lo, hi, pid in self.selection(policy_id) if _within(day, lo, hi)))

    def selection(self, policy_id: str) -> tuple[tuple, ...]:
        """How a request's date picks a version of a current policy, as data the SQL backend
        compiles too: (first day, last day, version) clauses, None open, the first that holds the
        date wins. The version whose period holds the date; outside every period, the latest
        version already started (its implicit outside_period rule then says the request is outside
        it), else the earliest."""
        versions = self.versions(policy_id)
        if len(versions) == 1:
            return ((None, None, policy_id),)
        dated = [p for p in reversed(versions) if p.effective != (None, None)]
        return (tuple((p.effective[0], p.effective[1], p.id) for p in dated)
                + tuple((p.effective[0], None, p.id) for p in dated if p.effective[0] is not None)
                + ((None, None, versions[0].id),))

    def only(self, policy_ids) -> "Program":
        """The program cut to these policies, each current one with its earlier versions."""
        keep = {v.id for pid in policy_ids for v in (self.versions(pid) if self.is_current(pid) else [self.policy(pid)])}
        return Program(tuple(p for p in self.policies if p.id in keep))


def _within(day, lo, hi) -> bool:
    return (lo is None or lo <= day) and (hi is None or day <= hi)


def _document(policy: Policy) -> tuple[str, str]:
    return (policy.payer, policy.document)


def _start(policy: Policy):
    return policy.effective[0] or dt.date.min


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
