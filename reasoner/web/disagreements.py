"""Disagreement searches run in the background, with their progress, and their results as a page.

A search is `reasoner.search.diff.search` (then `complete` when exhaustive), exactly what
`reasoner diff` runs; it takes seconds to minutes, so it runs in a thread of its own and the page
asks for its progress every half second. The progress object has the two methods the search
reports through (`add_task`, `advance`), which `reasoner diff` gives a rich progress bar.

Counts add up by construction, and the page says how: every disagreeing pair of a generated
patient is counted once in its class and once in its pair, so the classes' patients sum to the
pairs' (a patient on whom three pairs disagree counts three times, once per pair).
"""
from __future__ import annotations

import itertools
import json
import logging
import threading
import time
import uuid
from collections import OrderedDict
from dataclasses import dataclass, field

from reasoner.language.load import Loaded
from reasoner.search import diff
from reasoner.web.forms import Raw, as_yaml, raw_from_facts

log = logging.getLogger("reasoner.web")
MAX_EXAMPLES = 5000  # a web search is for exploring; larger runs belong to `reasoner diff`
KEEP = 12  # finished searches kept for their pages
RUNNING = 2  # searches at once (each keeps a core busy)


@dataclass(frozen=True)
class Options:
    payers: tuple[str, ...]
    service: str | None = None
    indication: str | None = None
    lines: str | None = None
    examples: int = 200
    seed: int = 0
    exhaustive: bool = False


class Progress:
    """What a running search has done, phase by phase (thread-safe: the search writes, pages read)."""

    def __init__(self):
        self._lock = threading.Lock()
        self._tasks: list[list] = []  # [description, total, completed]

    def add_task(self, description: str, total: int | None = None, **_) -> int:
        with self._lock:
            self._tasks.append([description, total or 0, 0])
            return len(self._tasks) - 1

    def advance(self, task: int, advance: int = 1) -> None:
        with self._lock:
            self._tasks[task][2] += advance

    def phases(self) -> list[tuple[str, int, int]]:
        with self._lock:
            return [tuple(t) for t in self._tasks]


@dataclass
class Job:
    """One search: its options, progress, and in the end a result or an error message."""

    id: str
    options: Options
    progress: Progress = field(default_factory=Progress)
    started: float = field(default_factory=time.monotonic)
    finished: float | None = None
    result: diff.Result | None = None
    error: str | None = None

    @property
    def done(self) -> bool:
        return self.finished is not None

    @property
    def seconds(self) -> float:
        return (self.finished or time.monotonic()) - self.started


def run(loaded: Loaded, job: Job) -> None:
    """The search, as `reasoner diff` runs it; any failure becomes a message on the page."""
    o = job.options
    try:
        result = diff.search(loaded, list(o.payers), o.service, o.indication, o.examples, o.seed, job.progress, o.lines)
        if o.exhaustive:
            diff.complete(loaded, result, job.progress)
        job.result = result
    except Exception as err:  # noqa: BLE001 - shown to the analyst; the traceback goes to the log
        log.exception("disagreement search %s failed", job.id)
        job.error = f"the search stopped: {type(err).__name__}: {str(err)[:300]}"
    finally:
        job.finished = time.monotonic()


class Jobs:
    """The searches of this server: a few at once, the last few kept."""

    def __init__(self, loaded: Loaded):
        self.loaded = loaded
        self._lock = threading.Lock()
        self._jobs: OrderedDict[str, Job] = OrderedDict()

    def start(self, options: Options) -> Job | None:
        """A new search, or None when RUNNING searches are already under way."""
        with self._lock:
            if sum(1 for j in self._jobs.values() if not j.done) >= RUNNING:
                return None
            job = Job(uuid.uuid4().hex[:12], options)
            self._jobs[job.id] = job
            while len(self._jobs) > KEEP:
                oldest = next((k for k, j in self._jobs.items() if j.done), None)
                if oldest is None:
                    break
                del self._jobs[oldest]
        threading.Thread(target=run, args=(self.loaded, job), name=f"diff-{job.id}", daemon=True).start()
        return job

    def get(self, job_id: str) -> Job | None:
        with self._lock:
            return self._jobs.get(job_id)

    def add(self, job: Job) -> None:
        """Keep a finished job (tests and the static report build results without a thread)."""
        with self._lock:
            self._jobs[job.id] = job


