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
                       "qualchoice": "2019-04-01", "uhc": None, "bcbsal": None}


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
