"""Minimal repairs: the smallest sets of fact changes that make a payer decide as wanted.

Candidates are *proposed* from the IR tree and the engine's truth values (which leaf to change and
to what value); every candidate is *judged* by re-running the engine on the changed patient, and
only verified ones are returned. So a proposal rule that is too naive costs completeness, never
correctness. Each verified candidate is shrunk: a change is dropped whenever the engine still
reaches the wanted decision without it; small repairs (up to EXACT changes) are checked against
every strict subset, larger ones against every single-change removal.

The request itself (service, indication, line of business) is never changed, and every changed
patient is validated against the vocabulary, so no repair proposes an impossible patient.
"""
from __future__ import annotations

import datetime as dt
import itertools
from dataclasses import dataclass
from decimal import Decimal

from reasoner.language import ir
from reasoner.language.check import SCOPE_CONCEPTS, describe
from reasoner.results.decide import Reasoner
from reasoner.engines.reference import Evaluation
from reasoner.errors import InputError
from reasoner.results.explain import json_value
from reasoner.io.patient import Patient, validate
from reasoner.language.vocab import Concept

# what is requested (the service, indications, line of business, and the treatment planned) is not
# something to repair: another request is another question, not a missing fact of this one
FIXED = frozenset(SCOPE_CONCEPTS.values()) | {"planned_drugs", "planned_route", "request_date"}  # the date picks the version: not a repair
WIDTH = 6  # alternatives kept per node while proposing
EXACT = 4  # repairs up to this size are checked against all their strict subsets
REMOVE = None  # a change to None removes the fact (makes it undocumented)


@dataclass(frozen=True)
class Change:
    concept: str
    before: object  # None: not documented
    after: object  # None: no longer documented
    needed: str  # the criterion that asks for it, e.g. "trial_pain_relief > 50 %"


@dataclass(frozen=True)
class Repair:
    changes: tuple[Change, ...]
    rule: str  # the rule that decides once the changes are made
    rule_label: str

    def as_json(self) -> dict:
        return {"rule": self.rule, "rule_label": self.rule_label, "verified": True,
                "changes": [{"concept": c.concept, "from": json_value(c.before), "to": json_value(c.after),
                             "needed": c.needed} for c in self.changes]}


class Proposer:
    """Change sets (concept -> new value) that would flip a node, largest-first pruned."""

    def __init__(self, reasoner: Reasoner, evaluation: Evaluation, facts: dict):
        self.vocab = reasoner.loaded.vocab
        self.ev, self.facts = evaluation, facts

    # each returns a list of alternatives; an alternative maps concept -> (new value, needed text)
    def make_true(self, node: ir.Node) -> list[dict]:
        if self.ev.nodes[node.id]:
            return [{}]
        kids = ir.children(node)
        match node.test:
            case ir.All():
                return self._all_of([self.make_true(c) for c in kids])
            case ir.Any():
                return self._best([alt for c in kids for alt in self.make_true(c)])
            case ir.AtLeast(n):
                false = [c for c in kids if not self.ev.nodes[c.id]]
                missing = n - (len(kids) - len(false))
                return self._some_of([self.make_true(c) for c in false], missing)
            case ir.Not(child):
                return self.make_false(child)
        return self._leaf(node, True)

    def make_false(self, node: ir.Node) -> list[dict]:
        if not self.ev.nodes[node.id]:
            return [{}]
        kids = ir.children(node)
        match node.test:
            case ir.All():
                return self._best([alt for c in kids for alt in self.make_false(c)])
            case ir.Any():
                return self._all_of([self.make_false(c) for c in kids])
            case ir.AtLeast(n):
                true = [c for c in kids if self.ev.nodes[c.id]]
                return self._some_of([self.make_false(c) for c in true], len(true) - n + 1)
            case ir.Not(child):
                return self.make_true(child)
        return self._leaf(node, False)

    def stop_rule(self, rule: ir.Rule) -> list[dict]:
        """Alternatives that keep `rule` from firing (never by changing the request)."""
        alts = [alt for n in rule.conditions for alt in self.make_false(n)]
        alts += [alt for n in rule.exceptions for alt in self.make_true(n)]
        return self._best(alts)

    def fire_rule(self, rule: ir.Rule) -> list[dict]:
        return self._all_of([self.make_true(n) for n in rule.conditions] +
                            [self.make_false(n) for n in rule.exceptions])

    # ---------------------------------------------------------------- combining alternatives
    def _best(self, alts: list[dict]) -> list[dict]:
        unique = {tuple(sorted((k, repr(v)) for k, v in a.items())): a for a in alts if not FIXED & a.keys()}
        return sorted(unique.values(), key=len)[:WIDTH]

    def _merge(self, a: dict, b: dict) -> dict | None:
        out = dict(a)
        for concept, (value, needed) in b.items():
            if concept not in out:
                out[concept] = (value, needed)
                continue
            mine = out[concept][0]
            if mine == value:
                continue
            c = self.vocab.concepts[concept]
            if c.kind in ("set", "codes") and mine is not None and value is not None:
                before = set(self.facts.get(concept) or ())
                added = (set(mine) - before) | (set(value) - before)
                removed = (before - set(mine)) | (before - set(value))
                out[concept] = (tuple(sorted((before | added) - removed)), f"{out[concept][1]}; {needed}")
                continue
            return None  # two criteria want different values of one fact
        return out

    def _all_of(self, choices: list[list[dict]]) -> list[dict]:
        combos = [{}]
        for alts in choices:
            merged = (self._merge(a, b) for a in combos for b in alts)
            combos = self._best([m for m in merged if m is not None])
        return combos

    def _some_of(self, choices: list[list[dict]], k: int) -> list[dict]:
        if k <= 0:
            return [{}]
        picked = sorted(choices, key=lambda alts: len(alts[0]) if alts else 99)
        return self._best([alt for group in itertools.combinations(picked[:k + 2], k)
                           for alt in self._all_of(list(group))])

    # ---------------------------------------------------------------- leaves
    def _leaf(self, node: ir.Node, want: bool) -> list[dict]:
        test = node.test
        c = self.vocab.concepts[test.concept]
        needed = describe(test) if want else f"not: {describe(test)}"
        return [{c.name: (v, needed)} for v in leaf_values(c, test, want, self.facts.get(c.name), self.vocab)]


