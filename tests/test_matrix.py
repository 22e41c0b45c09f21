"""The criteria matrix is generated from the IR and shows every criterion of every payer."""
import json

from typer.testing import CliRunner

from reasoner import ir
from reasoner.cli import EXIT_OK, app
from reasoner.matrix import OUTCOMES, matrix


def test_every_leaf_of_every_granting_rule_appears(loaded):
    columns = {c.policy: c for c in matrix(loaded.program, None, None)}
    for policy in loaded.program.policies:
        shown = {(q.rule, q.cite) for q in columns[policy.id].requirements}
        for rule in policy.rules:
            if rule.outcome.kind not in OUTCOMES:
                continue
            for root in rule.conditions + rule.exceptions:
                for node in ir.walk(root):
                    if isinstance(node.test, ir.LEAVES):
                        assert (rule.name, node.cite) in shown, (policy.id, rule.name, node.label)


def test_cells_carry_thresholds_and_modes(loaded):
    (col,) = [c for c in matrix(loaded.program, "implant", "cancer_pain") if c.policy == "geisinger"]
    reqs = {(q.concept, q.text, q.mode) for q in col.requirements}
    assert ("life_expectancy", "> 3 months", "required") in reqs
    assert ("trial_pain_relief", "≥ 50 %", "required") in reqs
    assert ("implant_contraindicated", "yes", "absent") in reqs
    assert [r.name for r in col.rules] == ["medicare_ncd", "malignant_implant", "medicaid_case_by_case"]


def test_filters_select_rules_by_scope(loaded):
    (col,) = [c for c in matrix(loaded.program, "elastomeric_pump", None) if c.policy == "geisinger"]
    assert [r.name for r in col.rules] == ["elastomeric", "medicaid_case_by_case"]


def test_matrix_cli_json(at_root):
    result = CliRunner().invoke(app, ["matrix", "--service", "trial", "--indication", "spasticity", "--json"])
    assert result.exit_code == EXIT_OK, result.output
    data = json.loads(result.output)
    assert data["schema"] == "reasoner.matrix/1"
    (g,) = [p for p in data["payers"] if p["policy"] == "geisinger"]
    assert any(q["concept"] == "antispasmodics_failed" and q["requirement"].startswith("at least 3 of") for q in g["requirements"])


def test_matrix_cli_table(at_root):
    result = CliRunner().invoke(app, ["matrix", "--service", "implant", "--indication", "nonmalignant_pain"], env={"COLUMNS": "200"})
    assert result.exit_code == EXIT_OK
    assert "trial_pain_relief" in result.output and "≥ 50 %" in result.output
