"""The analyst workbench: a local web app over the library the command line uses.

`create_app(loaded)` builds the ASGI app. Pages are server-rendered Jinja2 templates; htmx swaps
parts of them as facts change, so there is no JavaScript build step and no reasoning in the
browser: every decision, explanation, matrix and search is asked of the same functions
`reasoner check / why / why-not / matrix / diff` call. Five pages:

- Member (`/member`): a form generated from the vocabulary, every payer's decision beside it,
  one payer's why / why-not with repairs in a side panel;
- Reasoning (`/reasoning`): one payer's trees in full, and every payer at the level of criteria;
- Matrix (`/matrix`): what each payer requires, differences highlighted, CSV and Markdown;
- Disagreements (`/disagreements`): `diff` in the background with live progress;
- Policies (`/policies`): each policy's rules and criteria, its source, the ambiguity register.

Guards: requests are size-limited, hosts other than this machine's are refused (a web page
elsewhere cannot read the app through DNS rebinding), responses carry a content security policy
allowing only this server's own scripts, and an error is a page saying what went wrong, never a
traceback (that goes to the server's log).
"""
from __future__ import annotations

import asyncio
import logging
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from functools import partial
from typing import Sequence

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, Response
from fastapi.staticfiles import StaticFiles
from jinja2 import Environment
from starlette.exceptions import HTTPException
from starlette.middleware.gzip import GZipMiddleware
from starlette.middleware.trustedhost import TrustedHostMiddleware

from reasoner.language.load import Loaded
from reasoner.results.decide import Reasoner
from reasoner.web.disagreements import Jobs
from reasoner.web.templating import STATIC, Urls, environment, plotly_js

log = logging.getLogger("reasoner.web")
LOOPBACK = ("127.0.0.1", "localhost", "[::1]", "::1")
MAX_BODY = 2_000_000  # an uploaded patient file is at most 1 MB
MAX_QUERY = 16_000  # a whole member in the address is a few kB
CSP = ("default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data: blob:; "
       "font-src 'self' data:; connect-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; "
       "frame-ancestors 'none'")
SECURITY_HEADERS = {"content-security-policy": CSP, "x-content-type-options": "nosniff",
                    "referrer-policy": "no-referrer", "x-frame-options": "DENY",
                    "cross-origin-opener-policy": "same-origin"}
PAGES = (("member", "Member", "/member"), ("reasoning", "Reasoning", "/reasoning"), ("matrix", "Matrix", "/matrix"),
         ("disagreements", "Disagreements", "/disagreements"), ("policies", "Policies", "/policies"))


WORKERS = 2  # threads that decide: each holds its own pyDatalog knowledge base, loaded once


@dataclass(frozen=True)
class Site:
    """What every route needs: the loaded policies, one shared reasoner, the background searches
    and the templates. Deciding runs on `pool`, a few long-lived threads: pyDatalog keeps one
    knowledge base per thread, so a thread new to the reasoner first loads the whole program
    (~0.1 s and a few MB); the web server's own pool of up to 40 short-lived threads would pay
    that again and again."""

    loaded: Loaded
    reasoner: Reasoner
    jobs: Jobs
    env: Environment
    pool: ThreadPoolExecutor
    urls: Urls = Urls()

    @property
    def payers(self) -> tuple[str, ...]:
        return tuple(p.id for p in self.loaded.program.policies)

    async def run(self, function, *args, **kwargs):
        """`function(*args, **kwargs)` on a deciding thread, without blocking the event loop."""
        return await asyncio.get_running_loop().run_in_executor(self.pool, partial(function, *args, **kwargs))

    def warm(self) -> None:
        """Load the knowledge base on every deciding thread now, not on the first requests."""
        import threading

        barrier = threading.Barrier(WORKERS)

        def load_here():
            barrier.wait(timeout=30)
            self.reasoner.engine.evaluate({}, None)

        for _ in range(WORKERS):
            self.pool.submit(load_here)

    def html(self, template: str, status: int = 200, headers: dict | None = None, **context) -> HTMLResponse:
        context.setdefault("active", "")
        page = self.env.get_template(template).render(site=self, urls=self.urls, pages=PAGES, **context)
        return HTMLResponse(page, status_code=status, headers=headers)


def is_htmx(request: Request) -> bool:
    return request.headers.get("hx-request") == "true"


