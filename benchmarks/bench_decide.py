"""Decision throughput of the reference engine (pyDatalog), one patient at a time.

Prints figures; asserts nothing. Run: python benchmarks/bench_decide.py [N]
"""
from __future__ import annotations

import random
import subprocess
import sys
import time
import tracemalloc
from pathlib import Path

from reasoner import Reasoner, load, validate

ROOT = Path(__file__).resolve().parent.parent


def sample_patients(vocab, n: int, seed: int = 0) -> list:
    """Random but valid patients over the service/indication/line scope and the trial facts."""
    rng = random.Random(seed)
    pick = lambda concept: rng.choice(vocab.values_of(concept))  # noqa: E731
    patients = []
    for i in range(n):
        data = {"id": f"p{i}", "service": pick("service"), "indication": pick("indication"),
                "line_of_business": pick("line_of_business"), "trial_pain_relief": rng.uniform(30, 70),
                "analgesic_classes_failed": rng.sample(vocab.values_of("analgesic_classes_failed"), rng.randint(0, 4)),
                "pain_severe_intractable": rng.random() < 0.8, "pain_disabling": rng.random() < 0.9, "life_expectancy": rng.uniform(0, 12)}
        patients.append(validate(data, vocab))
    return patients


def main(n: int = 400) -> None:
    start = time.perf_counter()
    loaded = load(ROOT / "policies")
    reasoner = Reasoner(loaded)
    build = time.perf_counter() - start
    patients = sample_patients(loaded.vocab, n)
    start = time.perf_counter()
    for p in patients:
        reasoner.decide(p)
    elapsed = time.perf_counter() - start
    tracemalloc.start()  # measured on a second pass: tracing slows every allocation
    for p in patients[:50]:
        reasoner.decide(p)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    start = time.perf_counter()
    subprocess.run([sys.executable, "-m", "reasoner.cli", "policies", "--json"], check=True, capture_output=True)
    cold = time.perf_counter() - start
    policies = len(loaded.program.policies)
    clauses = len(reasoner.engine.compiled.clauses)
    print(f"policies: {policies}, clauses: {clauses}")
    print(f"load + compile + assert rules: {build * 1000:.0f} ms")
    print(f"pyDatalog, one patient at a time: {n / elapsed:.0f} patients/s "
          f"({elapsed / n * 1000:.2f} ms per patient x {policies} payers), peak traced memory {peak / 1e6:.1f} MB")
    print(f"CLI cold start (reasoner policies --json): {cold * 1000:.0f} ms")


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 400)
