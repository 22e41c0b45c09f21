"""The Jinja2 environment every page and the static report are rendered with.

Autoescaping is on for every template, and undefined names are errors (a template that names
something missing fails its test instead of printing nothing). Text from policy, vocabulary and
patient files is escaped where it is printed; the only markup made in Python is built with
`markupsafe` from escaped parts (ambiguity tags as links, the rendered register).
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from urllib.parse import quote

from jinja2 import Environment, FileSystemLoader, StrictUndefined
from markupsafe import Markup

from reasoner.present import render
from reasoner.results import explain
from reasoner.web.forms import Raw, query
from reasoner.web.policies_view import anchor, link_tags

HERE = Path(__file__).resolve().parent
TEMPLATES, STATIC = HERE / "templates", HERE / "static"
MARKS = {"holds": "✔", "absent": "✔", "fails": "✘", "not documented": "?", "documented otherwise": "✘"}
HTMX_CONFIG = {"includeIndicatorStyles": False, "allowEval": False, "allowScriptTags": False,
               "historyCacheSize": 0, "defaultSettleDelay": 0,
               "responseHandling": [{"code": "204", "swap": False}, {"code": "[23]..", "swap": True},
                                    {"code": "[45]..", "swap": True, "error": True}]}


@dataclass(frozen=True)
class Urls:
    """Where links go. A page served by `reasoner serve` links to the other pages; the static
    report (`live=False`) has no server to link to, so it gets no links but its own anchors."""

    live: bool = True

    def policy(self, pid: str) -> str | None:
        return f"/policies/{quote(pid)}" if self.live else None

    def rule(self, pid: str, rule: str | None) -> str | None:
        return f"/policies/{quote(pid)}#rule-{quote(rule)}" if self.live and rule else None

    def node(self, pid: str, node_id: str) -> str | None:
        return f"/policies/{quote(pid)}#{anchor(node_id)}" if self.live else None

    def member(self, raw: Raw, **state: str) -> str | None:
        return "/member?" + query(raw, **state) if self.live else None

    def reasoning(self, raw: Raw, **state: str) -> str | None:
        return "/reasoning?" + query(raw, **state) if self.live else None

    @property
    def register(self) -> str | None:
        return "/ambiguities" if self.live else None


def value_text(value) -> str:
    """A fact's value as the trees print it (render's wording: not documented, {a, b}, true)."""
    return render._value(value)


def group(step: explain.Step) -> tuple[str, str] | None:
    """How a combining step reads, so any-of is never shown as if all of it were needed."""
    if step.status == explain.ABSENT:
        return "not", "absent"
    if step.summary or not step.children:
        return None
    if step.test == "any of":
        return "any", "any of — " + ("one is enough" if step.holds else "none holds")
    if step.test == "all of":
        return "all", "all of"
    if step.test.startswith("at least"):
        return "any", step.test
    if step.test.startswith("not"):
        return "not", "not"
    return None


def decision_text(kind: str, subkind: str | None = None, detail: str | None = None) -> str:
    return kind.replace("_", " ") + (f" ({subkind.replace('_', ' ')})" if subkind else "") + (f": {detail}" if detail else "")


@lru_cache(maxsize=1)
def environment() -> Environment:
    env = Environment(loader=FileSystemLoader(str(TEMPLATES)), autoescape=True, undefined=StrictUndefined,
                      trim_blocks=True, lstrip_blocks=True)
    env.filters.update(value=value_text, tags=lambda text, href="/ambiguities": link_tags(str(text), href),
                       anchor=anchor, q=lambda raw, **state: query(raw, **state), plural=render.plural)
    env.globals.update(marks=MARKS, group=group, decision_text=decision_text, pa=render._pa,
                       htmx_config=json.dumps(HTMX_CONFIG), static_text=static_text)
    env.tests["matching_date"] = is_iso_date  # a date field shows a date picker only for a value it can hold
    return env


def is_iso_date(text: object) -> bool:
    """Whether text is a calendar date as YYYY-MM-DD (what an <input type=date> holds).

    >>> is_iso_date("2026-03-02"), is_iso_date("2026-02-30"), is_iso_date("March 2")
    (True, False, False)
    """
    import datetime as dt

    try:
        return isinstance(text, str) and len(text) == 10 and dt.date.fromisoformat(text) is not None
    except ValueError:
        return False


@lru_cache(maxsize=8)
def static_text(name: str) -> Markup:
    """A static file's text, for inlining into the static report (our own CSS and JS only)."""
    return Markup((STATIC / name).read_text(encoding="utf-8"))


@lru_cache(maxsize=1)
def plotly_js() -> bytes:
    """plotly.js from the plotly Python package (no CDN: the pages work offline)."""
    from plotly.offline import get_plotlyjs

    return get_plotlyjs().encode("utf-8")
