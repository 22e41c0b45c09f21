"""reasoner batch: streaming files of patients through the fast backend."""
from __future__ import annotations

import json
import os
import subprocess
import sys

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from typer.testing import CliRunner

from reasoner.cli import EXIT_INPUT, EXIT_USAGE, app
from reasoner.io.patient import validate
from reasoner.language.load import load

from conftest import ROOT

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
    payers = [p.id for p in loaded.program.current]
    assert [(o["row"], o["id"], o["payer"]) for o in out] == [(r, i, p) for r, i in ((1, "a"), (2, "b"), (3, "c"))
                                                              for p in payers]
    for k, row in enumerate(ROWS):
        for d, o in zip(reasoner.decide(validate(row, loaded.vocab)), out[k * len(payers):]):
            assert (o["payer"], o["rule"], o["decision"], o["subkind"], o["prior_auth"], o["rule_label"]) == \
                (d.policy, d.rule, d.kind, d.subkind, d.prior_auth, d.rule_label)
            assert o["citation"] == (str(d.cite) if d.cite else None)


def test_denials_name_the_failing_criteria_as_why_not_does(tmp_path, reasoner, loaded):
    from reasoner.results.explain import why_not

    result = CliRunner().invoke(app, ["batch", str(_jsonl(tmp_path, ROWS[:1])), "--out", str(tmp_path / "o.jsonl"),
                                      "--payer", "uhc"])
    assert result.exit_code == 0, result.output
    (o,) = [json.loads(line) for line in (tmp_path / "o.jsonl").read_text().splitlines()]
    assert o["decision"] == "denied" and o["failing"] and len(o["failing"]) == len(o["failing_labels"])
    w = why_not(reasoner, validate(ROWS[0], loaded.vocab), "uhc")
    def walk(step):
        yield step
        for child in step.children:
            yield from walk(child)
    shown = {s.label for p in w.paths if p.in_scope for top in p.trace.steps for s in walk(top)}
    assert set(o["failing_labels"]) <= shown
    assert "pain_chronic_intractable" in o["failing"] and "chronic intractable pain" in o["failing_labels"]
    assert not any("relief" in f for f in o["failing"])  # the row's 55% relief meets uhc's 50%


def test_bad_rows_are_reported_by_line_and_skipped(tmp_path):
    bad = dict(ROWS[0], pain_trial_relief=150)
    path = _jsonl(tmp_path, [ROWS[0], bad, ROWS[1]], ["{not json\n"])
    result = CliRunner().invoke(app, ["batch", str(path), "--out", str(tmp_path / "o.jsonl")])
    assert result.exit_code == 0
    assert f"{path}:2: field 'pain_trial_relief'" in result.output
    assert f"{path}:4:" in result.output and "invalid JSON" in result.output
    assert "4 row(s) read, 2 decided, 2 rejected as invalid" in result.output
    assert sorted({json.loads(x)["row"] for x in (tmp_path / "o.jsonl").read_text().splitlines()}) == [1, 3]


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
    assert table.column_names == ["row", "id", "payer", "version", "decision", "subkind", "prior_auth", "rule", "rule_label",
                                  "citation", "failing", "failing_labels"]
    # columns of few values are dictionaries (written once per row group, not per row), read back as text
    assert pa.types.is_dictionary(table.schema.field("citation").type)
    assert {type(v) for v in table.column("citation").to_pylist()} == {str}
    read = duckdb.sql(f"SELECT DISTINCT payer, typeof(payer) FROM '{out}'").fetchall()
    assert read == [("uhc", "VARCHAR")]
    # so are the failing criteria's names and labels, item by item, read back as lists of text
    assert pa.types.is_dictionary(table.schema.field("failing_labels").type.value_type)
    labels = duckdb.sql(f"SELECT failing_labels, typeof(failing_labels) FROM '{out}' WHERE len(failing) > 0").fetchall()
    assert labels and all(kind == "VARCHAR[]" and items and all(isinstance(i, str) and i for i in items)
                          for items, kind in labels)


