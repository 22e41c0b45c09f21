"""The only module that builds rich objects. Every piece of user or policy text is escaped."""
from __future__ import annotations

from contextlib import contextmanager

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn
from rich.markup import escape
from rich.table import Table
from rich.text import Text
from rich.tree import Tree

from reasoner.language import ir
from reasoner.results.decide import Decision
from reasoner.errors import Problem

STYLE = {"covered": "bold green", "denied": "bold red", "review": "bold yellow", "not_addressed": "dim"}


def _pa(value: str | None) -> str:
    return {"required": "required", "not_required": "not required", None: "—"}[value]


def decisions_table(patient_id: str, decisions: list[Decision]) -> Table:
    assumed = sorted({a for d in decisions for a in d.assumptions})
    notes = "\n".join(f"assumed by {', '.join(d.policy for d in decisions if a in d.assumptions)}: {a}" for a in assumed)
    table = Table(title=f"Decisions for {escape(safe_text(patient_id))}", title_justify="left", show_lines=False,
                  caption=Text(safe_text(notes)) if notes else None, caption_justify="left")
    for column in ("payer", "decision", "kind", "prior auth", "deciding rule", "citation"):
        table.add_column(column, overflow="fold")
    for d in decisions:
        kind = d.subkind or ""
        if d.detail:
            kind = f"{kind}: {d.detail}"
        table.add_row(
            Text(d.policy, style="bold") + (Text(f"\nversion of {d.version_of}{in_force(d.effective)}", style="dim")
                                            if d.version_of else Text("")),
            Text(d.kind, style=STYLE[d.kind]),
            Text(safe_text(kind)),
            Text(_pa(d.prior_auth)),
            Text(safe_text(d.rule_label)) + (Text(f" ({d.rule})", style="dim") if d.rule else Text("")),
            Text(safe_text(d.cite) if d.cite else "—"),
        )
    return table


def safe_text(text: str) -> str:
    """Text from a file with terminal control characters shown as escapes: an id or label must
    not be able to move the cursor, clear the screen or retitle the terminal."""
    return "".join(ch if ch.isprintable() or ch in "\n\t" else ch.encode("unicode_escape").decode("ascii")
                   for ch in str(text))


def problems_text(problems: list[Problem] | tuple[Problem, ...]) -> Text:
    out = Text()
    for p in problems:
        style = {"error": "red", "warning": "yellow"}.get(p.severity, "cyan")  # a note: what a family changes
        out.append(f"{p.where}: ", style="bold")
        out.append(f"{p.severity}: ", style=style)
        out.append(f"{p.message}\n")
    return out


def _covers(policy: ir.Policy, concept: str) -> str:
    values: list[str] = []
    for rule in policy.rules:
        if rule.outcome.kind in ("covered", "review"):
            for v in rule.scope_values(concept) or ():
                if v not in values:
                    values.append(v)
    return ", ".join(values) or "—"


def policies_table(program: ir.Program) -> Table:
    table = Table(title="Loaded policies", title_justify="left")
    for column in ("id", "payer", "document", "version", "lines of business", "services", "indications", "rules"):
        table.add_column(column, overflow="fold")
    for p in program.policies:
        ident = Text(p.id, style="bold") + (Text(f"\nextends {p.extends}", style="dim") if p.extends else Text(""))
        if not program.is_current(p.id):
            ident += Text(f"\nearlier version of {program.latest(p.id)}", style="dim")
        elif len(program.versions(p.id)) > 1:
            earlier = ", ".join(v.id for v in program.versions(p.id) if v.id != p.id)
            ident += Text(f"\nearlier versions: {earlier}", style="dim")
        table.add_row(ident, Text(p.payer), Text(f"{p.document} {p.title}"),
                      Text(p.version + in_force(p.effective)),
                      Text(", ".join(p.lines)), Text(_covers(p, "service")), Text(_covers(p, "indications")),
                      str(len(p.rules)))
    return table


def in_force(period: tuple) -> str:
    """'; in force 2019-04-01 onward' (or 'from … to …'), '' for a policy that declares no period."""
    start, end = period
    if start is None:
        return ""
    return f"; in force {start.isoformat()}" + (f" to {end.isoformat()}" if end else " onward")