class Guard:
    """Refuses oversized requests before they are read, and adds the security headers."""

    def __init__(self, app, max_body: int = MAX_BODY, max_query: int = MAX_QUERY):
        self.app, self.max_body, self.max_query = app, max_body, max_query

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        if len(scope.get("query_string", b"")) > self.max_query:
            return await _refuse(send, 414, "The address is too long for one member.")
        length = dict(scope.get("headers", [])).get(b"content-length")
        if length is not None and (not length.isdigit() or int(length) > self.max_body):
            return await _refuse(send, 413, f"The request is larger than {self.max_body // 1_000_000} MB.")
        seen = 0

        async def limited():
            nonlocal seen
            message = await receive()
            seen += len(message.get("body", b""))
            if seen > self.max_body:
                raise HTTPException(413, f"The request is larger than {self.max_body // 1_000_000} MB.")
            return message

        async def secured(message):
            if message["type"] == "http.response.start":
                headers = [(k, v) for k, v in message.get("headers", []) if k.decode().lower() not in SECURITY_HEADERS]
                headers += [(k.encode(), v.encode()) for k, v in SECURITY_HEADERS.items()]
                message = {**message, "headers": headers}
            await send(message)

        await self.app(scope, limited, secured)


async def _refuse(send, status: int, text: str) -> None:
    body = f"<!doctype html><title>{status}</title><p>{text}</p>".encode()
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"text/html; charset=utf-8"), (b"content-length", str(len(body)).encode())]
                + [(k.encode(), v.encode()) for k, v in SECURITY_HEADERS.items()]})
    await send({"type": "http.response.body", "body": body})


TITLES = {400: "The request could not be used", 404: "Not found", 405: "Not allowed here", 413: "Too large",
          414: "Address too long", 422: "Some values need fixing", 500: "Something went wrong"}


def error_response(site: Site, request: Request, status: int, message: str, problems=()) -> HTMLResponse:
    """An error as a page (or, for an htmx request, a notice in the page's message area)."""
    title = TITLES.get(status, "Error")
    if is_htmx(request):
        return site.html("_flash.html", status, {"HX-Retarget": "#flash", "HX-Reswap": "innerHTML"},
                         title=title, message=message, problems=problems)
    return site.html("error.html", status, title=title, message=message, problems=problems, code=status)


def _errors(app: FastAPI, site: Site) -> None:
    @app.exception_handler(HTTPException)
    async def http_error(request: Request, exc: HTTPException):
        message = exc.detail if isinstance(exc.detail, str) else TITLES.get(exc.status_code, "Error")
        return error_response(site, request, exc.status_code, message)

    @app.exception_handler(RequestValidationError)
    async def bad_parameters(request: Request, exc: RequestValidationError):
        problems = [f"{'.'.join(str(x) for x in e.get('loc', ())[1:]) or 'request'}: {e.get('msg', '')}"
                    for e in exc.errors()[:20]]
        return error_response(site, request, 400, "Some parameters of the request are not valid.", problems)

    @app.exception_handler(Exception)
    async def failure(request: Request, exc: Exception):
        log.exception("error while serving %s", request.url.path)
        return error_response(site, request, 500, "The server could not complete this request; the details are in "
                                                  "the log of `reasoner serve`. Nothing was changed.")


def create_app(loaded: Loaded, allowed_hosts: Sequence[str] = LOOPBACK) -> FastAPI:
    """The workbench over one loaded policy folder."""
    from reasoner.web import explore, member, search

    site = Site(loaded, Reasoner(loaded), Jobs(loaded), environment(),
                ThreadPoolExecutor(WORKERS, thread_name_prefix="reasoner-web"))
    site.warm()
    app = FastAPI(title="reasoner workbench", docs_url=None, redoc_url=None, openapi_url=None)
    app.state.site = site
    _errors(app, site)

    @app.get("/vendor/plotly.min.js", include_in_schema=False)
    def plotly() -> Response:
        return Response(plotly_js(), media_type="text/javascript", headers={"cache-control": "public, max-age=86400"})

    app.include_router(member.router(site))
    app.include_router(explore.router(site))
    app.include_router(search.router(site))
    app.mount("/static", StaticFiles(directory=STATIC), name="static")
    app.add_middleware(GZipMiddleware, minimum_size=2000)
    app.add_middleware(TrustedHostMiddleware, allowed_hosts=list(allowed_hosts))
    app.add_middleware(Guard)
    return app
