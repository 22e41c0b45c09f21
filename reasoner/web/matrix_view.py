"""The criteria matrix as rows of text: the page, the CSV and the Markdown export are one table.

Cells come from `reasoner.results.matrix` (read off the compiled rules) and are worded as
`reasoner matrix` words them; this module adds what a wide screen needs and a terminal cannot
show: which rows differ between payers (and which payers differ from the most common answer), a
text filter, and the same rows written out for a spreadsheet or a document.
"""
from __future__ import annotations

import csv
import io
from collections import Counter
from dataclasses import dataclass

from reasoner.language import ir
from reasoner.language.load import Loaded
from reasoner.present import render
from reasoner.results.matrix import Column, concepts_in, matrix


@dataclass(frozen=True)
class Line:
    text: str
    rule: str
    cite: str
    tone: str  # covered | denied | review | not_addressed | required | option | absent | condition


SAME, CONFLICT, PARTIAL = "same", "conflict", "partial"


@dataclass(frozen=True)
class Row:
    concept: str
    meaning: str
    cells: tuple[tuple[Line, ...], ...]  # one per payer
    odd: tuple[bool, ...]  # per payer: asks something other than what most payers asking ask
    agreement: str = SAME  # same | conflict (payers that ask, ask differently) | partial (only some ask)

    @property
    def differs(self) -> bool:
        """Payers that ask about this fact ask different things of it (the rows worth reading first)."""
        return self.agreement == CONFLICT


@dataclass(frozen=True)
class Matrix:
    service: str | None
    indication: str | None
    payers: tuple[str, ...]
    rules: Row  # the decision rules of each payer, in decision order
    rows: tuple[Row, ...]  # one per concept, after the filters
    total: int  # concept rows before the filters

    @property
    def scope(self) -> str:
        return ", ".join(x for x in (self.service, self.indication) if x) or "all services and indications"


def _rule_line(rule: ir.Rule) -> Line:
    o = rule.outcome
    text = o.kind + (f" ({o.subkind})" if o.subkind else "") + (f": {o.detail}" if o.detail else "")
    text += "" if o.prior_auth is None else f", PA {render._pa(o.prior_auth)}"
    return Line(f"{rule.name}: {text}", rule.name, str(rule.cite), o.kind)


def _cell(col: Column, concept: str) -> tuple[Line, ...]:
    kinds = {r.name: r.outcome.kind for r in col.rules}
    return tuple(Line(render._requirement(q, kinds[q.rule]), q.rule, str(q.cite),
                      q.mode if q.grants else "condition")
                 for q in col.requirements if q.concept == concept)


def _row(concept: str, meaning: str, cells: tuple[tuple[Line, ...], ...]) -> Row:
    """A concept's row, compared across payers (rule names aside: two payers asking the same of a
    fact agree, whatever they call their rules). A payer that does not ask is not counted as
    disagreeing; among those that ask, the ones asking something else than a majority of two or
    more are `odd`."""
    keys = [frozenset((line.text, line.tone) for line in cell) for cell in cells]
    asked = [k for k in keys if k]
    if len(set(keys)) <= 1:
        return Row(concept, meaning, cells, tuple(False for _ in keys), SAME)
    if len(set(asked)) <= 1:
        return Row(concept, meaning, cells, tuple(False for _ in keys), PARTIAL)
    common, times = Counter(asked).most_common(1)[0]
    if times < 2:  # every payer asks its own thing: no majority to differ from
        return Row(concept, meaning, cells, tuple(False for _ in keys), CONFLICT)
    return Row(concept, meaning, cells, tuple(bool(k) and k != common for k in keys), CONFLICT)


def _matches(row: Row, text: str) -> bool:
    needle = text.casefold()
    return needle in row.concept.casefold() or needle in row.meaning.casefold() or \
        any(needle in line.text.casefold() for cell in row.cells for line in cell)


def build(loaded: Loaded, service: str | None = None, indication: str | None = None,
          payers: list[str] | None = None, text: str = "", only_differences: bool = False) -> Matrix:
    """The matrix for a service and indication (None: all), the chosen payers (None: all), keeping
    the concept rows that mention `text` and, if asked, only those where payers differ."""
    program = loaded.program
    if payers:
        program = program.only(payers)
    columns = matrix(program, service, indication)
    rules = Row("decision rules", "each payer's rules for this request, in decision order",
                tuple(tuple(_rule_line(r) for r in col.rules) for col in columns), tuple(False for _ in columns), SAME)
    concepts = loaded.vocab.concepts
    rows = [_row(c, concepts[c].meaning if c in concepts else "", tuple(_cell(col, c) for col in columns))
            for c in concepts_in(columns)]
    kept = [r for r in rows if (not text or _matches(r, text)) and (not only_differences or r.differs)]
    return Matrix(service, indication, tuple(c.policy for c in columns), rules, tuple(kept), len(rows))


# ---------------------------------------------------------------- exports
def _cell_text(cell: tuple[Line, ...], separator: str) -> str:
    return separator.join(f"{line.text} [{line.rule}]" if line.tone not in render.STYLE else line.text
                          for line in cell) or "—"


def _spreadsheet_safe(text: str) -> str:
    """A cell a spreadsheet will show, not run: text starting with = + - @ is quoted."""
    return "'" + text if text[:1] in ("=", "+", "-", "@", "\t", "\r") else text


def to_csv(m: Matrix) -> str:
    """The table as shown (filters applied): a header of payers, then the rules, then one row per
    concept; several requirements in one cell are one per line."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\r\n")
    writer.writerow(["criterion", *m.payers, "payers"])
    for row in (m.rules, *m.rows):
        writer.writerow([_spreadsheet_safe(row.concept), *(_spreadsheet_safe(_cell_text(c, "\n")) for c in row.cells),
                         {CONFLICT: "differ", PARTIAL: "only some ask", SAME: "same"}[row.agreement] if row is not m.rules
                         else ""])
    return buffer.getvalue()


def to_markdown(m: Matrix) -> str:
    """The same table in Markdown; policy text is made inert (`render.md`)."""
    lines = [f"# Criteria matrix — {render.md(m.scope)}", "",
             f"{len(m.rows)} of {m.total} criteria shown; rows where the payers that ask about a fact ask different "
             "things of it are marked **≠**.", "",
             "| criterion | " + " | ".join(render.md(p) for p in m.payers) + " |",
             "|---|" + "---|" * len(m.payers)]
    for row in (m.rules, *m.rows):
        mark = " **≠**" if row.differs else ""
        cells = [render.md(_cell_text(c, "; ")) for c in row.cells]
        lines.append(f"| {render.md(row.concept)}{mark} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"
