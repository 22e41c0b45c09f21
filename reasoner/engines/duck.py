"""Everything DuckDB-specific: the connection, moving patient rows in, reading input files.

`reasoner/engines/sql.py` writes portable SQL; this module runs it on an embedded DuckDB over Arrow
tables, a chunk of patients at a time.
"""
from __future__ import annotations

from dataclasses import dataclass

import duckdb
import pyarrow as pa

from reasoner.language import ir
from reasoner.engines.sql import Layout, compile_query, layout
from reasoner.language.vocab import Vocabulary

ARROW = {"BOOLEAN": pa.bool_(), "DOUBLE": pa.float64(), "VARCHAR": pa.string()}


@dataclass(frozen=True)
class Outcome:
    """One patient under one policy, as the fast backend decides it."""

    rule: str | None
    decision: str
    failing: tuple[str, ...]


class FastBackend:
    """Decides many patients at once with one SQL query per chunk."""

    def __init__(self, program: ir.Program, vocab: Vocabulary, threads: int | None = None):
        self.program, self.vocab = program, vocab
        self.layout: Layout = layout(program, vocab)
        self.query = compile_query(program, vocab, self.layout, "patients")
        self.con = duckdb.connect()
        if threads:
            self.con.execute(f"SET threads = {int(threads)}")
        self.schema = pa.schema([("pid", pa.int64())] + [(c.name, ARROW[c.sql_type]) for c in self.layout.columns])

    def table(self, facts_list: list[dict]) -> pa.Table:
        rows = [self.layout.row(f, self.vocab) for f in facts_list]
        columns = [list(range(len(rows)))] + [list(col) for col in zip(*rows)] if rows else \
            [[] for _ in self.schema]
        return pa.Table.from_arrays([pa.array(c, type=t.type) for c, t in zip(columns, self.schema)], schema=self.schema)

    def run_arrow(self, patients: pa.Table) -> pa.Table:
        """The decision columns for an Arrow table laid out as `self.schema`."""
        self.con.register("patients", patients)
        try:
            return self.con.sql(self.query).to_arrow_table()
        except RuntimeError as err:  # DuckDB reports a signal during a query as this, not as KeyboardInterrupt
            if "interrupted" in str(err).lower():
                raise KeyboardInterrupt from None
            raise
        finally:
            self.con.unregister("patients")

    def decide(self, facts_list: list[dict]) -> list[dict[str, Outcome]]:
        """Per patient, per policy id: the deciding rule, decision kind and failing criteria."""
        result = self.run_arrow(self.table(facts_list)).to_pydict()
        out: list[dict[str, Outcome]] = [{} for _ in facts_list]
        for p in self.program.policies:
            for pid, rule, kind, failing in zip(result["pid"], result[f"{p.id}__rule"],
                                                result[f"{p.id}__decision"], result[f"{p.id}__failing"]):
                out[pid][p.id] = Outcome(rule, kind, tuple(failing.split(";")) if failing else ())
        return out
