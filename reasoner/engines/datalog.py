"""IR to Datalog clauses: plain data that any Datalog engine can load.

Design choices that avoid pyDatalog's measured pitfalls by construction:
- every IR node becomes its own predicate `n<k>(P)`, so the engine's own truth table for each
  criterion can be read back for explanations (no second copy of the semantics in Python);
- counts are "at least n distinct members" written as n joined members in strictly increasing
  order, never an aggregate (pyDatalog's aggregate comparisons can silently return nothing);
  "fewer than n" is the negation of "at least n";
- a negated literal always comes after a positive literal that binds P (`patient(P)`);
- every base relation is declared before use; constants are values, never code text;
- the program is checked for rule safety and for stratification before it is loaded.
"""
from __future__ import annotations

import graphlib
from dataclasses import dataclass
from decimal import Decimal

from reasoner.language import ir
from reasoner.language.vocab import Vocabulary

BASE = {"patient": 1, "fact_bool": 3, "fact_num": 3, "fact_sym": 3}
RELATION = {"boolean": "fact_bool", "number": "fact_num", "date": "fact_num",
            "enum": "fact_sym", "set": "fact_sym", "codes": "fact_sym"}
YES, NO = "yes", "no"  # booleans as symbols: pyDatalog turns the strings 'True'/'False' into bools


@dataclass(frozen=True)
class Var:
    name: str


@dataclass(frozen=True)
class Atom:
    pred: str
    args: tuple
    negated: bool = False


@dataclass(frozen=True)
class Cmp:
    op: str
    left: object
    right: object


@dataclass(frozen=True)
class Clause:
    head: Atom
    body: tuple  # of Atom | Cmp; positive atoms first, comparisons next, negations last


P = Var("P")


def number(value: Decimal | int | float):
    """Decimal constants become int when whole, else float (what patient files carry)."""
    value = Decimal(value)
    return int(value) if value == value.to_integral_value() else float(value)


@dataclass
class Compiled:
    """The clauses of a program and the predicate that holds each node and rule."""

    clauses: list[Clause]
    node_pred: dict[str, str]  # node id -> predicate
    fires_pred: dict[str, str]  # rule id -> predicate: the rule's conditions hold
    decides_pred: dict[str, str]  # rule id -> predicate: the rule is the first to fire
    member_pred: dict[str, str]  # count node id -> predicate (P, X): X is a member the count counted


class _Compiler:
    def __init__(self, vocab: Vocabulary):
        self.vocab = vocab
        self.out = Compiled([], {}, {}, {}, {})

    def emit(self, head: Atom, *body) -> None:
        positive = [b for b in body if isinstance(b, Atom) and not b.negated]
        compare = [b for b in body if isinstance(b, Cmp)]
        negative = [b for b in body if isinstance(b, Atom) and b.negated]
        if not positive:
            positive = [Atom("patient", (P,))]
        self.out.clauses.append(Clause(head, tuple(positive + compare + negative)))

    def node(self, node: ir.Node) -> Atom:
        """Compile `node` (once) and return the atom that holds when it holds."""
        if node.id in self.out.node_pred:
            return Atom(self.out.node_pred[node.id], (P,))
        pred = f"n{len(self.out.node_pred)}"
        self.out.node_pred[node.id] = pred
        if isinstance(node.test, ir.CountAtLeast):
            self.out.member_pred[node.id] = f"{pred}_m"
        head = Atom(pred, (P,))
        self.test(head, node.test)
        return head

    def _members(self, head_pred: str, concept: str, values) -> None:
        for v in values:
            self.emit(Atom(head_pred, (P, v)), Atom("fact_sym", (P, concept, v)))

    def _distinct(self, head: Atom, member_pred: str, n: int) -> None:
        """head holds when member_pred has at least n distinct values for P."""
        xs = [Var(f"X{i}") for i in range(n)]
        self.emit(head, *[Atom(member_pred, (P, x)) for x in xs],
                  *[Cmp("<", a, b) for a, b in zip(xs, xs[1:])])

    def test(self, head: Atom, test: ir.Test) -> None:
        match test:
            case ir.IsTrue(concept):
                self.emit(head, Atom("fact_bool", (P, concept, YES)))
            case ir.Compare(concept, op, value, _):
                x = Var("X")
                self.emit(head, Atom("fact_num", (P, concept, x)), Cmp(op, x, number(value)))
            case ir.OneOf(concept, values):
                for v in values:
                    self.emit(head, Atom("fact_sym", (P, concept, v)))
            case ir.HasAll(concept, values):
                self.emit(head, *[Atom("fact_sym", (P, concept, v)) for v in values])
            case ir.CountAtLeast(concept, values, n):
                member = f"{head.pred}_m"
                self._members(member, concept, values)
                self._distinct(head, member, n)
            case ir.Documented(concept):
                self.emit(head, Atom(RELATION[self.vocab.concepts[concept].kind], (P, concept, Var("V"))))
            case ir.All(children):
                self.emit(head, *[self.node(c) for c in children])
            case ir.Any(children):
                for c in children:
                    self.emit(head, self.node(c))
            case ir.AtLeast(n, children):
                sat = f"{head.pred}_s"
                for i, c in enumerate(children):
                    self.emit(Atom(sat, (P, i)), self.node(c))
                self._distinct(head, sat, n)
            case ir.Not(child):
                inner = self.node(child)
                self.emit(head, Atom(inner.pred, inner.args, negated=True))
            case _:
                raise AssertionError(test)

    def policy(self, policy: ir.Policy) -> None:
        """Rules fire in their own right; the first one (in file order) that fires decides."""
        earlier: Atom | None = None
        for i, rule in enumerate(policy.rules):
            fires = Atom(f"fire_{policy.id}_{i}", (P,))
            decides = Atom(f"decide_{policy.id}_{i}", (P,))
            self.out.fires_pred[rule.id] = fires.pred
            self.out.decides_pred[rule.id] = decides.pred
            positive = [self.node(n) for n in rule.scope + rule.conditions]
            negative = [Atom(a.pred, a.args, negated=True) for a in (self.node(n) for n in rule.exceptions)]
            self.emit(fires, *positive, *negative)
            if earlier is None:
                self.emit(decides, fires)
            else:
                self.emit(decides, fires, Atom(earlier.pred, (P,), negated=True))
            this_or_earlier = Atom(f"before_{policy.id}_{i + 1}", (P,))
            self.emit(this_or_earlier, fires)
            if earlier is not None:
                self.emit(this_or_earlier, earlier)
            earlier = this_or_earlier
            self.emit(Atom("decision", (P, policy.id, rule.name)), decides)


