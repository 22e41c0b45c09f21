"""The Datalog layer: generated clauses are safe and non-recursive; the checks catch bad ones."""
import pytest

from reasoner.engines import datalog as dl


def test_bundled_program_compiles_to_safe_clauses(loaded):
    compiled = dl.compile_program(loaded.program, loaded.vocab)
    assert compiled.clauses
    for clause in compiled.clauses:  # negations come last, after a positive atom binding P
        kinds = ["neg" if isinstance(b, dl.Atom) and b.negated else "cmp" if isinstance(b, dl.Cmp) else "pos" for b in clause.body]
        assert kinds[0] == "pos" and kinds == sorted(kinds, key=["pos", "cmp", "neg"].index)


def test_no_aggregates_and_no_python_text_in_clauses(loaded):
    compiled = dl.compile_program(loaded.program, loaded.vocab)
    preds = {b.pred for c in compiled.clauses for b in c.body if isinstance(b, dl.Atom)}
    assert not any(p.startswith(("len_", "sum_", "count")) for p in preds)
    for c in compiled.clauses:
        for term in c.head.args + tuple(a for b in c.body if isinstance(b, dl.Atom) for a in b.args):
            assert isinstance(term, (dl.Var, str, int, float))


def test_safety_check_rejects_an_unbound_head_variable():
    P, Q = dl.Var("P"), dl.Var("Q")
    with pytest.raises(dl.UnsafeProgram):
        dl.check_safety([dl.Clause(dl.Atom("h", (P, Q)), (dl.Atom("p", (P,)),))])


def test_safety_check_rejects_an_unbound_negated_variable():
    P, Q = dl.Var("P"), dl.Var("Q")
    with pytest.raises(dl.UnsafeProgram):
        dl.check_safety([dl.Clause(dl.Atom("h", (P,)), (dl.Atom("p", (P,)), dl.Atom("q", (Q,), negated=True)))])


def test_stratification_check_rejects_recursion_through_negation():
    P = dl.Var("P")
    loop = [
        dl.Clause(dl.Atom("p", (P,)), (dl.Atom("patient", (P,)), dl.Atom("q", (P,), negated=True))),
        dl.Clause(dl.Atom("q", (P,)), (dl.Atom("patient", (P,)), dl.Atom("p", (P,), negated=True))),
    ]
    with pytest.raises(dl.UnsafeProgram, match="recursive"):
        dl.check_stratified(loop)


def test_numbers_keep_their_exact_value():
    from decimal import Decimal
    assert dl.number(Decimal("50")) == 50 and isinstance(dl.number(Decimal("50")), int)
    assert dl.number(Decimal("49.5")) == 49.5
