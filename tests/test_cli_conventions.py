"""Command-line conventions: output a script can read, exit codes as documented, errors on stderr,
clean interruption, and disagreement summaries that say exactly what the engine says."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import pytest
import yaml
from typer.testing import CliRunner

from reasoner.cli import EXIT_INPUT, EXIT_LINT, EXIT_OK, EXIT_OUTPUT, EXIT_USAGE, app
from reasoner.io.patient import flatten, load_patient, validate
from reasoner.search import diff

from conftest import ROOT

CLI = [sys.executable, "-m", "reasoner.cli"]
EXAMPLE = "examples/nonmalignant_implant.yaml"


def run(*args, env=None, **kw) -> subprocess.CompletedProcess:
    return subprocess.run([*CLI, *args], capture_output=True, text=True, cwd=ROOT,
                          env={**os.environ, **(env or {})}, **kw)


def test_lint_lines_stay_whole_through_a_narrow_pipe(tmp_path):
    for vocab in (ROOT / "policies").glob("*.vocab"):
        (tmp_path / vocab.name).write_text(vocab.read_text())
    bad = tmp_path / "p.policy"
    bad.write_text('policy p { payer "P" document "D" "T" version "v" lines all cite "L" }\n'
                   'rule r "R" cite "s" { if pain_trial_releif >= 50 % decide covered }\n'
                   'rule s "S" cite "s" { if all { age > 60 years  age < 40 years } decide covered }\n')
    done = run("lint", str(bad), env={"COLUMNS": "40"})
    assert done.returncode == EXIT_LINT
    lines = done.stdout.splitlines()
    assert lines[0] == (f"{bad}:2:26: error: unknown concept 'pain_trial_releif'. Did you mean 'pain_trial_relief'?")
    assert len(lines) == 2 and lines[1].startswith("1 file(s) checked: 1 error(s)")


def test_why_not_keeps_rule_names_whole_in_a_pipe():
    done = run("why-not", EXAMPLE, "--payer", "qualchoice", env={"COLUMNS": "40"})
    assert done.returncode == EXIT_OK
    assert "(nonmalignant_implant)" in done.stdout and "denied (not_medically_necessary)" in done.stdout
    assert all(len(line) > 40 for line in done.stdout.splitlines() if "needs dire_score" in line)


def test_width_option_wraps_on_request():
    done = run("--width", "60", "check", EXAMPLE)
    assert max(len(line) for line in done.stdout.splitlines()) <= 60


@pytest.mark.parametrize("args, code", [
    (["check", EXAMPLE], EXIT_OK),
    (["check", EXAMPLE, "--payer", "nobody"], EXIT_USAGE),
    (["check", "no/such/file.yaml"], EXIT_INPUT),
    (["check", "tests/bad/patients/missing_request.yaml"], EXIT_INPUT),
    (["why", EXAMPLE, "--payer", "uhc", "--service", "pump"], EXIT_USAGE),
    (["why-not", EXAMPLE, "--payer", "uhc", "--decision", "approved"], EXIT_USAGE),
    (["matrix", "--service", "foo"], EXIT_USAGE),
    (["matrix", "--indication", "nonmalignant_pain"], EXIT_OK),
    (["diff", "--payers", "foo,bar"], EXIT_USAGE),
    (["diff", "--payers", "uhc"], EXIT_USAGE),
    (["diff", "--lines", "medicare_advantage", "--examples", "5"], EXIT_USAGE),
    (["batch", "examples/cancer_pain_medicare.json", "--out", "x.xlsx"], EXIT_USAGE),
    (["batch", "nothing.jsonl"], EXIT_USAGE),
    (["lint", "tests/bad/policies/unknown_concept.policy"], EXIT_LINT),
    (["lint"], EXIT_OK),
    (["policies"], EXIT_OK),
    (["--version"], EXIT_OK),
])
def test_exit_codes_are_as_documented(args, code, at_root):
    result = CliRunner().invoke(app, args)
    assert result.exit_code == code, result.output
    assert "Traceback" not in result.output


def test_errors_go_to_stderr_and_data_to_stdout():
    done = run("check", "no/such/file.yaml")
    assert done.returncode == EXIT_INPUT and done.stdout == "" and "no/such/file.yaml" in done.stderr
    done = run("check", "no/such/file.yaml", "--json")
    assert done.stdout == "" and json.loads(done.stderr)["errors"][0]["where"] == "no/such/file.yaml"
    done = run("diff", "--payers", "foo,bar")
    assert done.stdout == "" and done.stderr.startswith("--payers: error: unknown payer 'foo'")


def test_the_wrong_option_is_named():
    done = run("batch", "examples/cancer_pain_medicare.json", "--out", "x.xlsx")
    assert done.stderr.startswith("--out: error: cannot tell the output format from 'x.xlsx'")
    assert "--format" not in done.stderr.split(":")[0]


def test_version_completion_and_plain_help():
    assert run("--version").stdout.startswith("reasoner ")
    top = run("--help").stdout
    assert "--show-completion" in top
    codes = " ".join(top[top.index("Exit codes:"):].split())  # rewrapped to the terminal's width
    assert all(f"{code} " in codes for code in (0, 1, 2, 3, 4, 5, 141)) and "130/143 interrupted" in codes
    help_text = run("check", "--help").stdout
    assert "<bool>" not in help_text and "<list[str]>" not in help_text and "--payer ID" in help_text


def test_payer_ids_are_case_insensitive():
    done = run("check", EXAMPLE, "--payer", "GeiSinger", "--json")
    assert json.loads(done.stdout)["decisions"][0]["policy"] == "geisinger"


def test_why_not_lists_only_what_a_repair_can_reach():
    done = run("why-not", "examples/cancer_pain_medicare.json", "--payer", "uhc")
    assert "no rule that decides covered applies to this request" in done.stdout
    assert "other rules deciding covered apply to other services" in done.stdout
    assert "smallest changes" not in done.stdout and "none found" not in done.stdout
    covered = run("why-not", EXAMPLE, "--payer", "geisinger")
    assert "it already is." in covered.stdout and "smallest changes" not in covered.stdout


@pytest.mark.slow
def test_ctrl_c_during_diff_exits_130_within_two_seconds(tmp_path):
    report = tmp_path / "r.md"
    for delay in (3, 15):
        proc = subprocess.Popen([*CLI, "diff", "--examples", "2000", "--exhaustive", "--report", str(report)],
                                cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        time.sleep(delay)
        start = time.monotonic()
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=30)
        assert proc.returncode == 130 and time.monotonic() - start < 2.0
        assert b"Traceback" not in err and not report.exists()


# ---------------------------------------------------------------- disagreement summaries
def _member(loaded, **changes):
    doc = yaml.safe_load((ROOT / "tests/cases/all_payers/nonmalignant_implant.yaml").read_text())
    data = {k: v for k, v in {**flatten(doc["base"], loaded.vocab), **changes}.items() if v is not None}
    return dict(validate(data, loaded.vocab, "member").facts)


@pytest.mark.slow
def test_an_any_of_none_documented_reads_as_such(reasoner, loaded):
    """QualChoice asks for any one of several screening instruments; with none documented the summary
    says so, instead of listing the instruments as if all were needed."""
    facts = _member(loaded, dire_score=None)
    pattern = diff.Pattern("qualchoice", "criteria_not_met", "uhc", "nonmalignant_implant")
    cls = diff.witness_class(reasoner, pattern, facts, 1)
    assert cls.a.reason == ("any of (dire_score > 13 points, ort_score < 8 points, soapp_r_score < 18 points, "
                            "other_opioid_screening in {low_risk}), none documented")


def test_an_undocumented_fact_reads_as_not_documented(reasoner, loaded):
    facts = _member(loaded, age=None)
    pattern = diff.Pattern("geisinger", "nonmalignant_implant", "uhc", "nonmalignant_not_met")
    cls = diff.witness_class(reasoner, pattern, facts, 1)
    assert cls.b.reason == "age > 18 years (not documented)"


@pytest.fixture(scope="module")
def searched(loaded):
    result = diff.search(loaded, ["qualchoice", "uhc"], "implant", "nonmalignant_pain", examples=80, seed=0)
    return diff.complete(loaded, result)


@pytest.mark.slow
def test_scope_effects_are_kept_apart_and_the_order_is_the_documented_one(searched):
    groups = [c.group for c in searched.classes]
    assert groups == sorted(groups, key=diff.GROUPS.index) and "scope" in groups
    for group in diff.GROUPS:
        counts = [c.count for c in searched.classes if c.group == group]
        assert counts == sorted(counts, reverse=True)
    lines = {c.pattern.rule_b for c in searched.classes if c.group == "scope"}
    assert "outside_lines" in lines and "outside_lines" not in {c.pattern.rule_b for c in searched.classes
                                                                  if c.group == "criteria"}


@pytest.mark.slow
def test_summary_wording(searched):
    from reasoner.present import render

    out = render.console(no_color=True, width=200)
    with out.capture() as captured:
        for part in render.diff_summary(searched, diff.themes(searched)):
            out.print(part)
    text = captured.get()
    assert "(1 patients)" not in text and "criterion not asked" not in text
    assert "Criteria differences" in text and "Scope effects" in text and "Order: criteria differences first" in text


@pytest.mark.slow
def test_a_line_of_business_filter(loaded):
    result = diff.search(loaded, ["qualchoice", "uhc"], "implant", "nonmalignant_pain", examples=40, seed=1,
                         lines="commercial")
    assert result.classes and all(c.witness["line_of_business"] == "commercial" for c in result.classes)
    assert all(c.pattern.rule_b != "outside_lines" for c in result.classes)


@pytest.mark.slow
def test_witnesses_are_saved_as_patient_files_in_their_class(reasoner, loaded, searched, tmp_path, at_root):
    done = CliRunner().invoke(app, ["diff", "--payers", "qualchoice,uhc", "--service", "implant", "--indication",
                                    "nonmalignant_pain", "--examples", "80", "--save-witnesses", str(tmp_path)])
    assert done.exit_code == EXIT_OK, done.output
    files = sorted(tmp_path.glob("*.yaml"))
    assert files and files[0].name.startswith("001-qualchoice-vs-uhc")
    plain = diff.search(loaded, ["qualchoice", "uhc"], "implant", "nonmalignant_pain", examples=80, seed=0)
    for path in files:  # numbered as the command's own (search-only) result orders its classes
        patient = load_patient(path, loaded.vocab)
        number = int(path.name[:3])
        cls = plain.classes[number - 1]
        decided = {d.policy: d.rule for d in reasoner.decide(patient, ["qualchoice", "uhc"])}
        assert (decided["qualchoice"], decided["uhc"]) == (cls.pattern.rule_a, cls.pattern.rule_b)


def test_markdown_report_neutralises_markup(tmp_path):
    from reasoner.present.render import md

    assert md("<script>alert(1)</script> | [x](y)") == r"\<script\>alert\(1\)\</script\> \| \[x\]\(y\)"


def test_an_output_that_cannot_be_written_is_exit_4(at_root, tmp_path):
    done = CliRunner().invoke(app, ["diff", "--payers", "qualchoice,uhc", "--examples", "5", "--report", "/dev/full"])
    assert done.exit_code in (EXIT_USAGE, EXIT_OUTPUT) and "Traceback" not in done.output


def test_no_path_is_refused_by_click_before_our_own_reader_sees_it():
    """An unreadable file is an input error (exit 3, `cannot read the file: Permission denied`), not a
    usage error: typer's default readable=True made click answer first with exit 2 (robustness L5).
    Root reads every file, so the test holds the configuration rather than a chmod."""
    import typer.main

    command = typer.main.get_command(app)
    paths = [(name, p.name, p.type_descriptor.parameter_info.readable) for name, sub in command.commands.items()
             for p in sub.params if "Path" in str(p.type_descriptor.annotation)]
    assert len(paths) >= 10
    assert [p for p in paths if p[2]] == []


def test_a_file_the_system_will_not_read_is_an_input_error(tmp_path, monkeypatch):
    from pathlib import Path

    real = Path.open

    def refuse(self, *args, **kw):
        if self.name == "locked.yaml":
            raise PermissionError(13, "Permission denied", str(self))
        return real(self, *args, **kw)

    (tmp_path / "locked.yaml").write_text("id: x\n")
    monkeypatch.setattr(Path, "open", refuse)
    result = CliRunner().invoke(app, ["check", str(tmp_path / "locked.yaml")])
    assert result.exit_code == EXIT_INPUT
    assert "locked.yaml: error: cannot read the file: Permission denied." in result.output


@pytest.mark.parametrize("command", [["fhir", "PATIENT"], ["questionnaire", "--payer", "geisinger", "--service",
                                                           "implant", "--prefill", "PATIENT"]])
def test_a_document_never_overwrites_its_input(tmp_path, command):
    """`--out` naming the patient file it is made from is refused as usage (exit 2), as for batch;
    the input is left as it was; an --out in a missing folder is usage too."""
    patient = tmp_path / "p.yaml"
    patient.write_text((ROOT / "examples/nonmalignant_implant.yaml").read_text())
    before = patient.read_bytes()
    args = [str(patient) if a == "PATIENT" else a for a in command]
    done = CliRunner().invoke(app, [*args, "--out", str(patient)])
    assert done.exit_code == EXIT_USAGE and "would destroy the input" in done.output, done.output
    assert patient.read_bytes() == before
    done = CliRunner().invoke(app, [*args, "--out", str(tmp_path / "missing" / "x.json")])
    assert done.exit_code == EXIT_USAGE and "does not exist" in done.output
