"""Batch adjudication: a file of patients in, a file of decisions out, a chunk at a time.

Every input format becomes the same thing, a table of rows written as JSON text with their line
(or row) number: JSONL lines as they are, CSV rows with their cells read by each concept's kind,
Parquet rows turned into JSON by DuckDB. Each chunk is then checked and laid out by one SQL query
compiled from the vocabulary (`engines/intake.py`). A Parquet file whose columns are all
vocabulary fields of types that read exactly (the usual case: a file written from our own
vocabulary) skips the JSON: its typed columns are checked as they are, and only the rows that
query does not accept are written as JSON for `validate`. Chunks are then decided by the fast backend's query, and
written in long form (one row per patient and payer, with sub-kind, prior authorization, rule,
citation and the failing criteria by name and label). Rows the SQL does not accept go to
`reasoner.io.patient.validate`, the function `reasoner check` uses: it decides whether they are
really invalid, and its messages are the ones reported. Memory stays flat: one chunk at a time.

A malformed row is reported with its line (or row) number: skipped, or the whole run rejected, as
the caller chooses; never silently dropped, and never the end of the run.
"""
from __future__ import annotations

import csv
import json
import re
from collections import Counter
from dataclasses import dataclass, field
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

import duckdb
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from reasoner.engines.duck import ARROW
from reasoner.engines.intake import LINE, intake_query, typed_columns, typed_intake_query
from reasoner.engines.sql import compile_query, layout, literal
from reasoner.errors import InputError, PatientError, Problem, did_you_mean
from reasoner.io.patient import RESERVED, json_object as _json_object, validate
from reasoner.language import ir
from reasoner.language.check import describe
from reasoner.language.load import Loaded
from reasoner.results.decide import NO_RULE

FORMATS = ("jsonl", "csv", "parquet")
CHUNK = 20_000  # rows per query: larger plans fewer times (planning is about half a second), smaller needs less memory
TYPED_CHUNK = 50_000  # typed Parquet rows are small in memory (no JSON text): fewer, larger queries
MEMORY_LIMIT = "768MB"  # DuckDB's share: the input and staged chunks live beside it as Arrow; the run stays under 1 GB
FORMULA = "^[=+\\-@\t\r]"  # a CSV cell starting so is a formula to a spreadsheet
PLAIN_NUMBER = re.compile(r"^-?(0|[1-9][0-9]*)(\.[0-9]+)?$")  # as patient files write numbers
OUTPUT = ("row", "id", "payer", "version", "decision", "subkind", "prior_auth", "rule", "rule_label", "citation",
          "failing", "failing_labels")


def input_format(path: Path) -> str:
    if path.is_dir():
        return "fhir-bulk"  # a FHIR Bulk Data export: NDJSON files, one per resource type
    suffix = path.suffix.lower().lstrip(".")
    fmt = {"jsonl": "jsonl", "ndjson": "jsonl", "csv": "csv", "parquet": "parquet", "pq": "parquet"}.get(suffix)
    if fmt is None:
        raise InputError([Problem(str(path), f"cannot tell the format from '.{suffix}'; use .jsonl, .csv or .parquet.")])
    return fmt


def count_rows(path: Path) -> int | None:
    """How many rows the file holds (for the progress bar): Parquet metadata, else counted lines;
    None for a pipe or device, which can be read only once (the bar then counts without a total)."""
    fmt = input_format(path)
    if path.exists() and not path.is_file() and not path.is_dir():
        if fmt == "parquet":
            raise InputError([Problem(str(path), "is a pipe or device; a Parquet file must be a regular file "
                                                 "(its footer is read first). Nothing was decided.")])
        return None
    if fmt == "fhir-bulk":
        from reasoner.fhir.bulk import count_members

        return count_members(path)
    if fmt == "parquet":
        try:
            return pq.ParquetFile(path).metadata.num_rows
        except (pa.ArrowException, OSError) as err:
            raise InputError([Problem(str(path), f"is not a readable Parquet file ({str(err)[:200]}); nothing was decided.")]) from None
    with path.open("rb") as handle:
        lines = sum(block.count(b"\n") for block in iter(lambda: handle.read(1 << 20), b""))
    return max(lines - (1 if fmt == "csv" else 0), 0)


