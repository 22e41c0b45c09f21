"""The only module that builds rich objects. Every piece of user or policy text is escaped."""
from __future__ import annotations

from rich.console import Console
from rich.markup import escape
from rich.table import Table
from rich.text import Text

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
            lines = [Text.assemble((_requirement(q), "red" if q.mode == "absent" else ""), (f"  [{q.rule}]", "dim"))
                     for q in col.requirements if q.concept == concept]
            cells.append(Text("\n").join(lines) if lines else Text("—", style="dim"))
        table.add_row(concept, *cells)
    return table


def _requirement(q) -> str:
    if q.mode == "absent":
        return "no" if q.text == "yes" else f"not {q.text}"
    return ("or: " if q.mode == "option" else "") + q.text


def console(no_color: bool = False, width: int | None = None) -> Console:
    return Console(color_system=None if no_color else "auto", width=width, highlight=False, soft_wrap=False)
