"""Where payers disagree, on whom, and because of which criteria.

A *disagreement* is a patient two payers decide differently (covered, denied, review, not
addressed). Its *class* is the pair of rules that decide it, one per payer: every patient in a class
disagrees for the same pair of reasons. Each class is shown with one *minimal witness* and the
criteria responsible on each side, read from `why` / `why-not`.

Search: Hypothesis generates patients from the vocabulary (threshold-biased, and on the edge of
each payer's covering rules, see `strategies.py`), deterministically for a seed; the fast backend
decides them all at once; the pairs of deciding rules give the classes.

Witnesses: the class's smallest patient is first *sharpened* — each criterion failing on a
non-covering side is made to hold wherever the class survives it, so what stays failing is what
separates the payers — then *shrunk*: each fact is dropped if the class and its responsible
criteria survive. Every step is judged by the reference engine (pyDatalog); the result is
1-minimal (no single fact can be removed).

Exhaustive: `solver.py` decides, for every pair of rules, whether any patient in the finite
abstraction falls in that class; so the search's classes can be checked for completeness.
"""
from __future__ import annotations

import datetime as dt
import functools
import itertools
import threading
from collections import Counter
from contextlib import contextmanager
from dataclasses import dataclass, field, replace

import z3
from hypothesis import HealthCheck, Phase, given, seed as hseed, settings
from hypothesis import strategies as st

from reasoner.language import ir
from reasoner.results.decide import Reasoner
from reasoner.engines.duck import FastBackend
from reasoner.errors import InputError, did_you_mean
from reasoner.results.explain import cite_json, failing_leaves, json_value, reading, step_json, why, why_not
from reasoner.io.patient import Patient, nested, validate
from reasoner.results.repair import FIXED, Proposer, with_change
from reasoner.engines.solver import Encoding
from reasoner.search.strategies import near_coverage, patients as random_patients


@dataclass(frozen=True)
class Pattern:
    """A class of disagreement: the rule deciding under each payer of a pair (None: no rule)."""

    a: str
    rule_a: str | None
    b: str
    rule_b: str | None


@dataclass(frozen=True)
class Criterion:
    policy: str
    node: str
    concept: str  # the fact the leaf criterion reads
    test: str
    label: str
    cite: ir.Citation
    holds: bool


@dataclass(frozen=True)
class Side:
    policy: str
    decision: str  # kind, with sub-kind in parentheses
    rule: str | None
    rule_label: str
    cite: ir.Citation | None
    criteria: tuple[Criterion, ...]  # leaf criteria: failing (a denial facing a cover) or contrasting (a cover)
    steps: tuple = ()  # the same, as the why / why-not trees they come from (any-of kept as any-of)

    @property
    def reason(self) -> str:
        """What this side's decision rests on, in one line (see explain.reading)."""
        return "; ".join(reading(s) for s in self.steps)


GROUPS = ("criteria", "scope")  # criteria differences, then effects of the request alone


@dataclass
class DisagreementClass:
    pattern: Pattern
    count: int  # generated patients in this class
    witness: dict
    a: Side
    b: Side
    found_by: set[str] = field(default_factory=set)  # "search", "exhaustive"
    group: str = "criteria"  # "scope": a side is decided by the request alone (line, service, indication)


@dataclass
class Result:
    payers: tuple[str, ...]
    service: str | None
    indication: str | None
    examples: int
    seed: int
    disagreeing: int  # generated patients on whom some pair disagrees
    classes: list[DisagreementClass]
    exhaustive: bool = False
    lines: str | None = None  # the line of business searched, when one was fixed
    by_pair: Counter = field(default_factory=Counter)  # (a, b) -> disagreeing patients
    by_indication: Counter = field(default_factory=Counter)  # (a, b, indication) -> disagreeing patients
    named: dict = field(default_factory=dict)  # how a side was named, when not by its id: id -> "cam70141@2017-06-01"

    def pair_count(self, a: str, b: str) -> int:
        """Disagreeing patients of a pair, whichever order it is named in."""
        return self.by_pair.get((a, b), self.by_pair.get((b, a), 0))