# ---------------------------------------------------------------- reading: rows as JSON text
@dataclass
class Chunk:
    """Rows as (line, JSON text), and rows already known bad (line -> problem) before any check."""

    lines: list[int] = field(default_factory=list)
    texts: list[str] = field(default_factory=list)
    bad: dict[int, InputError] = field(default_factory=dict)
    arrow: pa.Table | None = None  # the rows already as a table (Parquet): no Python strings at all
    typed: bool = False  # arrow holds the file's own typed columns and LINE, not (line, j)

    def __len__(self) -> int:
        return (self.arrow.num_rows if self.arrow is not None else len(self.lines)) + len(self.bad)

    def table(self) -> pa.Table:
        """In record batches of a few thousand rows: DuckDB scans one batch per thread at a time,
        so a single batch would keep the other cores idle."""
        table = self.arrow if self.arrow is not None else \
            pa.table({"line": pa.array(self.lines, pa.int64()), "j": pa.array(self.texts, pa.string())})
        return pa.Table.from_batches(table.to_batches(max_chunksize=4096), table.schema)

    def text(self, lines: list[int]) -> dict[int, str]:
        """The JSON text of these rows (the few the SQL did not accept)."""
        if not lines:
            return {}
        if self.arrow is None:
            wanted = set(lines)
            return {n: t for n, t in zip(self.lines, self.texts) if n in wanted}
        line = LINE if self.typed else "line"
        picked = self.arrow.filter(pc.is_in(self.arrow.column(line), pa.array(lines, pa.int64())))
        texts = _as_json(picked.drop_columns([LINE])) if self.typed else picked.column("j")
        return dict(zip(picked.column(line).to_pylist(), texts.to_pylist()))


def _as_json(table: pa.Table) -> pa.ChunkedArray:
    """Typed rows as JSON text, written by DuckDB as the JSON path writes a Parquet row."""
    con = duckdb.connect()
    try:
        con.register("rows", table)
        return con.sql("SELECT to_json(t)::VARCHAR AS j FROM rows t").to_arrow_table().column(0)
    finally:
        con.close()


def _json(line: bytes | str) -> object:
    """One JSON row, or the InputError that describes what is wrong with it (never an exception:
    one bad row must not end the run)."""
    try:
        text = line.decode("utf-8") if isinstance(line, bytes) else line
    except UnicodeDecodeError as err:
        return InputError([Problem(f"byte {err.start + 1}", "the line is not valid UTF-8.")])
    try:
        return json.loads(text, object_pairs_hook=_json_object)
    except json.JSONDecodeError as err:
        return InputError([Problem(f"column {err.colno}", f"invalid JSON: {err.msg}.")])
    except RecursionError:
        return InputError([Problem("row", "invalid JSON: nested too deeply.")])
    except ValueError as err:  # a key given twice, an integer of thousands of digits
        return InputError([Problem("row", f"invalid JSON: {str(err)[:200]}.")])


def _jsonl(path: Path, size: int) -> Iterator[Chunk]:
    chunk = Chunk()
    with path.open("rb") as handle:
        for number, line in enumerate(handle, 1):
            if not line.strip():
                continue
            try:
                chunk.texts.append(line.decode("utf-8"))
                chunk.lines.append(number)
            except UnicodeDecodeError:
                chunk.bad[number] = _json(line)
            if len(chunk) >= size:
                yield chunk
                chunk = Chunk()
    yield chunk


def csv_header_problems(path: Path, header: list[str], loaded: Loaded) -> list[Problem]:
    """Columns the vocabulary does not know, or given twice: reported once, before any row."""
    known = set(loaded.vocab.plain()) | set(RESERVED) | {n for n, c in loaded.vocab.concepts.items() if c.record}
    problems = [Problem(f"{path}:1: column '{name}'", f"appears {n} times in the header; each concept has one column.")
                for name, n in Counter(header).items() if n > 1]
    for name in header:
        if name not in known:
            problems.append(Problem(f"{path}:1: column {name!r}", f"is not a concept of the vocabulary."
                                    f"{did_you_mean(name, sorted(known))}"))
    return problems


