"""`reasoner batch` on a FHIR Bulk Data export, beside the same members as JSONL.

Writes N members (the generated patients of bench_population, repeated with new ids) as a Bulk
Data export (one NDJSON file per resource type, by `reasoner.fhir.write.write_bulk`) and as JSONL
patient rows; then, each in a fresh process: DuckDB's own read of every NDJSON file, `reasoner
batch EXPORT/` and `reasoner batch members.jsonl` (both × every current payer, end to end), with peak memory.
The two outputs are compared (same decisions per member and payer). Prints figures and writes
`benchmarks/figures/bench_bulk.md` (copied into the README).

Runs N/10 members and N, to show whether peak memory grows with the export.

Run: python benchmarks/bench_bulk.py [--members 100000] [--keep DIR]
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import figures  # noqa: E402
from bench_population import ROOT, sample, timed  # noqa: E402


def write_export(folder: Path, members: int) -> tuple[Path, Path]:
    from reasoner.fhir.mapping import load_mapping
    from reasoner.fhir.write import write_bulk
    from reasoner.io.patient import validate
    from reasoner.language.load import load

    loaded = load(ROOT / "policies")
    mapping = load_mapping(ROOT / "policies", loaded.vocab)
    bodies = [json.loads("{" + b + "}") for b in sample()]
    facts = [validate(b, loaded.vocab).facts for b in bodies]
    export, jsonl = folder / "export", folder / "members.jsonl"
    write_bulk(((f"m{i}", facts[i % len(facts)]) for i in range(members)), export, loaded.vocab, mapping)
    with jsonl.open("w") as handle:
        for i in range(members):
            handle.write(json.dumps({"id": f"m{i}", **bodies[i % len(bodies)]}) + "\n")
    return export, jsonl


def bare_read(export: Path) -> list[str]:
    code = (f"import duckdb; print(duckdb.sql(\"SELECT count(*) FROM read_ndjson_objects('{export}/*.ndjson')\")"
            ".fetchall())")
    return [sys.executable, "-c", code]


def decisions(path: Path) -> dict:
    import duckdb

    rows = duckdb.sql(f"SELECT id, payer, decision, rule FROM read_parquet('{path}')").fetchall()
    return {(i, p): (d, r) for i, p, d, r in rows}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--members", type=int, default=100_000)
    ap.add_argument("--keep", type=Path, help="write the generated files here and keep them")
    args = ap.parse_args()
    folder = args.keep or Path(tempfile.mkdtemp(prefix="bench_bulk."))
    from reasoner.language.load import load

    payers = len(load(ROOT / "policies").program.current)  # batch writes one row per current payer
    rows, notes, peaks = [], [], []
    for members in (args.members // 10, args.members):  # two sizes: peak memory must not grow with members
        size_rows, note, peak = measure(folder / f"m{members}", members, payers)
        rows += size_rows
        notes.append(note)
        peaks.append(peak)
    table = figures.table(["input", "members", f"`reasoner batch` × {payers} payers, end to end", "members/s",
                           "peak memory"], rows)
    figures.write("bench_bulk", table + "\n\n" + " ".join(notes) + " Both inputs give the same decision for every "
                  f"member and payer. As the export grows tenfold, the peak memory of reading it goes from "
                  f"{peaks[0]:,.0f} MB to {peaks[1]:,.0f} MB ({peaks[1] / peaks[0] - 1:+.0%}): DuckDB sorts the "
                  "resources by member within a fixed memory limit, spilling to disk.\n")


def measure(folder: Path, members: int, payers: int) -> tuple[list, str, float]:
    """Rows of the table for one size (the export and the same members as JSONL, decided alike),
    its note, and the export run's peak memory (MB)."""
    folder.mkdir(parents=True, exist_ok=True)
    export, jsonl = write_export(folder, members)
    size = sum(p.stat().st_size for p in export.glob("*.ndjson")) / 1e6
    resources = sum(1 for p in export.glob("*.ndjson") for _ in p.open())
    read_s, _ = timed(bare_read(export))
    outs, rows, peaks = {}, [], {}
    for name, path in (("Bulk export", export), ("JSONL", jsonl)):
        out = folder / f"decisions_{path.stem}.parquet"
        run_s, run_mb = timed([sys.executable, "-m", "reasoner.cli", "batch", str(path), "--out", str(out)])
        outs[name] = decisions(out)
        print(f"{name}: {members:,} members: reasoner batch x {payers} payers {run_s:.1f} s, peak {run_mb:.0f} MB")
        rows.append([name, f"{members:,}", f"{run_s:.1f} s", f"{members / run_s:,.0f}", f"{run_mb:,.0f} MB"])
        peaks[name] = run_mb
    same = outs["Bulk export"] == outs["JSONL"]
    print(f"DuckDB's own read of the export ({resources:,} resources, {size:,.0f} MB): {read_s:.1f} s; "
          f"same decisions from both inputs: {same}")
    if not same:
        raise SystemExit("the export and the JSONL rows were decided differently")
    return rows, (f"The {members:,}-member export holds {resources:,} resources ({size:,.0f} MB), which DuckDB "
                  f"alone reads in {read_s:.1f} s."), peaks["Bulk export"]


if __name__ == "__main__":
    main()
