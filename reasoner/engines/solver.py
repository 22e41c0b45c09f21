"""The IR compiled to SMT formulas (z3), for exhaustive questions no sampling can settle.

`reasoner diff --exhaustive` asks, for every pair of payers and every pair of their rules, whether
some patient is decided by the one rule under the first payer and by the other under the second.
Instead of enumerating the finite abstraction of the vocabulary patient by patient (tens of concepts,
far too many combinations), the abstraction is handed to a solver, which answers each question with
a witness patient or a proof that none exists.

The abstraction: every number takes one of finitely many representative values — each threshold
any policy compares it with, a point strictly between consecutive thresholds, and one below and one
above them (within the concept's range) — and every boolean, enum value, set member and listed code
is free, each fact documented or not. Since policies only compare numbers with constants, every
number in a region between thresholds decides exactly like its representative: the abstraction
loses no decision, so "no other class exists" holds for all patients, not just sampled ones.

Semantics follow `reasoner/engines/sql.py` and `reasoner/engines/datalog.py` (a missing fact makes a positive test
false; the first rule that fires decides). Tests hold the three equal on generated patients, and
every witness the solver returns is re-decided by pyDatalog before it is reported.
"""
from __future__ import annotations

import datetime as dt

from decimal import Decimal
from fractions import Fraction

import z3

from reasoner.language import ir
from reasoner.engines.sql import _members
from reasoner.language.check import REQUEST_KINDS
from reasoner.language.vocab import Concept, Vocabulary

OTHER_CODE = "00000"  # stands for "some code no policy lists"


def representatives(c: Concept, thresholds: set[Decimal]) -> list[Decimal]:
    """One value per region of the concept's range cut at every threshold."""
    cuts = sorted(t for t in thresholds if c.low <= t <= c.high)
    if not cuts:
        return [c.low]
    points = set(cuts)
    points.update((a + b) / 2 for a, b in zip(cuts, cuts[1:]))
    if c.low < cuts[0]:
        points.add(c.low)
    if c.high > cuts[-1]:
        points.add(c.high)
    return sorted(points)


def day_representatives(thresholds: set[Decimal]) -> list[Decimal]:
    """Dates (as day ordinals): the day before, of and after each threshold, and one day far from
    all of them (a request with no date policy cares about), so every region a comparison cuts is met."""
    days = {Decimal(dt.date(2000, 1, 1).toordinal())}
    for t in thresholds:
        days.update((t - 1, t, t + 1))
    return sorted(days)