def _csv(path: Path, size: int, loaded: Loaded) -> Iterator[Chunk]:
    # utf-8-sig: a byte-order mark (Excel's "CSV UTF-8") is not part of the first column's name;
    # bytes that are not UTF-8 become surrogates, reported per row instead of ending the run
    with path.open(encoding="utf-8-sig", errors="surrogateescape", newline="") as handle:
        reader = csv.reader(handle)
        header = next(reader, None)
        if header is None:
            yield Chunk()
            return
        problems = csv_header_problems(path, header, loaded)
        if problems:
            raise InputError(problems)
        chunk = Chunk()
        for cells in reader:
            number = reader.line_num
            if not cells:
                continue
            if len(cells) != len(header):
                chunk.bad[number] = InputError([Problem("row", f"has {len(cells)} cell(s); the header has {len(header)}.")])
            else:
                chunk.lines.append(number)
                chunk.texts.append(json.dumps(_from_csv(dict(zip(header, cells)), loaded)))
            if len(chunk) >= size:
                yield chunk
                chunk = Chunk()
        yield chunk


def _from_csv(record: dict, loaded: Loaded) -> dict:
    """CSV cells are text: numbers and booleans are read by the concept's kind, sets split on ';'.
    A cell that does not read stays text, so validation reports it with the value found."""
    out = {}
    for key, cell in record.items():
        if cell == "":
            continue
        concept = loaded.vocab.concepts.get(key)
        kind = concept.kind if concept else None
        if kind == "number":
            if not PLAIN_NUMBER.match(cell.strip()):
                out[key] = cell  # 054, 5_4, 1e3, 0x10: not a plain decimal; validation says so
                continue
            number = float(cell)
            out[key] = int(number) if number.is_integer() and abs(number) < 1e15 else number
        elif kind == "boolean":
            out[key] = {"true": True, "false": False}.get(cell.strip().lower(), cell)
        elif kind in ("set", "codes"):
            out[key] = [v.strip() for v in cell.split(";") if v.strip()]
        else:
            out[key] = cell
    return out


def _parquet(path: Path, size: int | None, loaded: Loaded) -> Iterator[Chunk]:
    try:
        parquet = pq.ParquetFile(path)
        typed = typed_columns(loaded.vocab, parquet.schema_arrow) is not None
    except (pa.ArrowException, OSError):
        typed = False  # DuckDB's reader says what is wrong
    return _typed_parquet(path, parquet, size or TYPED_CHUNK) if typed else _parquet_json(path, size or CHUNK)


def _typed_parquet(path: Path, parquet: pq.ParquetFile, size: int) -> Iterator[Chunk]:
    """The file's typed columns as they are, a chunk at a time, with their row numbers."""
    number = 0
    try:
        for batch in parquet.iter_batches(batch_size=size):
            table = pa.Table.from_batches([batch])
            lines = pa.array(range(number + 1, number + 1 + batch.num_rows), pa.int64())
            yield Chunk(arrow=table.append_column(LINE, lines), typed=True)
            number += batch.num_rows
    except (pa.ArrowException, OSError) as err:
        raise InputError([Problem(f"{path}: row {number + 1}", f"cannot be read ({str(err)[:200]}).")]) from None


def _parquet_json(path: Path, size: int) -> Iterator[Chunk]:
    """Each row as JSON text, by DuckDB (dates as YYYY-MM-DD, lists as arrays, NULL as null, which
    like an absent field documents nothing). The file's column names stay data: no SQL is built
    from them."""
    con = duckdb.connect(config={"memory_limit": MEMORY_LIMIT})
    try:
        try:
            reader = con.sql("SELECT to_json(t)::VARCHAR AS j FROM read_parquet(?) t", params=[str(path)]).to_arrow_reader(size)
        except duckdb.Error as err:
            raise InputError([Problem(str(path), f"is not a readable Parquet file ({str(err)[:200]}); nothing was decided.")]) from None
        number = 0
        for batch in reader:
            lines = pa.array(range(number + 1, number + 1 + batch.num_rows), pa.int64())
            yield Chunk(arrow=pa.table({"line": lines, "j": batch.column(0)}))
            number += batch.num_rows
    finally:
        con.close()


