"""Checking and lowering: names resolved, units converted, warnings for dead text."""
from decimal import Decimal

import pytest

from reasoner.language import ir
from reasoner.language.check import check_policy
from reasoner.language.parse import parse_text

HEADER = 'policy p { payer "P" document "D1" "T" version "v" lines commercial, medicare cite "Lines" }\n'


def lower(text, vocab):
    policy, problems = check_policy(parse_text(HEADER + text, "x.policy"), vocab)
    return policy, [str(p) for p in problems]


def test_units_convert_to_the_concepts_unit(loaded):
    policy, problems = lower('rule r "L" cite "s" { if months_since_brain_injury >= 1 year decide covered }', loaded.vocab)
    assert problems == []
    test = policy.rules[1].conditions[0].test
    assert test == ir.Compare("months_since_brain_injury", ">=", Decimal(12), "months")


def test_implicit_lines_rule_comes_first(loaded):
    policy, _ = lower('rule r "L" cite "s" { decide covered }', loaded.vocab)
    first = policy.rules[0]
    assert first.name == "outside_lines" and first.outcome.kind == "not_addressed"
    assert first.cite == ir.Citation("D1", "Lines")


def test_named_criteria_are_shared_nodes(loaded):
    policy, problems = lower('''define d "D" cite "s": opioid_addiction
rule a "A" cite "s" { if d decide covered }
rule b "B" cite "s" { if d decide denied excluded }''', loaded.vocab)
    assert problems == []
    assert policy.rules[1].conditions[0] is policy.rules[2].conditions[0]
    assert policy.rules[1].conditions[0].name == "d"


@pytest.mark.parametrize("op, n, expected", [
    (">=", 2, "at least 2"), (">", 2, "at least 3"), ("<", 2, "not: at least 2"), ("<=", 2, "not: at least 3"),
])
def test_counts_become_at_least_or_its_negation(loaded, op, n, expected):
    policy, problems = lower(f'rule r "L" cite "s" {{ if count analgesic_classes_failed in {{nsaid, opioid, steroid, aspirin}} {op} {n} decide covered }}', loaded.vocab)
    assert problems == []
    assert policy.rules[1].conditions[0].label.startswith(expected)


def test_unused_define_and_codes_are_warnings(loaded):
    _, problems = lower('''codes c "C" cite "s" = {"A4305"}
define d "D" cite "s": opioid_addiction
rule r "L" cite "s" { decide covered }''', loaded.vocab)
    assert problems == [
        "x.policy:3:1: warning: criterion 'd' is defined but never used.",
        "x.policy:2:1: warning: code set 'c' is declared but never used.",
    ]


def test_unreachable_rule_is_a_warning(loaded):
    _, problems = lower('''rule a "A" cite "s" { for service implant decide covered }
rule b "B" cite "s" { for service implant for indication cancer_pain if opioid_addiction decide covered }''', loaded.vocab)
    assert problems == ["x.policy:3:1: warning: rule 'b' can never decide: the earlier rule 'a' has no conditions and a scope that includes this one."]


def test_unknown_concept_suggests_the_nearest(loaded):
    _, problems = lower('rule r "L" cite "s" { if trial_pain_releif >= 50 % decide covered }', loaded.vocab)
    assert problems == ["x.policy:2:26: error: unknown concept 'trial_pain_releif'. Did you mean 'trial_pain_relief'?"]


def test_every_bundled_policy_is_clean(loaded):
    assert [str(w) for w in loaded.warnings] == []
