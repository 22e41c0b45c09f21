"""Why and why-not, read from the engine's own evaluation.

The engine compiles every criterion (IR node) to its own predicate, so after deciding a patient it
can say, for each criterion, whether it held (`Evaluation.nodes`) and which members a count
counted (`Evaluation.members`). This module only *selects and arranges* those truths along the IR
tree; it never evaluates a test itself. Leaves are annotated with the patient's facts they read.

Two kinds of tree are built:
- a justification (`_holds`/`_fails` with complete=False): just enough to establish each truth
  value, e.g. one true child of an any-of. Restricting the patient to the facts at its leaves gives
  the same truth values, hence the same decision (tested as a property);
- a failure report (`_fails` with complete=True): every failing child, so no failing criterion is
  missing from a why-not.
"""
from __future__ import annotations

import re
from dataclasses import dataclass

from reasoner.language import ir
from reasoner.language.check import describe
from reasoner.results.decide import Decision, Reasoner
from reasoner.engines.reference import Evaluation
from reasoner.io.patient import Patient

HOLDS, FAILS = "holds", "fails"
RESOURCE_NAME = re.compile(r"(?<![\w/.])[A-Z][A-Za-z]+/[A-Za-z0-9\-.]{1,64}")  # a FHIR reference, Procedure/pt-1
ABSENT = "absent"  # a negated criterion that holds because its inner criterion does not
NOT_DOCUMENTED, OTHERWISE = "not documented", "documented otherwise"


@dataclass(frozen=True)
class Fact:
    concept: str
    value: object  # None: the patient file does not document it
    source: str | None = None  # where the fact was read, when the input says (FHIR resources, questionnaire items)


@dataclass(frozen=True)
class Step:
    """One criterion as the engine evaluated it, with the reasons for its truth value below it."""

    node: str
    label: str
    cite: ir.Citation
    test: str  # what is checked, in the policy's terms (e.g. "trial_pain_relief ≥ 50 %")
    holds: bool
    status: str  # holds | fails | absent | not documented | documented otherwise
    facts: tuple[Fact, ...] = ()  # leaves: the facts the test reads
    members: tuple[str, ...] = ()  # counts: the members the engine counted
    children: tuple["Step", ...] = ()
    summary: bool = False  # a construct the policy wrote as one criterion (a table lookup, a == b)

    def leaves(self):
        """The criteria a reader sees at the bottom: leaf tests, and constructs shown whole."""
        if not self.children or self.summary:
            yield self
            return
        for child in self.children:
            yield from child.leaves()


@dataclass(frozen=True)
class RuleTrace:
    """One rule of a policy and why it did or did not fire."""

    rule: str
    label: str
    cite: ir.Citation
    outcome: ir.Outcome
    fires: bool
    steps: tuple[Step, ...]  # why it fires (all criteria), or the criteria that stop it
    preempted_by: str | None = None  # an earlier rule that fired and decided instead


@dataclass(frozen=True)
class Why:
    patient: str
    decision: Decision
    rule: RuleTrace | None  # the deciding rule (None when no rule applies)
    earlier: tuple[RuleTrace, ...]  # every earlier rule, with one reason it did not fire


@dataclass(frozen=True)
class Path:
    """A rule that could have produced the wanted decision, and what stops it."""

    trace: RuleTrace
    in_scope: bool  # the request's service, indication and line are the rule's
    failing: int  # failing leaf criteria (plus one if pre-empted): how far the path is

    @property
    def rule(self) -> str:
        return self.trace.rule


@dataclass(frozen=True)
class WhyNot:
    patient: str
    decision: Decision
    wanted: str
    paths: tuple[Path, ...]  # closest first; empty when the decision already is the wanted one


