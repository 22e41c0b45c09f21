"""Spark local against DuckDB on the same Parquet file of synthetic patients × every payer.

Both read the same wide Parquet file (written once, by DuckDB, from `bench_batch.synthetic_sql`),
run the same compiled decision query and write Parquet; the figures are wall-clock seconds for
read + decide + write, and the results are compared before any figure is printed (a benchmark of
two engines that disagree would measure nothing). Spark's session start-up is reported apart.

Run: python benchmarks/bench_spark.py [--sizes 100000 1000000]   (needs the spark extra and Java)
"""
from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import pyarrow.parquet as pq

sys.path.insert(0, str(Path(__file__).resolve().parent))
import figures  # noqa: E402
from bench_batch import synthetic_sql  # noqa: E402

ROOT = figures.ROOT


def _same(a: Path, b: Path) -> bool:
    left, right = pq.read_table(a).sort_by("pid"), pq.read_table(b).sort_by("pid")
    right = right.select(left.column_names).cast(left.schema)
    return left.equals(right)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--sizes", type=int, nargs="+", default=[100_000, 1_000_000])
    args = ap.parse_args()

    from reasoner.engines.duck import FastBackend
    from reasoner.engines.spark import SparkBackend
    from reasoner.language.load import load

    loaded = load(ROOT / "policies")
    fast = FastBackend(loaded.program, loaded.vocab)
    start = time.perf_counter()
    spark = SparkBackend(loaded.program, loaded.vocab)
    startup = time.perf_counter() - start
    payers = len(loaded.program.policies)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for n in args.sizes:
            source = Path(tmp) / f"patients_{n}.parquet"
            fast.con.execute("SELECT setseed(0.5)").fetchall()
            fast.con.execute(f"COPY ({synthetic_sql(fast.layout, loaded.vocab, n)}) TO '{source}' (FORMAT parquet)")
            duck_out, spark_out = Path(tmp) / f"duck_{n}.parquet", Path(tmp) / f"spark_{n}"
            query = fast.query.replace("FROM patients", f"FROM read_parquet('{source}')")
            start = time.perf_counter()
            fast.con.execute(f"COPY ({query}) TO '{duck_out}' (FORMAT parquet)")
            duck_s = time.perf_counter() - start
            start = time.perf_counter()
            spark.decide_parquet(str(source), str(spark_out))
            spark_s = time.perf_counter() - start
            if not _same(duck_out, spark_out):
                raise SystemExit(f"Spark and DuckDB decided the {n:,} patients differently")
            print(f"{n:>9,} patients x {payers} policies, Parquet to Parquet: DuckDB {duck_s:.2f} s, "
                  f"Spark local[2] {spark_s:.2f} s (equal results)")
            rows.append([f"{n:,} synthetic patients × {payers} policies", f"{duck_s:.2f} s", f"{spark_s:.2f} s",
                         "identical"])
    spark.close()
    print(f"Spark session start-up: {startup:.1f} s")
    body = figures.table(["Parquet → decide → Parquet", "DuckDB", "Spark local[2]", "results"], rows)
    figures.write("bench_spark", body + f"\n\nSpark session start-up (once per run): {startup:.1f} s.")


if __name__ == "__main__":
    main()