def kind_of(policy: ir.Policy, rule: str | None) -> str:
    return Reasoner.decision(policy, rule).kind


def outcome_of(policy: ir.Policy, rule: str | None) -> str:
    """What two payers must differ in to disagree: the decision kind, and for `not_addressed` its
    sub-kind too, since a policy that is silent, one that puts the case outside itself (standard of
    care) and one that sends it to another named policy say different things about who decides.
    Denial sub-kinds (investigational or not medically necessary) are reasons for the same decision."""
    d = Reasoner.decision(policy, rule)
    return f"{d.kind} ({d.subkind})" if d.kind == "not_addressed" and d.subkind else d.kind


# ---------------------------------------------------------------- generating and deciding
def generate(loaded, payers: list[str], fixed: dict, examples: int, seed: int, tick=None) -> list[Patient]:
    """`examples` patients, the same ones for the same seed."""
    out: list[Patient] = []
    edge = near_coverage(loaded, payers, fixed)
    strategy = st.one_of(edge, edge, edge, random_patients(loaded, fixed=fixed))  # three in four on an edge

    @hseed(seed)
    @settings(max_examples=examples, phases=[Phase.generate], database=None, deadline=None,
              suppress_health_check=list(HealthCheck), derandomize=False)
    @given(strategy)
    def collect(patient):
        out.append(patient)
        if tick:
            tick()

    with _reproducible():
        collect()
    return out


_GENERATING = threading.Lock()


@contextmanager
def _reproducible():
    """Hypothesis mixes into its draws constants read from every *local* module imported so far
    (the caller's scripts, notebooks, tests), so the same seed gave different patients from the
    CLI, a notebook and a benchmark. For the search's patients to depend only on the seed (and the
    pinned Hypothesis version), that pool is empty while we generate. This reaches into Hypothesis's
    internals; `tests/test_diff.py` fails if the seed stops being enough."""
    try:
        from hypothesis.internal.conjecture import providers
    except ImportError:  # pragma: no cover - a Hypothesis without the constants pool
        yield
        return
    if not hasattr(providers, "_get_local_constants"):  # pragma: no cover
        yield
        return
    with _GENERATING:
        saved = providers._get_local_constants
        providers._get_local_constants = providers.Constants
        providers.CONSTANTS_CACHE.cache.clear()
        try:
            yield
        finally:
            providers._get_local_constants = saved
            providers.CONSTANTS_CACHE.cache.clear()


def patterns(program: ir.Program, payers: list[str], outcomes: list[dict]) -> list[list[Pattern]]:
    """Per patient, the classes of every pair of payers that decide differently."""
    out = []
    differ = functools.cache(lambda a, ra, b, rb: outcome_of(program.policy(a), ra) != outcome_of(program.policy(b), rb))
    for per in outcomes:
        found = []
        for a, b in itertools.combinations(payers, 2):
            if differ(a, per[a].rule, b, per[b].rule):
                found.append(Pattern(a, per[a].rule, b, per[b].rule))
        out.append(found)
    return out