def matrix_table(columns, service: str | None, indication: str | None) -> Table:
    """Concepts down, payers across; each cell the payer's requirements on that concept."""
    from reasoner.results.matrix import concepts_in

    scope = ", ".join(x for x in (service, indication) if x) or "all services and indications"
    table = Table(title=f"Criteria matrix — {escape(scope)}", title_justify="left", show_lines=True)
    table.add_column("criterion", style="bold", overflow="fold")
    for col in columns:
        table.add_column(col.policy, overflow="fold")
    decisions = []
    for col in columns:
        lines = []
        for r in col.rules:
            o = r.outcome
            label = o.kind + (f" ({o.subkind})" if o.subkind else "") + (f": {o.detail}" if o.detail else "")
            label += "" if o.prior_auth is None else f", PA {_pa(o.prior_auth)}"
            lines.append(Text.assemble((f"{r.name}: ", "dim"), (label, STYLE[o.kind])))
        decisions.append(Text("\n").join(lines) if lines else Text("no rule", style="dim"))
    table.add_row("decision rules", *decisions)
    for concept in concepts_in(columns):
        cells = []
        for col in columns:
            kinds = {r.name: r.outcome.kind for r in col.rules}
            lines = [Text.assemble((_requirement(q, kinds[q.rule]), "red" if q.mode == "absent" or not q.grants else ""),
                                   (f"  [{q.rule}]", "dim"))
                     for q in col.requirements if q.concept == concept]
            cells.append(Text("\n").join(lines) if lines else Text("—", style="dim"))
        table.add_row(concept, *cells)
    return table


def _requirement(q, kind: str) -> str:
    if q.mode == "absent":
        text = "no" if q.text == "yes" else f"not {q.text}"
    else:
        text = ("or: " if q.mode == "option" else "") + q.text
    return text if q.grants else f"{kind.replace('_', ' ')} when {text}"


WIDTH: int | None = None  # --width, set once by the command line
UNWRAPPED = 100_000  # "width" of output to a pipe or file: lines are never wrapped there


def console(no_color: bool = False, width: int | None = None, stderr: bool = False) -> Console:
    """A console for tables, trees and messages. On a terminal it wraps at the terminal's width (or
    --width); to a pipe or a file nothing is wrapped, so one problem stays one line for grep and a
    rule name is never split."""
    probe = Console(stderr=stderr)
    chosen = width or WIDTH or (None if probe.is_terminal else UNWRAPPED)
    return Console(color_system=None if no_color else "auto", width=chosen, highlight=False,
                   soft_wrap=not (width or WIDTH or probe.is_terminal) or stderr, stderr=stderr)


@contextmanager
def batch_progress(out: Console, total: int | None):
    """A progress bar over rows; yields the callback the batch loop reports to."""
    columns = (TextColumn("deciding"), BarColumn(), MofNCompleteColumn(), TextColumn("rows"),
               TimeElapsedColumn(), TimeRemainingColumn())
    with Progress(*columns, console=out, transient=False, disable=not out.is_terminal) as progress:
        task = progress.add_task("rows", total=total)
        yield lambda report: progress.update(task, completed=report.read)


# ---------------------------------------------------------------- explanations
_MARK = {"holds": ("✔", "green"), "absent": ("✔", "green"), "fails": ("✘", "red"),
         "not documented": ("?", "yellow"), "documented otherwise": ("✘", "red")}


def batch_summary(report, shown: int) -> Text:
    """The end of a batch run: rows read, decided and rejected (by reason), decisions per payer."""
    more = " (first 20 shown above)" if shown > 20 else ""
    out = Text(f"{report.read} {report.unit}(s) read, {report.decided} decided, {report.rejected} rejected as "
               f"invalid{more}.")
    for reason, n in report.reasons.most_common(5):
        out.append(f"\n  rejected: {n} × {safe_text(reason)}")
    for reason, n in report.not_read.most_common(5):  # noted, decided without it
        out.append(f"\n  not read: {n} × {safe_text(reason)}")
    payers: dict = {}
    for (payer, decision), n in sorted(report.decisions.items()):
        payers.setdefault(payer, []).append(f"{n} {decision}")
    for payer, parts in payers.items():
        out.append(f"\n  {payer}: {', '.join(parts)}")
    return out


def _value(value) -> str:
    """A fact as a reader says it: an empty set is "none" (documented, with nothing in it), as
    against "not documented"."""
    if value is None:
        return "not documented"
    if isinstance(value, (tuple, list)):
        return "{" + ", ".join(map(str, value)) + "}" if value else "none"
    return str(value).lower() if isinstance(value, bool) else str(value)


