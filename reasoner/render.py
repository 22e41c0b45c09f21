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


def console(no_color: bool = False, width: int | None = None) -> Console:
    return Console(color_system=None if no_color else "auto", width=width, highlight=False, soft_wrap=False)
