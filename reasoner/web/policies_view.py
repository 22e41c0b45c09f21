"""Policies as a reader sees them: rules in decision order, criteria as trees, citations, and the
ambiguity register with an anchor per entry.

The trees are the compiled IR (what the engine decides by), not a re-reading of the policy file;
the file itself is shown beside them, line-numbered, for whoever wants the source. Each criterion
has an anchor (`n-<node id>`) so why / why-not can link every step to the place it comes from;
a named criterion (`define`) is drawn once, under "Named criteria", and referred to elsewhere.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from markdown_it import MarkdownIt
from markupsafe import Markup, escape

from reasoner.language import ir
from reasoner.language.check import describe
from reasoner.language.load import Loaded
from reasoner.present import render

TAG = re.compile(r"\b([A-Z]-\d+)\b")
REGISTER = "AMBIGUITIES.md"


def anchor(node_id: str) -> str:
    """The element id of a criterion on its policy's page.

    >>> anchor("cam70141/successful_trial.3")
    'n-cam70141--successful_trial-3'
    """
    return "n-" + re.sub(r"[^A-Za-z0-9_-]", lambda m: "--" if m[0] == "/" else "-", node_id)


def link_tags(text: str, href: str | None = "/ambiguities") -> Markup:
    """Text with every ambiguity tag inside square brackets (e.g. "[B-7]", "[C-15, C-16]") made a
    link to its register entry; everything else escaped."""
    if href is None:
        return escape(text)
    out, last = [], 0
    for bracket in re.finditer(r"\[[^\]]*\]", text):
        out.append(escape(text[last:bracket.start()]))
        inner, pos = bracket[0], 0
        for tag in TAG.finditer(inner):
            out.append(escape(inner[pos:tag.start()]))
            out.append(Markup('<a class="tag" href="{}#{}">{}</a>').format(href, tag[1], tag[1]))
            pos = tag.end()
        out.append(escape(inner[pos:]))
        last = bracket.end()
    out.append(escape(text[last:]))
    return Markup("").join(out)


@dataclass(frozen=True)
class NodeView:
    node: ir.Node
    kind: str  # leaf | all | any | at_least | not | construct | named
    text: str  # the test as the policy states it (describe, or the construct's own wording)
    show_cite: bool  # the citation changes here
    children: tuple["NodeView", ...] = ()

    @property
    def anchor(self) -> str | None:
        return None if self.kind == "named" else anchor(self.node.id)


def _kind(node: ir.Node) -> str:
    match node.test:
        case ir.All():
            return "all"
        case ir.Any():
            return "any"
        case ir.AtLeast():
            return "at_least"
        case ir.Not():
            return "not"
    return "leaf"


def view(node: ir.Node, parent: ir.Citation | None, top: bool = False) -> NodeView:
    """A criterion as drawn: a named one met again (not at the top of its own definition) is a
    reference; a construct the policy wrote as one criterion is one line."""
    cite = node.cite != parent
    if node.name and not top:
        return NodeView(node, "named", node.name, cite)
    if node.macro:
        return NodeView(node, "construct", node.macro, cite)
    kind = _kind(node)
    text = describe(node.test) if kind == "leaf" else ""
    if isinstance(node.test, ir.AtLeast):
        text = describe(node.test)
    return NodeView(node, kind, text, cite, tuple(view(c, node.cite) for c in ir.children(node)))


@dataclass(frozen=True)
class RuleView:
    number: int
    rule: ir.Rule
    scope: tuple[NodeView, ...]
    conditions: tuple[NodeView, ...]
    exceptions: tuple[NodeView, ...]
    line: int | None  # where the rule starts in the policy file


@dataclass(frozen=True)
class PolicyView:
    policy: ir.Policy
    notes: tuple[str, ...]  # the file's opening comment: the source text, how it was read
    rules: tuple[RuleView, ...]
    named: tuple[NodeView, ...]
    services: str
    indications: str


def _line(where: str) -> int | None:
    m = re.search(r":(\d+):\d+$", where)
    return int(m[1]) if m else None


def _named(policy: ir.Policy) -> tuple[ir.Node, ...]:
    """Every named criterion the rules use, in first-use order (named ones inside named ones too)."""
    found: dict[str, ir.Node] = {}
    for rule in policy.rules:
        for top in ir.rule_nodes(rule):
            for node in ir.walk(top):
                if node.name:
                    found.setdefault(node.id, node)
    return tuple(found.values())


def notes(source: str) -> tuple[str, ...]:
    """The comment paragraphs that open a policy file (before its first declaration)."""
    try:
        lines = Path(source).read_text(encoding="utf-8").splitlines()
    except OSError:
        return ()
    paragraphs, current = [], []
    for line in lines:
        stripped = line.strip()
        if stripped.startswith("#"):
            current.append(stripped.lstrip("#").strip())
            continue
        if current:
            paragraphs.append(" ".join(x for x in current if x))
            current = []
        if stripped:
            break
    return tuple(p for p in paragraphs if p)


def policy_view(policy: ir.Policy) -> PolicyView:
    rules = tuple(RuleView(i, r, tuple(view(n, r.cite) for n in r.scope), tuple(view(n, r.cite) for n in r.conditions),
                           tuple(view(n, r.cite) for n in r.exceptions), _line(r.where))
                  for i, r in enumerate(policy.rules, 1))
    named = tuple(view(n, None, top=True) for n in _named(policy))
    return PolicyView(policy, notes(policy.source), rules, named, render._covers(policy, "service"),
                      render._covers(policy, "indications"))


def source_lines(policy: ir.Policy) -> tuple[str, ...]:
    try:
        return tuple(Path(policy.source).read_text(encoding="utf-8").splitlines())
    except OSError:
        return ()


# ---------------------------------------------------------------- the ambiguity register
def register_path(loaded: Loaded) -> Path | None:
    """The register beside the loaded policies, if there is one."""
    if not loaded.program.policies:
        return None
    path = Path(loaded.program.policies[0].source).parent / REGISTER
    return path if path.is_file() else None


def _slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")[:60]


@lru_cache(maxsize=4)
def register_html(path: Path, mtime: float) -> Markup:
    """The register as HTML (raw HTML in it is shown as text, not run): each table row whose first
    cell is a tag gets that tag as its id, each heading a slug, so "[B-7]" can link straight to
    its entry. `mtime` keys the cache, so an edited register is read again."""
    md = MarkdownIt("commonmark", {"html": False, "linkify": False}).enable("table")
    tokens = md.parse(path.read_text(encoding="utf-8"))
    for i, token in enumerate(tokens):
        if token.type == "tr_open":
            cell = next((t for t in tokens[i + 1:i + 4] if t.type == "inline"), None)
            if cell is not None and re.fullmatch(r"[A-Z]-\d+", cell.content.strip()):
                token.attrSet("id", cell.content.strip())
        elif token.type == "heading_open" and i + 1 < len(tokens):
            token.attrSet("id", _slug(tokens[i + 1].content))
    return Markup(md.renderer.render(tokens, md.options, {}))