def brief(source: str, shown: int = 3) -> str:
    """Where a fact was read, short enough for a line: a list of more than `shown` resources as its
    first and last (Procedure/pt-1 … Procedure/pt-12 (12 resources)); JSON keeps the whole list."""
    names = source.split(", ")
    return source if len(names) <= shown else f"{names[0]} … {names[-1]} ({len(names)} resources)"


def _step_text(step, parent_cite=None) -> Text:
    mark, style = _MARK[step.status]
    text = Text.assemble((f"{mark} ", style))
    label = f"absent: {step.children[0].label}" if step.status == "absent" else step.label
    text.append(safe_text(label))
    if step.test != step.label and step.status != "absent":
        text.append(f"  [{safe_text(step.test)}]", style="cyan")
    if step.status in ("not documented", "documented otherwise"):
        text.append(f"  {step.status}", style=style)
    for fact in (f for f in step.facts if f.value is not None):
        text.append(f"  {fact.concept} = {safe_text(_value(fact.value))}", style="bold")
        if fact.source:
            text.append(f" ← {safe_text(brief(fact.source))}", style="magenta")
    if step.members:
        text.append(f"  counted: {', '.join(step.members)}", style="bold")
    if step.cite != parent_cite:  # a citation is shown where it changes, not on every line
        text.append(f"  — {step.cite}", style="dim")
    return text


def _add_steps(tree: Tree, steps, cite=None) -> None:
    """Steps as a tree; a construct the policy wrote as one criterion (a table lookup, a == b) is one
    line, its parts left to --json."""
    for step in steps:
        node = tree.add(_step_text(step, cite))
        if not step.summary:
            _add_steps(node, step.children, step.cite)


def _rule_text(trace, prefix: str = "") -> Text:
    o = trace.outcome
    outcome = o.kind + (f" ({o.subkind})" if o.subkind else "")
    return Text.assemble(prefix, (safe_text(trace.label), "bold"), (f" ({trace.rule})", "dim"), " → ", (outcome, STYLE[o.kind]),
                         (f"  — {trace.cite}", "dim"))


def _decision_text(d: Decision) -> Text:
    kind = d.kind + (f" ({d.subkind})" if d.subkind else "") + (f": {d.detail}" if d.detail else "")
    version = f" (version of {d.version_of}{in_force(d.effective)}, chosen by the request date)" if d.version_of else ""
    return Text.assemble((f"{d.policy}", "bold"), (version, "dim"), ": ", (kind, STYLE[d.kind]),
                         f"  prior auth {_pa(d.prior_auth)}" if d.prior_auth else "")


def why_tree(w) -> Tree:
    """decision ← rule ← criteria ← facts; then, folded, the earlier rules that did not apply."""
    tree = Tree(Text.assemble("Why ", _decision_text(w.decision), f"  (patient {safe_text(w.patient)})"))
    if w.rule is None:
        tree.add(Text("No rule of the policy applies; each rule and what stops it:", style="dim"))
    else:
        _add_steps(tree.add(_rule_text(w.rule, "decided by ")), w.rule.steps, w.rule.cite)
    if w.earlier:
        earlier = tree.add(Text("rules tried before it, and why each did not apply:" if w.rule else "rules:", style="dim"))
        for trace in w.earlier:
            _add_steps(earlier.add(_rule_text(trace)), trace.steps, trace.cite)
    return tree