def _bulk(path: Path, size: int, loaded: Loaded) -> Iterator[Chunk]:
    """A Bulk Data export, one member per row (numbered in member order)."""
    from reasoner.fhir.bulk import members

    chunk = Chunk()
    for number, member in members(path, loaded):
        if isinstance(member, InputError):
            chunk.bad[number] = member
        else:
            chunk.lines.append(number)
            chunk.texts.append(member)
        if len(chunk) >= size:
            yield chunk
            chunk = Chunk()
    yield chunk


def chunks(path: Path, loaded: Loaded, size: int | None = None) -> Iterator[Chunk]:
    """The file's rows, `size` at a time (by default CHUNK, or TYPED_CHUNK for typed Parquet)."""
    fmt = input_format(path)
    if fmt == "parquet":
        return _parquet(path, size, loaded)
    size = size or CHUNK
    if fmt == "fhir-bulk":
        return _bulk(path, size, loaded)
    if fmt == "csv":
        return _csv(path, size, loaded)
    return _jsonl(path, size)


# ---------------------------------------------------------------- deciding
@dataclass
class Report:
    read: int = 0
    decided: int = 0
    rejected: int = 0
    reasons: Counter = field(default_factory=Counter)  # why rows were rejected -> rows
    decisions: Counter = field(default_factory=Counter)  # (payer, decision) -> rows

    def as_json(self) -> dict:
        per_payer: dict = {}
        for (payer, decision), n in sorted(self.decisions.items()):
            per_payer.setdefault(payer, {})[decision] = n
        return {"schema": "reasoner.batch-summary/1", "read": self.read, "decided": self.decided,
                "rejected": self.rejected, "rejected_by_reason": dict(self.reasons.most_common()),
                "decisions": per_payer}


def reason_of(problem: Problem) -> str:
    """A problem's kind for the run summary: the field it is about, or what is wrong with the row."""
    where = problem.where
    if "field " in where:
        return "field " + where.split("field ", 1)[1].split(" item")[0]
    return problem.message.split(":")[0].rstrip(".")


class OutOfMemory(Exception):
    """A chunk did not fit in the memory DuckDB may use (MEMORY_LIMIT)."""


