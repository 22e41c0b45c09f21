"""One payer's reasoning, and every payer's at the level of criteria, for the pages to show.

Everything here is asked of `reasoner.results` (why, why-not, repairs), exactly as `reasoner why`
and `reasoner why-not` ask it; this module only gathers the answers a page shows together and
turns each repair into the form values it leads to, so "apply" is a link to the changed member.
"""
from __future__ import annotations

from dataclasses import dataclass

from reasoner.io.patient import Patient
from reasoner.language.vocab import Vocabulary
from reasoner.results import explain
from reasoner.results.decide import Decision, Reasoner
from reasoner.results.repair import Repair, repairs as find_repairs, with_change
from reasoner.web.forms import Raw, raw_from_facts

REPAIRS = 5  # as `reasoner why-not` finds by default


@dataclass(frozen=True)
class Applied:
    """A verified repair and the member it makes (as form values)."""

    repair: Repair
    raw: Raw


@dataclass(frozen=True)
class Reasoning:
    policy: str
    decision: Decision
    why: explain.Why
    wanted: str
    why_not: explain.WhyNot | None  # None when the decision already is the wanted one
    repairs: tuple[Applied, ...] = ()

    @property
    def in_scope(self) -> tuple[explain.Path, ...]:
        """The rules deciding as wanted that apply to this request; the others are only counted,
        as `reasoner why-not` counts them (a repair never changes the request)."""
        return tuple(p for p in self.why_not.paths if p.in_scope) if self.why_not else ()

    @property
    def elsewhere(self) -> int:
        return len(self.why_not.paths) - len(self.in_scope) if self.why_not else 0


def applied(patient: Patient, repair: Repair, vocab: Vocabulary) -> Applied:
    """The repair's changes made to the patient, as the form values of the changed member."""
    facts = dict(patient.facts)
    for change in repair.changes:
        facts = with_change(facts, change.concept, change.after)
    head = {k: v for k, v in (("id", patient.id), ("description", patient.description)) if v}
    return Applied(repair, raw_from_facts({**head, **facts}, vocab))


def reasoning(reasoner: Reasoner, patient: Patient, policy: str, wanted: str = "covered",
              limit: int = REPAIRS) -> Reasoning:
    """Why the payer decided as it did; if that is not `wanted`, why not, and the smallest
    verified changes that would get there. A payer with earlier versions is explained by the
    version in force at the request's date, as `reasoner why` does."""
    policy = reasoner.version(policy, patient)
    why = explain.why(reasoner, patient, policy)
    if why.decision.kind == wanted:
        return Reasoning(policy, why.decision, why, wanted, None)
    why_not = explain.why_not(reasoner, patient, policy, wanted)
    fixes = find_repairs(reasoner, patient, policy, wanted, limit=limit) if limit and any(
        p.in_scope for p in why_not.paths) else []
    vocab = reasoner.loaded.vocab
    return Reasoning(policy, why.decision, why, wanted, why_not, tuple(applied(patient, r, vocab) for r in fixes))


# ---------------------------------------------------------------- all payers, criterion by criterion
@dataclass(frozen=True)
class Entry:
    """One leaf criterion of one payer, as its explanation shows it."""

    step: explain.Step
    rule: str


@dataclass(frozen=True)
class GridRow:
    concept: str
    cells: tuple[tuple[Entry, ...], ...]  # one per payer, in the decisions' order


@dataclass(frozen=True)
class Grid:
    decisions: tuple[Decision, ...]
    shown: tuple[str, ...]  # per payer: "why" (the deciding rule's criteria) or "why not covered" (the closest rule's)
    rules: tuple[str | None, ...]  # per payer: the rule whose criteria are listed
    rows: tuple[GridRow, ...]


def _leaves(reasoner: Reasoner, patient: Patient, decision: Decision) -> tuple[str, str | None, list]:
    """The criteria a payer's decision turns on: for a cover, those of its deciding rule; else
    every failing criterion of the closest covering rule in scope (why-not's first path)."""
    if decision.kind == "covered":
        w = explain.why(reasoner, patient, decision.policy)
        steps = list(w.rule.steps) if w.rule else []
        return "why", decision.rule, [s for top in steps for s in top.leaves()]
    wn = explain.why_not(reasoner, patient, decision.policy, "covered")
    path = next((p for p in wn.paths if p.in_scope), None)
    if path is None:
        return "no covering rule applies", None, []
    return "why not covered", path.rule, [s for top in path.trace.steps for s in top.leaves()]


def grid(reasoner: Reasoner, patient: Patient) -> Grid:
    """Every payer's criteria side by side, one row per fact they read: what each payer asks of
    the same fact, and whether this member meets it."""
    decisions = tuple(reasoner.decide(patient))
    shown, rules, per_payer = [], [], []
    for d in decisions:
        how, rule, leaves = _leaves(reasoner, patient, d)
        shown.append(how)
        rules.append(rule)
        per_payer.append([(s, rule) for s in leaves])
    concepts: dict[str, None] = {}
    for entries in per_payer:
        for step, _ in entries:
            for fact in step.facts[:1]:
                concepts.setdefault(fact.concept, None)
    rows = []
    for concept in concepts:
        cells = tuple(tuple(dict.fromkeys(Entry(s, r) for s, r in entries if s.facts and s.facts[0].concept == concept))
                      for entries in per_payer)
        rows.append(GridRow(concept, cells))
    return Grid(decisions, tuple(shown), tuple(rules), tuple(rows))