def with_change(facts: dict, concept: str, value) -> dict:
    """A copy of `facts` with `concept` set to `value` (None or an empty set: no longer documented)."""
    out = dict(facts)
    if value is REMOVE or value == ():
        out.pop(concept, None)
    else:
        out[concept] = list(value) if isinstance(value, tuple) else value
    return out


def step(c: Concept) -> Decimal:
    """The smallest move worth proposing on a number: whole units on wide ranges and for concepts
    that take whole values, halves on narrow ranges."""
    return Decimal(1) if c.whole or c.high - c.low >= 10 else Decimal("0.5")


def _number(value: Decimal):
    return int(value) if value == value.to_integral_value() else float(value)


def leaf_values(c: Concept, test, want: bool, current, vocab) -> list:
    """Candidate values of concept `c` that make leaf `test` hold (want) or fail (not want)."""
    members = set(current or ()) if c.kind in ("set", "codes") else set()
    match test:
        case ir.IsTrue():
            return [want]
        case ir.Documented():
            return [_any_value(c, vocab)] if want else [REMOVE]
        case ir.Compare(_, op, value, _) if c.kind == "number":
            return [_number(v) for v in _thresholds(c, op, value, want)]
        case ir.Compare() if c.kind == "date":
            return []  # a date (when the service is asked for) is not something a repair can change
        case ir.OneOf(_, values) if c.kind == "enum":
            pool = values if want else [v for v in vocab.values_of(c.name) if v not in values]
            return list(pool[:1])  # the others are alternatives, shown in the criterion's text
        case ir.OneOf(_, values):
            return [tuple(sorted(members | {values[0]}))] if want else [tuple(sorted(members - set(values)))]
        case ir.HasAll(_, values):
            return ([tuple(sorted(members | set(values)))] if want
                    else [tuple(sorted(members - {v})) for v in values if v in members][:3])
        case ir.CountAtLeast(_, values, n):
            present = [v for v in values if v in members]
            if want:
                return [tuple(sorted(members | set([v for v in values if v not in members][:n - len(present)])))]
            return [tuple(sorted(members - set(present[n - 1:])))]
    raise AssertionError(test)


def _thresholds(c: Concept, op: str, value: Decimal, want: bool) -> list[Decimal]:
    """The value nearest the threshold on the wanted side, kept within the concept's range."""
    holds_above = op in (">", ">=") if want else op in ("<", "<=")
    strict = (op in (">", "<")) == want  # the bound itself is on the wrong side
    if op == "==":
        if want:
            return [value]
        return [v for v in (value + step(c), value - step(c)) if c.low <= v <= c.high][:1]
    if holds_above:
        target = value + step(c) if strict else value
        target = (value + c.high) / 2 if target > c.high else target
        target = target.to_integral_value(rounding="ROUND_CEILING") if c.whole else target
        if strict and target <= value:
            return []
    else:
        target = value - step(c) if strict else value
        target = (value + c.low) / 2 if target < c.low else target
        target = target.to_integral_value(rounding="ROUND_FLOOR") if c.whole else target
        if strict and target >= value:
            return []
    return [target] if c.low <= target <= c.high else []


