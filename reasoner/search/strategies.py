"""Hypothesis strategies for patients, generated from the vocabulary and the compiled policies.

Numbers are drawn mostly at and around every threshold any policy compares them with (just below,
at, just above), since that is where payers disagree; the rest of the time anywhere in the
concept's range. Every patient has a service, indication and line of business from the values the
policies name; each other concept is documented or not. Realistic constraints: a request for a
trial carries no trial results, past durations fit within the member's age, a course has no more
visits than its weeks allow, and a number is whole when the concept's range is wide.

`near_coverage` aims at the boundaries that matter most to cross-payer comparison: it builds a
patient who meets one payer's covering rule (choosing among its alternatives), with values at the
rule's own thresholds, then disturbs a few facts. Another payer with a slightly different criterion
then decides differently on exactly that patient.
"""
from __future__ import annotations

import datetime as dt
from decimal import Decimal

from hypothesis import strategies as st

from reasoner.language import ir
from reasoner.language.check import SCOPE_CONCEPTS
from reasoner.language.load import Loaded
from reasoner.io.patient import Patient, validate
from reasoner.results.repair import leaf_values, step
from reasoner.language.vocab import Concept

REQUEST = tuple(SCOPE_CONCEPTS.values())
TRIAL_RESULTS = "trial_"  # concepts describing the outcome of a trial already done


def thresholds(program: ir.Program) -> dict[str, set[Decimal]]:
    """concept -> every value some policy compares it with."""
    out: dict[str, set[Decimal]] = {}
    for policy in program.policies:
        for rule in policy.rules:
            for top in ir.rule_nodes(rule):
                for node in ir.walk(top):
                    if isinstance(node.test, ir.Compare):
                        out.setdefault(node.test.concept, set()).add(node.test.value)
    return out


def near(c: Concept, points: set[Decimal]) -> list:
    """Just below, at and just above each threshold, within the range (fine steps included)."""
    values = set()
    for t in points:
        for d in (-step(c), -Decimal("0.1"), 0, Decimal("0.1"), step(c)):
            v = t + d
            if c.low <= v <= c.high:
                values.add(int(v) if v == v.to_integral_value() else float(v))
    return sorted(values)


def _number(c: Concept, points: set[Decimal]) -> st.SearchStrategy:
    whole = st.integers(int(c.low), int(c.high)) if c.high - c.low >= 10 else \
        st.decimals(c.low, c.high, places=1).map(float)
    close = near(c, points)
    return st.one_of(st.sampled_from(close), whole) if close else whole


def value_strategy(c: Concept, loaded: Loaded, points: set[Decimal]) -> st.SearchStrategy:
    vocab = loaded.vocab
    match c.kind:
        case "boolean":
            return st.booleans()
        case "number":
            return _number(c, points)
        case "date":
            return st.dates(dt.date(2015, 1, 1), dt.date(2026, 12, 31))
        case "enum":
            return st.sampled_from(vocab.values_of(c.name))
        case "set":
            return st.lists(st.sampled_from(vocab.values_of(c.name)), unique=True, max_size=5)
        case "codes":
            return st.lists(st.sampled_from(_codes(loaded)), unique=True, max_size=3)
    raise AssertionError(c.kind)


def _codes(loaded: Loaded) -> list[str]:
    codes = {v for p in loaded.program.policies for r in p.rules for top in ir.rule_nodes(r)
             for n in ir.walk(top) if isinstance(n.test, ir.OneOf) and
             loaded.vocab.concepts[n.test.concept].kind == "codes" for v in n.test.values}
    return sorted(codes | {"62350"})


def _request_values(loaded: Loaded, concept: str) -> list[str]:
    """The values of a request concept that some rule is scoped to (others add little)."""
    used = {v for p in loaded.program.policies for r in p.rules for v in (r.scope_values(concept) or ())}
    if concept == "line_of_business":
        used |= {line for p in loaded.program.policies for line in p.lines}
    return [v for v in loaded.vocab.values_of(concept) if v in used] or list(loaded.vocab.values_of(concept))


PER_YEAR = {"years": 1, "months": 12, "weeks": 52}
FUTURE = frozenset({"life_expectancy"})  # a duration ahead of the member, not behind


def _realistic(facts: dict, loaded: Loaded) -> dict:
    """Durations that fit in the member's life so far, and no more visits than weeks allow."""
    age = facts.get("age")
    for name, value in list(facts.items()):
        c = loaded.vocab.concepts[name]
        if age is not None and c.kind == "number" and c.unit in PER_YEAR and name not in FUTURE | {"age"}:
            facts[name] = min(value, type(value)(age * PER_YEAR[c.unit]))
    if "pt_chiro_visits" in facts and "pt_chiro_weeks" in facts:
        facts["pt_chiro_visits"] = min(facts["pt_chiro_visits"], type(facts["pt_chiro_visits"])(facts["pt_chiro_weeks"] * 14))
    return facts


