"""Differential tests: Spark SQL runs the fast backend's query and decides exactly as DuckDB does
(deciding rule, decision and failing criteria per payer), on 10,000+ generated patients, on the
golden cases, through `reasoner batch --engine spark`, and Parquet to Parquet as on a cluster."""
from __future__ import annotations

import json
import shutil
import sys
from collections import Counter

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import yaml

from typer.testing import CliRunner

from reasoner.cli import EXIT_USAGE, app
from reasoner.engines.duck import FastBackend
from reasoner.errors import InputError
from reasoner.io.patient import validate
from reasoner.language.load import load

from conftest import ROOT, scenario_data

sys.path.insert(0, str(ROOT / "benchmarks"))
from bench_batch import synthetic_sql  # noqa: E402  (one generator for the benchmark and this test)

LOADED = load(ROOT / "policies")
GENERATED = 12_000


def needs_spark(test):
    """Slow, and skipped where no Java runtime is installed (CI installs one)."""
    return pytest.mark.slow(pytest.mark.skipif(shutil.which("java") is None, reason="Spark needs a Java runtime")(test))


@pytest.fixture(scope="module")
def backends():
    pytest.importorskip("pyspark")
    from reasoner.engines.spark import SparkBackend

    spark = SparkBackend(LOADED.program, LOADED.vocab)
    yield FastBackend(LOADED.program, LOADED.vocab), spark
    spark.close()


def _generated(fast: FastBackend, n: int) -> pa.Table:
    fast.con.execute("SELECT setseed(0.25)").fetchall()
    table = fast.con.sql(synthetic_sql(fast.layout, LOADED.vocab, n)).to_arrow_table()
    return table.cast(fast.schema)


def _both(backends, patients: pa.Table) -> tuple[pa.Table, pa.Table]:
    fast, spark = backends
    return fast.run_arrow(patients).sort_by("pid"), spark.run_arrow(patients).sort_by("pid")


@needs_spark
def test_spark_equals_duckdb_on_generated_patients(backends):
    duck, spark = _both(backends, _generated(backends[0], GENERATED))
    assert duck.num_rows == spark.num_rows == GENERATED
    assert spark.schema == duck.schema
    for name in duck.column_names:
        assert spark.column(name).equals(duck.column(name)), name
    # the comparison is worth something only if the patients reach many outcomes and criteria
    for p in LOADED.program.policies:
        decisions = Counter(duck.column(f"{p.id}__decision").to_pylist())
        assert len(decisions) >= 2, (p.id, decisions)
        assert len(set(duck.column(f"{p.id}__failing").to_pylist())) >= 20, p.id


@needs_spark
def test_spark_equals_duckdb_on_golden_cases(backends):
    facts = []
    for path in sorted((ROOT / "tests/cases").rglob("*.yaml")):
        doc = yaml.safe_load(path.read_text())
        for sc in doc["scenarios"]:
            facts.append(validate(scenario_data(doc["base"], sc, LOADED.vocab), LOADED.vocab, sc["name"]).facts)
    duck, spark = _both(backends, backends[0].table(facts))
    assert duck.num_rows == len(facts) > 50
    assert spark.equals(duck)
    covered = sum(v == "covered" for p in LOADED.program.policies for v in duck.column(f"{p.id}__decision").to_pylist())
    assert covered > 20


@needs_spark
def test_spark_decides_parquet_to_parquet_as_on_a_cluster(backends, tmp_path):
    fast, spark = backends
    patients = _generated(fast, 2_000)
    pq.write_table(patients.cast(spark.layout_schema()), tmp_path / "patients.parquet")
    spark.decide_parquet(str(tmp_path / "patients.parquet"), str(tmp_path / "decided"))
    got = pq.read_table(tmp_path / "decided").sort_by("pid")
    want = fast.run_arrow(patients).sort_by("pid")
    assert got.num_rows == 2_000
    assert got.select(want.column_names).cast(want.schema).equals(want)


@needs_spark
def test_batch_engine_spark_writes_what_duckdb_writes(tmp_path):
    pytest.importorskip("pyspark")
    rows = []
    for path in sorted((ROOT / "tests/cases").rglob("*.yaml"))[:4]:
        doc = yaml.safe_load(path.read_text())
        rows += [dict(scenario_data(doc["base"], sc, LOADED.vocab), id=sc["name"]) for sc in doc["scenarios"]]
    rows.insert(3, {"id": "bad", "age": "old"})
    source = tmp_path / "patients.jsonl"
    source.write_text("".join(json.dumps(r) + "\n" for r in rows))
    outputs = {}
    for engine in ("duckdb", "spark"):
        result = CliRunner().invoke(app, ["batch", str(source), "--engine", engine, "--out", str(tmp_path / f"{engine}.csv")])
        assert result.exit_code == 0, result.output
        outputs[engine] = (tmp_path / f"{engine}.csv").read_text()
    assert outputs["spark"] == outputs["duckdb"]
    assert outputs["spark"].count("\n") == 1 + (len(rows) - 1) * len(LOADED.program.current)


def test_engine_spark_without_pyspark_is_a_clear_usage_error(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "pyspark", None)  # import pyspark now raises ImportError
    source = tmp_path / "p.jsonl"
    source.write_text("{}\n")
    result = CliRunner().invoke(app, ["batch", str(source), "--engine", "spark", "--out", str(tmp_path / "out.csv")])
    assert result.exit_code == EXIT_USAGE
    assert "PySpark is not installed" in result.output and "Traceback" not in result.output
    assert not (tmp_path / "out.csv").exists()


def test_engine_spark_without_java_is_a_clear_error(monkeypatch):
    pytest.importorskip("pyspark")
    from reasoner.engines import spark

    monkeypatch.setattr(shutil, "which", lambda name: None)
    monkeypatch.delenv("JAVA_HOME", raising=False)
    with pytest.raises(InputError, match="Java runtime"):
        spark.local_session()


def test_spark_job_prints_the_input_layout(capsys):
    from reasoner.engines import spark_job
    from reasoner.engines.sql import layout

    assert spark_job.main(["--schema"]) == 0
    printed = capsys.readouterr().out.splitlines()
    assert printed[0].startswith("pid: BIGINT")
    assert [line.split(":")[0] for line in printed[1:]] == [c.name for c in layout(LOADED.program, LOADED.vocab).columns]


@needs_spark
def test_spark_job_decides_a_dataset_with_the_session_it_is_given(backends, tmp_path):
    from reasoner.engines import spark_job

    fast, spark = backends
    patients = _generated(fast, 1_000)
    pq.write_table(patients.cast(spark.layout_schema()), tmp_path / "in.parquet")
    assert spark_job.main([str(tmp_path / "in.parquet"), str(tmp_path / "out"), "--payer", "cmm210"]) == 0
    got = pq.read_table(tmp_path / "out").sort_by("pid")
    assert got.column_names == ["pid", "cmm210__rule", "cmm210__decision", "cmm210__failing"]
    want = fast.run_arrow(patients).sort_by("pid")
    assert got.column("cmm210__failing").to_pylist() == want.column("cmm210__failing").to_pylist()