# ---------------------------------------------------------------- witnesses
class _Witness:
    """Sharpens and shrinks one patient of a class, judged by the reference engine."""

    def __init__(self, reasoner: Reasoner, pattern: Pattern):
        self.reasoner, self.pattern = reasoner, pattern
        self.vocab = reasoner.loaded.vocab
        program = reasoner.loaded.program
        self.nodes = {n.id: n for p in (pattern.a, pattern.b) for r in program.policy(p).rules
                      for top in ir.rule_nodes(r) for n in ir.walk(top)}
        kinds = {p: kind_of(program.policy(p), r) for p, r in ((pattern.a, pattern.rule_a), (pattern.b, pattern.rule_b))}
        # the payer that denies while the other covers, if that is the class (fixed by the pattern)
        self.denying = next((p for p, k in kinds.items() if k == "denied"), None) \
            if sorted(kinds.values()) == ["covered", "denied"] else None

    def patient(self, facts: dict) -> Patient | None:
        try:
            return validate(facts, self.vocab, "witness")
        except InputError:
            return None

    def judge(self, patient: Patient | None) -> frozenset[str] | None:
        """None unless the patient is in the class; then the denying side's failing criteria
        (empty when no side covers: then the deciding rules alone are the reason)."""
        if patient is None:
            return None
        policies = [self.pattern.a, self.pattern.b]
        ev = self.reasoner.engine.evaluate(patient.facts, policies)  # decisions first: most trials leave the class
        if (ev.decided[self.pattern.a], ev.decided[self.pattern.b]) != (self.pattern.rule_a, self.pattern.rule_b):
            return None
        if self.denying is None:
            return frozenset()
        ev = self.reasoner.engine.evaluate(patient.facts, [self.denying], detail=True)  # every node: one side only
        return failing_leaves(self.reasoner.loaded.program.policy(self.denying), ev, patient)

    def keeps(self, patient: Patient | None) -> bool:
        return self.judge(patient) is not None

    def sharpen(self, facts: dict) -> dict:
        """Make hold every failing criterion of a denying side facing a covering one, where the class
        survives: what still fails is what the two payers disagree on. The ways to make a criterion
        hold are proposed by the repair machinery (a leaf, or a construct such as a table lookup)."""
        if self.denying is None:
            return facts
        for node_id in sorted(self.judge(self.patient(facts))):
            node = self.nodes[node_id]
            patient = self.patient(facts)
            evaluation = self.reasoner.engine.evaluate(patient.facts, [self.denying], detail=True)
            options = Proposer(self.reasoner, evaluation, patient.facts).make_true(node)
            if isinstance(node.test, ir.OneOf) and self.vocab.concepts[node.test.concept].kind == "enum" \
                    and node.test.concept not in FIXED:  # any allowed value may suit the covering side too
                options = [{node.test.concept: (v, "")} for v in node.test.values]
            for changes in options:
                if FIXED & changes.keys():
                    continue
                trial = dict(facts)
                for concept, (value, _) in changes.items():
                    trial = with_change(trial, concept, value)
                if self.keeps(self.patient(trial)):
                    facts = trial
                    break
        return facts

    def shrink(self, facts: dict) -> dict:
        """Drop every fact the class and its failing criteria do not need (1-minimal). Halves, then
        quarters, ... of the droppable facts are tried first (delta debugging: most facts of a
        generated patient are beside the point, and one engine run can drop many), then single
        facts until no pass drops one after keeping another (dropping one, a request date, can
        free another, a drug)."""
        before = self.judge(self.patient(facts))
        names = [k for k in facts if k not in FIXED]
        size = max(len(names) // 2, 1)
        while True:
            k, kept, late_drop = 0, False, False
            while k < len(names):
                part = set(names[k:k + size])
                trial = {n: v for n, v in facts.items() if n not in part}
                after = self.judge(self.patient(trial))
                if after is not None and after <= before:
                    facts, before = trial, after
                    names = names[:k] + names[k + size:]
                    late_drop = late_drop or kept
                else:
                    k, kept = k + size, True
            if size > 1:
                size = max(size // 2, 1)
            elif not late_drop:
                return facts


def _criterion(policy: str, step) -> Criterion:
    return Criterion(policy, step.node, step.facts[0].concept, step.test, step.label, step.cite, step.holds)


def describe_side(reasoner: Reasoner, patient: Patient, policy: str, other_kind: str, contrast: set[str]) -> Side:
    """The side's decision and the criteria responsible for it, from why / why-not: a denial facing
    a covering payer shows what fails (the complete why-not of its covering rules in scope); a
    covering side shows its criteria on the concepts the other side fails on; any other decision
    shows what made its rule fire (why)."""
    w = why(reasoner, patient, policy)
    d = w.decision
    decision = d.kind + (f" ({d.subkind})" if d.subkind else "")
    rule = next((r for r in reasoner.loaded.program.policy(policy).rules if r.name == d.rule), None)
    tops = list(w.rule.steps) if w.rule else []
    if rule is not None and not _by_request(rule):  # its own criteria say more than its scope
        tops = tops[len(rule.scope):]
    if d.kind == "covered":
        tops = [s for top in tops for s in top.leaves() if {f.concept for f in s.facts} & (contrast - FIXED)]
    elif d.kind == "denied" and other_kind == "covered":
        wn = why_not(reasoner, patient, policy, "covered")
        failing = [top for path in wn.paths if path.in_scope and not path.trace.preempted_by for top in path.trace.steps]
        tops = failing or tops
    crit = tuple(dict.fromkeys(_criterion(policy, s) for top in tops for s in top.leaves()))
    return Side(policy, decision, d.rule, d.rule_label, d.cite, crit, tuple(tops))


def _by_request(rule: ir.Rule) -> bool:
    """The rule reads nothing but the request (service, indications, line of business)."""
    return all(n.test.concept in FIXED for top in ir.rule_nodes(rule) for n in ir.walk(top)
               if isinstance(n.test, ir.LEAVES))


def group_of(program: ir.Program, pattern: Pattern, facts: dict | None = None) -> str:
    """"scope" when a side is decided by the request alone: no rule applies, or the deciding rule
    reads nothing but the request (a line of business the policy leaves out, a Medicare referral,
    an indication it calls unproven); "criteria" otherwise. A catch-all denial ("criteria not
    met") reached because a covering rule of that payer, in scope for this request (`facts`),
    failed its criteria is a criteria difference: the request alone did not decide it."""
    for policy, rule in ((pattern.a, pattern.rule_a), (pattern.b, pattern.rule_b)):
        rules = program.policy(policy).rules
        r = next((r for r in rules if r.name == rule), None)
        if r is None:
            return "scope"
        if _by_request(r) and not (facts is not None and _after_a_covering_rule(rules, r, facts)):
            return "scope"
    return "criteria"


def _after_a_covering_rule(rules: tuple[ir.Rule, ...], deciding: ir.Rule, facts: dict) -> bool:
    """Whether a rule before `deciding` would cover this request and reads more than the request:
    the request was in its scope, so its criteria, not the request, made the difference."""
    before = rules[:rules.index(deciding)]
    return deciding.outcome.kind == "denied" and any(
        r.outcome.kind == "covered" and not _by_request(r) and _in_scope(r, facts) for r in before)


def _in_scope(rule: ir.Rule, facts: dict) -> bool:
    """The request meets the rule's scope (its tests on service, indications, line of business)."""
    for node in rule.scope:
        test = node.test
        if not isinstance(test, ir.OneOf):
            return False  # a scope this cannot read is not claimed
        value = facts.get(test.concept)
        if not set(value if isinstance(value, (tuple, list)) else (value,)) & set(test.values):
            return False
    return True


def witness_class(reasoner: Reasoner, pattern: Pattern, facts: dict, count: int) -> DisagreementClass:
    w = _Witness(reasoner, pattern)
    facts = w.shrink(w.sharpen(dict(facts)))
    patient = w.patient(facts)
    program = reasoner.loaded.program
    ka, kb = kind_of(program.policy(pattern.a), pattern.rule_a), kind_of(program.policy(pattern.b), pattern.rule_b)
    a0 = describe_side(reasoner, patient, pattern.a, kb, set())
    b = describe_side(reasoner, patient, pattern.b, ka, {c.concept for c in a0.criteria})
    a = describe_side(reasoner, patient, pattern.a, kb, {c.concept for c in b.criteria}) if ka == "covered" else a0
    return DisagreementClass(pattern, count, facts, a, b, group=group_of(program, pattern, facts))


# ---------------------------------------------------------------- which texts are compared
PERIOD_RULE = "outside_period"  # the implicit rule of a header's effective period (check.py)


def compared(loaded, payers: list[str]):
    """The program as a diff reads it: each compared policy without its effective-period rule.
    A diff compares what texts say, not when they apply: a request dated before CAM 70141's
    2018 revision is decided by the version then in force, not reported as a difference with a
    plan that states no date. To compare versions, name them (`resolve`); no other rule reads
    the request date, so dropping this one is the same as dating every request in the period."""
    policies = tuple(replace(p, rules=tuple(r for r in p.rules if r.name != PERIOD_RULE)) if p.id in payers else p
                     for p in loaded.program.policies)
    return replace(loaded, program=ir.Program(policies))


def resolve(program: ir.Program, name: str, as_of=None) -> tuple[str | None, str | None]:
    """The policy a diff side names, and a problem if it names none: `cam70141` (its current
    version, or the version in force on --as-of), `cam70141@2017-06-01` (the version in force on
    that day) or a version's own id."""
    pid, _, day = name.partition("@")
    when = as_of
    if day:
        try:
            when = dt.date.fromisoformat(day)
        except ValueError:
            return None, f"'{name}': '{day}' is not a date written YYYY-MM-DD."
    known = {p.id.lower(): p.id for p in program.policies}
    if pid.lower() not in known:
        return None, f"unknown payer '{pid}'.{did_you_mean(pid.lower(), list(known.values()))}"
    pid = known[pid.lower()]
    if when is None:
        return pid, None
    version = program.in_force(program.latest(pid), when)  # any version's id names its document
    start, end = version.effective
    if (start and when < start) or (end and when > end):
        return None, (f"'{name}': no version of {version.document} is in force on {when.isoformat()} "
                      f"(loaded: {', '.join(_period(v) for v in program.versions(pid))}).")
    return version.id, None


def _period(policy: ir.Policy) -> str:
    start, end = policy.effective
    return f"{policy.id} " + (f"from {start.isoformat()}" if start else "undated") + (f" to {end.isoformat()}" if end else "")


# ---------------------------------------------------------------- the two ways of finding classes
def search(loaded, payers: list[str], service: str | None = None, indication: str | None = None,
           examples: int = 500, seed: int = 0, progress=None, lines: str | None = None,
           witnesses: bool = True) -> Result:
    """Generate, decide with the fast backend, group by class, and build each class's witness.
    With `witnesses=False` only the counts are kept (patients per pair, per indication) and no class
    is built: a heatmap of where payers disagree needs no witness, and witnesses are most of the
    search's time (each is sharpened and shrunk by the reference engine)."""
    fixed = {k: v for k, v in (("service", service), ("indications", [indication] if indication else None),
                               ("line_of_business", lines)) if v}
    loaded = compared(loaded, payers)
    program = ir.Program(tuple(p for p in loaded.program.policies if p.id in payers))
    task = progress.add_task("generating patients", total=examples) if progress else None
    people = generate(loaded, payers, fixed, examples, seed, (lambda: progress.advance(task)) if progress else None)
    outcomes = FastBackend(program, loaded.vocab).decide([p.facts for p in people])
    per_patient = patterns(program, payers, outcomes)
    result = Result(tuple(payers), service, indication, len(people), seed, sum(1 for f in per_patient if f), [],
                    lines=lines)
    counts: Counter = Counter()
    smallest: dict[Pattern, Patient] = {}
    for patient, found in zip(people, per_patient):
        for pat in found:
            counts[pat] += 1
            result.by_pair[(pat.a, pat.b)] += 1
            result.by_indication[(pat.a, pat.b, "+".join(patient.facts["indications"]))] += 1
            if pat not in smallest or len(patient.facts) < len(smallest[pat].facts):
                smallest[pat] = patient
    if witnesses:
        result.classes = _ordered(_witnesses(loaded, {p: (smallest[p].facts, counts[p]) for p in counts}, "search",
                                             progress))
    return result


ORDER = "criteria differences first, then scope effects; in each, by patients found (most first), then by payers and rules"


def _ordered(classes: list[DisagreementClass]) -> list[DisagreementClass]:
    """Classes in the documented ORDER."""
    return sorted(classes, key=lambda c: (GROUPS.index(c.group), -c.count, c.pattern.a, c.pattern.b,
                                          str(c.pattern.rule_a), str(c.pattern.rule_b)))


def exhaustive(loaded, payers: list[str], service: str | None = None, indication: str | None = None,
               progress=None, lines: str | None = None) -> dict[Pattern, dict]:
    """Every class that exists within the finite abstraction, each with a solver witness checked
    by the reference engine; a class not returned has been proven empty."""
    loaded = compared(loaded, payers)
    program = loaded.program
    enc = Encoding(program, loaded.vocab)
    solver = z3.Solver()
    solver.add(*enc.domain())
    for concept, value in (("service", service), ("indications", indication), ("line_of_business", lines)):
        if value:
            solver.add(enc.fix(concept, value))
    reasoner = Reasoner(loaded)
    pairs = list(itertools.combinations(payers, 2))
    task = progress.add_task("proving classes", total=len(pairs)) if progress else None
    found: dict[Pattern, dict] = {}
    for a, b in pairs:
        pa, pb = program.policy(a), program.policy(b)
        for (ra, fa), (rb, fb) in itertools.product(enc.decides(pa).items(), enc.decides(pb).items()):
            if outcome_of(pa, ra) == outcome_of(pb, rb) or solver.check(fa, fb) != z3.sat:
                continue
            facts = enc.facts(solver.model())
            pattern = Pattern(a, ra, b, rb)
            if not _Witness(reasoner, pattern).keeps(validate(facts, loaded.vocab, "solver witness")):
                raise AssertionError(f"solver and engine disagree on {pattern}: {facts}")
            found[pattern] = facts
        if progress:
            progress.advance(task)
    return found


def _witnesses(loaded, by_pattern: dict[Pattern, tuple[dict, int]], how: str, progress) -> list[DisagreementClass]:
    reasoner = Reasoner(loaded)
    task = progress.add_task("shrinking witnesses", total=len(by_pattern)) if progress else None
    out = []
    for pattern, (facts, count) in by_pattern.items():  # ordered by the caller, see _ordered
        # no compared rule reads the date (see `compared`), and kept it would pick versions by date
        # wherever the witness is decided again (check, the member page)
        facts = {k: v for k, v in facts.items() if k != "request_date"}
        cls = witness_class(reasoner, pattern, facts, count)
        cls.found_by.add(how)
        out.append(cls)
        if progress:
            progress.advance(task)
    return out


def complete(loaded, result: Result, progress=None) -> Result:
    """Adds the exhaustive classes: those the search found are marked, the missed ones added."""
    proven = exhaustive(loaded, list(result.payers), result.service, result.indication, progress, result.lines)
    known = {c.pattern: c for c in result.classes}
    unproven = [p for p in known if p not in proven]
    if unproven:  # the abstraction is exact, so this would be a bug in one of the encodings
        raise AssertionError(f"search found classes the solver calls impossible: {unproven}")
    for pattern in known:
        known[pattern].found_by.add("exhaustive")
    missed = {p: (facts, 0) for p, facts in proven.items() if p not in known}
    result.classes = _ordered(result.classes + _witnesses(compared(loaded, list(result.payers)), missed, "exhaustive", progress))
    result.exhaustive = True
    return result


# ---------------------------------------------------------------- summaries
@dataclass(frozen=True)
class Theme:
    """One payer denying on some criteria where others cover: classes of several pairs, merged."""

    policy: str
    criteria: tuple[Criterion, ...]
    others: tuple[tuple[str, tuple[Criterion, ...]], ...]  # covering payer, its contrasting criteria
    count: int
    reason: str = ""  # the denying side's reason in one line (explain.reading)


def themes(result: Result) -> list[Theme]:
    """Classes whose denying side fails on the same criteria, gathered across covering payers,
    e.g. "cam70141 needs trial relief > 50 %, where cmm210, geisinger, ... accept ≥ 50 %"."""
    groups: dict[tuple, list] = {}
    for cls in result.classes:
        for deny, cover in ((cls.a, cls.b), (cls.b, cls.a)):
            if deny.decision.startswith("denied") and cover.decision == "covered" and deny.criteria:
                key = (deny.policy, tuple(sorted({c.node for c in deny.criteria})))
                groups.setdefault(key, []).append((deny, cover, cls.count))
    out = []
    for (policy, _), entries in groups.items():
        covering = {}  # one entry per covering payer (the first class met, which has the most patients)
        for _, cover, _ in entries:
            covering.setdefault(cover.policy, cover.criteria)
        out.append(Theme(policy, entries[0][0].criteria, tuple(sorted(covering.items(), key=lambda kv: kv[0])),
                         sum(n for *_, n in entries), entries[0][0].reason))
    return sorted(out, key=lambda t: (-len(t.others), -t.count, t.policy))


SCHEMA = "reasoner.diff/2"


def witness_files(result: Result, vocab) -> dict[str, dict]:
    """Each class's witness as a patient file (records nested), named by its number and payers."""
    out = {}
    for i, c in enumerate(result.classes, 1):
        name = f"{i:03d}-{c.pattern.a}-vs-{c.pattern.b}"
        description = (f"Witness of class {i}: {c.a.policy} {c.a.decision} ({c.a.rule}), "
                       f"{c.b.policy} {c.b.decision} ({c.b.rule}).")
        out[name] = {"id": name, "description": description, **nested(c.witness, vocab)}
    return out


def _criterion_json(c: Criterion) -> dict:
    return {"policy": c.policy, "node": c.node, "concept": c.concept, "test": c.test, "label": c.label, "holds": c.holds,
            "citation": cite_json(c.cite)}


def _side_json(s: Side) -> dict:
    return {"policy": s.policy, "decision": s.decision, "rule": s.rule, "rule_label": s.rule_label,
            "citation": cite_json(s.cite), "reason": s.reason, "criteria": [_criterion_json(c) for c in s.criteria],
            "steps": [step_json(x) for x in s.steps]}


def as_json(result: Result) -> dict:
    return {
        "schema": SCHEMA, "payers": list(result.payers), "service": result.service,
        "indication": result.indication, "line_of_business": result.lines, "examples": result.examples,
        "seed": result.seed, "disagreeing_patients": result.disagreeing, "exhaustive": result.exhaustive,
        "named": result.named, "order": ORDER,
        "classes": [{"number": i, "group": c.group, "a": _side_json(c.a), "b": _side_json(c.b), "patients": c.count,
                     "found_by": sorted(c.found_by),
                     "witness": {k: json_value(v) for k, v in c.witness.items()}}
                    for i, c in enumerate(result.classes, 1)],
        "pairs": [{"a": a, "b": b, "patients": n} for (a, b), n in sorted(result.by_pair.items())],
        "by_indication": [{"a": a, "b": b, "indication": i, "patients": n}
                          for (a, b, i), n in sorted(result.by_indication.items())],
        "themes": [{"policy": t.policy, "reason": t.reason, "fails": [_criterion_json(c) for c in t.criteria],
                    "covered_by": [{"policy": p, "criteria": [_criterion_json(c) for c in crit]} for p, crit in t.others],
                    "patients": t.count} for t in themes(result)],
    }