class Pipeline:
    """The three queries of a chunk (intake, decision, long output) on one DuckDB connection."""

    def __init__(self, program: ir.Program, loaded: Loaded, fmt: str = "jsonl", engine: str = "duckdb"):
        vocab = loaded.vocab
        self.program, self.vocab, self.fmt, self.engine = program, vocab, fmt, engine
        self.layout = layout(program, vocab)
        self.schema = pa.schema([("pid", pa.int64()), ("id", pa.string())] +
                                [(c.name, ARROW[c.sql_type]) for c in self.layout.columns])
        # DuckDB keeps freed buffers for reuse; a limit keeps a long run's memory flat (it spills
        # to a temporary folder beyond it rather than growing)
        self.con = duckdb.connect(config={"memory_limit": MEMORY_LIMIT})
        self.intake = intake_query(vocab, self.layout, "chunk")
        self._typed: dict[pa.Schema, str] = {}
        self.staged: pa.Table | None = None  # the chunk as checked and laid out (line, ok, id, columns)
        decide = compile_query(program, vocab, self.layout, "staged", keep=("id",))
        self.con.register("rule_info", _rule_info(program))
        self.con.register("node_info", _node_info(program))
        # on Spark the decision query runs there, over the staged rows; the long layout stays here
        self.spark = None
        if engine == "spark":
            from reasoner.engines.spark import SparkBackend
            self.spark = SparkBackend(program, vocab, keep=("id",))
        self.output = _output_query(program, fmt == "csv", None if self.spark else decide)

    @contextmanager
    def _registered(self, what: str, **tables: pa.Table):
        """Tables visible to DuckDB for one statement, and its failures in our terms: memory as
        OutOfMemory, and a Ctrl-C as KeyboardInterrupt, however DuckDB wraps it (an interrupt
        arriving while it reads an Arrow table's schema surfaces as InvalidInputException)."""
        try:
            for name, table in tables.items():
                self.con.register(name, table)
            yield
        except duckdb.OutOfMemoryException:
            raise OutOfMemory(f"{what} needs more than {MEMORY_LIMIT} of memory; run again with a smaller --chunk") from None
        except duckdb.InterruptException:
            raise KeyboardInterrupt from None
        except (duckdb.Error, RuntimeError) as err:
            if "interrupt" in str(err).lower():
                raise KeyboardInterrupt from None
            raise
        finally:
            for name in tables:
                self.con.unregister(name)

    def run(self, sql: str, what: str = "deciding a chunk", **tables: pa.Table) -> pa.Table:
        with self._registered(what, **tables):
            return self.con.sql(sql).to_arrow_table()

    def stage(self, chunk: Chunk) -> list[int]:
        """Check and lay out a chunk inside DuckDB (kept as an Arrow table, `staged_all` to the
        queries that follow: no DuckDB table is written and read back); the lines it did not accept."""
        self.staged = self.run(self._intake(chunk), what=f"a chunk of {len(chunk):,} rows", chunk=chunk.table())
        return sorted(self.staged.filter(pc.invert(self.staged.column("ok"))).column("line").to_pylist())

    def _intake(self, chunk: Chunk) -> str:
        """The intake query for the chunk: over JSON text, or over the typed columns of its file
        (compiled once per file schema)."""
        if not chunk.typed:
            return self.intake
        schema = chunk.arrow.schema
        if schema not in self._typed:
            self._typed[schema] = typed_intake_query(self.vocab, self.layout, "chunk", schema)
        return self._typed[schema]

    def add(self, rescued: pa.Table) -> None:
        """Rows validate accepted after the SQL did not: decided with the others."""
        if rescued.num_rows:
            ok = pa.array([True] * rescued.num_rows, pa.bool_())
            rows = rescued.rename_columns(["line", *rescued.column_names[1:]]).add_column(1, "ok", ok)
            self.staged = pa.concat_tables([self.staged, rows.cast(self.staged.schema)])

    def fallback(self, rows: list[tuple[int, object]], where: str, problems: list[Problem]) -> pa.Table:
        """Rows the SQL did not accept, judged by `validate` (the messages `check` gives)."""
        facts, pids, ids = [], [], []
        for line, data in rows:
            try:
                if isinstance(data, InputError):
                    raise data
                patient = validate(data, self.vocab, f"{where}:{line}")
            except InputError as err:
                problems.extend(Problem(p.where if p.where.startswith(where) else f"{where}:{line}: {p.where}",
                                        p.message) for p in err.problems)
                continue
            facts.append(self.layout.row(patient.facts, self.vocab))
            pids.append(line)
            ids.append(data.get("id") if isinstance(data.get("id"), str) else None)
        columns = [pids, ids] + ([list(col) for col in zip(*facts)] if facts else [[] for _ in self.layout.columns])
        return pa.Table.from_arrays([pa.array(c, type=f.type) for c, f in zip(columns, self.schema)], schema=self.schema)

    def decisions(self) -> pa.Table:
        """Every accepted row of the staged chunk, decided and laid out long, in input order."""
        if self.spark is None:
            return self.run(self.output, staged_all=self.staged)
        staged = self.run(STAGED, staged_all=self.staged).cast(self.schema)
        return self.run(self.output, decided=self.spark.run_arrow(staged), staged_all=self.staged)

    def close(self) -> None:
        if self.spark is not None:
            self.spark.close()


