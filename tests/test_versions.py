"""Effective periods: a policy header's `effective` becomes the first rule, deciding a request
dated outside the version's period as not addressed, with what the document says applies instead."""
from __future__ import annotations

import datetime as dt
import json

import pytest
from typer.testing import CliRunner

from reasoner.cli import EXIT_USAGE, app
from reasoner.io.patient import validate
from reasoner.language.check import check_policy
from reasoner.language.parse import parse_text
from reasoner.results.decide import Reasoner

from conftest import ROOT

HEAD = 'policy p {{ payer "P" document "D1" "T" version "v" lines all cite "L" {effective} }}\n'
RULE = 'rule r "R" cite "s" { for service implant decide covered }\n'


def lower(effective: str, vocab, body: str = RULE):
    policy, problems = check_policy(parse_text(HEAD.format(effective=effective) + body, "x.policy"), vocab)
    return policy, [str(p) for p in problems if p.severity == "error"]


def test_the_period_becomes_the_first_rule_with_the_documents_words(loaded):
    policy, problems = lower('effective 2019-04-01 .. 2024-04-30 "ask customer service" cite "Public Statement"',
                             loaded.vocab)
    assert problems == []
    first = policy.rules[0]
    assert (first.name, first.outcome.kind, first.outcome.subkind, first.outcome.detail) == (
        "outside_period", "not_addressed", "outside_policy", "ask customer service")
    assert policy.effective == (dt.date(2019, 4, 1), dt.date(2024, 4, 30))
    assert first.where.startswith("x.policy:1:")


@pytest.mark.parametrize("effective, message", [
    ('effective 2024-01-01 .. 2019-01-01 cite "s"', "ends (2019-01-01) before it starts (2024-01-01)"),
    ("effective 2019-02-30 cite \"s\"", "2019-02-30 is not a date"),
    ("effective 2019-04-01", "'effective' has no citation"),
])
def test_a_wrong_period_is_an_error(loaded, effective, message):
    _, problems = lower(effective, loaded.vocab)
    assert any(message in p for p in problems), problems


def test_the_implicit_rule_names_are_reserved(loaded):
    _, problems = lower('effective 2019-04-01 cite "s"', loaded.vocab,
                        'rule outside_period "R" cite "s" { decide covered }\n')
    assert any("'outside_period' is reserved" in p for p in problems)


@pytest.mark.parametrize("day, inside", [("2019-03-31", False), ("2019-04-01", True), ("2024-04-30", True),
                                         ("2024-05-01", False), (None, True)])
def test_both_bounds_are_inclusive_and_an_undated_request_is_decided(loaded, day, inside):
    from reasoner.language.load import Loaded
    from reasoner.language import ir

    policy, _ = lower('effective 2019-04-01 .. 2024-04-30 cite "s"', loaded.vocab)
    reasoner = Reasoner(Loaded(loaded.vocab, ir.Program((policy,)), ()))
    facts = {"service": "implant", "indications": ["nonmalignant_pain"], "line_of_business": "commercial"}
    patient = validate({**facts, **({"request_date": day} if day else {})}, loaded.vocab)
    (decision,) = reasoner.decide(patient)
    assert decision.rule == ("r" if inside else "outside_period")


def test_as_of_dates_an_undated_request_and_never_overrides_a_date(tmp_path):
    runner = CliRunner()
    example = str(ROOT / "examples/nonmalignant_implant.yaml")
    done = runner.invoke(app, ["check", example, "--payer", "qualchoice", "--as-of", "2018-06-01", "--json"])
    (decision,) = json.loads(done.output)["decisions"]
    assert decision["rule"] == "outside_period" and "customer service" in decision["detail"]
    dated = tmp_path / "dated.yaml"
    dated.write_text((ROOT / "examples/nonmalignant_implant.yaml").read_text() + "request_date: 2020-01-02\n")
    done = runner.invoke(app, ["check", str(dated), "--payer", "qualchoice", "--as-of", "2018-06-01", "--json"])
    assert json.loads(done.output)["decisions"][0]["rule"] != "outside_period"
    bad = runner.invoke(app, ["why", example, "--payer", "qualchoice", "--as-of", "June 2018"])
    assert bad.exit_code == EXIT_USAGE and "--as-of" in bad.output


