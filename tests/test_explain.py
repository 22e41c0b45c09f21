"""why / why-not / repair on concrete patients, golden cases and the CLI."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from reasoner.present import render
from reasoner.cli import EXIT_USAGE, app
from reasoner.results.explain import NOT_DOCUMENTED, OTHERWISE, why, why_json, why_not, why_not_json
from reasoner.io.patient import flatten, load_patient, validate
from reasoner.results.repair import repairs

from conftest import ROOT, scenario_data

EXAMPLE = ROOT / "examples/nonmalignant_implant.yaml"


@pytest.fixture
def implant(loaded):
    return load_patient(EXAMPLE, loaded.vocab)


def _changed(patient, loaded, **facts):
    data = {**patient.facts, **facts}
    return validate({k: (list(v) if isinstance(v, tuple) else v) for k, v in data.items() if v is not None},
                    loaded.vocab, "changed")


def _find(steps, label):
    for step in steps:
        if step.label == label:
            return step
        found = _find(step.children, label)
        if found:
            return found
    return None


def test_why_cites_the_deciding_rule_down_to_facts(reasoner, implant):
    w = why(reasoner, implant, "geisinger")
    assert w.decision.kind == "covered" and w.rule.rule == "nonmalignant_implant"
    assert [t.rule for t in w.earlier] == ["outside_period", "medicare_elastomeric", "elastomeric", "other_route", "anesthesia_trial",
                                           "medicare_ncd"]
    count = _find(w.rule.steps, "at least three of the listed classes tried and failed")
    assert count.holds and [c.label for c in count.children] == ["NSAIDs", "opiates", "anti-epileptic drugs for chronic pain"]
    relief = next(leaf for s in w.rule.steps for leaf in s.leaves() if leaf.facts and leaf.facts[0].concept == "pain_trial_relief")
    assert relief.holds and relief.facts[0].value == 50 and relief.cite.document == "MP293"


def test_why_shows_absent_exceptions(reasoner, implant):
    w = why(reasoner, implant, "geisinger")
    exception = w.rule.steps[-1]
    assert exception.holds is False and exception.status == "fails"  # `unless contraindication`: not met
    statuses = {leaf.facts[0].concept: leaf.status for leaf in exception.leaves()}
    assert statuses == {"spinal_stenosis_obstruction": NOT_DOCUMENTED, "substance_use_disorders.opioid.status": NOT_DOCUMENTED,
                        "active_infection": NOT_DOCUMENTED, "diagnoses": OTHERWISE}


def test_why_not_marks_documented_otherwise_and_not_documented(reasoner, loaded, implant):
    patient = _changed(implant, loaded, pain_trial_relief=49, pain_severity=None)
    w = why_not(reasoner, patient, "geisinger")
    assert w.decision.kind == "denied"
    best = w.paths[0]
    assert best.rule == "nonmalignant_implant" and best.in_scope
    leaves = {leaf.facts[0].concept: leaf for s in best.trace.steps for leaf in s.leaves() if leaf.facts}
    assert leaves["pain_trial_relief"].status == OTHERWISE and leaves["pain_trial_relief"].facts[0].value == 49
    assert leaves["pain_severity"].status == NOT_DOCUMENTED
    assert [p.rule for p in w.paths if not p.in_scope][-1]  # the other covered rules follow, out of scope


def test_why_not_reports_an_exception_that_holds(reasoner, loaded, implant):
    """Criteria met but a contraindication listed: the covering rule's exception blocks it."""
    patient = _changed(implant, loaded, active_infection=True)
    w = why_not(reasoner, patient, "geisinger")
    assert w.decision.rule == "contraindicated"
    best = w.paths[0]
    assert best.rule == "nonmalignant_implant"
    assert [s.holds for s in best.trace.steps] == [True]  # the exception that holds is what stops it
    (fix,) = repairs(reasoner, patient, "geisinger", limit=1)
    assert [(c.concept, c.before, c.after) for c in fix.changes] == [("active_infection", True, False)]


def test_why_not_for_an_already_covered_patient_is_empty(reasoner, implant):
    assert why_not(reasoner, implant, "geisinger").paths == ()
    assert repairs(reasoner, implant, "geisinger") == []