def _rule_info(program: ir.Program) -> pa.Table:
    rows = [(p.id, r.name, r.outcome.subkind, r.outcome.prior_auth, r.label, str(r.cite))
            for p in program.policies for r in p.rules]
    names = ("payer", "rule", "subkind", "prior_auth", "rule_label", "citation")
    return pa.table({n: pa.array([row[i] for row in rows], pa.string()) for i, n in enumerate(names)})


def _node_info(program: ir.Program) -> pa.Table:
    """Every criterion a failing column can name: its name (the policy's, else its test) and label."""
    nodes = {}
    for p in program.policies:
        for r in p.rules:
            for n in [x for c in r.conditions for x in ir.criteria_of(c)] + list(r.exceptions):
                nodes[n.id] = (n.name or n.macro or describe(n.test), n.label)
    return pa.table({"id": list(nodes), "name": [v[0] for v in nodes.values()],
                     "label": [v[1] for v in nodes.values()]})


def _by_version(program: ir.Program, policy: ir.Policy, what: str) -> str:
    """A current policy's `what` column (payer: the deciding version's id) from the version that
    decides the row, for a policy with earlier versions; otherwise its own column."""
    versions = program.versions(policy.id)
    if len(versions) == 1:
        return literal(policy.id) if what == "payer" else f"{policy.id}__{what}"
    pick = {v.id: (literal(v.id) if what == "payer" else f"{v.id}__{what}") for v in versions}
    return f"CASE {policy.id}__version " + " ".join(f"WHEN {literal(k)} THEN {e}" for k, e in pick.items()) + " END"


STAGED = "SELECT line AS pid, * EXCLUDE (line, ok) FROM staged_all WHERE ok"


def _output_query(program: ir.Program, csv_cells: bool, decide: str | None) -> str:
    """One row per patient and payer, in input order then payer order; for CSV, lists joined with
    '; ' and every text cell that a spreadsheet would run as a formula prefixed with a quote.
    With `decide` None the decisions come from a registered table `decided` (Spark's answer)."""
    parts = [f"SELECT pid, id, {literal(p.id)} AS payer, {_by_version(program, p, 'payer')} AS version, {k} AS k, "
             f"{_by_version(program, p, 'rule')} AS rule, "
             f"{_by_version(program, p, 'decision')} AS decision, {_by_version(program, p, 'failing')} AS failing FROM decided"
             for k, p in enumerate(program.current)]
    failing = "CASE WHEN failing = '' OR failing IS NULL THEN []::VARCHAR[] ELSE string_split(failing, ';') END"
    names = f"list_transform({failing}, lambda x: map_extract_value(m.names, x))"
    labels = f"list_transform({failing}, lambda x: map_extract_value(m.labels, x))"
    if csv_cells:
        names, labels = f"array_to_string({names}, '; ')", f"array_to_string({labels}, '; ')"
    cols = {"row": "u.pid", "id": "u.id", "payer": "u.payer", "version": "u.version", "decision": "u.decision", "subkind": "r.subkind",
            "prior_auth": "r.prior_auth", "rule": "u.rule", "rule_label": f"COALESCE(r.rule_label, {literal(NO_RULE)})",
            "citation": "r.citation", "failing": names, "failing_labels": labels}
    if csv_cells:
        text = ("id", "rule_label", "citation", "failing", "failing_labels")
        cols = {n: (f"CASE WHEN regexp_matches({e}, {literal(FORMULA)}) THEN '''' || {e} ELSE {e} END" if n in text else e)
                for n, e in cols.items()}
    select = ", ".join(f"{e} AS {n}" for n, e in cols.items())
    union = " UNION ALL ".join(parts) if parts else "SELECT NULL::BIGINT AS pid, NULL AS id, NULL AS payer, NULL AS version, 0 AS k, " \
        "NULL AS rule, NULL AS decision, NULL AS failing WHERE FALSE"
    decided = f"staged AS ({STAGED}), decided AS MATERIALIZED ({decide}), " if decide else ""
    return (f"WITH {decided}u AS ({union}), m AS (SELECT MAP(list(id), list(name)) AS names, MAP(list(id), list(label)) AS labels "
            f"FROM node_info) SELECT {select} FROM u CROSS JOIN m LEFT JOIN rule_info r ON r.payer = u.version "
            f"AND r.rule = u.rule ORDER BY u.pid, u.k")


