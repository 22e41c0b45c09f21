"""Disagreements page: start a `diff` search, watch it, read and export its classes.

The options are checked as `reasoner diff` checks them (known payers, at least two; known
service, indication and line of business) and each problem is shown at its field. A started search
has an address of its own (`/disagreements?job=...`), so its results can be reloaded while the
server runs; they export as JSON (`reasoner diff --json`), Markdown and the static HTML report.
"""
from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from starlette.exceptions import HTTPException

from reasoner.errors import did_you_mean
from reasoner.present import render
from reasoner.search import diff
from reasoner.web.app import Site, is_htmx
from reasoner.web.disagreements import MAX_EXAMPLES, Job, Options, results_context, witnesses
from reasoner.web.report import diff_report_html

DEFAULTS = {"service": "implant", "indication": "nonmalignant_pain", "lines": "", "examples": "200", "seed": "0"}


def _whole(text: str, low: int, high: int, what: str) -> tuple[int | None, str | None]:
    try:
        value = int(text)
    except ValueError:
        return None, f"'{text[:30]}' is not a whole number; give {what} from {low} to {high}."
    if not low <= value <= high:
        return None, f"{value} is out of range; give {what} from {low} to {high}."
    return value, None


def options(site: Site, form: dict) -> tuple[Options | None, dict]:
    """The search's options from the page's form, or a message per field that is wrong."""
    vocab, errors = site.loaded.vocab, {}
    chosen = list(dict.fromkeys(p for p in form.get("payers", []) if p))
    unknown = [p for p in chosen if p not in site.payers]
    if unknown:
        errors["payers"] = f"unknown payer '{unknown[0]}'.{did_you_mean(unknown[0], site.payers)}"
    elif len(chosen) < 2:
        errors["payers"] = "name at least two payers to compare."
    picked = {}
    for key, concept in (("service", "service"), ("indication", "indications"), ("lines", "line_of_business")):
        value = (form.get(key) or [""])[0] or None
        known = vocab.values_of(concept)
        if value is not None and value not in known:
            errors[key] = f"unknown {concept.replace('_', ' ')} '{value}'.{did_you_mean(value, known)}"
        picked[key] = value
    examples, problem = _whole((form.get("examples") or ["200"])[0], 1, MAX_EXAMPLES, "a number of patients")
    if problem:
        errors["examples"] = problem
    seed, problem = _whole((form.get("seed") or ["0"])[0], 0, 2**31 - 1, "a seed")
    if problem:
        errors["seed"] = problem
    if errors:
        return None, errors
    return Options(tuple(chosen), picked["service"], picked["indication"], picked["lines"], examples, seed,
                   bool(form.get("exhaustive"))), {}


def _values(form) -> dict:
    return {k: [v for v in form.getlist(k) if isinstance(v, str)] for k in form.keys()}


def _form_values(site: Site, o: Options | None) -> dict:
    """The form's values for a search already started (or the defaults)."""
    if o is None:
        return {"payers": [p.id for p in site.loaded.program.current], **{k: [v] for k, v in DEFAULTS.items()}}
    return {"payers": list(o.payers), "service": [o.service or ""], "indication": [o.indication or ""],
            "lines": [o.lines or ""], "examples": [str(o.examples)], "seed": [str(o.seed)],
            "exhaustive": ["on"] if o.exhaustive else []}


def page(site: Site, request: Request, job: Job | None, values: dict, errors: dict, status: int = 200,
         busy: bool = False) -> HTMLResponse:
    """The Disagreements page (for htmx, its form and search area), with the search's address."""
    vocab = site.loaded.vocab
    context = dict(active="disagreements", job=job, values=values, errors=errors, busy=busy,
                   services=vocab.values_of("service"), indications=vocab.values_of("indications"),
                   lines=vocab.values_of("line_of_business"), max_examples=MAX_EXAMPLES)
    if job is not None and job.done and job.result is not None:
        context.update(results_context(job, vocab))
    template = "_diff_area.html" if is_htmx(request) else "disagreements.html"
    headers = {"HX-Push-Url": f"/disagreements?job={job.id}"} if job is not None and is_htmx(request) else None
    return site.html(template, status, headers, **context)


def router(site: Site) -> APIRouter:
    r = APIRouter()
    vocab = site.loaded.vocab

    @r.get("/disagreements", response_class=HTMLResponse)
    def disagreements(request: Request, job: str | None = None) -> HTMLResponse:
        found = site.jobs.get(job) if job else None
        if job and found is None:
            raise HTTPException(404, "That search is no longer kept by this server; run it again.")
        return page(site, request, found, _form_values(site, found.options if found else None), {})

    @r.post("/disagreements/run", response_class=HTMLResponse)
    async def run(request: Request) -> Response:
        form = await request.form(max_files=0, max_fields=100)
        values = _values(form)
        chosen, errors = options(site, values)
        if chosen is None:
            return page(site, request, None, values, errors, 422)
        job = site.jobs.start(chosen)
        if job is None:
            return page(site, request, None, values, {}, 429, busy=True)
        if not is_htmx(request):
            return RedirectResponse(f"/disagreements?job={job.id}", status_code=303)
        return page(site, request, job, values, {})

    @r.get("/disagreements/jobs/{job_id}", response_class=HTMLResponse)
    def job_state(job_id: str) -> HTMLResponse:
        job = _job(site, job_id)
        context = results_context(job, vocab) if job.done and job.result is not None else {"job": job}
        return site.html("_job.html", **context)

    @r.get("/disagreements/jobs/{job_id}/diff.json")
    def job_json(job_id: str) -> JSONResponse:
        return JSONResponse(diff.as_json(_finished(site, job_id).result))

    @r.get("/disagreements/jobs/{job_id}/report.{suffix}")
    def job_report(job_id: str, suffix: str) -> Response:
        job = _finished(site, job_id)
        if suffix == "html":
            text, media = diff_report_html(job.result, diff.themes(job.result), vocab), "text/html"
        elif suffix == "md":
            text, media = render.diff_markdown(job.result, diff.themes(job.result)), "text/markdown"
        else:
            raise HTTPException(404, "Reports are .html or .md.")
        return Response(text, media_type=f"{media}; charset=utf-8",
                        headers={"content-disposition": f'attachment; filename="disagreements.{suffix}"'})

    @r.get("/disagreements/jobs/{job_id}/witness/{number}.yaml")
    def witness(job_id: str, number: int) -> Response:
        found = {w.number: w for w in witnesses(_finished(site, job_id).result, vocab)}
        if number not in found:
            raise HTTPException(404, f"The search has no class {number}.")
        return Response(found[number].yaml, media_type="application/yaml; charset=utf-8",
                        headers={"content-disposition": f'attachment; filename="{found[number].name}.yaml"'})

    return r


def _job(site: Site, job_id: str) -> Job:
    job = site.jobs.get(job_id)
    if job is None:
        raise HTTPException(404, "That search is no longer kept by this server; run it again.")
    return job


def _finished(site: Site, job_id: str) -> Job:
    job = _job(site, job_id)
    if not job.done or job.result is None:
        raise HTTPException(404, "That search has not finished (or it stopped with an error).")
    return job

