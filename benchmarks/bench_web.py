"""Server-side time of one decision update in the workbench (`reasoner serve`), every current payer.

A change on the Member form sends the whole member to `/member/decide`, which checks the values
against the vocabulary, decides every payer with the reference engine and renders the decisions
(plus each field's message, out of band). Target: at most 100 ms at the median on the server.

Measured three ways, each over N updates that change one fact (so nothing is a repeat):
- in the handler: check + decide + render, split into those three parts;
- in-process through the ASGI app (routing, middleware, the hop to a deciding thread; no network);
- over HTTP against uvicorn on 127.0.0.1 (what the browser waits for, minus its own work).

Prints figures and writes them to benchmarks/figures/bench_web.md; asserts nothing.
Run: python benchmarks/bench_web.py [N]
"""
from __future__ import annotations

import socket
import statistics
import sys
import threading
import time
from pathlib import Path
from urllib.parse import parse_qsl, urlencode

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "benchmarks"))

TARGET_MS = 100


def _summary(times: list[float]) -> tuple[float, float, float]:
    ms = sorted(t * 1000 for t in times)
    return statistics.median(ms), ms[max(0, int(len(ms) * 0.95) - 1)], ms[-1]


def _updates(example_qs: str, n: int) -> list[str]:
    """N queries of the example member, each with another trial relief (40 to 60 %)."""
    base = [(k, v) for k, v in parse_qsl(example_qs) if k != "pain_trial_relief"]
    return [urlencode(base + [("pain_trial_relief", str(40 + i % 21))]) for i in range(n)]


def in_handler(site, queries: list[str]) -> dict[str, list[float]]:
    from reasoner.web import forms, member

    parts: dict[str, list[float]] = {"check": [], "decide": [], "render": [], "total": []}
    template = site.env.get_template("_decide.html")
    for q in queries:
        t0 = time.perf_counter()
        checked = forms.check(forms.raw_from_pairs(parse_qsl(q)), site.loaded.vocab)
        t1 = time.perf_counter()
        context = member._context(site, checked)
        t2 = time.perf_counter()
        template.render(site=site, urls=site.urls, pages=(), active="", **context)
        t3 = time.perf_counter()
        for key, value in zip(parts, (t1 - t0, t2 - t1, t3 - t2, t3 - t0)):
            parts[key].append(value)
    return parts


def through(get, queries: list[str]) -> list[float]:
    times = []
    for q in queries:
        start = time.perf_counter()
        response = get(f"/member/decide?{q}")
        times.append(time.perf_counter() - start)
        assert response.status_code == 200 and 'id="decisions"' in response.text
    return times


def _serve(app) -> tuple[str, object]:
    import uvicorn

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    threading.Thread(target=server.run, daemon=True).start()
    while not server.started:
        time.sleep(0.05)
    return f"http://127.0.0.1:{port}", server


def main(n: int = 200) -> None:
    import warnings

    import httpx

    warnings.filterwarnings("ignore", category=DeprecationWarning)
    from fastapi.testclient import TestClient

    from reasoner.language.load import load
    from reasoner.web.app import create_app

    start = time.perf_counter()
    app = create_app(load(ROOT / "policies"))
    built = time.perf_counter() - start
    site = app.state.site
    client = TestClient(app, base_url="http://127.0.0.1").__enter__()  # one event loop for every request
    example = client.get("/member/example/nonmalignant_implant.yaml", follow_redirects=False).headers["location"]
    queries = _updates(example.split("?", 1)[1], n)
    payers = len(site.loaded.program.current)  # decisions are for the current payers
    through(client.get, queries[:20])  # warm up: each worker thread loads its own knowledge base once
    parts = in_handler(site, queries)
    asgi = through(client.get, queries)
    url, server = _serve(app)
    with httpx.Client(base_url=url, headers={"hx-request": "true"}) as http:
        through(http.get, queries[:20])
        network = through(http.get, queries)
    server.should_exit = True
    client.__exit__(None, None, None)

    rows = [("in the handler: check (validate the form)", parts["check"]),
            (f"in the handler: decide ({payers} payers, pyDatalog)", parts["decide"]),
            ("in the handler: render decisions and field messages", parts["render"]),
            ("in the handler: total", parts["total"]),
            ("through the ASGI app, in-process", asgi),
            ("over HTTP to uvicorn on 127.0.0.1", network)]
    lines = ["| one decision update, all payers | median | p95 | max |", "|---|---|---|---|"]
    for label, times in rows:
        median, p95, worst = _summary(times)
        lines.append(f"| {label} | {median:.1f} ms | {p95:.1f} ms | {worst:.1f} ms |")
    median_http = _summary(network)[0]
    verdict = "met" if median_http <= TARGET_MS else "NOT met"
    table = "\n".join(lines) + (f"\n\n{n} updates of the example member, one fact changed each; target ≤ {TARGET_MS} ms "
                                f"server-side: {verdict} (median over HTTP {median_http:.1f} ms). App built in "
                                f"{built * 1000:.0f} ms.")
    print(table)
    _write(table)


def _write(table: str) -> None:
    """benchmarks/figures/bench_web.md, in the format of the other benchmarks' figures."""
    import figures

    figures.FIGURES.mkdir(exist_ok=True)
    path = figures.FIGURES / "bench_web.md"
    path.write_text(f"{table.rstrip()}\n\n<sub>`python benchmarks/bench_web.py`, {figures.machine()}</sub>\n",
                    encoding="utf-8")
    print(f"written to {path.relative_to(ROOT)}")


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 200)