def test_parquet_input(tmp_path):
    path = tmp_path / "in.parquet"
    pq.write_table(pa.Table.from_pylist([{k: v for k, v in r.items() if k != "medications"} for r in ROWS]), path)
    result = CliRunner().invoke(app, ["batch", str(path), "--format", "csv", "--out", str(tmp_path / "o.csv")])
    assert result.exit_code == 0, result.output
    payers = len(load(ROOT / "policies").program.current)
    assert (tmp_path / "o.csv").read_text().count("\n") == 1 + 3 * payers  # header, then 3 patients x the payers


def test_typed_parquet_decides_and_reports_as_jsonl_does(tmp_path):
    """A Parquet file in the vocabulary's own schema takes the typed path (no JSON per row); its
    decisions and its bad-row messages are those of the same rows as JSONL."""
    from reasoner.engines.intake import arrow_schema, typed_columns

    rows = ROWS + [dict(ROWS[0], id="d", pain_trial_relief=150.5), dict(ROWS[1], id="e", service="pump")]
    schema = arrow_schema(load(ROOT / "policies").vocab)
    path = tmp_path / "in.parquet"
    pq.write_table(pa.Table.from_pylist(rows, schema=schema), path)
    assert typed_columns(load(ROOT / "policies").vocab, pq.read_schema(path)) is not None
    by_parquet = CliRunner().invoke(app, ["batch", str(path), "--out", str(tmp_path / "p.jsonl")])
    source = _jsonl(tmp_path, rows)
    by_jsonl = CliRunner().invoke(app, ["batch", str(source), "--out", str(tmp_path / "j.jsonl")])
    assert by_parquet.exit_code == by_jsonl.exit_code == 0, by_parquet.output
    assert (tmp_path / "p.jsonl").read_text() == (tmp_path / "j.jsonl").read_text()
    assert f"{path}:4: field 'pain_trial_relief'" in by_parquet.output
    assert by_parquet.output.replace(str(path), "F") == by_jsonl.output.replace(str(source), "F")


@pytest.mark.slow  # several seconds: left to the full run, to keep `-m "not slow"` under two minutes
def test_many_chunks_keep_input_order_with_rows_put_back_in_place(tmp_path, loaded):
    """The two streaming queries run on two threads over many chunks: the output stays in input
    order, then payer order; a row only `validate` accepts (a key written flat) is decided in its
    place, as its nested spelling is; bad rows are reported by line and leave no gap elsewhere."""
    lines, expected = [], []
    for n in range(1, 12_001):
        row = dict(ROWS[n % 3], id=f"r{n}")
        if n % 997 == 0:
            lines.append(json.dumps({k: v for k, v in row.items() if k != "medications"}
                                    | {"medications.nsaid.outcome": "failed"}) + "\n")
        elif n % 1009 == 0:
            lines.append(json.dumps(dict(row, age=500)) + "\n")
        elif n % 1013 == 0:
            lines.append("{not json\n")
        elif n % 1019 == 0:
            lines.append('{"id": "\udcff"}\n')  # a byte that is not UTF-8: known bad before any check
        else:
            lines.append(json.dumps(row) + "\n")
        if n % 1009 and n % 1013 and n % 1019 or n % 997 == 0:
            expected.append((n, row["id"], n % 3))
    source = tmp_path / "in.jsonl"
    source.write_bytes("".join(lines).encode("utf-8", "surrogateescape"))
    out = tmp_path / "o.jsonl"
    result = CliRunner().invoke(app, ["batch", str(source), "--out", str(out), "--chunk", "1000"])
    assert result.exit_code == 0, result.output
    payers = [p.id for p in loaded.program.current]
    got = [json.loads(line) for line in out.read_text().splitlines()]
    assert [(o["row"], o["id"], o["payer"]) for o in got] == [(n, i, p) for n, i, _ in expected for p in payers]
    decided = {}  # what each of the three rows gets, from its plainly written copies
    for (n, _, kind), o in zip([e for e in expected for _ in payers], got):
        if n % 997:
            decided.setdefault((kind, o["payer"]), (o["rule"], o["decision"], o["failing"]))
    for (n, _, kind), o in zip([e for e in expected for _ in payers], got):
        assert (o["rule"], o["decision"], o["failing"]) == decided[(kind, o["payer"])], n
    assert f"{source}:1009: field 'age'" in result.output and f"{source}:1013:" in result.output
    assert f"{source}:1019:" in result.output and "not valid UTF-8" in result.output
    summary = f"12000 row(s) read, {len(expected)} decided, {12_000 - len(expected)} rejected as invalid"
    assert summary in result.output