# ---------------------------------------------------------------- steps from the evaluation
class _Reader:
    """Arranges the engine's truth values for one patient along the IR tree."""

    def __init__(self, evaluation: Evaluation, patient: Patient):
        self.ev, self.facts, self.sources = evaluation, patient.facts, patient.provenance or {}

    def fact(self, concept: str) -> Fact:
        value = self.facts.get(concept)
        return Fact(concept, value, self.sources.get(concept) if value is not None else None)

    def step(self, node: ir.Node, complete: bool) -> Step:
        return self.holds(node, complete) if self.ev.nodes[node.id] else self.fails(node, complete)

    def _make(self, node: ir.Node, holds: bool, status: str, children=()) -> Step:
        test = node.test
        facts = ()
        if isinstance(test, ir.LEAVES):
            facts = (self.fact(test.concept),)
        elif node.macro:  # the facts a construct reads, once each
            concepts = dict.fromkeys(n.test.concept for n in ir.walk(node) if isinstance(n.test, ir.LEAVES))
            facts = tuple(self.fact(c) for c in concepts)
        return Step(node.id, node.label, node.cite, node.macro or describe(test), holds, status, facts,
                    self.ev.members.get(node.id, ()), tuple(children), node.macro is not None)

    def holds(self, node: ir.Node, complete: bool = False) -> Step:
        """Why `node` holds: every child of an all-of, the first true child of an any-of, ..."""
        test, kids = node.test, ir.children(node)
        true = [c for c in kids if self.ev.nodes[c.id]]
        match test:
            case ir.All():
                return self._make(node, True, HOLDS, [self.holds(c, complete) for c in kids])
            case ir.Any():
                return self._make(node, True, HOLDS, [self.holds(c, complete) for c in true[:1]])
            case ir.AtLeast(n):
                return self._make(node, True, HOLDS, [self.holds(c, complete) for c in true[:n]])
            case ir.Not(child):
                return self._make(node, True, ABSENT, [self.fails(child, complete)])
        return self._make(node, True, HOLDS)

    def fails(self, node: ir.Node, complete: bool = False) -> Step:
        """Why `node` fails: with `complete`, every failing child; else just enough of them."""
        test, kids = node.test, ir.children(node)
        false = [c for c in kids if not self.ev.nodes[c.id]]
        match test:
            case ir.All():
                chosen = false if complete else false[:1]
                return self._make(node, False, FAILS, [self.fails(c, complete) for c in chosen])
            case ir.Any():
                return self._make(node, False, FAILS, [self.fails(c, complete) for c in kids])
            case ir.AtLeast(n):
                chosen = false if complete else false[:len(kids) - n + 1]
                return self._make(node, False, FAILS, [self.fails(c, complete) for c in chosen])
            case ir.Not(child):
                return self._make(node, False, FAILS, [self.holds(child)])
        documented = self.facts.get(test.concept) is not None
        return self._make(node, False, OTHERWISE if documented else NOT_DOCUMENTED)

    def rule_fires(self, rule: ir.Rule) -> RuleTrace:
        steps = [self.holds(n) for n in rule.scope + rule.conditions] + [self.fails(n) for n in rule.exceptions]
        return RuleTrace(rule.name, rule.label, rule.cite, rule.outcome, True, tuple(steps))

    def rule_blocked(self, rule: ir.Rule, complete: bool) -> RuleTrace:
        """What stops `rule`: failing scope or conditions, exceptions that hold (one, or all)."""
        blocking = [self.fails(n, complete) for n in rule.scope + rule.conditions if not self.ev.nodes[n.id]]
        blocking += [self.holds(n) for n in rule.exceptions if self.ev.nodes[n.id]]
        return RuleTrace(rule.name, rule.label, rule.cite, rule.outcome, False,
                         tuple(blocking if complete else blocking[:1]))


# ---------------------------------------------------------------- public entry points
def _evaluate(reasoner: Reasoner, patient: Patient, policy_id: str) -> tuple[ir.Policy, Evaluation, Decision]:
    policy = reasoner.loaded.program.policy(policy_id)
    evaluation = reasoner.engine.evaluate(patient.facts, [policy_id], detail=True)
    decision = reasoner.versioned(reasoner.decision(policy, evaluation.decided[policy_id]))
    return policy, evaluation, decision


def why(reasoner: Reasoner, patient: Patient, policy_id: str) -> Why:
    """The derivation of the payer's decision: the deciding rule's criteria down to the facts,
    and for each earlier rule (which would have had precedence) one reason it did not fire."""
    policy, evaluation, decision = _evaluate(reasoner, patient, policy_id)
    read = _Reader(evaluation, patient)
    earlier, deciding = [], None
    for rule in policy.rules:
        if rule.name == decision.rule:
            deciding = read.rule_fires(rule)
            break
        earlier.append(read.rule_blocked(rule, complete=False))
    return Why(patient.id, decision, deciding, tuple(earlier))


