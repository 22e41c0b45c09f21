"""Member and Reasoning pages: the form, every payer's decision, and one payer's reasoning.

Routes stay thin: read the form's values, `forms.check` them (the vocabulary's own validation),
ask `Reasoner.decide` / `reasoning.reasoning` / `reasoning.grid`, render. A change on the form
asks `/member/decide`, which answers with the decisions and, out of band, every field's message;
the address is kept equal to the form (`HX-Replace-Url`), so reloading or sharing it shows the
same member. An open reasoning panel reloads itself when the facts change (`facts-changed`).
"""
from __future__ import annotations

from pathlib import Path

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from starlette.datastructures import UploadFile
from starlette.exceptions import HTTPException

from reasoner.errors import PatientError
from reasoner.io.patient import MAX_BYTES
from reasoner.language.check import DECISIONS
from reasoner.paths import examples_dir
from reasoner.web import layout
from reasoner.web.app import Site, error_response, is_htmx
from reasoner.web.forms import (Checked, Raw, as_json, as_yaml, check, file_name, patient_document, query,
                                raw_from_pairs, read_upload)
from reasoner.web.reasoning import grid, reasoning

UPLOAD_FIELD = "_file"


def examples() -> dict[str, Path]:
    """The bundled example patients, by file name (the only files this server ever opens by name)."""
    folder = examples_dir()
    return {p.name: p for p in sorted(folder.iterdir()) if p.suffix.lower() in (".yaml", ".yml", ".json")} \
        if folder.is_dir() else {}


def _raw(request: Request) -> Raw:
    return raw_from_pairs(request.query_params.multi_items())


def _state(request: Request, site: Site) -> tuple[str | None, str]:
    """The reasoning panel asked for in the address: a known payer, and a known decision."""
    payer = request.query_params.get("_payer") or request.query_params.get("_panel")
    wanted = request.query_params.get("_wanted") or "covered"
    return (payer if payer in site.payers else None), (wanted if wanted in DECISIONS else "covered")


def _context(site: Site, checked: Checked) -> dict:
    decisions = site.reasoner.decide(checked.patient) if checked.patient else []
    names = layout.field_names(site.loaded.vocab)
    assumed = sorted({a for d in decisions for a in d.assumptions})
    notes = [(a, [d.policy for d in decisions if a in d.assumptions]) for a in assumed]
    return {"checked": checked, "decisions": decisions, "notes": notes, "sections": layout.sections(site.loaded.vocab),
            "general": checked.general(names), "qs": query(checked.raw), "examples": list(examples())}


def _panel(site: Site, checked: Checked, payer: str | None, wanted: str):
    if payer is None or checked.patient is None:
        return None
    return reasoning(site.reasoner, checked.patient, payer, wanted)


def _workspace(site: Site, request: Request, raw: Raw, upload_error: str | None = None, status: int = 200,
               whole: bool | None = None, upload_notes: tuple = ()) -> HTMLResponse:
    """The member page (or, for htmx, just its workspace), with the address set to the member."""
    checked = check(raw, site.loaded.vocab)
    payer, wanted = _state(request, site)
    context = _context(site, checked)
    panel = _panel(site, checked, payer, wanted)
    whole = not is_htmx(request) if whole is None else whole
    headers = {"HX-Push-Url": "/member?" + query(raw, panel=payer or "", wanted=wanted if payer else "")}
    return site.html("member.html" if whole else "_workspace.html", status, headers, active="member",
                     panel=panel, upload_error=upload_error, upload_notes=upload_notes, **context)


# ---------------------------------------------------------------- views (run on a deciding thread)
def decide_view(site: Site, request: Request) -> HTMLResponse:
    """One change on the form: decisions, each field's message, links that carry the member."""
    raw = _raw(request)
    checked = check(raw, site.loaded.vocab)
    payer, wanted = _state(request, site)
    headers = {"HX-Replace-Url": "/member?" + query(raw, panel=payer or "", wanted=wanted if payer else ""),
               "HX-Trigger": "facts-changed"}
    return site.html("_decide.html", 200, headers, **_context(site, checked))


def panel_view(site: Site, request: Request, payer: str, wanted: str) -> HTMLResponse:
    checked = check(_raw(request), site.loaded.vocab)
    return site.html("_panel.html", panel=_panel(site, checked, payer, wanted), checked=checked,
                     payer=payer, wanted=wanted, qs=query(checked.raw), fragment=True)


def decisions_json(site: Site, request: Request) -> JSONResponse:
    """The decisions as `reasoner check --json` prints them (the Member page's JSON twin)."""
    checked = check(_raw(request), site.loaded.vocab)
    if checked.patient is None:
        return JSONResponse({"errors": [{"where": p.where, "severity": p.severity, "message": p.message}
                                        for p in checked.problems]}, status_code=422)
    decisions = site.reasoner.decide(checked.patient)
    return JSONResponse({"schema": "reasoner.check/1", "patient": checked.patient.id,
                         "decisions": [d.as_json() for d in decisions]})