def test_policies_lists_each_version_period():
    data = json.loads(CliRunner().invoke(app, ["policies", "--json"]).output)
    periods = {p["id"]: p["effective"]["from"] for p in data["policies"]}
    assert periods == {"cam70141": "2018-01-30", "cmm210": "2019-08-01", "geisinger": "2017-02-01",
                       "qualchoice": "2019-04-01", "uhc": None, "bcbsal": None, "cam70141_pre2018": "2014-01-15"}
    earlier = next(p for p in data["policies"] if p["id"] == "cam70141_pre2018")
    assert (earlier["effective"]["to"], earlier["current"], earlier["superseded_by"], earlier["versions"]) == (
        "2018-01-29", False, "cam70141", ["cam70141_pre2018", "cam70141"])


@pytest.mark.parametrize("text", ["86400", "0", "2019-4-1", "20190401"])
def test_a_request_date_is_written_as_a_date_never_as_a_timestamp(loaded, text):
    """A version is chosen by the request date, so a date must be unambiguous: digits are not a
    Unix timestamp (they were read as days of 1970)."""
    from reasoner.errors import PatientError

    facts = {"service": "implant", "indications": ["nonmalignant_pain"], "line_of_business": "commercial",
             "request_date": text}
    with pytest.raises(PatientError) as err:
        validate(facts, loaded.vocab)
    assert "expected a date written YYYY-MM-DD" in str(err.value.problems[0])


# ---------------------------------------------------------------- several versions of one document
CHEMO = {"id": "liver", "service": "implant", "indications": ["chemotherapy"], "line_of_business": "commercial",
         "chemo_site": "primary_liver", "planned_drugs": ["floxuridine"], "planned_route": "intra_arterial"}
DAYS = ["2013-06-01", "2014-01-15", "2017-06-01", "2018-01-29", "2018-01-30", "2024-06-01", None]


def _dated(day):
    return {**CHEMO, **({"request_date": day} if day else {})}


def test_the_program_knows_each_version_and_which_is_current(loaded):
    program = loaded.program
    assert [p.id for p in program.versions("cam70141")] == ["cam70141_pre2018", "cam70141"]
    assert "cam70141_pre2018" not in [p.id for p in program.current]
    assert [p.id for p in program.versions("uhc")] == ["uhc"]
    assert [p.id for p in program.only(["cam70141"]).policies] == ["cam70141", "cam70141_pre2018"]


@pytest.mark.parametrize("day, version, decision", [
    ("2013-06-01", "cam70141_pre2018", "not_addressed"),  # before every recorded version: it says so
    ("2014-01-15", "cam70141_pre2018", "covered"),
    ("2018-01-29", "cam70141_pre2018", "covered"),
    ("2018-01-30", "cam70141", "not_addressed"),
    (None, "cam70141", "not_addressed"),
])
def test_check_decides_by_the_version_in_force_at_the_request_date(tmp_path, day, version, decision):
    path = tmp_path / "p.json"
    path.write_text(json.dumps(_dated(day)))
    out = CliRunner().invoke(app, ["check", str(path), "--payer", "cam70141", "--json"])
    assert out.exit_code == 0, out.output
    (d,) = json.loads(out.stdout)["decisions"]
    assert (d["policy"], d["decision"]) == (version, decision)


def test_as_of_selects_the_version_of_an_undated_request(tmp_path):
    path = tmp_path / "p.json"
    path.write_text(json.dumps(_dated(None)))
    out = CliRunner().invoke(app, ["why", str(path), "--payer", "cam70141", "--as-of", "2017-06-01", "--json"])
    assert out.exit_code == 0, out.output
    doc = json.loads(out.stdout)
    assert (doc["decision"]["policy"], doc["decision"]["rule"]) == ("cam70141_pre2018", "hepatic_artery_therapy")
    text = CliRunner().invoke(app, ["why-not", str(path), "--payer", "cam70141", "--as-of", "2019-06-01"])
    assert text.exit_code == 0 and "cam70141" in text.output and "hepatic_artery_therapy" not in text.output


