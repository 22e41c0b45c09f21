"""The only module that imports pyDatalog: loads compiled clauses, decides one patient at a time.

Clauses are built with pyDatalog's engine objects and constants are passed as Python values:
no text from a policy or patient file is ever parsed as Python by `load()` or `ask()`.
Each patient's facts are asserted, queried and retracted (in `finally`), so nothing leaks
between patients and the cost does not grow with the number of patients seen.
"""
from __future__ import annotations

import threading
from dataclasses import dataclass

from pyDatalog import Logic, pyEngine
from pyDatalog.pyDatalog import assert_fact, retract_fact

from reasoner.engines import datalog as dl
from reasoner.language import ir
from reasoner.language.vocab import Vocabulary

pyEngine.Float_Precision = None  # the default rounds 49.9999999 to 50.0, which then passes ">= 50"

_active = threading.local()  # the Engine whose knowledge base this thread holds
PATIENT = "patient"  # the one patient id ever asserted at a time


def _term(x):
    return pyEngine.Var(x.name) if isinstance(x, dl.Var) else pyEngine.Term_of(x)


def _literal(item) -> pyEngine.Literal:
    if isinstance(item, dl.Cmp):
        return pyEngine.Literal(item.op, [_term(item.left), _term(item.right)])
    name = ("~" if item.negated else "") + item.pred
    return pyEngine.Literal(name, [_term(a) for a in item.args])


@dataclass(frozen=True)
class Evaluation:
    """What the engine concluded for one patient."""

    decided: dict[str, str | None]  # policy id -> name of the deciding rule (None: no rule applied)
    nodes: dict[str, bool]  # node id -> holds (empty unless asked for)
    fired: dict[str, bool]  # rule id -> its conditions hold (empty unless asked for)
    members: dict[str, tuple]  # count node id -> the members it counted (empty unless asked for)


class Engine:
    """A pyDatalog knowledge base holding one program's rules."""

    def __init__(self, program: ir.Program, vocab: Vocabulary):
        self.program, self.vocab = program, vocab
        self.compiled = dl.compile_program(program, vocab)
        self._logic = threading.local()  # this engine's knowledge base, one per thread
        self._activate()

    def _activate(self) -> None:
        """Make this engine's knowledge base the current thread's, loading it on first use in the thread.

        pyDatalog keeps one knowledge base per thread, and a handle shared across threads shares
        its facts (so two threads deciding at once would read each other's patient). Each thread
        therefore gets its own copy of the program, loaded the first time it decides."""
        if getattr(_active, "engine", None) is self:
            return
        handle = getattr(self._logic, "handle", None)
        if handle is None:
            Logic()  # a fresh knowledge base for this thread
            for pred, arity in dl.BASE.items():  # declare base relations before any rule negates them
                assert_fact(pred, *(["_"] * arity))
                retract_fact(pred, *(["_"] * arity))
            for clause in self.compiled.clauses:
                pyEngine.assert_(pyEngine.Clause(_literal(clause.head), [_literal(b) for b in clause.body]))
            self._logic.handle = Logic(True)
        else:
            Logic(handle)
        _active.engine = self

    def _ask(self, pred: str, *args) -> list[tuple]:
        result = pyEngine.Literal(pred, [_term(a) for a in args]).ask()
        return result if isinstance(result, list) else ([()] if result else [])

    def _detail(self, decided: dict, wanted: list[str]) -> Evaluation:
        """Read back the engine's truth for every node and rule of the wanted policies."""
        rules = [r for p in self.program.policies if p.id in wanted for r in p.rules]
        node_ids = {n.id for r in rules for top in ir.rule_nodes(r) for n in ir.walk(top)}
        pred = self.compiled.node_pred
        nodes = {nid: bool(self._ask(pred[nid], PATIENT)) for nid in node_ids}
        fired = {r.id: bool(self._ask(self.compiled.fires_pred[r.id], PATIENT)) for r in rules}
        members = {nid: tuple(sorted(row[1] for row in self._ask(m, PATIENT, dl.Var("X"))))
                   for nid, m in self.compiled.member_pred.items() if nid in node_ids}
        return Evaluation(decided, nodes, fired, members)

    def evaluate(self, facts: dict, policies=None, detail: bool = False) -> Evaluation:
        """Decide one validated patient under each policy; with `detail`, read every node's truth."""
        self._activate()
        clauses = [pyEngine.Clause(_literal(a), []) for a in dl.patient_facts(PATIENT, facts, self.vocab)]
        for clause in clauses:
            pyEngine.assert_(clause)
        try:
            wanted = [p.id for p in self.program.policies if policies is None or p.id in policies]
            if policies is None:
                rows = self._ask("decision", PATIENT, dl.Var("Policy"), dl.Var("Rule"))
            else:  # a bound policy: pyDatalog resolves that policy's rules only (two of six: 2x faster)
                rows = [row for pid in wanted for row in self._ask("decision", PATIENT, pid, dl.Var("Rule"))]
            found = {policy: rule for _, policy, rule in rows}
            decided = {pid: found.get(pid) for pid in wanted}
            if not detail:
                return Evaluation(decided, {}, {}, {})
            return self._detail(decided, wanted)
        finally:
            for clause in clauses:
                pyEngine.retract(clause)