def reasoning_view(site: Site, request: Request) -> HTMLResponse:
    """One payer's reasoning in full, then every payer criterion by criterion."""
    checked = check(_raw(request), site.loaded.vocab)
    payer, wanted = _state(request, site)
    payer = payer or (site.payers[0] if site.payers else None)
    context = dict(active="reasoning", checked=checked, payer=payer, wanted=wanted, qs=query(checked.raw),
                   examples=list(examples()), panel=None, table=None)
    if checked.patient is not None and payer is not None:
        context.update(panel=reasoning(site.reasoner, checked.patient, payer, wanted),
                       table=grid(site.reasoner, checked.patient))
    return site.html("reasoning.html", **context)


def example_view(site: Site, request: Request, name: str) -> Response:
    path = examples().get(name)
    if path is None:
        raise HTTPException(404, f"No example patient named {name!r}.")
    try:
        raw, _ = read_upload(path.name, path.read_bytes(), site.loaded.vocab, MAX_BYTES, site.loaded.folder)
    except PatientError as err:
        return error_response(site, request, 422, f"The example {name} cannot be read.", [str(p) for p in err.problems])
    return RedirectResponse("/member?" + query(raw), status_code=303)


def save_view(site: Site, request: Request, suffix: str) -> Response:
    """The form as a patient file: only valid values are ever written (the request may still be
    incomplete, as in a draft)."""
    if suffix not in ("yaml", "json"):
        raise HTTPException(404, "Patient files are .yaml or .json.")
    vocab = site.loaded.vocab
    checked = check(_raw(request), vocab, require_request=False)
    if checked.patient is None:
        return error_response(site, request, 422, "The member has values that need fixing before it can be saved.",
                              [str(p) for p in checked.problems])
    document = patient_document(checked.patient, vocab)
    text = as_yaml(document) if suffix == "yaml" else as_json(document)
    media = "application/yaml" if suffix == "yaml" else "application/json"
    return Response(text, media_type=f"{media}; charset=utf-8",
                    headers={"content-disposition": f'attachment; filename="{file_name(checked.patient.id, suffix)}"'})


async def open_view(site: Site, request: Request) -> HTMLResponse:
    """An uploaded YAML or JSON patient file onto the form; the form is kept if it cannot be read."""
    form = await request.form(max_files=1, max_fields=2000)
    upload = form.get(UPLOAD_FIELD)
    current = raw_from_pairs((k, v) for k, v in form.multi_items() if isinstance(v, str))
    if not isinstance(upload, UploadFile) or not upload.filename:
        return await site.run(_workspace, site, request, current, "Choose a YAML or JSON patient file.")
    data = await upload.read(MAX_BYTES + 1)
    try:
        raw, notes = read_upload(Path(upload.filename).name, data, site.loaded.vocab, MAX_BYTES, site.loaded.folder)
    except PatientError as err:
        return await site.run(_workspace, site, request, current, " ".join(str(p) for p in err.problems[:5]))
    return await site.run(_workspace, site, request, raw, upload_notes=notes)


def router(site: Site) -> APIRouter:
    """The routes: each hands its view to a deciding thread (`Site.run`)."""
    r = APIRouter()

    @r.get("/", include_in_schema=False)
    def home() -> RedirectResponse:
        return RedirectResponse("/member", status_code=303)

    @r.get("/member", response_class=HTMLResponse)
    async def member_page(request: Request) -> HTMLResponse:
        return await site.run(_workspace, site, request, _raw(request), whole=True)

    @r.get("/member/decide", response_class=HTMLResponse)
    async def decide(request: Request) -> HTMLResponse:
        return await site.run(decide_view, site, request)

    @r.get("/member/reasoning", response_class=HTMLResponse)
    async def panel(request: Request) -> HTMLResponse:
        payer, wanted = _state(request, site)
        if payer is None:
            raise HTTPException(404, "No such payer among the loaded policies.")
        return await site.run(panel_view, site, request, payer, wanted)

    @r.get("/member.json")
    async def member_json(request: Request) -> JSONResponse:
        return await site.run(decisions_json, site, request)

    @r.get("/member/example/{name}")
    def example(name: str, request: Request) -> Response:
        return example_view(site, request, name)

    @r.post("/patient/open", response_class=HTMLResponse)
    async def open_file(request: Request) -> HTMLResponse:
        return await open_view(site, request)

    @r.get("/patient.{suffix}")
    def save(suffix: str, request: Request) -> Response:
        return save_view(site, request, suffix)

    @r.get("/reasoning", response_class=HTMLResponse)
    async def reasoning_page(request: Request) -> HTMLResponse:
        return await site.run(reasoning_view, site, request)

    return r