@st.composite
def patients(draw, loaded: Loaded, documented: float = 0.6, fixed: dict | None = None) -> Patient:
    """A valid patient; `fixed` pins concepts (e.g. {"service": "implant"})."""
    points = thresholds(loaded.program)
    facts = {c: draw(st.sampled_from(_request_values(loaded, c))) for c in REQUEST}
    facts.update(fixed or {})
    for name, c in loaded.vocab.concepts.items():
        if name in facts:
            continue
        if facts["service"] == "trial" and name.startswith(TRIAL_RESULTS):
            continue
        if draw(st.floats(0, 1)) < documented:
            facts[name] = draw(value_strategy(c, loaded, points.get(name, set())))
    return validate(_realistic(facts, loaded), loaded.vocab, "<generated>")


def _scoped(rule: ir.Rule, fixed: dict) -> bool:
    return all(rule.scope_values(c) is None or v in rule.scope_values(c) for c, v in fixed.items())


def _satisfy(draw, node: ir.Node, want: bool, facts: dict, loaded: Loaded, touched: set, met: list) -> None:
    """Set facts so that `node` holds (want) or fails, drawing among the ways to do it. A fact set
    earlier for another criterion (`touched`) is left alone where a criterion only needs to fail,
    so that, say, "DIRE above 13" and "no score out of range" can both be met. Leaves made to hold are
    appended to `met`: the criteria this patient meets, candidates for a near miss."""
    kids = ir.children(node)
    match node.test:
        case ir.Not(child):
            return _satisfy(draw, child, not want, facts, loaded, touched, met)
        case ir.All() if want:
            chosen = list(kids)
        case ir.Any() if not want:
            chosen = list(kids)
        case ir.All() | ir.Any():
            chosen = [draw(st.sampled_from(kids))]
        case ir.AtLeast(n):
            k = n if want else len(kids) - n + 1
            chosen = draw(st.permutations(kids))[:k]
        case _:
            c = loaded.vocab.concepts[node.test.concept]
            if not want and c.name in touched:
                return
            touched.add(c.name)
            if want:
                met.append(node)
            options = leaf_values(c, node.test, want, facts.get(c.name), loaded.vocab) + ([] if want else [None])
            if options:
                value = draw(st.sampled_from(options))
                facts.pop(c.name, None) if value is None else facts.__setitem__(c.name, list(value) if isinstance(value, tuple) else value)
            return
    for kid in chosen:
        _satisfy(draw, kid, want, facts, loaded, touched, met)


@st.composite
def near_coverage(draw, loaded: Loaded, payers: list[str], fixed: dict | None = None, noise: int = 1) -> Patient:
    """A patient on the edge of some chosen payer's covering (or referring) rule; a third of the time also
    meeting another rule with conditions of its own (a contraindication, an age limit, ...), so
    that rules of different payers meet on one patient."""
    fixed = fixed or {}
    chosen = [p for p in loaded.program.policies if p.id in payers]
    rules = [(p, r) for p in chosen for r in p.rules if r.outcome.kind in ("covered", "review") and _scoped(r, fixed)]
    if not rules:
        return draw(patients(loaded, fixed=fixed))
    policy, rule = draw(st.sampled_from(rules))
    own = {"line_of_business": policy.lines}  # a line the policy serves, unless the rule names one
    facts = {c: draw(st.sampled_from(rule.scope_values(c) or own.get(c) or _request_values(loaded, c))) for c in REQUEST}
    facts.update(fixed)
    targets = [rule]
    request = {c: facts[c] for c in ("service", "indication")}
    others = [r for p in chosen for r in p.rules if r.conditions and r is not rule and _scoped(r, request)
              and r.name != "outside_lines"]  # rules that can meet the first one on this request
    if others and draw(st.integers(0, 2)) == 0:
        targets.append(draw(st.sampled_from(others)))
    met: list[ir.Node] = []
    for i, target in enumerate(targets):
        touched: set[str] = set()
        for node in target.conditions:
            _satisfy(draw, node, True, facts, loaded, touched, met if i == 0 else [])
        for node in target.exceptions:
            _satisfy(draw, node, False, facts, loaded, touched, met if i == 0 else [])
    facts.update(fixed)  # a rule may test the request in its conditions too
    leaves = [n for n in met if n.test.concept not in REQUEST]  # criteria of the first rule it meets
    bounds = [n for n in leaves if isinstance(n.test, (ir.Compare, ir.CountAtLeast))]
    if leaves and draw(st.booleans()):  # a near miss: one criterion of the rule just fails,
        pool = bounds if bounds and draw(st.booleans()) else leaves  # often a numeric bound
        _satisfy(draw, draw(st.sampled_from(pool)), False, facts, loaded, set(), [])
    points = thresholds(loaded.program)
    mentioned = sorted({n.test.concept for p in chosen for r in p.rules for top in r.conditions + r.exceptions
                        for n in ir.walk(top) if isinstance(n.test, ir.LEAVES)} - set(REQUEST))
    for name in draw(st.lists(st.sampled_from(mentioned), max_size=noise, unique=True)) if mentioned else []:
        if draw(st.booleans()):
            facts[name] = draw(value_strategy(loaded.vocab.concepts[name], loaded, points.get(name, set())))
        else:
            facts.pop(name, None)
    if facts["service"] == "trial":
        facts = {k: v for k, v in facts.items() if not k.startswith(TRIAL_RESULTS)}
    return validate(_realistic(facts, loaded), loaded.vocab, "<generated>")