@pytest.mark.parametrize("args, where", [
    (["--format", "xml"], "--format"), (["--on-error", "ignore"], "--on-error"), (["--format", "parquet"], "--format"),
])
def test_bad_options(tmp_path, args, where):
    result = CliRunner().invoke(app, ["batch", str(_jsonl(tmp_path, ROWS)), *args])
    assert result.exit_code == EXIT_USAGE and where in result.output


def test_a_format_that_contradicts_the_output_s_name_is_refused(tmp_path):
    """`--out o.csv --format parquet` wrote Parquet under a .csv name without a word; a name of no
    known format (or the same format in capitals) still takes --format."""
    out = tmp_path / "o.csv"
    result = CliRunner().invoke(app, ["batch", str(_jsonl(tmp_path, ROWS)), "--out", str(out), "--format", "parquet"])
    assert result.exit_code == EXIT_USAGE and "--format: error: 'parquet' contradicts the name of --out 'o.csv'" in result.output
    assert not out.exists()
    for name in ("o.out", "o.CSV"):
        result = CliRunner().invoke(app, ["batch", str(_jsonl(tmp_path, ROWS)), "--out", str(tmp_path / name), "--format", "csv"])
        assert result.exit_code == 0 and (tmp_path / name).read_text().startswith('"row","id"'), result.output


def test_one_mistake_is_one_message(tmp_path):
    """An output folder is said to be a folder, not also a name of no format; an input that does not
    exist is not also asked its format."""
    (tmp_path / "adir").mkdir()
    folder = CliRunner().invoke(app, ["batch", str(_jsonl(tmp_path, ROWS)), "--out", str(tmp_path / "adir")])
    missing = CliRunner().invoke(app, ["batch", str(tmp_path / "none.txt"), "--out", str(tmp_path / "o.csv")])
    for result, message in ((folder, "is a folder"), (missing, "no such file")):
        assert result.exit_code == EXIT_USAGE and result.output.count("error:") == 1 and message in result.output, result.output


def test_unknown_extension(tmp_path):
    path = tmp_path / "in.txt"
    path.write_text("{}\n")
    result = CliRunner().invoke(app, ["batch", str(path)])
    assert result.exit_code == EXIT_USAGE and "cannot tell the format" in result.output


def test_csv_output_neutralises_formulas(tmp_path):
    path = _jsonl(tmp_path, [dict(ROWS[0], id="=HYPERLINK(\"http://x\")"), dict(ROWS[1], id="+1"), dict(ROWS[2], id="@a")])
    result = CliRunner().invoke(app, ["batch", str(path), "--out", str(tmp_path / "o.csv"), "--payer", "uhc"])
    assert result.exit_code == 0, result.output
    import csv
    ids = [r["id"] for r in csv.DictReader((tmp_path / "o.csv").open())]
    assert ids == ["'=HYPERLINK(\"http://x\")", "'+1", "'@a"]