def test_batch_picks_each_rows_version_as_check_does(tmp_path, reasoner, loaded):
    rows = tmp_path / "rows.jsonl"
    rows.write_text("".join(json.dumps({**_dated(day), "id": f"d{i}"}) + "\n" for i, day in enumerate(DAYS)))
    out = CliRunner().invoke(app, ["batch", str(rows), "--payer", "cam70141", "--out", str(tmp_path / "o.jsonl")])
    assert out.exit_code == 0, out.output
    got = [json.loads(line) for line in (tmp_path / "o.jsonl").read_text().splitlines()]
    want = [reasoner.decide(validate(_dated(day), loaded.vocab), ["cam70141"])[0] for day in DAYS]
    assert [(g["version"], g["decision"], g["rule"]) for g in got] == [(w.policy, w.kind, w.rule) for w in want]
    assert {g["payer"] for g in got} == {"cam70141"} and {g["version"] for g in got} == {"cam70141", "cam70141_pre2018"}


@pytest.fixture
def versions(tmp_path):
    import shutil

    for name in ("vocabulary.vocab", "drugs.vocab", "cam70141.policy", "cam70141_pre2018.policy"):
        shutil.copy(ROOT / "policies" / name, tmp_path / name)
    return tmp_path


def _errors(folder) -> list[str]:
    from reasoner.language.load import lint, policy_files

    _, _, problems = lint(policy_files(folder), folder / "vocabulary.vocab")
    return [p.message for p in problems if p.severity == "error"]


@pytest.mark.parametrize("old, new, message", [
    ("superseded by cam70141", "superseded by cam7014", "'cam70141_pre2018' is superseded by 'cam7014', which is not loaded."),
    ('document "CAM 70141"', 'document "CAM 70142"', "versions are of one payer's document"),
    ("2014-01-15 .. 2018-01-29", "2014-01-15 .. 2018-01-30", "overlap; end 'cam70141_pre2018' the day before"),
    ("effective 2014-01-15 .. 2018-01-29", "effective 2019-01-29 .. 2020-01-29", "overlap"),
    ("superseded by cam70141", "superseded by cam70141_pre2018", "is superseded by itself"),
])
def test_a_wrong_version_header_is_an_error(versions, old, new, message):
    path = versions / "cam70141_pre2018.policy"
    text = path.read_text()
    assert old in text
    path.write_text(text.replace(old, new))
    assert any(message in e for e in _errors(versions)), _errors(versions)


def test_every_version_needs_a_period(versions):
    path = versions / "cam70141.policy"
    path.write_text("\n".join(line for line in path.read_text().splitlines() if not line.lstrip().startswith("effective")))
    assert any("'cam70141' needs an 'effective' period" in e for e in _errors(versions))


def test_policies_shows_an_earlier_version():
    out = CliRunner().invoke(app, ["--width", "400", "policies"])
    assert out.exit_code == 0 and "earlier version of" in out.output
    assert "2014-01-15 to" in out.output


# ---------------------------------------------------------------- diff across versions
def test_diff_names_a_version_by_date():
    from reasoner.search.diff import resolve

    program = __import__("reasoner.language.load", fromlist=["load"]).load().program
    assert resolve(program, "cam70141@2017-06-01") == ("cam70141_pre2018", None)
    assert resolve(program, "CAM70141@2019-06-01") == ("cam70141", None)
    assert resolve(program, "cam70141", dt.date(2016, 1, 1)) == ("cam70141_pre2018", None)
    assert resolve(program, "cam70141_pre2018") == ("cam70141_pre2018", None)
    pid, problem = resolve(program, "qualchoice@2018-06-01")
    assert pid is None and "no version of BI320:00 is in force on 2018-06-01" in problem
    assert "not a date" in resolve(program, "cam70141@June")[1]


@pytest.mark.parametrize("args, message", [
    (["--payers", "cam70141@2019-01-01,cam70141"], "two names given read the same version, 'cam70141'"),
    (["--payers", "qualchoice,cam70141", "--as-of", "2018-06-01"], "no version of BI320:00 is in force"),
    (["--payers", "cam70141@2017-13-01,uhc"], "is not a date"),
])
def test_diff_refuses_a_version_it_cannot_read(args, message):
    out = CliRunner().invoke(app, ["diff", *args, "--examples", "5"])
    assert out.exit_code == EXIT_USAGE and message in out.output, out.output


def test_versions_differ_exactly_where_the_history_says(loaded):
    """CAM 70141 before and after 2018-01-30: the exhaustive check proves every difference is one
    the History records (the two chemotherapy statements, with the documentation they need, and
    the wider investigational statement)."""
    from reasoner.search import diff

    proven = diff.exhaustive(loaded, ["cam70141_pre2018", "cam70141"])
    assert proven and {p.rule_a for p in proven} == {"ovarian_cancer_intraperitoneal", "hepatic_artery_therapy",
                                                     "chemotherapy_not_documented", "other_uses"}
    assert all(p.rule_b in (None, "other_uses") for p in proven)


