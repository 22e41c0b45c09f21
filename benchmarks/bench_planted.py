"""Search power: how many generated patients, and how many seconds, `reasoner diff` needs to find
each planted change (reasoner/planted.py). Prints figures; asserts nothing.

For every planted change and seed, the search runs on the original policy and its changed copy
with 25, 50, 100, ... examples until a class of disagreement names the changed concept; the table
shows the median and worst case over the seeds, and whether every seed found it. A last column
runs the exhaustive check on the same pair: the number of classes the solver proves exist.

Run: python benchmarks/bench_planted.py [--seeds 5] [--max-examples 1600]
"""
from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import figures  # noqa: E402

from reasoner.search import diff  # noqa: E402
from reasoner.search.planted import PLANTED, copy_id, load_with  # noqa: E402


def first_find(loaded, p, seed: int, max_examples: int) -> tuple[int | None, float]:
    """Smallest example budget (doubling from 25) at which the search finds the change, and the
    seconds that run took."""
    n = 25
    while n <= max_examples:
        start = time.perf_counter()
        result = diff.search(loaded, [p.policy, copy_id(p)], p.service, p.indication, examples=n, seed=seed)
        seconds = time.perf_counter() - start
        if any(c.concept.startswith(p.concept) for cls in result.classes for side in (cls.a, cls.b) for c in side.criteria):
            return n, seconds
        n *= 2
    return None, 0.0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", type=int, default=5)
    ap.add_argument("--max-examples", type=int, default=1600)
    args = ap.parse_args()
    print(f"{'planted change':<62} {'found':>7} {'examples (median/max)':>22} {'seconds (median/max)':>21} {'proven classes':>15}")
    rows = []
    for p in PLANTED:
        loaded = load_with(p)
        runs = [first_find(loaded, p, seed, args.max_examples) for seed in range(args.seeds)]
        found = [(n, s) for n, s in runs if n is not None]
        proven = len(diff.exhaustive(loaded, [p.policy, copy_id(p)], p.service, p.indication))
        ex = f"{statistics.median(n for n, _ in found):g}/{max(n for n, _ in found)}" if found else "—"
        sec = f"{statistics.median(s for _, s in found):.2f}/{max(s for _, s in found):.2f}" if found else "—"
        print(f"{p.name:<62} {len(found)}/{len(runs):>5} {ex:>22} {sec:>21} {proven:>15}")
        rows.append([f"{p.name} ({p.policy})", f"{len(found)}/{len(runs)}", ex.replace("/", " / "),
                     sec.replace("/", " / "), proven])
    figures.write("bench_planted", figures.table(
        ["planted change (`reasoner/search/planted.py`)", "found", "examples needed (median / worst)",
         "seconds (median / worst)", "classes proven"], rows))


if __name__ == "__main__":
    main()
