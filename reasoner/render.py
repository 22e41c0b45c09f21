"""The only module that builds rich objects. Every piece of user or policy text is escaped."""
from __future__ import annotations

from contextlib import contextmanager

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn
from rich.markup import escape
from rich.table import Table
from rich.text import Text
from rich.tree import Tree

from . import ir
from .decide import Decision
from .errors import Problem

STYLE = {"covered": "bold green", "denied": "bold red", "review": "bold yellow", "not_addressed": "dim"}


def _pa(value: str | None) -> str:
    return {"required": "required", "not_required": "not required", None: "—"}[value]


def decisions_table(patient_id: str, decisions: list[Decision]) -> Table:
    table = Table(title=f"Decisions for {escape(patient_id)}", title_justify="left", show_lines=False)
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
                      Text(", ".join(p.lines)), Text(_scope(p, "service")), Text(_scope(p, "indication")),
                      str(len(p.rules)))
    return table


def matrix_table(columns, service: str | None, indication: str | None) -> Table:
    """Concepts down, payers across; each cell the payer's requirements on that concept."""
    from .matrix import concepts_in

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