def test_the_mp442_edition_differs_from_cam70141_only_where_its_text_does(loaded):
    """Done when of the families issue: no period classes (a diff compares texts), only head pain
    [A-3] and cancer treatment [A-5]."""
    from reasoner.search import diff

    proven = diff.exhaustive(loaded, ["cam70141", "bcbsal"])
    assert {p.rule_b for p in proven} == {"head_pain_referred", "cancer_treatment_standard_of_care"}


def test_linting_an_earlier_version_alone_finds_its_later_version_beside_it():
    out = CliRunner().invoke(app, ["lint", str(ROOT / "policies" / "cam70141_pre2018.policy")])
    assert out.exit_code == 0 and "0 error(s)" in out.output, out.output


def test_a_gap_between_versions_is_a_warning_naming_the_days(versions):
    path = versions / "cam70141_pre2018.policy"
    path.write_text(path.read_text().replace("2014-01-15 .. 2018-01-29", "2014-01-15 .. 2017-12-31"))
    from reasoner.language.load import lint, policy_files

    _, _, problems = lint(policy_files(versions), versions / "vocabulary.vocab")
    warnings = [p for p in problems if p.severity == "warning"]
    assert [p.message[:65] for p in warnings] == ["no version of CAM 70141 is in force from 2018-01-01 to 2018-01-29"]
    assert "cam70141_pre2018.policy:16:" in warnings[0].where  # the line of its 'effective'


def test_a_version_of_another_payer_is_one_error_that_names_both(versions):
    path = versions / "cam70141_pre2018.policy"
    path.write_text(path.read_text().replace('payer    "Blue-plan medical policy"', 'payer    "Another plan"'))
    errors = _errors(versions)
    assert len(errors) == 1 and "(Another plan, CAM 70141)" in errors[0] and "(Blue-plan medical policy, CAM 70141)" in errors[0]


def test_the_decision_says_which_policy_an_earlier_version_belongs_to(tmp_path):
    path = tmp_path / "p.json"
    path.write_text(json.dumps(_dated("2017-06-01")))
    doc = json.loads(CliRunner().invoke(app, ["check", str(path), "--payer", "cam70141", "--json"]).stdout)
    (d,) = doc["decisions"]
    assert (d["policy"], d["version_of"], d["effective"]) == ("cam70141_pre2018", "cam70141",
                                                              {"from": "2014-01-15", "to": "2018-01-29"})
    text = CliRunner().invoke(app, ["--width", "300", "check", str(path), "--payer", "cam70141"]).output
    assert "version of cam70141; in force 2014-01-15 to 2018-01-29" in text


def test_as_of_says_when_the_request_has_its_own_date(tmp_path):
    path = tmp_path / "p.json"
    path.write_text(json.dumps(_dated("2017-06-01")))
    out = CliRunner().invoke(app, ["check", str(path), "--payer", "cam70141", "--as-of", "2020-01-01"])
    assert "--as-of 2020-01-01 not used: the request is dated 2017-06-01" in out.output


def test_repairs_never_move_the_request_date(tmp_path):
    path = tmp_path / "p.json"
    path.write_text(json.dumps(_dated("2013-06-01")))
    doc = json.loads(CliRunner().invoke(app, ["why-not", str(path), "--payer", "cam70141", "--json"]).stdout)
    changed = {c["concept"] for r in doc.get("repairs") or [] for c in r["changes"]}
    assert "request_date" not in changed


def test_a_version_id_with_a_date_names_its_document(loaded):
    from reasoner.search.diff import resolve

    assert resolve(loaded.program, "cam70141_pre2018@2020-01-01") == ("cam70141", None)


def test_diff_json_records_how_a_side_was_named():
    out = CliRunner().invoke(app, ["diff", "--payers", "cam70141@2017-06-01,cam70141", "--service", "implant",
                                   "--indication", "spasticity", "--examples", "5", "--json"])
    assert out.exit_code == 0, out.output
    doc = json.loads(out.stdout)
    assert doc["payers"] == ["cam70141_pre2018", "cam70141"] and doc["named"] == {"cam70141_pre2018": "cam70141@2017-06-01"}