def why_not_tree(w, repairs=None) -> Tree:
    """Each rule that could decide as wanted for this request, with everything that stops it; then
    the verified repairs. Rules for other services, indications or lines of business are counted,
    not listed: a repair never changes the request (--json lists them all)."""
    tree = Tree(Text.assemble(f"Why not {w.wanted}? ", _decision_text(w.decision), f"  (patient {safe_text(w.patient)})"))
    here = [p for p in w.paths if p.in_scope]
    if not w.paths:
        note = "it already is." if w.decision.kind == w.wanted else f"no rule of this policy decides {w.wanted}."
        tree.add(Text(note, style="dim"))
    elif not here:
        tree.add(Text(f"no rule that decides {w.wanted} applies to this request (its service, indications and line "
                      f"of business); only a different request could be {w.wanted}.", style="dim"))
    for path in here:
        head = tree.add(_rule_text(path.trace))
        if path.trace.preempted_by:
            head.add(Text(f"✘ its criteria hold, but the earlier rule '{path.trace.preempted_by}' decides first",
                          style="red"))
        _add_steps(head, path.trace.steps, path.trace.cite)
    others = len(w.paths) - len(here)
    if others:
        tree.add(Text(f"{plural(others, 'other rule')} deciding {w.wanted} apply to other services, indications or lines "
                      "of business (--json lists them).", style="dim"))
    if repairs is not None and here:
        fixes = tree.add(Text(f"smallest changes that make it {w.wanted} (each verified by the engine):", style="bold"))
        if not repairs:
            fixes.add(Text("none found within the search bounds", style="dim"))
        for i, r in enumerate(repairs, 1):
            node = fixes.add(Text.assemble(f"{i}. ", (plural(len(r.changes), "change"), "bold"),
                                           f" → {safe_text(r.rule_label)} ", (f"({r.rule})", "dim")))
            for c in r.changes:
                node.add(Text.assemble((c.concept, "bold"), f": {safe_text(_value(c.before))} → ",
                                       (safe_text(_value(c.after)), "green"), (f"   needs {safe_text(c.needed)}", "dim")))
    return tree


# ---------------------------------------------------------------- disagreements
@contextmanager
def diff_progress(out: Console):
    """A progress display with one bar per phase (generating, proving, shrinking)."""
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
    with Progress(*columns, console=out, transient=False, disable=not out.is_terminal) as progress:
        yield progress


def plural(n: int, word: str, many: str | None = None) -> str:
    """ "1 patient", "2 patients" """
    return f"{n} {word if n == 1 else many or word + 's'}"


def _side_tree(tree: Tree, side) -> None:
    """One payer's side of a class: its decision and the criteria it rests on, as why-not shows them."""
    kind = side.decision.split(" ", 1)[0]
    branch = tree.add(Text.assemble((f"{side.policy}: ", "bold"), (side.decision, STYLE[kind]),
                                    (f"  {side.rule_label}", ""), (f" ({side.rule})" if side.rule else "", "dim"),
                                    (f"  — {side.cite}" if side.cite else "", "dim")))
    _add_steps(branch, side.steps[:6], side.cite)
    if len(side.steps) > 6:
        branch.add(Text(f"… and {len(side.steps) - 6} more", style="dim"))


def _facts_text(facts: dict) -> str:
    return ", ".join(f"{k}={_value(v)}" for k, v in facts.items())


GROUP_TITLE = {"criteria": "Criteria differences: both payers decide by criteria of their own",
               "scope": "Scope effects: a payer decides by the request alone (line of business, service, indication)"}


def _request_scope(result) -> str:
    parts = [x for x in (result.service, result.indication, result.lines) if x]
    return ", ".join(parts) or "every service, indication and line of business"


def diff_summary(result, themes, limit: int | None = None) -> list:
    """Headline, recurring themes, each class with its witness (criteria differences, then scope
    effects), and the payer-pair table."""
    from reasoner.search.diff import ORDER

    found = sum(1 for c in result.classes if "search" in c.found_by)
    counts = {g: sum(1 for c in result.classes if c.group == g) for g in GROUP_TITLE}
    head = Text.assemble(("Disagreements among ", "bold"), (", ".join(result.payers), "bold"),
                         (f" — {safe_text(_request_scope(result))}\n", "bold"),
                         f"{plural(result.examples, 'patient')} generated (seed {result.seed}), "
                         f"{result.disagreeing} with a disagreement; {plural(len(result.classes), 'class', 'classes')} "
                         f"({counts['criteria']} criteria differences, {counts['scope']} scope effects)")
    if result.exhaustive:
        head.append(f": {found} found by the search, {len(result.classes) - found} only by the exhaustive check "
                    f"(the exhaustive check proves no other class exists)")
    head.append(f"\nOrder: {ORDER}.", style="dim")
    parts: list = [head]
    if themes:
        tree = Tree(Text("Where one payer denies and others cover", style="bold"))
        for t in themes:
            node = tree.add(Text.assemble((t.policy, "bold red"), " denies on ", (safe_text(t.reason), "bold"),
                                          f"  ({plural(t.count, 'patient')})"))
            for other, crit in t.others:
                shown = "; ".join(c.test for c in crit) or "covers without asking for it"
                node.add(Text.assemble((f"{other} covers: ", "green"), safe_text(shown)))
        parts.append(tree)
    shown = result.classes if limit is None else result.classes[:limit]
    group = None
    for i, cls in enumerate(shown, 1):
        if cls.group != group:
            group = cls.group
            parts.append(Text(GROUP_TITLE[group], style="bold underline"))
        how = " + ".join(sorted(cls.found_by))
        tree = Tree(Text.assemble((f"{i}. {cls.pattern.a} vs {cls.pattern.b}", "bold"),
                                  f"  {plural(cls.count, 'patient')}", (f"  [{how}]", "dim")))
        _side_tree(tree, cls.a)
        _side_tree(tree, cls.b)
        tree.add(Text.assemble(("minimal witness: ", "bold"), safe_text(_facts_text(cls.witness))))
        parts.append(tree)
    if limit is not None and len(result.classes) > limit:
        parts.append(Text(f"… {len(result.classes) - limit} more classes (use --json or --report for all).", style="dim"))
    parts.append(pair_table(result))
    return parts


