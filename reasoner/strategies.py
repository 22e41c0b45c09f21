"""Hypothesis strategies for patients, generated from the vocabulary and the compiled policies.

Numbers are drawn mostly at and around every threshold any policy compares them with (just below,
at, just above), since that is where payers disagree; the rest of the time anywhere in the
concept's range. Every patient has a service, indication and line of business from the values the
policies name; each other concept is documented or not. Realistic constraints: a request for a
trial carries no trial results, and a number is whole when the concept's range is wide.
"""
from __future__ import annotations

import datetime as dt
from decimal import Decimal

from hypothesis import strategies as st

from . import ir
from .check import SCOPE_CONCEPTS
from .load import Loaded
from .patient import Patient, validate
from .vocab import Concept

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


def _step(c: Concept) -> Decimal:
    return Decimal(1) if c.high - c.low >= 10 else Decimal("0.5")


def near(c: Concept, points: set[Decimal]) -> list:
    """Just below, at and just above each threshold, within the range (fine steps included)."""
    values = set()
    for t in points:
        for d in (-_step(c), -Decimal("0.1"), 0, Decimal("0.1"), _step(c)):
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
    return [v for v in loaded.vocab.values_of(concept) if v in used] or list(loaded.vocab.values_of(concept))


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
    return validate(facts, loaded.vocab, "<generated>")
