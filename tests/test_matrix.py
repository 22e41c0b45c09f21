"""The criteria matrix is generated from the IR and shows every criterion of every payer."""
import json

from typer.testing import CliRunner

from reasoner.language import ir
from reasoner.cli import EXIT_OK, app
from reasoner.results.matrix import OUTCOMES, matrix


def _criteria(node: ir.Node):
    """The criteria a reader sees: leaves, and constructs shown whole (table lookups, ==)."""
    if node.macro or isinstance(node.test, ir.LEAVES):
        yield node
        return
    for child in ir.children(node):
        yield from _criteria(child)


def test_every_criterion_of_every_rule_appears(loaded):
    columns = {c.policy: c for c in matrix(loaded.program, None, None)}
    for policy in loaded.program.policies:
        assert columns[policy.id].rules == policy.rules  # every rule, in decision order
        shown = {(q.rule, q.concept) for q in columns[policy.id].requirements}
        guards = {(q.rule, q.concept) for q in columns[policy.id].requirements}
        for rule in policy.rules:
            for root in rule.conditions + rule.exceptions:
                for node in _criteria(root):
                    concept = next(n.test.concept for n in ir.walk(node) if isinstance(n.test, ir.LEAVES))
                    assert (rule.name, concept) in shown | guards, (policy.id, rule.name, node.label)


def test_table_lookups_show_as_one_criterion(loaded):
    (col,) = [c for c in matrix(loaded.program, "implant", "nonmalignant_pain") if c.policy == "cam70141"]
    texts = [q.text for q in col.requirements if q.rule == "pain_implant" and q.concept == "planned_drugs"]
    assert texts == ["listed in fda_label with route = planned_route, indication = indications"]


def test_cells_carry_thresholds_and_modes(loaded):
    (col,) = [c for c in matrix(loaded.program, "implant", "cancer_pain") if c.policy == "geisinger"]
    reqs = {(q.concept, q.text, q.mode) for q in col.requirements}
    assert ("life_expectancy", "> 3 months", "required") in reqs
    assert ("pain_trial_relief", "≥ 50 %", "required") in reqs
    assert ("implant_contraindicated", "yes", "absent") in reqs
    assert [r.name for r in col.rules] == ["outside_period", "other_route", "medicare_ncd", "malignant_implant",
                                           "medicaid_case_by_case", "pump_criteria_not_met"]
    (col,) = [c for c in matrix(loaded.program, "implant", "nonmalignant_pain") if c.policy == "geisinger"]
    contraindications = {q.concept: q.grants for q in col.requirements if q.rule == "contraindicated"}
    assert contraindications == dict.fromkeys(
        ["spinal_stenosis_obstruction", "substance_use_disorders.opioid.status", "active_infection", "diagnoses"], False)


def test_denials_show_what_triggers_them(loaded):
    (col,) = [c for c in matrix(loaded.program, "implant", "chemotherapy") if c.policy == "qualchoice"]
    other_site = [q for q in col.requirements if q.rule == "chemotherapy_other_site"]
    assert [(q.concept, q.text, q.mode, q.grants) for q in other_site] == [("chemo_site", "in {other}", "required", False)]


def test_filters_select_rules_by_scope(loaded):
    (col,) = [c for c in matrix(loaded.program, "elastomeric_pump", None) if c.policy == "geisinger"]
    assert [r.name for r in col.rules] == ["outside_period", "medicare_elastomeric", "elastomeric", "medicaid_case_by_case",
                                           "elastomeric_not_met"]


def test_matrix_cli_json(at_root):
    result = CliRunner().invoke(app, ["matrix", "--service", "trial", "--indication", "spasticity", "--json"])
    assert result.exit_code == EXIT_OK, result.output
    data = json.loads(result.output)
    assert data["schema"] == "reasoner.matrix/1"
    (g,) = [p for p in data["payers"] if p["policy"] == "geisinger"]
    assert any(q["concept"] == "medications.tizanidine.outcome" and q["mode"] == "option" for q in g["requirements"])


def test_matrix_cli_table(at_root):
    result = CliRunner().invoke(app, ["matrix", "--service", "implant", "--indication", "nonmalignant_pain"], env={"COLUMNS": "200"})
    assert result.exit_code == EXIT_OK
    assert "pain_trial_relief" in result.output and "≥ 50 %" in result.output
