"""Synthetic populations: generated members, for trying `batch` at scale without real data.

The members come from the same Hypothesis strategies the disagreement search uses (patients near
each payer's coverage boundary, and random ones), for every service the vocabulary names, so a
population exercises every policy's rules. `distinct` patients are generated and repeated under
new ids up to `count`: generating is the slow part (about 10 ms a patient), and a population's
size, not its variety, is what a scale run measures.
"""
from __future__ import annotations

from typing import Iterator

from reasoner.search import diff

DISTINCT = 2_000  # generated patients, by default; more members repeat them under new ids


def members(loaded, count: int, distinct: int | None = None, seed: int = 0) -> Iterator[tuple[str, dict]]:
    """`count` members as (id, facts): m1, m2, ... in order, the same for the same seed."""
    services = list(loaded.vocab.values_of("service"))
    distinct = max(1, min(count, distinct or DISTINCT))
    payers = [p.id for p in loaded.program.current]
    people = []
    for k, service in enumerate(services):
        share = distinct // len(services) + (k < distinct % len(services))
        if share:
            people += diff.generate(loaded, payers, {"service": service}, share, seed=seed + k)
    for n in range(count):
        yield f"m{n + 1}", people[n % len(people)].facts
