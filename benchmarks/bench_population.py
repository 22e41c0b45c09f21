"""`reasoner batch` end to end on a population file, beside DuckDB's own read of the same file.

Writes N realistic patients (drawn from the vocabulary by the diff search's Hypothesis strategies:
2,000 distinct patients, repeated with new ids) as JSONL and as Parquet, then, each in a fresh
process so peaks do not mix, `--repeat` times (3), alternating between the inputs so that a slower
spell of a shared host falls on both, and reporting the median with the range:
- DuckDB alone reads the file and aggregates a column (the floor any tool reading it pays);
- `reasoner batch FILE --out decisions.parquet` decides it under every payer (validation, decision,
  long output with labels and citations), with its peak memory;
- once, the batch of the file's first half, for its peak memory: memory should not grow with rows.
Prints figures and writes `benchmarks/figures/bench_population.md` (copied into the README).

Run: python benchmarks/bench_population.py [--rows 1000000] [--repeat 3] [--keep DIR [--reuse]]
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import figures  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
DISTINCT = 2_000


def sample() -> list[str]:
    """DISTINCT generated patients as JSON objects without ids."""
    from hypothesis import HealthCheck, given, settings

    from reasoner.io.patient import nested
    from reasoner.language.load import load
    from reasoner.search.strategies import patients

    loaded = load(ROOT / "policies")
    out: list[str] = []

    @settings(max_examples=DISTINCT, database=None, derandomize=True, suppress_health_check=list(HealthCheck))
    @given(patients(loaded))
    def collect(p):
        out.append(json.dumps(nested(p.facts, loaded.vocab), default=str)[1:-1])

    collect()
    return out


def write_files(folder: Path, rows: int) -> tuple[Path, Path]:
    bodies = sample()
    jsonl = folder / "members.jsonl"
    with jsonl.open("w") as handle:
        for i in range(rows):
            handle.write(f'{{"id": "m{i}", {bodies[i % len(bodies)]}}}\n')
    parquet = folder / "members.parquet"
    import duckdb
    duckdb.sql(f"COPY (SELECT * FROM read_json('{jsonl}', sample_size=-1)) TO '{parquet}' (FORMAT parquet)")
    return jsonl, parquet


PEAK = ("import resource, subprocess, sys; done = subprocess.run(sys.argv[1:], capture_output=True, text=True); "
        "sys.stderr.write(done.stderr[-2000:]); "
        "print(done.returncode, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)")


def timed(cmd: list[str]) -> tuple[float, float]:
    """Seconds and peak memory (MB) of one child process (measured by a wrapper of its own, so
    the peaks of earlier runs do not carry over)."""
    start = time.perf_counter()
    done = subprocess.run([sys.executable, "-c", PEAK, *cmd], capture_output=True, text=True, cwd=ROOT)
    seconds = time.perf_counter() - start
    code, peak_kb = map(int, done.stdout.split()[-2:])
    if code != 0:
        raise SystemExit(f"{' '.join(cmd)} failed:\n{done.stderr}")
    return seconds, peak_kb / 1024


def kept(folder: Path, rows: int) -> bool:
    """Whether the files of an earlier run are there with `rows` rows (the Parquet file's footer
    says; both were written together)."""
    import pyarrow.parquet as pq

    jsonl, parquet = folder / "members.jsonl", folder / "members.parquet"
    return jsonl.exists() and parquet.exists() and pq.ParquetFile(parquet).metadata.num_rows == rows


def bare_read(path: Path) -> list[str]:
    reader = "read_json" if path.suffix == ".jsonl" else "read_parquet"
    code = (f"import duckdb; print(duckdb.sql(\"SELECT count(*), count(DISTINCT service) FROM {reader}('{path}')\")"
            ".fetchall())")
    return [sys.executable, "-c", code]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rows", type=int, default=1_000_000)
    ap.add_argument("--repeat", type=int, default=3, help="runs of each command, alternated between the inputs")
    ap.add_argument("--keep", type=Path, help="write the generated files here and keep them")
    ap.add_argument("--reuse", action="store_true", help="use the files already in --keep, when they have --rows rows, instead of writing them")
    args = ap.parse_args()
    folder = args.keep or Path(tempfile.mkdtemp(prefix="bench_population."))
    folder.mkdir(parents=True, exist_ok=True)
    if args.reuse and args.keep and kept(folder, args.rows):
        jsonl, parquet = folder / "members.jsonl", folder / "members.parquet"
    else:
        jsonl, parquet = write_files(folder, args.rows)
    os.sync()  # the files just written reach the disk now, not while a run reads them back
    from reasoner.language.load import load

    payers = len(load(ROOT / "policies").program.current)  # batch writes one row per current payer
    runs: dict[Path, dict[str, list]] = {p: {"read": [], "batch": [], "peak": []} for p in (parquet, jsonl)}
    for _ in range(args.repeat):  # alternated, so a slower spell of a shared host falls on both inputs
        for path in (parquet, jsonl):
            read_s, _ = timed(bare_read(path))
            out = folder / f"decisions_{path.suffix.lstrip('.')}.parquet"
            run_s, run_mb = timed([sys.executable, "-m", "reasoner.cli", "batch", str(path), "--out", str(out)])
            for key, value in (("read", read_s), ("batch", run_s), ("peak", run_mb)):
                runs[path][key].append(value)
    rows, medians = [], {}
    for path, measured in runs.items():
        read_s, run_s, peak = statistics.median(measured["read"]), statistics.median(measured["batch"]), max(measured["peak"])
        spread = f"{min(measured['batch']):.1f}–{max(measured['batch']):.1f}"
        size = path.stat().st_size / 1e6
        kind = path.suffix.lstrip(".").upper()
        medians[kind] = (run_s, read_s, peak)
        print(f"{kind}: {args.rows:,} rows ({size:.0f} MB): DuckDB read {read_s:.1f} s; reasoner batch x {payers} payers "
              f"{run_s:.1f} s (runs {spread} s; {run_s / read_s:.1f}x), peak {peak:.0f} MB")
        rows.append([f"{kind}, {args.rows:,} members ({size:,.0f} MB)", f"{read_s:.1f} s", f"{run_s:.1f} s ({spread})",
                     f"{run_s / read_s:.1f}×", f"{args.rows / run_s:,.0f}", f"{peak:,.0f} MB"])
    half = {kind: half_peak(path, args.rows // 2, folder) for kind, path in (("PARQUET", parquet), ("JSONL", jsonl))}
    for row, kind in zip(rows, ("PARQUET", "JSONL")):
        row.append(f"{half[kind]:,.0f} MB")
        print(f"{kind}: peak at {args.rows // 2:,} rows {half[kind]:.0f} MB")
    table = figures.table(
        ["input", "DuckDB's own read", f"`reasoner batch` × {payers} payers, end to end: median (range) of "
         f"{args.repeat} runs", "ratio", "members/s", "peak memory (batch, highest)",
         f"peak memory, first {args.rows // 2:,} rows"], rows)
    figures.write("bench_population", table + (targets(medians, half) if args.rows == 1_000_000 else ""))


def half_peak(path: Path, rows: int, folder: Path) -> float:
    """The batch's peak memory on the file's first `rows` rows (one run): with the whole file's
    peak, whether memory is flat in the number of rows. Half the file, not less: the peak is still
    rising at 100,000 rows (a Parquet row group is 122,880), and flat from 500,000 to 1M."""
    import duckdb

    part = folder / f"first_{rows}{path.suffix}"
    if path.suffix == ".jsonl":
        with path.open("rb") as source, part.open("wb") as target:
            for _, line in zip(range(rows), source):
                target.write(line)
    else:
        duckdb.sql(f"COPY (SELECT * FROM read_parquet('{path}') LIMIT {rows}) TO '{part}' (FORMAT parquet)")
    _, peak = timed([sys.executable, "-m", "reasoner.cli", "batch", str(part), "--out", str(folder / "decisions_part.parquet")])
    return peak


FLAT = 1.1  # "flat in the number of rows": twice the rows take at most a tenth more memory (a peak that grew
# with the rows would double; one file's peak varies by a few percent from run to run)


def targets(medians: dict[str, tuple[float, float, float]], half: dict[str, float]) -> str:
    """Where the medians stand against the targets of issue 13 (1M rows on this 2-core machine)."""
    def said(ok: bool) -> str:
        return "met" if ok else "**not met**"
    (parquet, parquet_read, parquet_peak), (jsonl, jsonl_read, jsonl_peak) = medians["PARQUET"], medians["JSONL"]
    peak = max(parquet_peak, jsonl_peak)
    growth = max(parquet_peak / half["PARQUET"], jsonl_peak / half["JSONL"])
    ratios = (parquet / parquet_read, jsonl / jsonl_read)
    return (f"\n\nTargets for 1,000,000 rows: typed Parquet ≤ 10 s, {said(parquet <= 10)} ({parquet:.1f} s); "
            f"JSONL ≤ 15 s, {said(jsonl <= 15)} ({jsonl:.1f} s); peak memory ≤ 1 GB, {said(peak <= 1000)} "
            f"({peak:,.0f} MB), and flat in the number of rows (twice the rows, at most {FLAT}× the peak), "
            f"{said(growth <= FLAT)} ({growth:.2f}×); within 3× of DuckDB's own read of the file, {said(max(ratios) <= 3)} "
            f"({ratios[0]:.1f}× and {ratios[1]:.1f}×).")


if __name__ == "__main__":
    main()