def pair_table(result) -> Table:
    """Patients on whom each pair of payers disagrees."""
    table = Table(title="Disagreeing patients by payer pair", title_justify="left")
    table.add_column("")
    for p in result.payers:
        table.add_column(p, justify="right")
    for a in result.payers:
        cells = []
        for b in result.payers:
            cells.append("—" if a == b else str(result.pair_count(a, b)))
        table.add_row(Text(a, style="bold"), *cells)
    return table


def md(text) -> str:
    """Text from a policy or patient file made inert in Markdown: no HTML, no links or emphasis, no
    table breaks, no terminal control characters."""
    text = safe_text(str(text))
    for ch in "\\`*_{}[]<>()#+!|":
        text = text.replace(ch, "\\" + ch)
    return text.replace("\n", " ")


def diff_markdown(result, themes) -> str:
    """The same summary as a Markdown report (every class, no limit)."""
    from reasoner.search.diff import ORDER

    lines = [f"# Disagreements among {md(', '.join(result.payers))} — {md(_request_scope(result))}", "",
             f"{plural(result.examples, 'patient')} generated (seed {result.seed}); {result.disagreeing} with a "
             f"disagreement; {plural(len(result.classes), 'class', 'classes')}"
             + (" (exhaustive check included)." if result.exhaustive else "."), "", f"Order: {ORDER}.", ""]
    if themes:
        lines += ["## Where one payer denies and others cover", ""]
        for t in themes:
            lines.append(f"- **{md(t.policy)}** denies on {md(t.reason)} — {plural(t.count, 'patient')}; covered by " +
                         ", ".join(md(p) + (f" ({md('; '.join(c.test for c in crit))})" if crit else "") for p, crit in t.others))
        lines.append("")
    lines += ["## Classes", "", "| # | group | payer A | decision (rule) | payer B | decision (rule) | patients | found by |",
              "|---|---|---|---|---|---|---|---|"]
    for i, c in enumerate(result.classes, 1):
        lines.append(f"| {i} | {c.group} | {md(c.a.policy)} | {md(c.a.decision)} ({md(c.a.rule)}) | {md(c.b.policy)} | "
                     f"{md(c.b.decision)} ({md(c.b.rule)}) | {c.count} | {', '.join(sorted(c.found_by))} |")
    lines.append("")
    for i, c in enumerate(result.classes, 1):
        lines += [f"### {i}. {md(c.a.policy)} vs {md(c.b.policy)}", ""]
        for s in (c.a, c.b):
            lines.append(f"- **{md(s.policy)}**: {md(s.decision)} — {md(s.rule_label)} ({md(s.cite)})")
            if s.reason:
                lines.append(f"  - {'rests on' if s.decision == 'covered' else 'because'}: {md(s.reason)}")
        lines += [f"- minimal witness: {md(_facts_text(c.witness))}", ""]
    lines += ["## Disagreeing patients by payer pair", "", "| | " + " | ".join(md(p) for p in result.payers) + " |",
              "|---|" + "---|" * len(result.payers)]
    for a in result.payers:
        row = ["—" if a == b else str(result.pair_count(a, b)) for b in result.payers]
        lines.append(f"| **{md(a)}** | " + " | ".join(row) + " |")
    return "\n".join(lines) + "\n"
