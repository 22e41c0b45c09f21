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
TRIAL_RESULTS = ("pain_trial_", "tone_trial_")  # concepts describing the outcome of a trial already done

IMPLICIT = ("outside_lines", "outside_period")  # the header's rules (line of business, effective period)


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
    """Just below, at and just above each threshold, within the range (fine steps included; whole
    numbers only for a concept that takes whole values)."""
    values = set()
    for t in points:
        for d in (-step(c), -Decimal("0.1"), 0, Decimal("0.1"), step(c)):
            v = t + d
            if c.whole and v != v.to_integral_value():
                continue
            if c.low <= v <= c.high:
                values.add(int(v) if v == v.to_integral_value() else float(v))
    return sorted(values)


def _number(c: Concept, points: set[Decimal]) -> st.SearchStrategy:
    whole = st.integers(int(c.low), int(c.high)) if c.whole or c.high - c.low >= 10 else \
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
    if "pt_visits" in facts and "pt_weeks" in facts:
        facts["pt_visits"] = min(facts["pt_visits"], int(facts["pt_weeks"] * 14))
    if "pt_weeks_twice_weekly" in facts:
        if "pt_weeks" in facts:
            facts["pt_weeks_twice_weekly"] = min(facts["pt_weeks_twice_weekly"], int(facts["pt_weeks"]))
        if "pt_visits" in facts:
            most = int(loaded.vocab.concepts["pt_visits"].high)
            facts["pt_visits"] = min(max(facts["pt_visits"], 2 * facts["pt_weeks_twice_weekly"]), most)
    return facts


def _request(draw, loaded: Loaded, concept: str, values) -> object:
    """One value of a request concept; for the (set) indications, usually one and sometimes two."""
    if loaded.vocab.concepts[concept].kind != "set":
        return draw(st.sampled_from(values))
    first = draw(st.sampled_from(values))
    if draw(st.integers(0, 5)) == 0:
        return sorted({first, draw(st.sampled_from(_request_values(loaded, concept)))})
    return [first]


@st.composite
def patients(draw, loaded: Loaded, documented: float = 0.6, fixed: dict | None = None) -> Patient:
    """A valid patient; `fixed` pins concepts (e.g. {"service": "implant"})."""
    points = thresholds(loaded.program)
    facts = {c: _request(draw, loaded, c, _request_values(loaded, c)) for c in REQUEST}
    facts.update(fixed or {})
    for name, c in loaded.vocab.concepts.items():
        if name in facts:
            continue
        if facts["service"] == "trial" and name.startswith(TRIAL_RESULTS):
            continue
        if draw(st.integers(0, 99)) < documented * 100:  # an integer draw costs Hypothesis far less than a float
            facts[name] = draw(value_strategy(c, loaded, points.get(name, set())))
    return validate(_realistic(facts, loaded), loaded.vocab, "<generated>")


def _scoped(rule: ir.Rule, request: dict) -> bool:
    """The rule's scope admits the request (for indications, one of the request's values)."""
    def admits(concept, value) -> bool:
        scope = rule.scope_values(concept)
        values = value if isinstance(value, (list, tuple)) else [value]
        return scope is None or any(v in scope for v in values)
    return all(admits(c, v) for c, v in request.items())


def _plain(value):
    return list(value) if isinstance(value, tuple) else value


def _request_says(node: ir.Node, facts: dict, want: bool) -> bool:
    """False when `node` cannot come out as `want` because of the request alone (which is never
    changed): e.g. an alternative "service in {trial}" on an implant request."""
    test = node.test
    if isinstance(test, ir.OneOf) and test.concept in REQUEST:
        value = facts.get(test.concept)
        values = value if isinstance(value, (list, tuple)) else [value]
        return any(v in test.values for v in values) == want
    if isinstance(test, ir.Not):
        return _request_says(test.child, facts, not want)
    if isinstance(test, ir.All) and want or isinstance(test, ir.Any) and not want:
        return all(_request_says(k, facts, want) for k in ir.children(node))
    return True


def _open(kids, facts: dict, want: bool) -> list:
    """The alternatives worth drawing from: those already as wanted (nothing to change, nothing
    undone), else those the request leaves open (all of them, if none is)."""
    done = [k for k in kids if _guess(k, facts) == want]
    return done or [k for k in kids if _request_says(k, facts, want)] or list(kids)


_CMP = {"<": lambda a, b: a < b, "<=": lambda a, b: a <= b, "==": lambda a, b: a == b,
        ">=": lambda a, b: a >= b, ">": lambda a, b: a > b}