@pytest.mark.parametrize("header, message", [
    ("id,service,agee\n", "column 'agee': error: is not a concept of the vocabulary. Did you mean 'age'?"),
    ("id,age,age\n", "column 'age': error: appears 2 times in the header"),
    ("id,service,medications\n", "column 'medications': error: is a record; give each of its facts a column of its own, "
                                 "named record.entry.field (e.g. 'medications.nsaid.outcome')."),
])
def test_csv_header_problems_are_reported_once_and_nothing_is_decided(tmp_path, header, message):
    path = tmp_path / "in.csv"
    path.write_text(header + "".join(f"p{i},implant,40\n" for i in range(50)))
    result = CliRunner().invoke(app, ["batch", str(path), "--out", str(tmp_path / "o.csv")])
    assert result.exit_code == EXIT_INPUT and result.output.count(message) == 1, result.output
    assert not (tmp_path / "o.csv").exists()


def test_parquet_column_problems_are_reported_once_and_nothing_is_decided(tmp_path):
    """A Parquet column the vocabulary does not know refuses the file once, naming it, as a CSV
    header does (it was every row's error, and the run exited 0); a record's struct column, and its
    facts as dotted columns, are known."""
    rows = [{k: v for k, v in r.items() if k != "medications"} for r in ROWS] * 20
    path, out = tmp_path / "in.parquet", tmp_path / "o.csv"
    pq.write_table(pa.Table.from_pylist([dict(r, colour="blue") for r in rows]), path)
    result = CliRunner().invoke(app, ["batch", str(path), "--out", str(out)])
    message = f"{path}: column 'colour': error: is not a concept of the vocabulary."
    assert result.exit_code == EXIT_INPUT and result.output.count(message) == 1, result.output
    assert not out.exists()
    pq.write_table(pa.Table.from_pylist([dict(r, **{"medications.nsaid.outcome": "failed"}) for r in rows]), path)
    assert CliRunner().invoke(app, ["batch", str(path), "--out", str(out)]).exit_code == 0


@pytest.mark.parametrize("ages", [None, [40.5, 41.0, 41.0]], ids=["typed path", "json path"])  # doubles for whole years: JSON
def test_a_pandas_index_column_in_parquet_is_not_data(tmp_path, ages):
    """A DataFrame written with its unnamed index (pandas' `__index_level_0__`) is read without it,
    on the typed path and the JSON path alike, instead of being refused as an unknown column."""
    rows = [{k: v for k, v in r.items() if k != "medications"} for r in ROWS]
    table = pa.Table.from_pylist([dict(r, **({"age": ages[i]} if ages else {})) for i, r in enumerate(rows)])
    path, out = tmp_path / "in.parquet", tmp_path / "o.jsonl"
    pq.write_table(table.append_column("__index_level_0__", pa.array([7, 3, 9], pa.int64())), path)
    result = CliRunner().invoke(app, ["batch", str(path), "--out", str(out), "--payer", "uhc"])
    assert result.exit_code == 0 and "__index_level_0__" not in result.output, result.output
    decided = [json.loads(x)["id"] for x in out.read_text().splitlines()]
    assert decided == (["a", "b", "c"] if ages is None else ["b", "c"])  # a fractional age is the row's own problem


