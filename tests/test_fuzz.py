"""Fuzzing: more than 10,000 hostile inputs per run across lint, check and batch.

Inputs are the bundled policies and example patients mutated by Hypothesis (spans deleted,
duplicated or replaced by tokens of the policy language, numbers pushed to extremes, values of the
wrong kind), plus text drawn from the grammar's own keywords. Each must end in the documented way:
a Problem naming where, never another exception; lint and load reach the same verdict; every row of
a batch file is either decided or reported, exactly once.
"""
from __future__ import annotations

import json
import re
import subprocess
import sys
from collections import Counter

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from reasoner.cli import app
from reasoner.errors import InputError, PolicyError
from reasoner.io.patient import read_json, read_yaml, validate
from reasoner.language import syntax as s
from reasoner.language.check import check_policy
from reasoner.language.load import lint, load
from reasoner.language.parse import parse_text

from conftest import ROOT

pytestmark = pytest.mark.slow
LOADED = load(ROOT / "policies")
POLICIES = {p.name: p.read_text() for p in sorted((ROOT / "policies").glob("*.policy"))}
PATIENTS = [p.read_text() for p in sorted((ROOT / "examples").glob("*.yaml"))] + \
    [p.read_text() for p in sorted((ROOT / "tests" / "cases").rglob("*.yaml"))][:20]
GRAMMAR_WORDS = sorted(set(re.findall(r'"([a-z_]+|[^\w\s"]{1,2})"', (ROOT / "grammar" / "policy.lark").read_text())))
TOKENS = GRAMMAR_WORDS + ["{", "}", "(", ")", ":", ",", "\n", "1e400", "-0", "99999999999999999999", "0.1",
                          "'", '"', "\\", "\x00", "\u202e", "age", "covered", "denied", "define", "rule", "#"]
RUNS = settings(deadline=None, derandomize=True, database=None, suppress_health_check=list(HealthCheck))


@st.composite
def mutated(draw, texts: list[str], extra=st.sampled_from(TOKENS)):
    """A text with 1-3 edits: a span deleted, duplicated, or replaced by tokens."""
    text = draw(st.sampled_from(texts))
    for _ in range(draw(st.integers(1, 3))):
        n = len(text)
        i = draw(st.integers(0, n))
        j = min(n, i + draw(st.integers(0, 40)))
        edit = draw(st.sampled_from(["delete", "duplicate", "replace", "insert"]))
        if edit == "delete":
            text = text[:i] + text[j:]
        elif edit == "duplicate":
            text = text[:j] + text[i:j] + text[j:]
        else:
            words = " ".join(draw(st.lists(extra, min_size=1, max_size=4)))
            text = text[:i] + words + (text[j:] if edit == "replace" else text[i:])
    return text


def _lint_text(text: str) -> list:
    """What lint says of one policy text (parse, then check against the bundled vocabulary)."""
    try:
        tree = parse_text(text, "fuzz.policy")
    except PolicyError as err:
        return list(err.problems)
    if not isinstance(tree, s.PolicyFile):
        return ["not a policy"]
    _, problems = check_policy(tree, LOADED.vocab)
    return [p for p in problems if p.severity == "error"]


@settings(RUNS, max_examples=3000)
@given(mutated(list(POLICIES.values())))
def test_mutated_policies_give_problems_never_exceptions(text):
    for p in _lint_text(text):
        assert isinstance(p, str) or re.match(r"^fuzz\.policy(:\d+:\d+)?", p.where), p


@settings(RUNS, max_examples=40)
@given(mutated(list(POLICIES.values())))
def test_lint_and_load_reach_the_same_verdict(tmp_path_factory, text):
    folder = tmp_path_factory.mktemp("fuzz")
    for name in ("vocabulary.vocab", "drugs.vocab"):
        (folder / name).write_text((ROOT / "policies" / name).read_text())
    (folder / "fuzz.policy").write_text(text, encoding="utf-8", errors="surrogatepass")
    _, _, problems = lint([folder / "fuzz.policy"], folder / "vocabulary.vocab")
    errors = [p for p in problems if p.severity == "error"]
    try:
        load(folder)
        loaded = True
    except PolicyError:
        loaded = False
    assert loaded == (not errors)


def _patient_text(value) -> st.SearchStrategy:
    return st.sampled_from(TOKENS + ["{", "[", "null", "true", "- x", "&a", "*a", "!!python/object", "0x1F", "1:30",
                                     "2024-13-45", "M96.1ZZZ", "054"])


@settings(RUNS, max_examples=5000)
@given(mutated(PATIENTS, extra=_patient_text(None)), st.booleans())
def test_mutated_patients_give_problems_never_exceptions(text, as_json):
    try:
        # YAML dates become ISO strings in JSON, the way a JSON patient file writes them.
        data = read_json(json.dumps(read_yaml(text, "p.yaml"), default=str), "p.json") if as_json else read_yaml(text, "p.yaml")
        validate(data, LOADED.vocab, "p.yaml")
    except InputError as err:
        assert err.problems and all(p.where.startswith("p.") for p in err.problems)


def test_a_batch_of_hostile_rows_decides_or_reports_every_row_once(tmp_path):
    rows: list[str] = []

    @settings(RUNS, max_examples=2500)
    @given(mutated([json.dumps({"id": "x", "service": "implant", "indications": ["nonmalignant_pain"],
                                "line_of_business": "commercial", "age": 40, "medications": {"nsaid": {"outcome": "failed"}},
                                "diagnoses": ["M96.1"], "pain_trial_relief": 55})],
                   extra=st.sampled_from(TOKENS + ['"\\ud800"', "1" * 5000, "[" * 50, '"a"', "null"])))
    def collect(text):
        rows.append(text.replace("\n", " ").replace("\r", " "))

    collect()
    path = tmp_path / "hostile.jsonl"
    path.write_text("\n".join(rows) + "\n", encoding="utf-8", errors="surrogatepass")
    result = CliRunner().invoke(app, ["batch", str(path), "--out", str(tmp_path / "o.jsonl"), "--payer", "uhc",
                                      "--chunk", "700"])
    assert result.exit_code == 0, result.output
    assert "Traceback" not in result.output
    decided = Counter(json.loads(line)["row"] for line in (tmp_path / "o.jsonl").read_text().splitlines())
    reported = {int(m) for m in re.findall(rf"{re.escape(str(path))}:(\d+):", result.output)}
    summary = re.search(r"(\d+) row\(s\) read, (\d+) decided, (\d+) rejected", result.output)
    read, n_decided, rejected = map(int, summary.groups())
    assert set(decided.values()) <= {1} and len(decided) == n_decided
    assert not (set(decided) & reported)
    assert read == n_decided + rejected == sum(1 for r in rows if r.strip())


def test_the_cli_exits_as_documented_on_mutated_policies(tmp_path):
    """A few mutants through the real command: exit 0 or 1, never a traceback."""
    texts = list(POLICIES.values())
    for k in range(8):
        text = texts[k % len(texts)]
        cut = text[: len(text) * (k + 1) // 9]
        path = tmp_path / f"m{k}.policy"
        path.write_text(cut)
        done = subprocess.run([sys.executable, "-m", "reasoner.cli", "lint", str(path)], capture_output=True, text=True)
        assert done.returncode in (0, 1) and "Traceback" not in done.stderr + done.stdout
