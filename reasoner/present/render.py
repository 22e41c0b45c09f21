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
                  caption=notes or None, caption_justify="left")
    for column in ("payer", "decision", "kind", "prior auth", "deciding rule", "citation"):
        table.add_column(column, overflow="fold")
    for d in decisions:
        kind = d.subkind or ""
        if d.detail:
            kind = f"{kind}: {d.detail}"
        table.add_row(
            Text(d.policy, style="bold"),
            Text(d.kind, style=STYLE[d.kind]),
            Text(kind),
            Text(_pa(d.prior_auth)),
            Text(d.rule_label) + (Text(f" ({d.rule})", style="dim") if d.rule else Text("")),
            Text(str(d.cite) if d.cite else "—"),
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
        style = "red" if p.severity == "error" else "yellow"
        out.append(f"{p.where}: ", style="bold")
        out.append(f"{p.severity}: ", style=style)
        out.append(f"{p.message}\n")
    return out


def _scope(policy: ir.Policy, concept: str) -> str:
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
        table.add_row(Text(p.id, style="bold"), Text(p.payer), Text(f"{p.document} {p.title}"), Text(p.version),
                      Text(", ".join(p.lines)), Text(_scope(p, "service")), Text(_scope(p, "indications")),
                      str(len(p.rules)))
    return table


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


def console(no_color: bool = False, width: int | None = None, stderr: bool = False) -> Console:
    return Console(color_system=None if no_color else "auto", width=width, highlight=False,
                   soft_wrap=stderr, stderr=stderr)  # messages on stderr stay one line each, for grep


@contextmanager
def batch_progress(out: Console, total: int):
    """A progress bar over rows; yields the callback the batch loop reports to."""
    columns = (TextColumn("deciding"), BarColumn(), MofNCompleteColumn(), TextColumn("rows"),
               TimeElapsedColumn(), TimeRemainingColumn())
    with Progress(*columns, console=out, transient=False, disable=not out.is_terminal) as progress:
        task = progress.add_task("rows", total=total)
        yield lambda report: progress.update(task, completed=report.read)


# ---------------------------------------------------------------- explanations
_MARK = {"holds": ("✔", "green"), "absent": ("✔", "green"), "fails": ("✘", "red"),
         "not documented": ("?", "yellow"), "documented otherwise": ("✘", "red")}


def _value(value) -> str:
    if value is None:
        return "not documented"
    if isinstance(value, (tuple, list)):
        return "{" + ", ".join(map(str, value)) + "}" if value else "{}"
    return str(value).lower() if isinstance(value, bool) else str(value)


def _step_text(step, parent_cite=None) -> Text:
    mark, style = _MARK[step.status]
    text = Text.assemble((f"{mark} ", style))
    label = f"absent: {step.children[0].label}" if step.status == "absent" else step.label
    text.append(label)
    if step.test != step.label and step.status != "absent":
        text.append(f"  [{step.test}]", style="cyan")
    if step.status in ("not documented", "documented otherwise"):
        text.append(f"  {step.status}", style=style)
    for fact in (f for f in step.facts if f.value is not None):
        text.append(f"  {fact.concept} = {_value(fact.value)}", style="bold")
    if step.members:
        text.append(f"  counted: {', '.join(step.members)}", style="bold")
    if step.cite != parent_cite:  # a citation is shown where it changes, not on every line
        text.append(f"  — {step.cite}", style="dim")
    return text


def _add_steps(tree: Tree, steps, cite=None) -> None:
    for step in steps:
        _add_steps(tree.add(_step_text(step, cite)), step.children, step.cite)


def _rule_text(trace, prefix: str = "") -> Text:
    o = trace.outcome
    outcome = o.kind + (f" ({o.subkind})" if o.subkind else "")
    return Text.assemble(prefix, (trace.label, "bold"), (f" ({trace.rule})", "dim"), " → ", (outcome, STYLE[o.kind]),
                         (f"  — {trace.cite}", "dim"))


def _decision_text(d: Decision) -> Text:
    kind = d.kind + (f" ({d.subkind})" if d.subkind else "") + (f": {d.detail}" if d.detail else "")
    return Text.assemble((f"{d.policy}: ", "bold"), (kind, STYLE[d.kind]),
                         f"  prior auth {_pa(d.prior_auth)}" if d.prior_auth else "")


def why_tree(w) -> Tree:
    """decision ← rule ← criteria ← facts; then, folded, the earlier rules that did not apply."""
    tree = Tree(Text.assemble("Why ", _decision_text(w.decision), f"  (patient {w.patient})"))
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
    """Each path to the wanted decision with everything that stops it; then the verified repairs."""
    tree = Tree(Text.assemble(f"Why not {w.wanted}? ", _decision_text(w.decision), f"  (patient {w.patient})"))
    if not w.paths:
        note = "it already is." if w.decision.kind == w.wanted else f"no rule of this policy decides {w.wanted}."
        tree.add(Text(note, style="dim"))
    for path in w.paths:
        head = tree.add(_rule_text(path.trace, "" if path.in_scope else "[other service/indication] "))
        if path.trace.preempted_by:
            head.add(Text(f"✘ its criteria hold, but the earlier rule '{path.trace.preempted_by}' decides first",
                          style="red"))
        _add_steps(head, path.trace.steps, path.trace.cite)
    if repairs is not None:
        fixes = tree.add(Text(f"smallest changes that make it {w.wanted} (each verified by the engine):", style="bold"))
        if not repairs and w.paths:
            fixes.add(Text("none found within the search bounds", style="dim"))
        for i, r in enumerate(repairs, 1):
            node = fixes.add(Text.assemble(f"{i}. ", (f"{len(r.changes)} change(s)", "bold"), f" → {r.rule_label} ",
                                           (f"({r.rule})", "dim")))
            for c in r.changes:
                node.add(Text.assemble((c.concept, "bold"), f": {_value(c.before)} → ", (_value(c.after), "green"),
                                       (f"   needs {c.needed}", "dim")))
    return tree


# ---------------------------------------------------------------- disagreements
@contextmanager
def diff_progress(out: Console):
    """A progress display with one bar per phase (generating, proving, shrinking)."""
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
    with Progress(*columns, console=out, transient=False, disable=not out.is_terminal) as progress:
        yield progress


def _criterion_text(c) -> Text:
    mark, style = ("✔", "green") if c.holds else ("✘", "red")
    return Text.assemble((f"{mark} ", style), (c.test, "bold"), (f"  {c.label}", ""), (f"  — {c.cite}", "dim"))


def _side_tree(tree: Tree, side) -> None:
    kind = side.decision.split(" ", 1)[0]
    branch = tree.add(Text.assemble((f"{side.policy}: ", "bold"), (side.decision, STYLE[kind]),
                                    (f"  {side.rule_label}", ""), (f" ({side.rule})" if side.rule else "", "dim"),
                                    (f"  — {side.cite}" if side.cite else "", "dim")))
    for c in side.criteria[:6]:
        branch.add(_criterion_text(c))
    if len(side.criteria) > 6:
        branch.add(Text(f"… and {len(side.criteria) - 6} more", style="dim"))


def _facts_text(facts: dict) -> str:
    return ", ".join(f"{k}={_value(v)}" for k, v in facts.items())


def diff_summary(result, themes, limit: int | None = None) -> list:
    """Headline, recurring themes, each class with its witness, and the payer-pair table."""
    scope = ", ".join(x for x in (result.service, result.indication) if x) or "every service and indication"
    found = sum(1 for c in result.classes if "search" in c.found_by)
    head = Text.assemble(("Disagreements among ", "bold"), (", ".join(result.payers), "bold"), (f" — {scope}\n", "bold"),
                         f"{result.examples} patients generated (seed {result.seed}), {result.disagreeing} with a "
                         f"disagreement; {len(result.classes)} classes")
    if result.exhaustive:
        head.append(f": {found} found by the search, {len(result.classes) - found} only by the exhaustive check "
                    f"(the exhaustive check proves no other class exists)")
    parts: list = [head]
    if themes:
        tree = Tree(Text("Where one payer denies and others cover", style="bold"))
        for t in themes:
            node = tree.add(Text.assemble((t.policy, "bold red"), " denies on ",
                                          ("; ".join(c.test for c in t.criteria), "bold"), f"  ({t.count} patients)"))
            for c in t.criteria:
                node.add(_criterion_text(c))
            for other, crit in t.others:
                shown = "; ".join(c.test for c in crit) or "(criterion not asked)"
                node.add(Text.assemble((f"{other} covers: ", "green"), shown))
        parts.append(tree)
    classes = result.classes if limit is None else result.classes[:limit]
    for i, cls in enumerate(classes, 1):
        how = " + ".join(sorted(cls.found_by))
        tree = Tree(Text.assemble((f"{i}. {cls.pattern.a} vs {cls.pattern.b}", "bold"),
                                  f"  {cls.count} patients", (f"  [{how}]", "dim")))
        _side_tree(tree, cls.a)
        _side_tree(tree, cls.b)
        tree.add(Text.assemble(("minimal witness: ", "bold"), _facts_text(cls.witness)))
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


def diff_markdown(result, themes) -> str:
    """The same summary as a Markdown report (every class, no limit)."""
    scope = ", ".join(x for x in (result.service, result.indication) if x) or "every service and indication"
    lines = [f"# Disagreements among {', '.join(result.payers)} — {scope}", "",
             f"{result.examples} patients generated (seed {result.seed}); {result.disagreeing} with a disagreement; "
             f"{len(result.classes)} classes" + (" (exhaustive check included)." if result.exhaustive else "."), ""]
    if themes:
        lines += ["## Where one payer denies and others cover", ""]
        for t in themes:
            lines.append(f"- **{t.policy}** denies on {'; '.join(f'`{c.test}` ({c.cite})' for c in t.criteria)} — "
                         f"{t.count} patients; covered by " +
                         ", ".join(f"{p}" + (f" (`{'; '.join(c.test for c in crit)}`)" if crit else "") for p, crit in t.others))
        lines.append("")
    lines += ["## Classes", "", "| # | payer A | decision (rule) | payer B | decision (rule) | patients | found by |",
              "|---|---|---|---|---|---|---|"]
    for i, c in enumerate(result.classes, 1):
        lines.append(f"| {i} | {c.a.policy} | {c.a.decision} ({c.a.rule}) | {c.b.policy} | {c.b.decision} ({c.b.rule}) "
                     f"| {c.count} | {', '.join(sorted(c.found_by))} |")
    lines.append("")
    for i, c in enumerate(result.classes, 1):
        lines += [f"### {i}. {c.a.policy} vs {c.b.policy}", ""]
        for s in (c.a, c.b):
            lines.append(f"- **{s.policy}**: {s.decision} — {s.rule_label} ({s.cite})")
            lines += [f"  - {'holds' if x.holds else 'fails'}: `{x.test}` — {x.label} ({x.cite})" for x in s.criteria]
        lines += [f"- minimal witness: `{_facts_text(c.witness)}`", ""]
    lines += ["## Disagreeing patients by payer pair", "", "| | " + " | ".join(result.payers) + " |",
              "|---|" + "---|" * len(result.payers)]
    for a in result.payers:
        row = ["—" if a == b else str(result.pair_count(a, b)) for b in result.payers]
        lines.append(f"| **{a}** | " + " | ".join(row) + " |")
    return "\n".join(lines) + "\n"
