"""Matrix and Policies pages: what each payer requires, and each policy as written.

The matrix's filters are checked as `reasoner matrix` checks its options (an unknown service or
indication is named, with the nearest known one), and shown at the filter that is wrong.
"""
from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, JSONResponse, Response
from starlette.exceptions import HTTPException

from reasoner.errors import did_you_mean
from reasoner.results.matrix import as_json as matrix_json, matrix
from reasoner.language import ir
from reasoner.present import render
from reasoner.web import matrix_view
from reasoner.web.app import Site
from reasoner.web.policies_view import policy_view, register_html, register_path, source_lines


def _filters(site: Site, request: Request) -> tuple[dict, dict]:
    """The matrix filters from the address, and a message per filter that names something unknown."""
    params = request.query_params
    vocab = site.loaded.vocab
    chosen = {"service": params.get("service") or None, "indication": params.get("indication") or None,
              "payers": [p for p in params.getlist("payer") if p], "q": (params.get("q") or "").strip()[:200],
              "diff": params.get("diff") in ("1", "on", "true")}
    errors = {}
    for key, concept in (("service", "service"), ("indication", "indications")):
        value, known = chosen[key], vocab.values_of(concept)
        if value is not None and value not in known:
            errors[key] = f"unknown {concept} '{value}'.{did_you_mean(value, known)} Known: {', '.join(known)}."
            chosen[key] = None
    unknown = [p for p in chosen["payers"] if p not in site.payers]
    if unknown:
        errors["payer"] = f"unknown payer '{unknown[0]}'.{did_you_mean(unknown[0], site.payers)} " \
                          f"Loaded: {', '.join(site.payers)}."
        chosen["payers"] = [p for p in chosen["payers"] if p in site.payers]
    return chosen, errors


def _matrix(site: Site, chosen: dict) -> matrix_view.Matrix:
    return matrix_view.build(site.loaded, chosen["service"], chosen["indication"], chosen["payers"] or None,
                             chosen["q"], chosen["diff"])


def _download(text: str, media: str, name: str) -> Response:
    return Response(text, media_type=f"{media}; charset=utf-8",
                    headers={"content-disposition": f'attachment; filename="{name}"'})


def _export_name(chosen: dict, suffix: str) -> str:
    parts = [x for x in (chosen["service"], chosen["indication"]) if x]
    return "matrix" + "".join(f"-{p}" for p in parts) + f".{suffix}"


def router(site: Site) -> APIRouter:
    r = APIRouter()
    vocab = site.loaded.vocab

    @r.get("/matrix", response_class=HTMLResponse)
    def matrix_page(request: Request) -> HTMLResponse:
        chosen, errors = _filters(site, request)
        status = 422 if errors else 200
        return site.html("matrix.html", status, active="matrix", m=_matrix(site, chosen), chosen=chosen, errors=errors,
                         services=vocab.values_of("service"), indications=vocab.values_of("indications"),
                         export=request.url.query)

    @r.get("/matrix.csv")
    def matrix_csv(request: Request) -> Response:
        chosen, _ = _filters(site, request)
        return _download(matrix_view.to_csv(_matrix(site, chosen)), "text/csv", _export_name(chosen, "csv"))

    @r.get("/matrix.md")
    def matrix_md(request: Request) -> Response:
        chosen, _ = _filters(site, request)
        return _download(matrix_view.to_markdown(_matrix(site, chosen)), "text/markdown", _export_name(chosen, "md"))

    @r.get("/matrix.json")
    def matrix_json_twin(request: Request) -> JSONResponse:
        """`reasoner matrix --json` for the same filters (text and difference filters aside)."""
        chosen, errors = _filters(site, request)
        if errors:
            return JSONResponse({"errors": [{"where": k, "severity": "error", "message": v} for k, v in errors.items()]},
                                status_code=422)
        program = site.loaded.program
        if chosen["payers"]:
            program = program.only(chosen["payers"])
        return JSONResponse(matrix_json(matrix(program, chosen["service"], chosen["indication"]),
                                        chosen["service"], chosen["indication"]))

    @r.get("/policies", response_class=HTMLResponse)
    def policies_page() -> HTMLResponse:
        program = site.loaded.program
        views = [policy_view(p) for p in program.policies]
        later = {p.id: program.latest(p.id) for p in program.policies if not program.is_current(p.id)}
        earlier = {p.id: [v.id for v in program.versions(p.id) if v.id != p.id] for p in program.current}
        periods = {p.id: render.in_force(p.effective) for p in program.policies}
        return site.html("policies.html", active="policies", views=views, later=later, earlier=earlier, periods=periods,
                         register=register_path(site.loaded))

    @r.get("/policies/{pid}", response_class=HTMLResponse)
    def policy_page(pid: str) -> HTMLResponse:
        policy = _policy(site, pid)
        return site.html("policy.html", active="policies", v=policy_view(policy))

    @r.get("/policies/{pid}/source", response_class=HTMLResponse)
    def policy_source(pid: str) -> HTMLResponse:
        policy = _policy(site, pid)
        return site.html("policy_source.html", active="policies", policy=policy, lines=source_lines(policy))

    @r.get("/ambiguities", response_class=HTMLResponse)
    def ambiguities() -> HTMLResponse:
        path = register_path(site.loaded)
        body = register_html(path, path.stat().st_mtime) if path else None
        return site.html("ambiguities.html", active="policies", body=body, path=path)

    return r


def _policy(site: Site, pid: str) -> ir.Policy:
    found = next((p for p in site.loaded.program.policies if p.id == pid), None)
    if found is None:
        raise HTTPException(404, f"No policy {pid!r} is loaded.{did_you_mean(pid, site.payers)}")
    return found