def compile_program(program: ir.Program, vocab: Vocabulary) -> Compiled:
    compiler = _Compiler(vocab)
    for policy in program.policies:
        compiler.policy(policy)
    out = compiler.out
    check_safety(out.clauses)
    check_stratified(out.clauses)
    return out


class UnsafeProgram(AssertionError):
    """The compiler produced clauses no Datalog engine should run: a bug in the compiler."""


def _vars(terms) -> set[str]:
    return {t.name for t in terms if isinstance(t, Var)}


def check_safety(clauses: list[Clause]) -> None:
    """Every variable of a head, comparison or negated atom must be bound by a positive atom."""
    for c in clauses:
        bound = set().union(*(_vars(b.args) for b in c.body if isinstance(b, Atom) and not b.negated))
        needed = _vars(c.head.args)
        for b in c.body:
            needed |= _vars((b.left, b.right)) if isinstance(b, Cmp) else (_vars(b.args) if b.negated else set())
        if needed - bound:
            raise UnsafeProgram(f"unsafe clause for {c.head.pred}: {sorted(needed - bound)} unbound")


def check_stratified(clauses: list[Clause]) -> None:
    """No predicate may depend on itself. That is stronger than stratification (our policies never
    need recursion) and rules out the cycles through negation on which pyDatalog hangs."""
    graph: dict[str, set[str]] = {}
    for c in clauses:
        graph.setdefault(c.head.pred, set()).update(b.pred for b in c.body if isinstance(b, Atom))
    try:
        tuple(graphlib.TopologicalSorter(graph).static_order())
    except graphlib.CycleError as err:
        raise UnsafeProgram(f"the program is recursive through {err.args[1]}") from None


def patient_facts(patient_id: str, facts: dict, vocab: Vocabulary) -> list[Atom]:
    """The base facts of one validated patient (values already checked against the vocabulary)."""
    out = [Atom("patient", (patient_id,))]
    for name, value in facts.items():
        kind = vocab.concepts[name].kind
        rel = RELATION[kind]
        if kind == "boolean":
            out.append(Atom(rel, (patient_id, name, YES if value else NO)))
        elif kind == "number":
            out.append(Atom(rel, (patient_id, name, value)))
        elif kind == "date":
            out.append(Atom(rel, (patient_id, name, value.toordinal())))
        elif kind == "enum":
            out.append(Atom(rel, (patient_id, name, value)))
        else:
            out.extend(Atom(rel, (patient_id, name, v)) for v in value)
    return out
