"""The criteria matrix: which payer requires what, per service and indication, read off the IR.

Nothing here is written by hand: every cell comes from the compiled rules, so the matrix cannot
drift from what the engine decides. A cell lists the requirements a payer's rules put on one
concept; requirements that are one option among several (under `any` / `at_least`) or that must
be absent (`not`, `unless`) are marked as such. Rules that deny or leave a request unaddressed are
shown too, in decision order, and their conditions are marked as leading to that decision: an
analyst comparing payers needs "unproven when X" as much as "covered when Y".
"""
from __future__ import annotations

from dataclasses import dataclass

from reasoner.language import ir
from reasoner.language.check import describe

OUTCOMES = ("covered", "review")


@dataclass(frozen=True)
class Requirement:
    concept: str
    text: str  # e.g. "≥ 50 %", "in {failed, contraindicated}"
    mode: str  # "required", "option" (one of alternatives) or "absent" (must not hold)
    rule: str
    cite: ir.Citation
    grants: bool = True  # False: a condition of a rule that denies or leaves the request unaddressed


@dataclass(frozen=True)
class Column:
    """One payer's rules for one (service, indication) cell of the matrix."""

    policy: str
    rules: tuple[ir.Rule, ...]
    requirements: tuple[Requirement, ...]


def _concept_of(test: ir.Test) -> str | None:
    return getattr(test, "concept", None)


def _text(test: ir.Test) -> str:
    """The requirement without the concept name, e.g. '≥ 50 %'."""
    full = describe(test)
    concept = _concept_of(test)
    if isinstance(test, ir.CountAtLeast):
        return f"at least {test.n} of {{{', '.join(test.values)}}}"
    if isinstance(test, ir.IsTrue):
        return "yes"
    return full[len(concept) + 1:] if concept and full.startswith(concept) else full


def _requirements(node: ir.Node, rule: ir.Rule, mode: str, out: list[Requirement]) -> None:
    test = node.test
    if node.macro:  # one criterion as the policy wrote it (a table lookup, two concepts compared)
        concept = next(n.test.concept for n in ir.walk(node) if isinstance(n.test, ir.LEAVES))
        text = node.macro.removeprefix("every ").removeprefix(concept).strip()
        out.append(Requirement(concept, text, mode, rule.name, node.cite, rule.outcome.kind in OUTCOMES))
        return
    if isinstance(test, ir.LEAVES):
        out.append(Requirement(_concept_of(test), _text(test), mode, rule.name, node.cite,
                               rule.outcome.kind in OUTCOMES))
        return
    if isinstance(test, ir.Not):
        _requirements(test.child, rule, "absent" if mode != "absent" else "required", out)
        return
    child_mode = mode if isinstance(test, ir.All) or len(ir.children(node)) == 1 else ("option" if mode == "required" else mode)
    for child in ir.children(node):
        _requirements(child, rule, child_mode, out)


def applies(rule: ir.Rule, service: str | None, indication: str | None) -> bool:
    def ok(concept, value):
        values = rule.scope_values(concept)
        return value is None or values is None or value in values
    return ok("service", service) and ok("indications", indication)


def column(policy: ir.Policy, service: str | None, indication: str | None) -> Column:
    rules = tuple(r for r in policy.rules if applies(r, service, indication))
    reqs: list[Requirement] = []
    for rule in rules:
        for node in rule.conditions:
            _requirements(node, rule, "required", reqs)
        for node in rule.exceptions:
            _requirements(node, rule, "absent", reqs)
    return Column(policy.id, rules, tuple(q for q in reqs if not _guard(q, reqs)))


def _guard(q: Requirement, reqs: list[Requirement]) -> bool:
    """'X documented' next to another requirement on X of the same rule says nothing more."""
    return q.text == "documented" and q.mode == "required" and \
        any(o is not q and o.rule == q.rule and o.concept == q.concept for o in reqs)


def matrix(program: ir.Program, service: str | None, indication: str | None) -> list[Column]:
    return [column(p, service, indication) for p in program.policies]


def concepts_in(columns: list[Column]) -> list[str]:
    """Concepts in first-mention order, so related criteria stay together."""
    seen: dict[str, None] = {}
    for col in columns:
        for req in col.requirements:
            seen.setdefault(req.concept, None)
    return list(seen)


def as_json(columns: list[Column], service: str | None, indication: str | None) -> dict:
    return {
        "schema": "reasoner.matrix/1", "service": service, "indication": indication,
        "payers": [{
            "policy": col.policy,
            "rules": [{"name": r.name, "label": r.label, "decision": r.outcome.kind, "subkind": r.outcome.subkind,
                       "detail": r.outcome.detail, "prior_auth": r.outcome.prior_auth,
                       "service": list(r.scope_values("service") or []), "indication": list(r.scope_values("indication") or []),
                       "lines": list(r.scope_values("line_of_business") or []), "citation": str(r.cite)} for r in col.rules],
            "requirements": [{"concept": q.concept, "requirement": q.text, "mode": q.mode, "rule": q.rule,
                              "grants": q.grants,
                              "citation": str(q.cite)} for q in col.requirements],
        } for col in columns],
    }
