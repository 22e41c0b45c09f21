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
    policy, problems = lower('''define d "D" cite "s": active_infection
rule a "A" cite "s" { if d decide covered }
rule b "B" cite "s" { if d decide denied excluded }''', loaded.vocab)
    assert problems == []
    assert policy.rules[1].conditions[0] is policy.rules[2].conditions[0]
    assert policy.rules[1].conditions[0].name == "d"


@pytest.mark.parametrize("op, n, expected", [
    (">=", 2, "at least 2"), (">", 2, "at least 3"), ("<", 2, "not: at least 2"), ("<=", 2, "not: at least 3"),
])
def test_counts_become_at_least_or_its_negation(loaded, op, n, expected):
    policy, problems = lower(f'rule r "L" cite "s" {{ if count diagnoses in {{crps, cancer, stroke, headache}} {op} {n} decide covered }}', loaded.vocab)
    assert problems == []
    assert policy.rules[1].conditions[0].label.startswith(expected)


def test_unused_define_and_codes_are_warnings(loaded):
    _, problems = lower('''codes c "C" cite "s" = {"A4305"}
define d "D" cite "s": active_infection
rule r "L" cite "s" { decide covered }''', loaded.vocab)
    assert problems == [
        "x.policy:3:1: warning: criterion 'd' is defined but never used.",
        "x.policy:2:1: warning: code set 'c' is declared but never used.",
    ]


def test_unreachable_rule_is_a_warning(loaded):
    _, problems = lower('''rule a "A" cite "s" { for service implant decide covered }
rule b "B" cite "s" { for service implant for indication cancer_pain if active_infection decide covered }''', loaded.vocab)
    assert problems == ["x.policy:3:1: warning: rule 'b' can never decide: the earlier rule 'a' has no conditions and a scope that includes this one."]


def test_unknown_concept_suggests_the_nearest(loaded):
    _, problems = lower('rule r "L" cite "s" { if pain_trial_releif >= 50 % decide covered }', loaded.vocab)
    assert problems == ["x.policy:2:26: error: unknown concept 'pain_trial_releif'. Did you mean 'pain_trial_relief'?"]


def test_every_bundled_policy_is_clean(loaded):
    assert [str(w) for w in loaded.warnings] == []


def _leaves(node):
    return [n.test for n in ir.walk(node) if isinstance(n.test, ir.LEAVES)]


def test_record_fields_are_read_by_their_dotted_names(loaded):
    policy, problems = lower('rule r "L" cite "s" { if medications.baclofen.weeks >= 6 weeks decide covered }', loaded.vocab)
    assert problems == []
    assert policy.rules[1].conditions[0].test == ir.Compare("medications.baclofen.weeks", ">=", Decimal(6), "weeks")


def test_a_record_named_alone_is_refused_with_an_example(loaded):
    _, problems = lower('rule r "L" cite "s" { if medications documented decide covered }', loaded.vocab)
    assert len(problems) == 1 and "is a record; name one of its fields (e.g. medications.nsaid.outcome)" in problems[0]


def test_record_quantifiers_lower_to_at_least_over_each_key(loaded):
    policy, problems = lower('rule r "L" cite "s" { if at_least 2 of medications in {nsaid, steroid, aspirin} '
                             'where outcome in {failed} decide covered }', loaded.vocab)
    assert problems == []
    test = policy.rules[1].conditions[0].test
    assert isinstance(test, ir.AtLeast) and test.n == 2
    assert [c.test for c in test.children] == [ir.OneOf(f"medications.{k}.outcome", ("failed",))
                                               for k in ("nsaid", "steroid", "aspirin")]
    policy, problems = lower('rule r "L" cite "s" { if every medications in {nsaid, steroid} where all { outcome in {failed} '
                             'weeks >= 4 weeks } decide covered }', loaded.vocab)
    assert problems == [] and isinstance(policy.rules[1].conditions[0].test, ir.All)
    assert ir.Compare("medications.steroid.weeks", ">=", Decimal(4), "weeks") in _leaves(policy.rules[1].conditions[0])


def test_record_keys_are_checked(loaded):
    _, problems = lower('rule r "L" cite "s" { if at_least 1 of medications in {nsiad} where outcome in {failed} '
                        'decide covered }', loaded.vocab)
    assert any("'nsiad' is not a key of record 'medications'" in p and "Did you mean 'nsaid'?" in p for p in problems)


def test_a_subset_names_values_of_its_domain(loaded):
    policy, problems = lower('rule r "L" cite "s" { if pain_trial_drugs in opioids decide covered }', loaded.vocab)
    assert problems == []
    assert policy.rules[1].conditions[0].test == ir.OneOf("pain_trial_drugs", loaded.vocab.subsets["opioids"][1])
    _, problems = lower('rule r "L" cite "s" { if planned_route in opioids decide covered }', loaded.vocab)
    assert any("subset 'opioids' holds values of drug_kind" in p for p in problems)


