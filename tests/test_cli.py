"""The command line: tables, JSON, exit codes."""
import json

import pytest
from typer.testing import CliRunner

from reasoner.cli import EXIT_INPUT, EXIT_LINT, EXIT_OK, EXIT_USAGE, app

runner = CliRunner()
EXAMPLE = "examples/nonmalignant_implant.yaml"


def test_check_prints_a_decision_table(at_root):
    result = runner.invoke(app, ["check", EXAMPLE], env={"COLUMNS": "200"})
    assert result.exit_code == EXIT_OK, result.output
    assert "Decisions for nonmalignant-implant" in result.output
    row = next(line for line in result.output.splitlines() if "geisinger" in line)
    assert "covered" in row and "required" in row and "MP293 § Non-malignant pain, Indications 1-7" in row


def test_check_json(at_root):
    result = runner.invoke(app, ["check", EXAMPLE, "--json", "--payer", "geisinger"])
    assert result.exit_code == EXIT_OK
    data = json.loads(result.output)
    assert data["schema"] == "reasoner.check/1"
    (d,) = data["decisions"]
    assert d == {
        "policy": "geisinger", "payer": "Geisinger Health Plan", "document": "MP293", "decision": "covered",
        "subkind": None, "detail": None, "prior_auth": "required", "rule": "nonmalignant_implant",
        "rule_label": "Permanent pump for chronic non-malignant pain",
        "citation": {"document": "MP293", "section": "Non-malignant pain, Indications 1-7"}, "assumptions": [],
        "version_of": None, "effective": {"from": "2017-02-01", "to": None},
    }


def test_unknown_payer_is_a_usage_error(at_root):
    result = runner.invoke(app, ["check", EXAMPLE, "--payer", "geisenger"])
    assert result.exit_code == EXIT_USAGE
    assert "Did you mean 'geisinger'?" in result.output


def test_missing_patient_file_is_an_input_error(at_root):
    result = runner.invoke(app, ["check", "no/such/file.yaml", "--json"])
    assert result.exit_code == EXIT_INPUT
    assert json.loads(result.output)["errors"][0]["where"] == "no/such/file.yaml"


def test_lint_clean_on_bundled_policies(at_root):
    result = runner.invoke(app, ["lint"])
    assert result.exit_code == EXIT_OK, result.output
    assert "0 error(s), 0 warning(s)" in result.output


def test_lint_reports_file_line_column(at_root, tmp_path):
    bad = tmp_path / "p.policy"
    bad.write_text('policy p { payer "P" document "D" "T" version "v" lines commercial cite "L" }\n'
                   'rule r "R" cite "s" { if trial_relief >= 50 % decide covered }\n')
    result = runner.invoke(app, ["lint", str(bad), "--json"])
    assert result.exit_code == EXIT_LINT
    (problem,) = json.loads(result.output)["problems"]
    assert problem["where"] == f"{bad}:2:26"
    assert "unknown concept 'trial_relief'. Did you mean 'pain_trial_relief'?" == problem["message"]


def test_policies_lists_documents(at_root):
    result = runner.invoke(app, ["policies", "--json"])
    assert result.exit_code == EXIT_OK
    (p,) = [p for p in json.loads(result.output)["policies"] if p["id"] == "geisinger"]
    assert p["document"] == "MP293" and "medicaid" in p["lines"]
    assert all(r["citation"].startswith("MP293 § ") for r in p["rules"])


def test_broken_policy_folder_is_an_input_error(tmp_path):
    (tmp_path / "vocabulary.vocab").write_text('vocabulary v "V"\nconcept x: boolean "X"\n')
    (tmp_path / "p.policy").write_text("policy p {")
    result = runner.invoke(app, ["policies", "--policies", str(tmp_path)])
    assert result.exit_code == EXIT_INPUT
    assert "p.policy:1:11: error: syntax error: the file ends too early" in result.output.replace("\n", " ") or \
        "the file ends too early" in result.output


@pytest.mark.slow  # several seconds: left to the full run, to keep `-m "not slow"` under two minutes
def test_every_example_patient_is_valid_and_decided(at_root):
    from pathlib import Path
    for example in sorted(p for p in Path("examples").rglob("*") if p.is_file()):  # FHIR bundles too
        result = runner.invoke(app, ["check", str(example), "--json"])
        assert result.exit_code == EXIT_OK, (example, result.output)
        assert all(d["decision"] for d in json.loads(result.output)["decisions"])