# ---------------------------------------------------------------- results, for the page
def results_context(job: Job, vocab) -> dict:
    """What the results template shows, for the page and the static report alike."""
    from reasoner.present import render

    result = job.result
    return {"job": job, "result": result, "themes": diff.themes(result), "pairs": pairs(result),
            "witnesses": witnesses(result, vocab), "heatmap": heatmap_pairs(result),
            "by_indication": heatmap_indications(result), "group_title": render.GROUP_TITLE, "order": diff.ORDER,
            "found": sum(1 for c in result.classes if "search" in c.found_by)}


@dataclass(frozen=True)
class Witness:
    number: int
    name: str  # e.g. 003-cam70141-vs-uhc
    raw: Raw  # as form values (opens in the Member page)
    yaml: str  # as a patient file


@dataclass(frozen=True)
class PairRow:
    a: str
    b: str
    patients: int  # disagreeing generated patients of this pair
    classes: int
    in_classes: int  # the patients of its classes: always equal to `patients`


def witnesses(result: diff.Result, vocab) -> tuple[Witness, ...]:
    """Each class's witness as the patient file `reasoner diff --save-witnesses` writes."""
    files = diff.witness_files(result, vocab)
    return tuple(Witness(i, name, raw_from_facts(doc, vocab), as_yaml(doc))
                 for i, (name, doc) in enumerate(files.items(), 1))


def pairs(result: diff.Result) -> tuple[PairRow, ...]:
    out = []
    for a, b in itertools.combinations(result.payers, 2):
        classes = [c for c in result.classes if {c.pattern.a, c.pattern.b} == {a, b}]
        out.append(PairRow(a, b, result.pair_count(a, b), len(classes), sum(c.count for c in classes)))
    return tuple(out)


def heatmap_pairs(result: diff.Result) -> dict:
    """Payer × payer: generated patients each pair decides differently (a plotly figure)."""
    names = list(result.payers)
    z = [[None if a == b else result.pair_count(a, b) for b in names] for a in names]
    return _heatmap(z, names, names, "Disagreeing members by payer pair", "Blues")


def heatmap_indications(result: diff.Result) -> dict | None:
    """Payer pair × requested indications (as the notebook draws it); None when there is nothing."""
    pairs_ = sorted({(a, b) for a, b, _ in result.by_indication})
    indications = sorted({i for _, _, i in result.by_indication})
    if not pairs_:
        return None
    z = [[result.by_indication.get((a, b, i), 0) for i in indications] for a, b in pairs_]
    return _heatmap(z, indications, [f"{a} vs {b}" for a, b in pairs_], "Disagreeing members by pair and indication",
                    "Reds")


def _heatmap(z, x, y, title: str, scale: str) -> dict:
    """A plotly heatmap as plain JSON data (plotly.js draws it; the counts are printed in the cells)."""
    import plotly.graph_objects as go

    text = [["" if v is None else str(v) for v in row] for row in z]
    top = max([v for row in z for v in row if v is not None] or [1])
    figure = go.Figure(go.Heatmap(z=z, x=x, y=y, colorscale=scale, zmin=0, zmax=max(top, 1), text=text,
                                  texttemplate="%{text}", hovertemplate="%{y} · %{x}: %{z} members<extra></extra>",
                                  xgap=2, ygap=2))
    figure.update_layout(title=title, margin=dict(l=10, r=10, t=50, b=10), height=140 + 40 * len(y),
                         yaxis=dict(autorange="reversed", automargin=True), xaxis=dict(automargin=True, side="bottom"),
                         font=dict(family="system-ui, sans-serif", size=12))
    return json.loads(figure.to_json())