def test_same_value_of_two_concepts_lowers_to_each_value(loaded):
    policy, problems = lower('rule r "L" cite "s" { if pain_trial_route == planned_route decide covered }', loaded.vocab)
    assert problems == []
    test = policy.rules[1].conditions[0].test
    assert isinstance(test, ir.Any) and len(test.children) == len(loaded.vocab.domains["route_kind"])
    _, problems = lower('rule r "L" cite "s" { if pain_trial_route == planned_drugs decide covered }', loaded.vocab)
    assert any("do not hold values of the same kind and domain" in p for p in problems)
    _, problems = lower('rule r "L" cite "s" { if pain_trial_route > planned_route decide covered }', loaded.vocab)
    assert any("can only be compared with '=='" in p for p in problems)


def test_is_false_means_documented_and_false(loaded):
    policy, problems = lower('rule r "L" cite "s" { if active_infection is false decide covered }', loaded.vocab)
    assert problems == []
    assert _leaves(policy.rules[1].conditions[0]) == [ir.Documented("active_infection"), ir.IsTrue("active_infection")]


def test_dates_compare_as_days(loaded):
    import datetime as dt
    policy, problems = lower('rule r "L" cite "s" { if request_date < 2019-04-01 decide covered }', loaded.vocab)
    assert problems == []
    assert policy.rules[1].conditions[0].test == ir.Compare("request_date", "<", Decimal(dt.date(2019, 4, 1).toordinal()), "date")
    assert policy.rules[1].conditions[0].label == "request_date < 2019-04-01"


def test_every_listed_in_a_table_looks_each_value_up(loaded):
    policy, problems = lower('rule r "L" cite "s" { if every planned_drugs listed in fda_label with route = planned_route, '
                             'indication = indications decide covered }', loaded.vocab)
    assert problems == []
    node = policy.rules[1].conditions[0]
    leaves = _leaves(node)
    assert ir.Documented("planned_drugs") in leaves
    assert ir.OneOf("planned_route", ("intrathecal",)) in leaves
    cites = {n.cite.document for n in ir.walk(node)}
    assert "FDA prescribing information (Drugs@FDA)" in cites  # each row cites its label


def test_table_bindings_are_checked(loaded):
    _, problems = lower('rule r "L" cite "s" { if every planned_drugs listed in fda_label with dose = planned_route '
                        'decide covered }', loaded.vocab)
    assert any("'dose' is not another column of table 'fda_label'" in p for p in problems)
    _, problems = lower('rule r "L" cite "s" { if every planned_drugs listed in fda_labels decide covered }', loaded.vocab)
    assert any("unknown table 'fda_labels'. Did you mean 'fda_label'?" in p for p in problems)


def test_lines_all_assumed_covers_every_line_without_an_outside_rule(loaded):
    text = 'policy p { payer "P" document "D1" "T" version "v" lines all assumed cite "none named" }\n' \
           'rule r "L" cite "s" { decide covered }'
    policy, problems = check_policy(parse_text(text, "x.policy"), loaded.vocab)
    assert problems == []
    assert set(policy.lines) == set(loaded.vocab.domains["line_kind"]) and policy.lines_assumed
    assert [r.name for r in policy.rules] == ["r"]


def test_a_threshold_beyond_float_precision_is_refused(loaded):
    _, problems = lower('rule r "L" cite "s" { if pain_trial_relief > 49.999999999999999999 % decide covered }', loaded.vocab)
    assert problems == ["x.policy:2:26: error: the threshold 49.999999999999999999 has 20 significant digits; "
                        "at most 15 can be compared exactly."]
    _, problems = lower('rule r "L" cite "s" { if age > 1e1000000 years decide covered }', loaded.vocab)
    assert len(problems) == 1 and "outside the magnitudes" in problems[0]


def test_a_define_that_is_another_define(loaded):
    policy, problems = lower('''define inner "I" cite "s": active_infection
define outer "O" cite "s": inner
rule r "L" cite "s" { if outer decide covered }''', loaded.vocab)
    assert problems == []
    assert policy.rules[1].conditions[0].test.children[0].name == "inner"


def test_outside_policy_needs_its_reason(loaded):
    _, problems = lower('rule r "L" cite "s" { decide not_addressed outside_policy }', loaded.vocab)
    assert problems == ["x.policy:2:30: error: 'not_addressed outside_policy' must say why the request is outside the policy, "
                        "e.g. not_addressed outside_policy \"standard of care\"."]


def test_a_condition_listed_twice_is_an_error_in_at_least_and_a_warning_elsewhere(loaded):
    _, problems = lower('''define d "D" cite "s": active_infection
rule a "A" cite "s" { if any { d  active_infection  age > 20 years  age > 240 months } decide covered }''', loaded.vocab)
    assert problems == [
        "x.policy:3:35: warning: items 1 and 2 of this 'any' block are the same condition; the second adds nothing.",
        "x.policy:3:69: warning: items 3 and 4 of this 'any' block are the same condition; the second adds nothing.",
    ]
    _, problems = lower('rule a "A" cite "s" { if at_least 1 of { active_infection  active_infection } decide covered }', loaded.vocab)
    assert [p.split(": ")[1] for p in problems] == ["error"]


def test_a_decision_may_carry_a_note(loaded):
    """`decide covered "note"` is not dead text: the note is the outcome's detail, which the decision
    table, why, JSON and the matrix all print (robustness L2 asked whether it was ignored)."""
    policy, problems = lower('rule a "A" cite "s" { decide covered "with the trial report on file" }', loaded.vocab)
    assert problems == [] and policy.rules[1].outcome.detail == "with the trial report on file"
