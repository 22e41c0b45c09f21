"""Reference engine vs fast backend, in one run. Prints figures; asserts nothing.

- pyDatalog one patient at a time (on a sample): patients/s and peak memory;
- the DuckDB backend on 10k, 100k and 1M synthetic patients x all payers: patients/s and peak
  memory (each size in a fresh process, so peaks do not mix), and the ratio to pyDatalog;
- warm per-patient latency of check + why-not on the reference engine; CLI cold start.

Synthetic patients are generated inside DuckDB from the table layout (values drawn at random
within each concept's range and domain), so generation does not dominate the measurement.

Run: python benchmarks/bench_batch.py [--sizes 10000 100000 1000000]
"""
from __future__ import annotations

import argparse
import json
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import figures  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent


def _peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def synthetic_sql(layout, vocab, n: int) -> str:
    """A SELECT producing n random patients laid out as the fast backend's table."""
    cols = ["i AS pid"]
    for c in layout.columns:
        concept = vocab.concepts[c.concept]
        if c.sql_type == "BOOLEAN":
            cols.append(f"random() < 0.6 AS {c.name}")
        elif c.sql_type == "DOUBLE":
            low, high = (float(concept.low), float(concept.high)) if concept.kind == "number" else (735000.0, 740000.0)
            cols.append(f"CASE WHEN random() < 0.8 THEN round({low} + random() * {high - low}) END AS {c.name}")
        else:
            values = vocab.values_of(c.concept)
            cases = " ".join(f"WHEN {k} THEN '{v}'" for k, v in enumerate(values))
            cols.append(f"CASE CAST(floor(random() * {len(values)}) AS INTEGER) {cases} END AS {c.name}")
    return f"SELECT {', '.join(cols)} FROM range({n}) t(i)"


def fast_run(n: int) -> dict:
    """In a child process: build n synthetic patients, decide them under every payer."""
    from reasoner.language.load import load
    from reasoner.engines.duck import FastBackend

    loaded = load(ROOT / "policies")
    backend = FastBackend(loaded.program, loaded.vocab)
    backend.con.execute(f"CREATE TABLE synth AS {synthetic_sql(backend.layout, loaded.vocab, n)}")
    query = backend.query.replace("FROM patients", "FROM synth")
    start = time.perf_counter()
    result = backend.con.sql(query).to_arrow_table()
    elapsed = time.perf_counter() - start
    decided = result.num_rows
    return {"n": n, "payers": len(loaded.program.policies), "seconds": elapsed, "per_s": decided / elapsed,
            "peak_mb": _peak_mb()}


def _reference(n: int) -> dict:
    from hypothesis import HealthCheck, given, settings

    from reasoner import Reasoner, load
    from reasoner.results.explain import why_not
    from reasoner.results.repair import repairs
    from reasoner.search.strategies import patients

    loaded = load(ROOT / "policies")
    reasoner = Reasoner(loaded)
    sample = []

    @settings(max_examples=n, database=None, derandomize=True, suppress_health_check=list(HealthCheck))
    @given(patients(loaded))
    def collect(p):
        sample.append(p)

    collect()
    start = time.perf_counter()
    for p in sample:
        reasoner.decide(p)
    per_s = len(sample) / (time.perf_counter() - start)
    latencies, with_repair = [], []
    for p in sample[:100]:
        start = time.perf_counter()
        reasoner.decide(p)
        why_not(reasoner, p, "geisinger")
        latencies.append(time.perf_counter() - start)
        repairs(reasoner, p, "geisinger", limit=1)
        with_repair.append(time.perf_counter() - start)
    return {"n": len(sample), "payers": len(loaded.program.policies), "per_s": per_s, "peak_mb": _peak_mb(),
            "check_why_not_ms": statistics.median(latencies) * 1000,
            "with_repair_ms": statistics.median(with_repair) * 1000}


def _child(kind: str, n: int) -> dict:
    code = f"import json, sys; sys.path.insert(0, {str(ROOT / 'benchmarks')!r}); import bench_batch as b; " \
           f"print(json.dumps(b.{kind}({n})))"
    out = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True, cwd=ROOT)
    return json.loads(out.stdout.strip().splitlines()[-1])


def cold_start() -> float:
    start = time.perf_counter()
    subprocess.run([sys.executable, "-m", "reasoner.cli", "check", "examples/nonmalignant_implant.yaml", "--json"],
                   check=True, capture_output=True, cwd=ROOT)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000, 1_000_000])
    parser.add_argument("--sample", type=int, default=300)
    args = parser.parse_args()
    ref = _child("_reference", args.sample)
    rows = [[f"pyDatalog, one patient at a time ({ref['n']} generated patients)",
             f"{ref['per_s']:.0f} patients/s, peak {ref['peak_mb']:.0f} MB"]]
    print(f"pyDatalog, one at a time: {ref['n']} patients x {ref['payers']} payers: "
          f"{ref['per_s']:.0f} patients/s, peak {ref['peak_mb']:.0f} MB")
    print(f"warm check + why-not (one payer): median {ref['check_why_not_ms']:.1f} ms; "
          f"with minimal repairs: {ref['with_repair_ms']:.1f} ms")
    for n in args.sizes:
        r = _child("fast_run", n)
        print(f"DuckDB backend: {n:>9,} patients x {r['payers']} payers in {r['seconds']:.2f} s = "
              f"{r['per_s']:,.0f} patients/s, peak {r['peak_mb']:.0f} MB, {r['per_s'] / ref['per_s']:,.0f}x pyDatalog")
        rows.append([f"DuckDB decision query, {n:,} synthetic patients × {r['payers']} policies",
                     f"{r['seconds']:.2f} s ({r['per_s']:,.0f} patients/s, {r['per_s'] / ref['per_s']:,.0f}× pyDatalog), "
                     f"peak {r['peak_mb']:.0f} MB"])
    cold = cold_start() * 1000
    print(f"CLI cold start (reasoner check, one patient, all payers): {cold:.0f} ms")
    rows += [["warm `check` + `why-not`, one payer (median)",
              f"{ref['check_why_not_ms']:.1f} ms; {ref['with_repair_ms']:.0f} ms with minimal repairs"],
             ["CLI cold start (`reasoner check`, one patient, all payers)", f"{cold:.0f} ms"]]
    figures.write("bench_batch", figures.table(["measurement", "figure"], rows))

if __name__ == "__main__":
    main()