def _any_value(c: Concept, vocab):
    if c.kind == "boolean":
        return True
    if c.kind == "number":
        return _number(c.low)
    if c.kind == "date":
        return dt.date.today()
    if c.kind == "codes":
        return ("00000",)
    values = vocab.values_of(c.name)
    return values[0] if c.kind == "enum" else (values[0],)


# ---------------------------------------------------------------- search and verification
class _Judge:
    """Runs the engine on changed patients (memoised) and says whether the wanted decision comes."""

    def __init__(self, reasoner: Reasoner, patient: Patient, policy_id: str, wanted: str):
        self.reasoner, self.patient, self.policy_id, self.wanted = reasoner, patient, policy_id, wanted
        self.seen: dict[tuple, str | None] = {}

    def changed(self, changes: dict) -> Patient | None:
        facts = dict(self.patient.facts)
        for concept, (value, _) in changes.items():
            facts = with_change(facts, concept, value)
        try:
            return validate(facts, self.reasoner.loaded.vocab, self.patient.source)
        except InputError:
            return None

    def rule(self, changes: dict) -> str | None:
        """The rule that decides as wanted after `changes`, else None."""
        key = tuple(sorted((k, repr(v)) for k, (v, _) in changes.items()))
        if key not in self.seen:
            patient = self.changed(changes)
            self.seen[key] = None
            if patient is not None:
                (decision,) = self.reasoner.decide(patient, [self.policy_id], by_date=False)
                self.seen[key] = decision.rule if decision.kind == self.wanted else None
        return self.seen[key]

    def shrink(self, changes: dict) -> dict:
        """A subset of `changes` from which no change can be dropped."""
        if len(changes) <= EXACT:
            keys = list(changes)
            for size in range(len(keys)):
                for subset in itertools.combinations(keys, size):
                    if self.rule({k: changes[k] for k in subset}):
                        return {k: changes[k] for k in subset}
            return changes
        for key in list(changes):
            smaller = {k: v for k, v in changes.items() if k != key}
            if self.rule(smaller):
                changes = smaller
        return changes


def repairs(reasoner: Reasoner, patient: Patient, policy_id: str, wanted: str = "covered",
            limit: int = 5, rounds: int = 3) -> list[Repair]:
    """Up to `limit` verified minimal repairs, fewest changes first."""
    policy = reasoner.loaded.program.policy(policy_id)
    judge = _Judge(reasoner, patient, policy_id, wanted)
    if judge.rule({}):
        return []
    found: dict[tuple, Repair] = {}
    for target in (r for r in policy.rules if r.outcome.kind == wanted):
        for changes in _candidates(reasoner, judge, policy, target, rounds):
            small = judge.shrink(changes)
            key = tuple(sorted((k, repr(v)) for k, (v, _) in small.items()))
            if key not in found:
                found[key] = _repair(policy, patient, small, judge.rule(small))
    return sorted(found.values(), key=lambda r: (len(r.changes), _order(policy, r.rule)))[:limit]


def _candidates(reasoner: Reasoner, judge: _Judge, policy: ir.Policy, target: ir.Rule, rounds: int):
    """Verified change sets making `target` fire, then stopping earlier rules that take over."""
    facts = judge.patient.facts
    evaluation = reasoner.engine.evaluate(facts, [policy.id], detail=True)
    if not all(evaluation.nodes[n.id] for n in target.scope):
        return
    frontier = Proposer(reasoner, evaluation, facts).fire_rule(target)
    for _ in range(rounds):
        next_frontier = []
        for changes in frontier:
            if judge.rule(changes):
                yield changes
                continue
            patient = judge.changed(changes)
            if patient is None:
                continue
            after = reasoner.engine.evaluate(patient.facts, [policy.id], detail=True)
            blocker = next((r for r in policy.rules if after.fired[r.id]), None)
            if blocker is None or blocker is target or blocker.outcome.kind == judge.wanted:
                continue
            proposer = Proposer(reasoner, after, patient.facts)
            for extra in proposer.stop_rule(blocker):
                merged = proposer._merge(changes, extra)
                if merged is not None:
                    next_frontier.append(merged)
        frontier = next_frontier[:WIDTH * 2]


def _order(policy: ir.Policy, rule_name: str | None) -> int:
    return next((i for i, r in enumerate(policy.rules) if r.name == rule_name), len(policy.rules))


def _repair(policy: ir.Policy, patient: Patient, changes: dict, rule_name: str | None) -> Repair:
    rule = next(r for r in policy.rules if r.name == rule_name)
    items = tuple(Change(k, patient.facts.get(k), v, needed) for k, (v, needed) in sorted(changes.items()))
    return Repair(items, rule.name, rule.label)
