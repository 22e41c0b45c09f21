"""reasoner batch: streaming files of patients through the fast backend."""
from __future__ import annotations

import json

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from typer.testing import CliRunner

from reasoner.cli import EXIT_INPUT, EXIT_USAGE, app
from reasoner.io.patient import validate

ROWS = [
    {"id": "a", "service": "implant", "indications": ["nonmalignant_pain"], "line_of_business": "commercial",
     "age": 40, "pain_trial_relief": 55, "medications": {"nsaid": {"outcome": "failed"}}},
    {"id": "b", "service": "trial", "indications": ["spasticity"], "line_of_business": "medicaid"},
    {"id": "c", "service": "implant", "indications": ["cancer_pain"], "line_of_business": "commercial", "age": 70},
]


def _jsonl(tmp_path, rows, extra_lines=()):
    path = tmp_path / "in.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows) + "".join(extra_lines))
    return path


def test_jsonl_decisions_match_check(tmp_path, reasoner, loaded):
    result = CliRunner().invoke(app, ["batch", str(_jsonl(tmp_path, ROWS)), "--out", str(tmp_path / "o.jsonl")])
    assert result.exit_code == 0, result.output
    out = [json.loads(line) for line in (tmp_path / "o.jsonl").read_text().splitlines()]
    assert [o["row"] for o in out] == [1, 2, 3] and [o["id"] for o in out] == ["a", "b", "c"]
    for row, o in zip(ROWS, out):
        for d in reasoner.decide(validate(row, loaded.vocab)):
            assert (o[f"{d.policy}__rule"], o[f"{d.policy}__decision"]) == (d.rule, d.kind)


def test_bad_rows_are_reported_by_line_and_skipped(tmp_path):
    bad = dict(ROWS[0], pain_trial_relief=150)
    path = _jsonl(tmp_path, [ROWS[0], bad, ROWS[1]], ["{not json\n"])
    result = CliRunner().invoke(app, ["batch", str(path), "--out", str(tmp_path / "o.jsonl")])
    assert result.exit_code == 0
    assert f"{path}:2: field 'pain_trial_relief'" in result.output
    assert f"{path}:4:" in result.output and "invalid JSON" in result.output
    assert "4 row(s) read, 2 decided, 2 skipped as invalid" in result.output
    assert [json.loads(x)["row"] for x in (tmp_path / "o.jsonl").read_text().splitlines()] == [1, 3]


def test_reject_mode_stops_and_leaves_no_output(tmp_path):
    path = _jsonl(tmp_path, [ROWS[0], dict(ROWS[1], service="pump")])
    out = tmp_path / "o.parquet"
    result = CliRunner().invoke(app, ["batch", str(path), "--out", str(out), "--on-error", "reject"])
    assert result.exit_code == EXIT_INPUT and f"{path}:2: field 'service'" in result.output
    assert not out.exists() and "Traceback" not in result.output


def test_csv_in_parquet_out_with_small_chunks(tmp_path):
    csv = tmp_path / "in.csv"
    csv.write_text("id,service,indications,line_of_business,age,medications.nsaid.outcome,diagnoses\n"
                   + "".join(f"p{i},implant,nonmalignant_pain,commercial,{30 + i},failed,M96.1;G90.51\n" for i in range(7)))
    out = tmp_path / "o.parquet"
    result = CliRunner().invoke(app, ["batch", str(csv), "--out", str(out), "--chunk", "3", "--payer", "uhc"])
    assert result.exit_code == 0, result.output
    table = pq.read_table(out)
    assert table.column("id").to_pylist() == [f"p{i}" for i in range(7)]
    assert table.column("row").to_pylist() == list(range(2, 9))  # CSV line numbers (header is line 1)
    assert set(table.column_names) == {"row", "id", "uhc__rule", "uhc__decision", "uhc__failing"}


def test_parquet_input(tmp_path):
    path = tmp_path / "in.parquet"
    pq.write_table(pa.Table.from_pylist([{k: v for k, v in r.items() if k != "medications"} for r in ROWS]), path)
    result = CliRunner().invoke(app, ["batch", str(path), "--format", "csv", "--out", str(tmp_path / "o.csv")])
    assert result.exit_code == 0, result.output
    assert (tmp_path / "o.csv").read_text().count("\n") == 4


@pytest.mark.parametrize("args, where", [
    (["--format", "xml"], "--format"), (["--on-error", "ignore"], "--on-error"), (["--format", "parquet"], "--format"),
])
def test_bad_options(tmp_path, args, where):
    result = CliRunner().invoke(app, ["batch", str(_jsonl(tmp_path, ROWS)), *args])
    assert result.exit_code == EXIT_USAGE and where in result.output


def test_unknown_extension(tmp_path):
    path = tmp_path / "in.txt"
    path.write_text("{}\n")
    result = CliRunner().invoke(app, ["batch", str(path)])
    assert result.exit_code == EXIT_USAGE and "cannot tell the format" in result.output