def adjudicate(path: Path, loaded: Loaded, pipeline: Pipeline, writer: "Writer", on_error: str,
               problems: list[Problem], progress=None, chunk: int | None = None) -> Report:
    """Decide every valid row of `path`; invalid rows go to `problems` (and stop the run if
    `on_error` is 'reject', raising PatientError)."""
    report = Report()
    for part in chunks(path, loaded, chunk):
        report.read += len(part)
        unsure = pipeline.stage(part)
        texts = part.text(unsure)
        doubtful = [(line, _json(texts[line])) for line in unsure] + list(part.bad.items())
        found: list[Problem] = []
        rescued = pipeline.fallback(sorted(doubtful, key=lambda r: r[0]), str(path), found)
        _account(report, found, len(doubtful) - rescued.num_rows)
        problems.extend(found)
        if found and on_error == "reject":
            raise PatientError(found)
        pipeline.add(rescued)
        table = pipeline.decisions()
        report.decided += len(part) - (len(doubtful) - rescued.num_rows)
        for (payer, decision), n in zip(*_counts(table)):
            report.decisions[(payer, decision)] += n
        writer.write(table)
        if progress:
            progress(report)
    return report


def _account(report: Report, found: list[Problem], rejected: int) -> None:
    report.rejected += rejected
    for problem in found:
        report.reasons[reason_of(problem)] += 1


def _counts(table: pa.Table):
    if table.num_rows == 0:
        return [], []
    grouped = table.group_by(["payer", "decision"]).aggregate([("row", "count")])
    return list(zip(grouped.column("payer").to_pylist(), grouped.column("decision").to_pylist())), \
        grouped.column("row_count").to_pylist()


# ---------------------------------------------------------------- writing
class Writer:
    """Writes decision rows as JSONL, CSV or Parquet, a chunk at a time."""

    def __init__(self, out, fmt: str):
        self.out, self.fmt = out, fmt  # a binary file object
        self._parquet = None
        self._csv = None
        self._con = None

    def write(self, table: pa.Table) -> None:
        if self.fmt == "parquet":
            if self._parquet is None:
                self._parquet = pq.ParquetWriter(self.out, table.schema)
            self._parquet.write_table(table)
        elif self.fmt == "csv":
            if self._csv is None:
                self._csv = pacsv.CSVWriter(self.out, table.schema)
            self._csv.write_table(table)
        elif table.num_rows:
            self._con = self._con or duckdb.connect()
            _write_all(self.out, _jsonl_bytes(self._con, table))

    def close(self) -> None:
        """Finish the format's footer; the file object itself stays open for its owner."""
        for w in (self._parquet, self._csv):
            if w is not None:
                w.close()
        self._parquet = self._csv = None

    def __enter__(self) -> "Writer":
        return self

    def __exit__(self, *exc) -> None:
        """Closed while the file is still open, even when the run is interrupted (the owner then
        discards the file), so no writer is left to write into a closed file later."""
        self.close()


def _write_all(out, data: bytes, step: int = 1 << 20) -> None:
    """Written in slices: one large write to a pipe whose reader has gone away can return without
    error having delivered only part of the data, while the next slice then fails (EPIPE) loudly."""
    view = memoryview(data)
    for start in range(0, len(view), step):
        out.write(view[start:start + step])


def _jsonl_bytes(con, table: pa.Table) -> bytes:
    """The rows as JSON lines, serialised by DuckDB (C++), not row by row in Python."""
    con.register("out_rows", table)
    try:
        texts = con.sql("SELECT to_json(t)::VARCHAR AS j FROM out_rows t").to_arrow_table().column(0)
    finally:
        con.unregister("out_rows")
    return ("\n".join(texts.to_pylist()) + "\n").encode("utf-8")