class Encoding:
    """z3 variables for each concept and a formula for each IR node and rule decision."""

    def __init__(self, program: ir.Program, vocab: Vocabulary):
        self.program, self.vocab = program, vocab
        self.doc: dict[str, z3.BoolRef] = {}
        self.var: dict[str, z3.ExprRef] = {}
        self.flags: dict[str, dict[str, z3.BoolRef]] = {}
        self.formula: dict[str, z3.BoolRef] = {}
        self.thresholds: dict[str, set[Decimal]] = {}
        for i, (name, c) in enumerate(vocab.concepts.items()):
            self._declare(i, name, c)
        for policy in program.policies:
            for rule in policy.rules:
                for top in ir.rule_nodes(rule):
                    self.node(top)

    # ---------------------------------------------------------------- variables
    def _declare(self, i: int, name: str, c: Concept) -> None:
        if c.kind in ("set", "codes"):
            members = list(self.vocab.values_of(name)) if c.kind == "set" else _members(self.program, name) + [OTHER_CODE]
            self.flags[name] = {m: z3.Bool(f"c{i}_{k}") for k, m in enumerate(members)}
            self.doc[name] = z3.Or(*self.flags[name].values()) if members else z3.BoolVal(False)
            return
        self.doc[name] = z3.Bool(f"c{i}_doc")
        if c.kind == "boolean":
            self.var[name] = z3.Bool(f"c{i}")
        elif c.kind in ("number", "date"):
            self.var[name] = z3.Real(f"c{i}")
        elif c.kind == "enum":
            self.var[name] = z3.Int(f"c{i}")

    def domain(self) -> list[z3.BoolRef]:
        """The finite abstraction: enum indexes in range, numbers on their representatives, and the
        request (service, indications, line of business) documented, as every patient file must."""
        out = [self.doc[name] for name in REQUEST_KINDS if name in self.doc]
        for name, c in self.vocab.concepts.items():
            if c.kind == "enum":
                out.append(z3.And(self.var[name] >= 0, self.var[name] < len(self.vocab.values_of(name))))
            elif c.kind == "number":
                reps = representatives(c, self.thresholds.get(name, set()))
                out.append(z3.Or(*[self.var[name] == _real(v) for v in reps]))
            elif c.kind == "date":
                out.append(z3.Or(*[self.var[name] == _real(v) for v in day_representatives(self.thresholds.get(name, set()))]))
        return out

    # ---------------------------------------------------------------- criteria
    def node(self, node: ir.Node) -> z3.BoolRef:
        if node.id not in self.formula:
            self.formula[node.id] = self._test(node.test)
        return self.formula[node.id]

    def _test(self, test) -> z3.BoolRef:
        kind = self.vocab.concepts[test.concept].kind if isinstance(test, ir.LEAVES) else None
        match test:
            case ir.IsTrue(concept):
                return z3.And(self.doc[concept], self.var[concept])
            case ir.Compare(concept, op, value, _):
                self.thresholds.setdefault(concept, set()).add(value)
                return z3.And(self.doc[concept], _compare(self.var[concept], op, _real(value)))
            case ir.OneOf(concept, values) if kind == "enum":
                index = self.vocab.values_of(concept).index
                return z3.And(self.doc[concept], z3.Or(*[self.var[concept] == index(v) for v in values]))
            case ir.OneOf(concept, values):
                return z3.Or(*[self.flags[concept][v] for v in values])
            case ir.HasAll(concept, values):
                return z3.And(*[self.flags[concept][v] for v in values])
            case ir.CountAtLeast(concept, values, n):
                return z3.Sum(*[z3.If(self.flags[concept][v], 1, 0) for v in values]) >= n
            case ir.Documented(concept):
                return self.doc[concept]
            case ir.All(children):
                return z3.And(*[self.node(c) for c in children])
            case ir.Any(children):
                return z3.Or(*[self.node(c) for c in children])
            case ir.AtLeast(n, children):
                return z3.Sum(*[z3.If(self.node(c), 1, 0) for c in children]) >= n
            case ir.Not(child):
                return z3.Not(self.node(child))
        raise AssertionError(test)

    # ---------------------------------------------------------------- decisions
    def fires(self, rule: ir.Rule) -> z3.BoolRef:
        parts = [self.node(n) for n in rule.scope + rule.conditions]
        parts += [z3.Not(self.node(n)) for n in rule.exceptions]
        return z3.And(*parts) if parts else z3.BoolVal(True)

    def decides(self, policy: ir.Policy) -> dict[str | None, z3.BoolRef]:
        """rule name (None: no rule fires) -> the formula saying that rule decides."""
        out, earlier = {}, []
        for rule in policy.rules:
            out[rule.name] = z3.And(self.fires(rule), *[z3.Not(f) for f in earlier])
            earlier.append(self.fires(rule))
        out[None] = z3.And(*[z3.Not(f) for f in earlier]) if earlier else z3.BoolVal(True)
        return out

    def fix(self, concept: str, value: str) -> z3.BoolRef:
        """The request concept `concept` is documented as `value` (a set concept: as exactly {value})."""
        if concept in self.flags:
            return z3.And(*[flag if m == value else z3.Not(flag) for m, flag in self.flags[concept].items()])
        return z3.And(self.doc[concept], self.var[concept] == self.vocab.values_of(concept).index(value))

    def assignment(self, facts: dict) -> list[z3.BoolRef]:
        """Constraints pinning every variable to one validated patient's facts (for testing the
        encoding against the engine on patients outside the abstraction too)."""
        out = []
        for name, c in self.vocab.concepts.items():
            value = facts.get(name)
            if c.kind in ("set", "codes"):
                members = set(value or ())
                for m, flag in self.flags[name].items():
                    on = bool(members - set(self.flags[name])) if m == OTHER_CODE and c.kind == "codes" else m in members
                    out.append(flag == on)
                continue
            out.append(self.doc[name] == (value is not None))
            if value is None:
                continue
            if c.kind == "date":
                out.append(self.var[name] == value.toordinal())
            if c.kind == "boolean":
                out.append(self.var[name] == bool(value))
            elif c.kind == "number":
                out.append(self.var[name] == _real(Decimal(str(value))))
            elif c.kind == "enum":
                out.append(self.var[name] == self.vocab.values_of(name).index(value))
        return out

    def facts(self, model: z3.ModelRef) -> dict:
        """A patient (concept -> value, documented facts only) read off a model."""
        out = {}
        for name, c in self.vocab.concepts.items():
            if c.kind in ("set", "codes"):
                members = [m for m, flag in self.flags[name].items() if z3.is_true(model.eval(flag, True))]
                if members:
                    out[name] = members
                continue
            if not z3.is_true(model.eval(self.doc[name], True)):
                continue
            value = model.eval(self.var[name], True)
            if c.kind == "boolean":
                out[name] = z3.is_true(value)
            elif c.kind == "enum":
                out[name] = self.vocab.values_of(name)[value.as_long()]
            elif c.kind == "number":
                out[name] = _number(value)
            elif c.kind == "date":
                out[name] = dt.date.fromordinal(int(_number(value))).isoformat()
        return out