def _guess(node: ir.Node, facts: dict) -> bool:
    """Whether `node` holds on `facts` - a guide for drawing patients only: every decision about a
    generated patient is the engines' own, so a wrong guess here costs search power, never truth."""
    test = node.test
    value = facts.get(getattr(test, "concept", None))
    members = set(value) if isinstance(value, (list, tuple)) else {value}
    match test:
        case ir.IsTrue():
            return value is True
        case ir.Compare(_, op, bound, unit):
            return isinstance(value, (int, float)) and unit != "date" and _CMP[op](Decimal(str(value)), bound)
        case ir.OneOf(_, values):
            return value is not None and bool(members & set(values))
        case ir.HasAll(_, values):
            return set(values) <= members
        case ir.CountAtLeast(_, values, n):
            return len(members & set(values)) >= n
        case ir.Documented():
            return value is not None
        case ir.Not(child):
            return not _guess(child, facts)
        case ir.All(kids):
            return all(_guess(k, facts) for k in kids)
        case ir.Any(kids):
            return any(_guess(k, facts) for k in kids)
        case ir.AtLeast(n, kids):
            return sum(_guess(k, facts) for k in kids) >= n
    return False


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
            chosen = [draw(st.sampled_from(_open(kids, facts, want)))]
        case ir.AtLeast(n):
            k = n if want else len(kids) - n + 1
            chosen = draw(st.permutations(_open(kids, facts, want)))[:k]
        case _:
            c = loaded.vocab.concepts[node.test.concept]
            if c.name in REQUEST:  # the request is chosen first and never changed to suit a criterion
                return
            if isinstance(node.test, ir.Documented) and want:  # any value will do: let a sibling choose it
                if c.name not in facts:
                    facts[c.name] = _plain(leaf_values(c, node.test, True, None, loaded.vocab)[0])
                return
            if not want and c.name in touched:
                return
            touched.add(c.name)
            if want:
                met.append(node)
            removable = not want and c.name not in facts  # a documented fact is changed, not dropped
            options = leaf_values(c, node.test, want, facts.get(c.name), loaded.vocab) + ([None] if removable else [])
            if options:
                value = draw(st.sampled_from(options))
                facts.pop(c.name, None) if value is None else facts.__setitem__(c.name, list(value) if isinstance(value, tuple) else value)
            return
    for kid in chosen:
        _satisfy(draw, kid, want, facts, loaded, touched, met)


@st.composite
def near_coverage(draw, loaded: Loaded, payers: list[str], fixed: dict | None = None, noise: int = 1) -> Patient:
    """A patient on the edge of some chosen payer's covering (or referring) rule: half the time also
    meeting up to three other payers' covering rules for the same request, and a third of the time
    another rule with conditions of its own (a contraindication, an age limit, ...), so that rules of
    different payers meet on one patient; then, half the time, one criterion of the chosen rule just
    fails (a near miss)."""
    fixed = fixed or {}
    chosen = [p for p in loaded.program.policies if p.id in payers]
    rules = [(p, r) for p in chosen for r in p.rules if r.outcome.kind in ("covered", "review") and _scoped(r, fixed)]
    if not rules:
        return draw(patients(loaded, fixed=fixed))
    policy, rule = draw(st.sampled_from(rules))
    own = {"line_of_business": policy.lines}  # a line the policy serves, unless the rule names one
    facts = {c: _request(draw, loaded, c, rule.scope_values(c) or own.get(c) or _request_values(loaded, c)) for c in REQUEST}
    facts.update(fixed)
    targets = [rule]
    request = {c: facts[c] for c in ("service", "indications")}
    first = dict(facts)
    others = [r for p in chosen for r in p.rules if r.conditions and r is not rule and _scoped(r, request)
              and r.name not in IMPLICIT]  # rules that can meet the first one on this request
    covering = [r for p in chosen if p is not policy for r in p.rules
                if r.outcome.kind == "covered" and r.conditions and _scoped(r, request)]
    if covering and draw(st.booleans()):  # half the time, meet other payers' covering rules too, so that
        targets += draw(st.lists(st.sampled_from(covering), min_size=1, max_size=3, unique=True))  # a near miss
        #                                                            separates payers on one criterion
    if others and draw(st.integers(0, 2)) == 0:
        targets.append(draw(st.sampled_from(others)))
    met: list[ir.Node] = []
    for target in targets[1:] + targets[:1]:  # the chosen rule last, so that its facts win
        touched: set[str] = set()
        for node in target.conditions:
            _satisfy(draw, node, True, facts, loaded, touched, met if target is rule else [])
        for node in target.exceptions:
            _satisfy(draw, node, False, facts, loaded, touched, met if target is rule else [])
    facts.update(fixed)  # a rule may test the request in its conditions too
    for concept in REQUEST:  # ... but never leave it without one: a patient file always states it
        if not facts.get(concept):
            facts[concept] = request[concept] if concept in request else first[concept]
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