def why_not(reasoner: Reasoner, patient: Patient, policy_id: str, wanted: str = "covered") -> WhyNot:
    """Every rule that could have decided `wanted`, with all that stops it, closest first."""
    policy, evaluation, decision = _evaluate(reasoner, patient, policy_id)
    if decision.kind == wanted:
        return WhyNot(patient.id, decision, wanted, ())
    read = _Reader(evaluation, patient)
    paths = []
    for i, rule in enumerate(policy.rules):
        if rule.outcome.kind != wanted:
            continue
        in_scope = all(evaluation.nodes[n.id] for n in rule.scope)
        if evaluation.fired[rule.id]:  # it fires, but an earlier rule decides first
            trace = read.rule_fires(rule)
            trace = RuleTrace(trace.rule, trace.label, trace.cite, trace.outcome, True, (), decision.rule)
            paths.append((Path(trace, in_scope, 1), i))
            continue
        trace = read.rule_blocked(rule, complete=True)
        failing = sum(1 for s in trace.steps for _ in s.leaves())
        paths.append((Path(trace, in_scope, failing), i))
    paths.sort(key=lambda p: (not p[0].in_scope, p[0].failing, p[1]))
    return WhyNot(patient.id, decision, wanted, tuple(p for p, _ in paths))


def reading(step: Step) -> str:
    """One line saying what a step tree says, laid out as why-not lays it out: all-of as "and",
    any-of as "any of (...)", a negation as "not (...)", and at each leaf whether its fact is not
    documented or documented otherwise. Shared by the diff summaries and reports, so a summary
    never reads an any-of as if all of it were needed.

    >>> leaf = Step("n1", "DIRE above 13", None, "dire_score > 13 points", False, NOT_DOCUMENTED, (Fact("dire_score", None),))
    >>> reading(Step("n", "screening", None, "any of", False, FAILS, (), (), (leaf, leaf)))
    'any of (dire_score > 13 points, dire_score > 13 points), none documented'
    """
    if not step.children or step.summary:
        if step.status == NOT_DOCUMENTED:
            return f"{step.test} (not documented)"
        shown = [f"{f.concept} = {_short(f.value)}" for f in step.facts if f.value is not None]
        if step.status == OTHERWISE or (step.summary and not step.holds and shown):
            return f"{step.test} ({'; '.join(shown)})" if shown else step.test
        return step.test
    kids = [reading(c) for c in step.children]
    if step.status == ABSENT or step.test.startswith("not"):
        return f"not ({kids[0]})"
    if step.test == "all of" or len(kids) == 1:
        return " and ".join(kids)
    undocumented = all(leaf.status == NOT_DOCUMENTED for leaf in step.leaves())
    plain = ", ".join(reading(Step(c.node, c.label, c.cite, c.test, c.holds, HOLDS)) if undocumented else k
                      for c, k in zip(step.children, kids))
    head = "any of" if step.test == "any of" else step.test
    return f"{head} ({plain})" + (", none documented" if undocumented and not step.holds else "")


def _short(value) -> str:
    if isinstance(value, (tuple, list)):
        return "{" + ", ".join(map(str, value)) + "}"
    return str(value).lower() if isinstance(value, bool) else str(value)


def leaf_facts(steps) -> dict[str, object]:
    """The documented facts a set of steps rests on (for the soundness property and for repair)."""
    out = {}
    for step in steps:
        for leaf in step.leaves():
            for fact in leaf.facts:
                if fact.value is not None:
                    out[fact.concept] = fact.value
    return out


def why_facts(explanation: Why) -> dict[str, object]:
    steps = [s for t in explanation.earlier for s in t.steps]
    if explanation.rule:
        steps += list(explanation.rule.steps)
    return leaf_facts(steps)


# ---------------------------------------------------------------- JSON (schemas in docs/EXPLAIN.md)
WHY_SCHEMA, WHY_NOT_SCHEMA = "reasoner.why/1", "reasoner.why_not/1"