def test_repair_never_changes_the_request(reasoner, loaded, implant):
    medicare = _changed(implant, loaded, line_of_business="medicare")
    path = why_not(reasoner, medicare, "geisinger").paths[0]
    assert path.rule == "nonmalignant_implant" and path.trace.preempted_by == "medicare_ncd"
    assert repairs(reasoner, medicare, "geisinger") == []  # only a different line would be covered


def test_repair_respects_strict_bounds(reasoner, loaded):
    doc = yaml.safe_load((ROOT / "tests/cases/uhc/nonmalignant.yaml").read_text())
    patient = validate({**flatten(doc["base"], loaded.vocab), "age": 18}, loaded.vocab, "age 18")
    (fix,) = repairs(reasoner, patient, "uhc", limit=1)
    assert [(c.concept, c.after) for c in fix.changes] == [("age", 19)]


def _golden():
    for path in sorted((ROOT / "tests/cases").rglob("*.yaml")):
        doc = yaml.safe_load(path.read_text())
        for i, sc in enumerate(doc["scenarios"][:4]):
            yield pytest.param(doc["base"], sc, id=f"{path.parent.name}/{path.stem}/{i}")


@pytest.mark.parametrize("base, scenario", list(_golden()))
def test_golden_cases_explain_as_json_and_trees(reasoner, loaded, base, scenario):
    patient, payers = validate(scenario_data(base, scenario, loaded.vocab), loaded.vocab, "golden"), list(scenario["expect"])
    for payer in payers:
        w, wn = why(reasoner, patient, payer), why_not(reasoner, patient, payer)
        fixes = repairs(reasoner, patient, payer, limit=2)
        doc = json.loads(json.dumps(why_json(w)))
        assert doc["schema"] == "reasoner.why/1" and doc["decision"]["policy"] == payer
        doc = json.loads(json.dumps(why_not_json(wn, fixes)))
        assert doc["schema"] == "reasoner.why_not/1" and all(p["criteria"] or p["preempted_by"] for p in doc["paths"])
        out = render.console(no_color=True, width=120)
        with out.capture() as captured:
            out.print(render.why_tree(w))
            out.print(render.why_not_tree(wn, fixes))
        assert payer in captured.get()


@pytest.mark.parametrize("example", sorted((ROOT / "examples").glob("*.*")), ids=lambda p: p.name)
def test_cli_why_and_why_not_on_examples(example, at_root):
    runner = CliRunner()
    for payer in ("geisinger", "uhc"):
        result = runner.invoke(app, ["why", str(example), "--payer", payer, "--json"])
        assert result.exit_code == 0, result.output
        assert json.loads(result.output)["schema"] == "reasoner.why/1"
        result = runner.invoke(app, ["why-not", str(example), "--payer", payer])
        assert result.exit_code == 0 and "Why not covered?" in result.output


def test_cli_why_not_json_lists_verified_repairs(at_root, tmp_path):
    patient = yaml.safe_load(EXAMPLE.read_text())
    patient["pain_trial_relief"] = 49
    path = tmp_path / "p.yaml"
    path.write_text(yaml.safe_dump(patient))
    result = CliRunner().invoke(app, ["why-not", str(path), "--payer", "geisinger", "--json"])
    doc = json.loads(result.output)
    assert doc["repairs"][0]["changes"] == [{"concept": "pain_trial_relief", "from": 49, "to": 50,
                                             "needed": "pain_trial_relief ≥ 50 %"}]


@pytest.mark.parametrize("args, where", [
    (["why", "examples/nonmalignant_implant.yaml", "--payer", "nobody"], "--payer"),
    (["why-not", "examples/nonmalignant_implant.yaml", "--payer", "uhc", "--decision", "approved"], "--decision"),
    (["why", "examples/nonmalignant_implant.yaml", "--payer", "uhc", "--service", "pump"], "--service"),
])
def test_cli_explain_bad_options(args, where, at_root):
    result = CliRunner().invoke(app, args)
    assert result.exit_code == EXIT_USAGE and where in result.output and "Traceback" not in result.output


def test_cli_why_service_override(at_root):
    result = CliRunner().invoke(app, ["why", "examples/nonmalignant_implant.yaml", "--payer", "geisinger",
                                      "--service", "trial", "--json"])
    assert json.loads(result.output)["decision"]["rule"] == "nonmalignant_trial"