@pytest.mark.parametrize("fmt", ["parquet", "csv", "jsonl"])
@pytest.mark.parametrize("lines", [[], [json.dumps(dict(ROWS[0], age=400)) + "\n"]], ids=["empty", "all rejected"])
def test_a_run_that_decides_no_row_still_writes_a_file_with_the_output_columns(tmp_path, fmt, lines):
    """No row decided (an empty file, every row rejected): the output is still a file its reader
    opens, with the columns a run that decides rows writes (it was 0 bytes: no Parquet footer, no
    CSV header)."""
    path, out, full = _jsonl(tmp_path, [], lines), tmp_path / f"o.{fmt}", tmp_path / f"full.{fmt}"
    result = CliRunner().invoke(app, ["batch", str(path), "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert CliRunner().invoke(app, ["batch", str(_jsonl(tmp_path, ROWS)), "--out", str(full)]).exit_code == 0
    if fmt == "parquet":
        assert pq.read_table(out).num_rows == 0 and pq.read_schema(out).equals(pq.read_schema(full))
    elif fmt == "csv":
        assert out.read_text() == full.read_text().splitlines(keepends=True)[0]  # the header alone
    else:
        assert out.read_bytes() == b""  # JSON Lines of no rows


def test_jsonl_rows_that_are_not_objects_or_not_json_are_told_in_the_row_s_own_terms(tmp_path):
    """A UTF-8 byte-order mark is not part of the first row; invalid JSON is placed by its column
    in the line (a cut line ended at "line 2, column 1"); a row that is an array says what a
    JSON Lines file is, and its reason in the summary is the whole of it."""
    good = json.dumps(ROWS[0])
    cut = good[:good.index('"age": ') + len('"age": ')]  # a value is expected at the end of the line
    path = tmp_path / "in.jsonl"
    path.write_bytes(b"\xef\xbb\xbf" + (good + "\n" + cut + "\n" + json.dumps([ROWS[0], ROWS[1]]) + "\n").encode())
    result = CliRunner().invoke(app, ["batch", str(path), "--out", str(tmp_path / "o.jsonl"), "--json"])
    assert result.exit_code == 0, result.output
    assert [json.loads(x)["row"] for x in (tmp_path / "o.jsonl").read_text().splitlines()][:1] == [1]
    assert f"{path}:2: column {len(cut) + 1}: error: invalid JSON: Expecting value." in result.output
    array = "the row is an array, not an object of concept and value pairs; a file that is one JSON array is not JSON Lines"
    assert f"{path}:3: error: {array}, which has one object per line." in result.output
    summary = json.loads(result.stdout[result.stdout.index("{"):])
    assert summary["rejected_by_reason"] == {"invalid JSON": 1, f"{array}, which has one object per line": 1}


def test_ragged_csv_rows_are_row_errors(tmp_path):
    path = tmp_path / "in.csv"
    path.write_text("id,service,indications,line_of_business\np1,implant,nonmalignant_pain,commercial\n"
                    "p2,implant,nonmalignant_pain\np3,implant,nonmalignant_pain,commercial,extra\n")
    result = CliRunner().invoke(app, ["batch", str(path), "--out", str(tmp_path / "o.jsonl"), "--payer", "uhc"])
    assert result.exit_code == 0
    assert f"{path}:3: row: error: has 3 cell(s); the header has 4." in result.output
    assert f"{path}:4: row: error: has 5 cell(s); the header has 4." in result.output
    assert [json.loads(x)["id"] for x in (tmp_path / "o.jsonl").read_text().splitlines()] == ["p1"]


def test_summary_json_counts_rows_reasons_and_decisions(tmp_path):
    path = _jsonl(tmp_path, [ROWS[0], dict(ROWS[1], age=400), ROWS[2]], ["{not json\n"])
    result = CliRunner().invoke(app, ["batch", str(path), "--out", str(tmp_path / "o.jsonl"), "--json", "--payer", "uhc"])
    assert result.exit_code == 0
    summary = json.loads(result.stdout[result.stdout.index("{"):])
    assert (summary["read"], summary["decided"], summary["rejected"]) == (4, 2, 2)
    assert summary["rejected_by_reason"] == {"field 'age'": 1, "invalid JSON": 1}
    assert sum(summary["decisions"]["uhc"].values()) == 2


@pytest.mark.parametrize("typed", [False, True], ids=["jsonl", "typed parquet"])
def test_as_of_dates_the_undated_rows_as_check_does_and_keeps_every_date(tmp_path, typed):
    """`batch --as-of` dates a request that has none (so the version then in force decides it), as
    `check --as-of` does, on the SQL path, the typed path and the `validate` fallback alike (row 3
    is spelled as only `validate` reads it); a dated row keeps its date; a bad date is still bad."""
    from reasoner.engines.intake import arrow_schema

    loaded = load(ROOT / "policies")
    rows = [dict(ROWS[0], id="undated"), dict(ROWS[0], id="dated", request_date="2020-01-02"),
            dict(ROWS[0], id="bad", request_date="2017-02-30")]
    if typed:  # a date column holds only real dates: the bad one is left to the JSON path
        import datetime as dt

        path = tmp_path / "in.parquet"
        typed_rows = [rows[0], dict(rows[1], request_date=dt.date(2020, 1, 2))]
        pq.write_table(pa.Table.from_pylist(typed_rows, schema=arrow_schema(loaded.vocab)), path)
    else:
        flat = {k: v for k, v in ROWS[0].items() if k != "medications"} | {"medications.nsaid.outcome": "failed"}
        path = _jsonl(tmp_path, rows[:2] + [dict(flat, id="flat")] + rows[2:])
    done = CliRunner().invoke(app, ["batch", str(path), "--as-of", "2016-06-01", "--out", str(tmp_path / "o.jsonl")])
    assert done.exit_code == 0, done.output
    out = {(o["id"], o["payer"]): o for o in map(json.loads, (tmp_path / "o.jsonl").read_text().splitlines())}
    assert not any(i == "bad" for i, _ in out) and (typed or "2017-02-30" in done.output)
    assert out[("undated", "cam70141")]["version"] == "cam70141_pre2018"
    assert out[("dated", "cam70141")]["version"] == "cam70141"
    if not typed:
        assert out[("flat", "cam70141")]["version"] == "cam70141_pre2018"
    example = tmp_path / "undated.json"
    example.write_text(json.dumps(rows[0]))
    checked = json.loads(CliRunner().invoke(app, ["check", str(example), "--as-of", "2016-06-01", "--json"]).stdout)
    for d in checked["decisions"]:
        payer = next(p.id for p in loaded.program.current if d["policy"] in {v.id for v in loaded.program.versions(p.id)})
        assert (out[("undated", payer)]["version"], out[("undated", payer)]["rule"],
                out[("undated", payer)]["decision"]) == (d["policy"], d["rule"], d["decision"])
    bad = CliRunner().invoke(app, ["batch", str(path), "--as-of", "June 2016"])
    assert bad.exit_code == EXIT_USAGE and "--as-of" in bad.output


@pytest.mark.parametrize("block", [1, 7, 64, 1 << 24])
def test_jsonl_lines_are_numbered_and_read_whatever_the_block_size(tmp_path, monkeypatch, block):
    """The reader cuts the file's blocks at their newlines: a line split across blocks, a blank
    line, a line that is not UTF-8, a CRLF ending and a last line without a newline are read as
    the file's own lines, numbered as an editor numbers them."""
    from reasoner.io import batch

    path = tmp_path / "rows.jsonl"
    path.write_bytes(b'{"id": "a"}\n\n  \t\n\xff{"id": "x"}\n{"id": "b\xc3\xa9"}\r\n' + b'{"id": "long' + b"z" * 100 + b'"}')
    monkeypatch.setattr(batch, "BLOCK", block)
    read = list(batch._jsonl(path, 2))
    texts = {n: t for c in read if c.arrow is not None for n, t in zip(c.arrow["line"].to_pylist(), c.arrow["j"].to_pylist())}
    bad = {n: e for c in read for n, e in c.bad.items()}
    assert sorted(texts) == [1, 5, 6] and sorted(bad) == [4]
    assert json.loads(texts[5]) == {"id": "bé"} and json.loads(texts[6])["id"].startswith("long")
    assert "UTF-8" in bad[4].problems[0].message
    assert sum(len(c) for c in read) == 4  # blank lines are not rows


def test_a_line_too_long_for_a_patient_stops_the_run_by_its_number_and_leaves_no_output(tmp_path, monkeypatch):
    """A line longer than LONGEST_LINE (say, a file that is one JSON array, not JSON Lines) is
    refused by its number before a buffer (twice the line) could outgrow the reader's 32-bit
    offsets; a line a little shorter is read and decided."""
    from reasoner.io import batch

    monkeypatch.setattr(batch, "BLOCK", 1024)
    monkeypatch.setattr(batch, "LONGEST_LINE", 4096)
    within = dict(ROWS[0], description="x" * 3900)
    out = tmp_path / "o.jsonl"
    path = _jsonl(tmp_path, [ROWS[1], within, dict(ROWS[2], description="y" * 9000), ROWS[0]])
    result = CliRunner().invoke(app, ["batch", str(path), "--out", str(out)])
    assert result.exit_code == EXIT_INPUT and f"{path}:3: error: the line is longer than" in result.output
    assert not out.exists() and "Traceback" not in result.output
    result = CliRunner().invoke(app, ["batch", str(_jsonl(tmp_path, [ROWS[1], within])), "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert {json.loads(line)["id"] for line in out.read_text().splitlines()} == {"b", "a"}


def test_jsonl_buffers_are_reused_only_once_nothing_holds_their_rows(tmp_path, monkeypatch):
    """The reader reads rows in place and reuses a buffer once every chunk cut from it is let
    go: the chunks kept hold their own text to the end, while the chunks let go leave only a
    few buffers made however long the file."""
    from reasoner.io import batch

    lines = [json.dumps({"id": f"row{i}", "description": "x" * (i % 37)}) for i in range(3000)]
    path = tmp_path / "rows.jsonl"
    path.write_text("\n".join(lines) + "\n")
    pools = []

    class Recorded(batch._Buffers):
        def __init__(self):
            super().__init__()
            pools.append(self)

    monkeypatch.setattr(batch, "_Buffers", Recorded)
    monkeypatch.setattr(batch, "BLOCK", 1024)
    kept, seen = [], []
    for i, chunk in enumerate(batch._jsonl(path, 50)):
        if chunk.arrow is not None:
            seen += chunk.arrow["j"].to_pylist()
            if i % 5 == 0:
                kept.append((chunk, chunk.arrow["j"].to_pylist()))
    assert seen == [line + "\n" for line in lines]  # a row's text is its line, newline included
    assert all(c.arrow["j"].to_pylist() == texts for c, texts in kept)
    blocks = path.stat().st_size // 1024
    assert len(kept) > 10 and len(pools[0].made) <= 4 * len(kept) + 4 < blocks  # a chunk spans at most 4 buffers


ALLOCATOR_PROBE = """
import ctypes, sys
import reasoner.io.batch, _duckdb  # the batch, which imports duckdb
try:
    mallctl = ctypes.CDLL(_duckdb.__file__).duckdb_je_mallctl
except AttributeError:
    sys.exit(3)  # a DuckDB built without its jemalloc: nothing to keep
v, n = ctypes.c_ssize_t(), ctypes.c_size_t(ctypes.sizeof(ctypes.c_ssize_t))
assert mallctl(b"arenas.dirty_decay_ms", ctypes.byref(v), ctypes.byref(n), None, ctypes.c_size_t(0)) == 0
print(v.value)
"""


@pytest.mark.parametrize("own, kept", [(None, 30000), ("dirty_decay_ms:5000", 5000)])
def test_duckdb_keeps_freed_pages_for_reuse_unless_the_user_says_otherwise(own, kept):
    """Importing the batch has DuckDB's allocator keep freed pages 30 s (the JSON intake reuses
    them instead of faulting in zeroed ones): the setting comes before duckdb is first imported.
    A user's own setting is left alone."""
    env = {k: v for k, v in os.environ.items() if k != "DUCKDB_JE_MALLOC_CONF"}
    env.update({"DUCKDB_JE_MALLOC_CONF": own} if own else {})
    done = subprocess.run([sys.executable, "-c", ALLOCATOR_PROBE], env=env, cwd=ROOT, capture_output=True, text=True)
    if done.returncode == 3:
        pytest.skip("this DuckDB has no jemalloc")
    assert done.returncode == 0, done.stderr
    assert int(done.stdout) == kept