def json_value(value):
    if isinstance(value, (tuple, list)):
        return [json_value(v) for v in value]
    if hasattr(value, "isoformat"):
        return value.isoformat()
    return value


def cite_json(cite: ir.Citation | None) -> dict | None:
    return None if cite is None else {"document": cite.document, "section": cite.section}


def _sourced(source: str | None) -> dict:
    """Where a fact was read, as written (`source`), and the FHIR resources it names as a list
    (`resources`: Procedure/pt-1 … for a therapy course), for a program to follow."""
    if not source:
        return {}
    resources = list(dict.fromkeys(RESOURCE_NAME.findall(source)))
    return {"source": source, **({"resources": resources} if resources else {})}


def step_json(step: Step) -> dict:
    out = {"criterion": step.node, "label": step.label, "test": step.test, "citation": cite_json(step.cite),
           "holds": step.holds, "status": step.status}
    if step.summary:
        out["summary"] = True  # one construct of the policy; `because` holds its lowered parts
    if step.facts:
        out["facts"] = [{"concept": f.concept, "value": json_value(f.value), **_sourced(f.source)} for f in step.facts]
    if step.members:
        out["members"] = list(step.members)
    if step.children:
        out["because"] = [step_json(c) for c in step.children]
    return out


def trace_json(trace: RuleTrace) -> dict:
    o = trace.outcome
    return {"rule": trace.rule, "label": trace.label, "citation": cite_json(trace.cite),
            "outcome": {"decision": o.kind, "subkind": o.subkind, "detail": o.detail, "prior_auth": o.prior_auth},
            "fires": trace.fires, "preempted_by": trace.preempted_by, "criteria": [step_json(s) for s in trace.steps]}


def why_json(w: Why) -> dict:
    return {"schema": WHY_SCHEMA, "patient": w.patient, "decision": w.decision.as_json(),
            "rule": trace_json(w.rule) if w.rule else None,
            "earlier_rules": [trace_json(t) for t in w.earlier]}


def why_not_json(w: WhyNot, repairs_by_rule: list | None = None) -> dict:
    out = {"schema": WHY_NOT_SCHEMA, "patient": w.patient, "decision": w.decision.as_json(), "wanted": w.wanted,
           "paths": [{**trace_json(p.trace), "in_scope": p.in_scope, "distance": p.failing} for p in w.paths]}
    if repairs_by_rule is not None:
        out["repairs"] = [r.as_json() for r in repairs_by_rule]
    return out


def failing_leaves(policy: ir.Policy, evaluation: Evaluation, patient: Patient) -> frozenset[str]:
    """Ids of the leaf criteria that stop the policy's covering rules in scope: the leaves of a
    complete why-not, without building it (used many times over while shrinking witnesses)."""
    read = _Reader(evaluation, patient)
    out = set()
    for rule in policy.rules:
        if rule.outcome.kind == "covered" and not evaluation.fired[rule.id] and \
                all(evaluation.nodes[n.id] for n in rule.scope):
            out.update(s.node for top in read.rule_blocked(rule, complete=True).steps for s in top.leaves())
    return frozenset(out)


def failing_criteria(policy: ir.Policy, evaluation: Evaluation) -> tuple[str, ...]:
    """The compact why-not used in batch output: unless the decision is `covered`, the failing
    criteria (see criteria_of) of the conditions, and the holding exceptions, of every covered rule
    whose scope the request is in. A failing part of an all-of makes the all-of fail, so the parts
    listed are exactly the failing ones, in the order the policy gives them."""
    decided = evaluation.decided[policy.id]
    if decided and next(r for r in policy.rules if r.name == decided).outcome.kind == "covered":
        return ()
    out: list[str] = []
    for rule in (r for r in policy.rules if r.outcome.kind == "covered"):
        if all(evaluation.nodes[n.id] for n in rule.scope):
            out += [x.id for n in rule.conditions for x in ir.criteria_of(n) if not evaluation.nodes[x.id]]
            out += [n.id for n in rule.exceptions if evaluation.nodes[n.id]]
    return tuple(out)
