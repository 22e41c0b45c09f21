"""Search power on the real policies: how many of the classes the exhaustive check proves exist
does `reasoner diff` find with a given example budget, and in how many seconds.

The five seed payers (a local edition such as bcbsal is left to a diff with its parent), permanent pump, chronic non-malignant pain (the README's example), seed 0; the
exhaustive check runs once. The figures are deterministic for a seed except the seconds; the
300-example row is the one notebook 02 prints and `tests/test_notebooks.py` re-checks.
Prints figures and writes `benchmarks/figures/bench_diff.md` (copied into the README).

Run: python benchmarks/bench_diff.py [--budgets 100 300 1000] [--seed 0]
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import figures  # noqa: E402
from reasoner.language.load import load  # noqa: E402
from reasoner.search import diff  # noqa: E402

SERVICE, INDICATION = "implant", "nonmalignant_pain"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--budgets", type=int, nargs="+", default=[100, 300, 1000])
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    loaded = load()
    payers = [p.id for p in loaded.program.policies if not p.extends]  # the seed payers, as notebook 02
    start = time.perf_counter()
    proven = diff.exhaustive(loaded, payers, SERVICE, INDICATION)
    exhaustive_s = time.perf_counter() - start
    total = len(proven)
    rows = []
    for n in args.budgets:
        start = time.perf_counter()
        found = diff.search(loaded, payers, SERVICE, INDICATION, examples=n, seed=args.seed)
        seconds = time.perf_counter() - start
        keys = {c.pattern for c in found.classes}
        missing = keys - set(proven)
        if missing:
            raise SystemExit(f"the search found {len(missing)} classes the exhaustive check says cannot exist")
        rows.append([f"{n:,} examples, seed {args.seed}", f"{found.disagreeing:,} of {found.examples:,}",
                     f"{len(keys)} of {total}", f"{seconds:.1f} s"])
        print(f"{n:>6} examples: {len(keys)} of {total} classes, {found.disagreeing} disagreeing patients, {seconds:.1f} s")
    rows.append(["exhaustive check (z3)", "–", f"{total} of {total} (proven)", f"{exhaustive_s:.1f} s"])
    print(f"exhaustive: {total} classes in {exhaustive_s:.1f} s")
    figures.write("bench_diff", figures.table(
        [f"{len(payers)} seed payers, permanent pump, chronic non-malignant pain", "patients decided differently",
         "classes found", "seconds (incl. witnesses)"], rows))


if __name__ == "__main__":
    main()