def _real(value: Decimal) -> z3.ArithRef:
    f = Fraction(value)
    return z3.RealVal(f"{f.numerator}/{f.denominator}")


def _number(value) -> int | float:
    f = Fraction(value.numerator_as_long(), value.denominator_as_long())
    return int(f) if f.denominator == 1 else float(f)


def _compare(x, op: str, v):
    return {"<": x < v, "<=": x <= v, "==": x == v, ">=": x >= v, ">": x > v}[op]


# ---------------------------------------------------------------- dead rules (for lint)
RULES_CHECKED = 400  # beyond this many rules a policy is not proven rule by rule (lint says so)


def dead_rules(policy: ir.Policy, vocab: Vocabulary) -> list[tuple[ir.Rule, tuple[str, ...]]]:
    """Rules that can never decide, with the earlier rules that always decide first (empty when
    the rule's own scope, conditions and exceptions can never hold together).

    Asked of the solver over the finite abstraction, so "never" holds for every patient. Rules are
    checked in order against the disjunction of the rules before them, which grows one term at a
    time (linear, not pairwise)."""
    enc = Encoding(ir.Program((policy,)), vocab)
    solver = z3.Solver()
    solver.add(*enc.domain())
    fires = [enc.fires(r) for r in policy.rules]
    earlier: list[z3.BoolRef] = []
    out = []
    for i, rule in enumerate(policy.rules):
        if solver.check(fires[i]) == z3.unsat:
            out.append((rule, ()))
        elif earlier and solver.check(fires[i], z3.Not(z3.Or(*earlier))) == z3.unsat:
            out.append((rule, _shadowing(solver, fires, i, policy)))
        earlier.append(fires[i])
    return out


def _shadowing(solver: z3.Solver, fires: list, i: int, policy: ir.Policy) -> tuple[str, ...]:
    """A minimal set of earlier rules that together always fire whenever rule i would."""
    needed = [j for j in range(i) if solver.check(fires[i], fires[j]) == z3.sat]
    for j in list(needed):
        rest = [fires[k] for k in needed if k != j]
        if rest and solver.check(fires[i], z3.Not(z3.Or(*rest))) == z3.unsat:
            needed.remove(j)
    return tuple(policy.rules[j].name for j in needed)
