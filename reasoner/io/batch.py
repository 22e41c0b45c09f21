"""Batch adjudication: a file of patients in, a file of decisions out, streamed.

Every input format becomes the same thing, a stream of rows written as JSON text with their line
(or row) number: JSONL lines as they are, CSV rows with their cells read by each concept's kind,
Parquet rows turned into JSON by DuckDB. One SQL query compiled from the vocabulary checks and
lays out the stream (`engines/intake.py`). A Parquet file whose columns are all vocabulary fields
of types that read exactly (the usual case: a file written from our own vocabulary) skips the
JSON: its typed columns are checked as they are, and only the rows that query does not accept are
written as JSON for `validate`. A second query decides the checked rows with the fast backend's
SQL and writes them in long form (one row per patient and payer, with sub-kind, prior
authorization, rule, citation and the failing criteria by name and label). Each query is planned
once per run and streams: memory stays flat, whatever the number of rows.

Rows the intake query does not accept go to `reasoner.io.patient.validate`, the function
`reasoner check` uses: it decides whether they are really invalid, and its messages are the ones
reported; a row it accepts is decided in its place. A malformed row is reported with its line (or
row) number: skipped, or the whole run rejected, as the caller chooses; never silently dropped,
and never the end of the run.
"""
from __future__ import annotations

import csv
import datetime as dt
import itertools
import json
import re
import sys
import zlib
from collections import Counter, deque
from dataclasses import dataclass, field
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

import duckdb
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from reasoner.engines.duck import ARROW
from reasoner.engines.intake import LINE, intake_query, typed_columns, typed_intake_query
from reasoner.engines.sql import compile_query, layout, literal
from reasoner.errors import InputError, PatientError, Problem, did_you_mean
from reasoner.io.patient import RESERVED, id_text, json_object as _json_object, sourced, validate
from reasoner.language import ir
from reasoner.language.check import DECISIONS, describe
from reasoner.language.load import Loaded
from reasoner.results.decide import NO_RULE

FORMATS = ("jsonl", "csv", "parquet")
CHUNK = 20_000  # rows read at a time (and decided at a time on Spark)
TYPED_CHUNK = 50_000  # typed Parquet rows are small in memory (no JSON text)
JSONL_CHUNK = 5_000  # about a block of the file: DuckDB's threads wait while the next chunk is read (on 1M rows of
                     # 2.8 kB, 13.8-15.4 s against 14.0-15.6 s at 20,000, peak 620 against 745 MB)
BULK_CHUNK = 5_000  # members of a Bulk export come at ~1 ms each: a smaller chunk costs no speed, and
                    # each waiting chunk holds its members' JSON twice (Python and Arrow)
JSON_BATCH_BYTES = 6 << 20  # JSON text handed to the intake query at a time (up to 2,048 rows)
BULK_BATCH = 256  # a Bulk export's members come slowly (Python assembles them): small intake batches
                  # cost no time there, and 2,048 rows a batch raised the peak of 10k members 680 -> 840 MB
CHECKED_BATCH = 4_096  # rows per batch between the two queries: each holds every layout column
OUTPUT_BATCH = 20_000  # decision rows per table written
ROW_GROUP = 120_000  # decision rows per Parquet row group (one per table written cost a tenth more)
PARQUET_STATISTICS = ("row", "payer", "version", "decision", "subkind", "prior_auth", "rule")
MEMORY_LIMIT = "640MB"  # the intake query's: JSON is parsed into every field at once
DECIDE_MEMORY = "256MB"  # the decision query's: it streams, holding a few batches
FORMULA = "^[=+\\-@\t\r]"  # a CSV cell starting so is a formula to a spreadsheet
FHIR_ELEMENT = re.compile(r"\b([A-Z][A-Za-z]+)/[A-Za-z0-9\-.]{1,64}?\.([A-Za-z\[\].]+)$")  # Condition/dx-1.code
PARTICULARS = re.compile(r" \(|; ")  # where a message's particulars start (systems: ..., known: ...)
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


def count_rows(path: Path, lines: bool = True) -> int | None:
    """How many rows the file holds (for the progress bar): Parquet metadata, else counted lines;
    None for a pipe or device, which can be read only once (the bar then counts without a total),
    and for a text file when `lines` is false (no bar is shown: reading a file of gigabytes an
    extra time to count its lines cost a million-row run over a second)."""
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
    if not lines:
        return None
    with path.open("rb") as handle:
        count = sum(block.count(b"\n") for block in iter(lambda: handle.read(1 << 20), b""))
    return max(count - (1 if fmt == "csv" else 0), 0)


# ---------------------------------------------------------------- reading: rows as JSON text
@dataclass
class Chunk:
    """Rows as (line, JSON text), and rows already known bad (line -> problem) before any check."""

    lines: list[int] = field(default_factory=list)
    texts: list[str] = field(default_factory=list)
    bad: dict[int, InputError] = field(default_factory=dict)
    arrow: pa.Table | None = None  # the rows already as a table (Parquet): no Python strings at all
    typed: bool = False  # arrow holds the file's own typed columns and LINE, not (line, j)
    notes: Counter = field(default_factory=Counter)  # what a Bulk export's members hold that was not read, by kind
    sources: dict = field(default_factory=dict)  # a Bulk member's number -> (its reference, its facts' resources, packed)
    batch: int = 0  # rows per batch handed to the intake query; 0: by the size of their text (`table`)

    def __len__(self) -> int:
        return (self.arrow.num_rows if self.arrow is not None else len(self.lines)) + len(self.bad)

    def last(self) -> int:
        """The chunk's last line (or row) number, 0 for an empty chunk."""
        if self.arrow is not None and self.arrow.num_rows:
            last = self.arrow.column(LINE if self.typed else "line")[-1].as_py()
        else:
            last = self.lines[-1] if self.lines else 0
        return max([last, *self.bad])

    def table(self) -> pa.Table:
        """In record batches of a few MB: DuckDB scans one batch per thread at a time, so a single
        batch would keep the other cores idle, and JSON rows cost DuckDB memory in proportion to
        the text of the batch it parses; but a batch smaller than DuckDB's vector of 2,048 rows
        pays every expression's per-vector cost for fewer rows (on 200,000 rows of 2.7 kB:
        12.5 core-seconds at 512 rows a batch, 9.1 at 2,048, peak 750 and 875 MB). A chunk may
        set its own (`batch`)."""
        table = self.arrow if self.arrow is not None else \
            pa.table({"line": pa.array(self.lines, pa.int64()), "j": pa.array(self.texts, pa.string())})
        size = self.batch or 4096
        if not self.typed and not self.batch and table.num_rows:
            text_bytes = pc.sum(pc.binary_length(table.column("j"))).as_py() or 1
            size = max(256, min(2048, JSON_BATCH_BYTES * table.num_rows // text_bytes))
        return pa.Table.from_batches(table.to_batches(max_chunksize=size), table.schema)

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
    except json.JSONDecodeError as err:  # the line's own column: its newline would make an end of text "line 2"
        column = min(err.pos, len(text.rstrip("\r\n"))) + 1
        return InputError([Problem(f"column {column}", f"invalid JSON: {err.msg}.")])
    except RecursionError:
        return InputError([Problem("row", "invalid JSON: nested too deeply.")])
    except ValueError as err:  # a key given twice, an integer of thousands of digits
        return InputError([Problem("row", f"invalid JSON: {str(err)[:200]}.")])


BLOCK = 1 << 24  # bytes of a JSONL file read at a time (whole lines are cut from each)
BOM = b"\xef\xbb\xbf"
LONGEST_LINE = 1 << 28  # 256 MiB: a patient's row is a few kB, and a buffer (twice the longest line) must stay
# within the 32-bit offsets of its Arrow arrays
_SPACE = np.frombuffer(b" \t\n\r\x0b\x0c", dtype=np.uint8)  # what bytes.strip() strips: a line of only these is blank


class _Buffers:
    """The reader's buffers, reused once nothing holds them. A line's text is read in place (the
    Arrow arrays point into the buffer it was read into), so a buffer is free again only when
    every chunk cut from it has been let go, which its reference count says. Memory new to the
    process costs the kernel a zeroed page per 4 kB: a new buffer per block, for a file of 2.8 GB,
    was two faults per page read (the read, and a copy to join a block to the line it cut)."""

    def __init__(self):
        self.made: list[bytearray] = []

    def take(self, size: int) -> bytearray:
        for buf in self.made:
            if len(buf) >= size and sys.getrefcount(buf) <= 3:  # held by `made`, `buf` and this call only
                return buf
        buf = bytearray(size)
        self.made.append(buf)
        return buf


def _ends(data: bytearray, start: int, stop: int) -> np.ndarray:
    """Where each line of `data[start:stop]` ends (after its newline): memchr by find, faster than
    comparing every byte in numpy."""
    out, at = [], data.find(b"\n", start, stop)
    while at >= 0:
        out.append(at + 1)
        at = data.find(b"\n", at + 1, stop)
    return np.array(out, dtype=np.int64)


def _lines(data: bytearray, start: int, stop: int, first: int) -> tuple[pa.Table, dict[int, InputError], int]:
    """The lines of `data[start:stop]` (each ending in a newline; the first is line `first`) as
    (line, j), without a Python string per line: the text is the buffer's own bytes, cut at its
    newlines. Blank lines are skipped; a line that is not UTF-8 is returned as its problem."""
    ends = _ends(data, start, stop)
    starts = np.concatenate(([start], ends[:-1]))
    offsets = pa.py_buffer(np.concatenate(([start], ends)).astype(np.int32))
    text = pa.Array.from_buffers(pa.binary(), len(ends), [None, offsets, pa.py_buffer(data)])
    numbers = np.arange(first, first + len(ends), dtype=np.int64)
    keep = np.ones(len(ends), dtype=bool)
    spaced = np.isin(np.frombuffer(data, dtype=np.uint8)[starts], _SPACE)  # only such a line can be blank
    for i in np.flatnonzero(spaced):
        keep[i] = bool(data[starts[i]:ends[i]].strip())
    bad: dict[int, InputError] = {}
    try:
        text = text.cast(pa.string())  # checks the UTF-8 of every line at once
    except pa.ArrowInvalid:  # rare: find the lines that are not UTF-8, one at a time
        for i in np.flatnonzero(keep):
            line = bytes(data[starts[i]:ends[i]])
            try:
                line.decode("utf-8")
            except UnicodeDecodeError:
                bad[int(numbers[i])], keep[i] = _json(line), False
    if not keep.all():
        text, numbers = pc.filter(text, pa.array(keep)), numbers[keep]
    return pa.table({"line": pa.array(numbers), "j": text.cast(pa.string())}), bad, len(ends)


def _too_long(path: Path, line: int) -> Problem:
    return Problem(f"{path}:{line}", f"the line is longer than {LONGEST_LINE >> 20} MiB; a JSON Lines file has one "
                   "patient per line, each a line of its own (a file holding one JSON array or object is not one).")


JSON_TYPES = {list: "an array", str: "a string", bool: "true or false", int: "a number", float: "a number"}


def _not_an_object(at: str, data: object) -> Problem:
    """A row that is valid JSON but not an object: the row's own words (validate speaks of a
    patient file), and for an array the likely cause (the rows' reason in the summary is the
    message up to its first colon, so it has none)."""
    got = "null" if data is None else JSON_TYPES.get(type(data), type(data).__name__)
    hint = "; a file that is one JSON array is not JSON Lines, which has one object per line" if isinstance(data, list) else ""
    return Problem(at, f"the row is {got}, not an object of concept and value pairs{hint}.")


def _jsonl(path: Path, size: int) -> Iterator[Chunk]:
    """The file's lines, `size` or a little more at a time. Each buffer is filled by as many
    reads as it takes (a pipe gives what it has), and its whole lines are cut after each read;
    a line the buffer cannot finish is moved to the next buffer, and a last line with no newline
    is given one."""
    buffers = _Buffers()
    tables, bad, rows, first = [], {}, 0, 1
    buf, start, end = buffers.take(BLOCK), 0, 0  # bytes [start, end) of `buf` are read and not yet cut
    with path.open("rb", buffering=0) as handle:
        while True:
            if end == len(buf):  # full: the line it holds unfinished goes to the next buffer
                tail = bytes(buf[start:end])
                if len(tail) > LONGEST_LINE:
                    raise InputError([_too_long(path, first)])
                buf = buffers.take(max(BLOCK, 2 * len(tail)))
                buf[:len(tail)], start, end = tail, 0, len(tail)
            got = handle.readinto(memoryview(buf)[end:])
            if got:
                end += got
                if first == 1 and start == 0 and buf[:3] == BOM:  # a byte-order mark (Notepad's "UTF-8 with BOM") is not text
                    start = 3
                cut = buf.rfind(b"\n", start, end) + 1
            elif start < end:  # the last line, with no newline: given one (there is room: the buffer is not full)
                buf[end:end + 1] = b"\n"
                end = cut = end + 1
            else:
                break
            if cut > start:
                table, found, count = _lines(buf, start, cut, first)
                start, first = cut, first + count
                tables.append(table)
                bad.update(found)
                rows += table.num_rows + len(found)
                if rows >= size:
                    yield Chunk(arrow=pa.concat_tables(tables), bad=bad)
                    tables, bad, rows = [], {}, 0
    yield Chunk(arrow=pa.concat_tables(tables) if tables else None, bad=bad)


def column_problems(where: str, names: list[str], loaded: Loaded, structs: bool) -> list[Problem]:
    """A file's columns (a CSV header, a Parquet schema) that the vocabulary does not know, or given
    twice. A record is a column only where a column holds a struct (Parquet); a CSV cell holds one
    value, so there each of its facts is a column (`record.entry.field`), as in Parquet too."""
    vocab = loaded.vocab
    known = set(vocab.plain()) | set(RESERVED) | {n for n, c in vocab.concepts.items() if c.record}
    known |= set(vocab.records) if structs else set()
    problems = [Problem(f"{where}: column '{name}'", f"appears {n} times{'' if structs else ' in the header'}; each concept has one column.")
                for name, n in Counter(names).items() if n > 1]
    for name in names:
        record = vocab.records.get(name)
        if record is not None and not structs:
            key, field = next(iter(vocab.domains[record.key_domain])), next(iter(record.fields))
            problems.append(Problem(f"{where}: column {name!r}", f"is a record; give each of its facts a column "
                                    f"of its own, named record.entry.field (e.g. '{record.concept(key, field)}')."))
        elif name not in known:
            problems.append(Problem(f"{where}: column {name!r}", f"is not a concept of the vocabulary."
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
        problems = column_problems(f"{path}:1", header, loaded, structs=False)  # once, before any row
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
    """A Parquet file's rows: typed columns as they are, any other file as JSON. Its columns are
    checked first, as a CSV header is: one unknown column would otherwise be every row's error."""
    try:
        parquet = pq.ParquetFile(path)
        data = pa.schema([f for f in parquet.schema_arrow if not PANDAS_INDEX.fullmatch(f.name)])
        problems = column_problems(str(path), data.names, loaded, structs=True)
        typed = typed_columns(loaded.vocab, data) is not None
    except (pa.ArrowException, OSError):
        problems, typed = [], False  # DuckDB's reader says what is wrong
    if problems:
        raise InputError(problems)
    return _typed_parquet(path, parquet, size or TYPED_CHUNK, data.names) if typed else _parquet_json(path, size or CHUNK)


PANDAS_INDEX = re.compile(r"__index_level_[0-9]+__")  # a DataFrame's unnamed index, as pandas writes it: not data


def _typed_parquet(path: Path, parquet: pq.ParquetFile, size: int, columns: list[str]) -> Iterator[Chunk]:
    """The file's typed `columns` as they are, a chunk at a time, with their row numbers."""
    number = 0
    try:
        for batch in parquet.iter_batches(batch_size=size, columns=columns):
            table = pa.Table.from_batches([batch])
            lines = pa.array(range(number + 1, number + 1 + batch.num_rows), pa.int64())
            yield Chunk(arrow=table.append_column(LINE, lines), typed=True)
            number += batch.num_rows
    except (pa.ArrowException, OSError) as err:
        raise InputError([Problem(f"{path}: row {number + 1}", f"cannot be read ({str(err)[:200]}).")]) from None


def _parquet_json(path: Path, size: int) -> Iterator[Chunk]:
    """Each row as JSON text, by DuckDB (dates as YYYY-MM-DD, lists as arrays, NULL as null, which
    like an absent field documents nothing), leaving out pandas' index. The file's column names
    stay data: no SQL is built from them."""
    con = duckdb.connect(config={"memory_limit": MEMORY_LIMIT})
    data = f"SELECT COLUMNS(lambda c: NOT regexp_full_match(c, {literal(PANDAS_INDEX.pattern)})) FROM read_parquet(?)"
    try:
        try:
            reader = con.sql(f"SELECT to_json(t)::VARCHAR AS j FROM ({data}) t", params=[str(path)]).to_arrow_reader(size)
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

    chunk = Chunk(batch=BULK_BATCH)
    for member in members(path, loaded):
        chunk.notes.update(note_of(n) for n in member.notes)
        # kept compressed (4.6 kB of JSON a member, 1.1 kB packed) while the chunk waits: needed only for a refused member
        chunk.sources[member.number] = (member.name, zlib.compress(json.dumps(member.provenance).encode(), 1))
        if isinstance(member.data, InputError):
            chunk.bad[member.number] = member.data
        else:
            chunk.lines.append(member.number)
            chunk.texts.append(member.data)
        if len(chunk) >= size:
            yield chunk
            chunk = Chunk(batch=BULK_BATCH)
    yield chunk


def chunks(path: Path, loaded: Loaded, size: int | None = None) -> Iterator[Chunk]:
    """The file's rows, `size` at a time (by default CHUNK; TYPED_CHUNK for typed Parquet, JSONL_CHUNK for JSON
    lines, BULK_CHUNK for a Bulk export)."""
    fmt = input_format(path)
    if fmt == "parquet":
        return _parquet(path, size, loaded)
    if fmt == "fhir-bulk":
        return _bulk(path, size or BULK_CHUNK, loaded)
    if fmt == "csv":
        return _csv(path, size or CHUNK, loaded)
    return _jsonl(path, size or JSONL_CHUNK)


# ---------------------------------------------------------------- deciding
@dataclass
class Report:
    read: int = 0
    decided: int = 0
    rejected: int = 0
    reasons: Counter = field(default_factory=Counter)  # why rows were rejected -> rows
    decisions: Counter = field(default_factory=Counter)  # (payer, decision) -> rows
    unit: str = "row"  # what is read: a row of a file, or a member of a FHIR Bulk export
    not_read: Counter = field(default_factory=Counter)  # what members hold that was deliberately not read -> times

    def as_json(self) -> dict:
        per_payer: dict = {}
        for (payer, decision), n in sorted(self.decisions.items()):
            per_payer.setdefault(payer, {})[decision] = n
        return {"schema": "reasoner.batch-summary/1", "read": self.read, "decided": self.decided,
                "rejected": self.rejected, "rejected_by_reason": dict(self.reasons.most_common()),
                "decisions": per_payer, **({"not_read": dict(self.not_read.most_common())} if self.not_read else {})}


def reason_of(problem: Problem) -> str:
    """A problem's kind for the run summary: the field it is about, or what is wrong with the row."""
    where = problem.where
    place = _fhir_place(where)
    if place:  # a FHIR member's resource: its type and element, and what is wrong, without the particulars
        return f"{place}: {PARTICULARS.split(problem.message, maxsplit=1)[0].rstrip('.')}"
    if "field " in where:
        return "field " + where.split("field ", 1)[1].split(" item")[0]
    return problem.message.split(":")[0].rstrip(".")


def note_of(note: Problem) -> str:
    """A note's kind for the run summary: the resource type and element, and what was not read
    (rxnorm 6809 ('metformin')), so the same unlisted code in many members is counted once."""
    place, what = _fhir_place(note.where), re.split(r": |; ", note.message, maxsplit=1)[0][:80]
    return f"{place}: {what}" if place else what


def _fhir_place(where: str) -> str | None:
    """A FHIR problem's resource type and element (Condition.code, from ...: Condition/dx-1.code),
    the same for every member; None when the problem is not about a resource's element."""
    found = FHIR_ELEMENT.search(where)
    return f"{found.group(1)}.{found.group(2)}" if found else None


class OutOfMemory(Exception):
    """A query did not fit in the memory DuckDB may use (MEMORY_LIMIT, DECIDE_MEMORY)."""


def _keeping_failure(owner, batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
    """Batches for DuckDB to pull from a thread of its own: a failure ends the stream and is kept
    in `owner.failure`, for the run to raise again (DuckDB would make it an error of its own)."""
    try:
        yield from batches
    except BaseException as err:
        owner.failure = err


def _connect(memory: str) -> duckdb.DuckDBPyConnection:
    """A connection for one of the run's two streaming queries. DuckDB keeps freed buffers for
    reuse; a limit keeps a long run's memory flat. Its rewrite of long IN lists into joins is
    off: a join may hand rows back out of input order, and the output keeps input order without
    sorting (tests/test_batch.py holds the order on inputs of many chunks)."""
    con = duckdb.connect(config={"memory_limit": memory})
    con.execute("SET disabled_optimizers = 'in_clause'")
    return con


class _Feed:
    """The input's chunks on their way through the intake query: handed to DuckDB as a stream of
    Arrow batches, and kept until every row of theirs has come back checked (a row the query did
    not accept is then read again from its chunk, for `validate`)."""

    def __init__(self, parts: Iterator[Chunk], first: Chunk, report: Report):
        self.parts, self.first, self.report = parts, first, report
        self.waiting: deque[tuple[Chunk, int]] = deque()  # with its number of rows, bad ones included
        self.failure: BaseException | None = None

    def reader(self) -> pa.RecordBatchReader:
        first = self.first.table()

        def batches():
            for part, table in itertools.chain([(self.first, first)], ((p, p.table()) for p in self.parts)):
                self.waiting.append((part, len(part)))
                yield from table.to_batches()
        return pa.RecordBatchReader.from_batches(first.schema, _keeping_failure(self, batches()))

    def sources(self, lines: list[int]) -> dict[int, tuple[str, dict]]:
        """A Bulk export's members by number: their reference, and the resources of each fact."""
        return {n: (part.sources[n][0], json.loads(zlib.decompress(part.sources[n][1])))
                for part, _ in list(self.waiting) for n in lines if n in part.sources}

    def texts(self, lines: list[int]) -> dict[int, str]:
        out: dict[int, str] = {}
        for part, _ in list(self.waiting):  # a copy: DuckDB's reading thread may add a chunk meanwhile
            out.update(part.text(lines))
        return out

    def settle(self, upto: int | None) -> list[tuple[int, InputError]]:
        """The rows known bad before any check, up to line `upto` (None: all); chunks whose rows
        have all come back are let go and counted as read."""
        bad = []
        for part, _ in list(self.waiting):
            for line in [n for n in part.bad if upto is None or n <= upto]:
                bad.append((line, part.bad.pop(line)))
        while self.waiting and (upto is None or self.waiting[0][0].last() <= upto):
            part, count = self.waiting.popleft()
            self.report.read += count
            self.report.not_read.update(part.notes)
        return bad


class Pipeline:
    """A run as two streaming queries, each planned once: intake (check and lay out the rows) and
    decision (decide, and lay out long), with `validate` between them for the rows the intake query
    did not accept. Planning the 100 kB decision query took longer than running it on a chunk of
    20,000 rows; planned once, a run of a million rows pays it once. Both queries keep input order
    (no sort, no join: see `_connect`), and rows `validate` accepts are put back in their places."""

    def __init__(self, program: ir.Program, loaded: Loaded, fmt: str = "jsonl", engine: str = "duckdb",
                 as_of: dt.date | None = None):
        vocab = loaded.vocab
        self.program, self.vocab, self.fmt, self.engine = program, vocab, fmt, engine
        self.as_of = as_of  # the date of requests that have none (`--as-of`)
        self.layout = layout(program, vocab)
        self.schema = pa.schema([("pid", pa.int64()), ("id", pa.string())] +
                                [(c.name, ARROW[c.sql_type]) for c in self.layout.columns])
        self.intake_con, self.con = _connect(MEMORY_LIMIT), _connect(DECIDE_MEMORY)
        self.cores = int(self.con.sql("SELECT current_setting('threads')").fetchall()[0][0])  # DuckDB's default
        self.intake = intake_query(vocab, self.layout, "chunk", as_of)
        self.con.register("rule_info", _rule_info(program))
        nodes = _node_info(program)
        types = enum_types(program, nodes)  # the output's columns of few values, as ENUMs (both uses below)
        for statement in [_RULE_FACTS, *_enum_statements(types), *_criteria_statements(nodes, types, fmt != "csv")]:
            self.con.execute(statement)
        # on Spark the decision query runs there, a chunk at a time; the long layout stays here
        self.spark = None
        if engine == "spark":
            from reasoner.engines.spark import SparkBackend
            self.spark = SparkBackend(program, vocab, keep=("id",))
        self.types = types
        self.output = self._output(None if self.spark else self._decision())

    def _decision(self) -> str:
        """DuckDB's decision query over the stream `staged`."""
        return compile_query(self.program, self.vocab, self.layout, "staged", keep=("id",))

    def _output(self, decide: str | None) -> str:
        return _output_query(self.program, self.fmt == "csv", decide, self.types)

    def empty(self) -> pa.Table:
        """The output's columns with no rows, for a run that decides none (an empty file, every
        row rejected): its file is still one a reader opens (a Parquet footer, a CSV header).
        DuckDB's decision query gives the columns on either engine (on Spark it is compiled now)."""
        self.con.register("staged", self.schema.empty_table())
        try:
            return self.con.sql(self._output(self._decision()) if self.spark else self.output).to_arrow_table()
        finally:
            self.con.unregister("staged")

    @contextmanager
    def _failures(self, what: str, memory: str = MEMORY_LIMIT):
        """DuckDB's failures in our terms: memory as OutOfMemory, and a Ctrl-C as KeyboardInterrupt,
        however DuckDB wraps it (an interrupt arriving while it reads an Arrow table's schema
        surfaces as InvalidInputException)."""
        try:
            yield
        except duckdb.OutOfMemoryException:
            raise OutOfMemory(f"{what} needs more than {memory} of memory; run again with a smaller --chunk") from None
        except duckdb.InterruptException:
            raise KeyboardInterrupt from None
        except (duckdb.Error, RuntimeError) as err:
            if "interrupt" in str(err).lower():
                raise KeyboardInterrupt from None
            raise

    def _intake(self, chunk: Chunk) -> str:
        """The intake query for the file's chunks: over JSON text, or over its typed columns."""
        if not chunk.typed:
            return self.intake
        return typed_intake_query(self.vocab, self.layout, "chunk", chunk.arrow.schema, self.as_of)

    def decide(self, parts: Iterator[Chunk], where: str, on_error: str, report: Report,
               problems: list[Problem]) -> Iterator[pa.Table]:
        """Every valid row of the chunks decided, in input order, a table at a time; invalid rows go
        to `problems` (and end the run if `on_error` is 'reject', raising PatientError)."""
        first = next(parts, None)
        if first is None:
            return
        feed = _Feed(parts, first, report)
        self._share_cores(first.typed)
        self.intake_con.register("chunk", feed.reader())
        checked = None
        try:
            with self._failures("checking the rows"):
                checked = self.intake_con.sql(self._intake(first)).to_arrow_reader(CHECKED_BATCH)
            staged = _Staged(self, feed, checked, where, on_error, report, problems)
            yield from (self._on_spark(staged) if self.spark is not None else self._in_duckdb(staged))
            for failure in (staged.failure, feed.failure):
                if failure is not None:
                    with self._failures("checking the rows"):
                        raise failure
        finally:
            if checked is not None:
                checked.close()  # a run that ends early leaves the stream half read
            self.intake_con.unregister("chunk")

    def _share_cores(self, typed: bool) -> None:
        """The two queries run at once, each with as many threads as there are cores. Checking JSON
        text costs about twice what deciding costs, so for JSON rows the decision query gets half
        the cores: on two cores, 1M JSONL rows took 17.2-17.6 s against 19.3-20.6 s (fewer threads
        switched in and out). Typed rows cost about as much to check as to decide, and keep them all."""
        self.con.execute(f"SET threads = {self.cores if typed else max(1, self.cores // 2)}")

    def _in_duckdb(self, staged: "_Staged") -> Iterator[pa.Table]:
        self.con.register("staged", staged.reader())
        decided = None
        try:
            with self._failures("deciding the rows", DECIDE_MEMORY):
                decided = self.con.sql(self.output).to_arrow_reader(OUTPUT_BATCH)
                for batch in decided:
                    yield pa.Table.from_batches([batch])
        finally:
            if decided is not None:
                decided.close()
            self.con.unregister("staged")

    def _on_spark(self, staged: "_Staged") -> Iterator[pa.Table]:
        """Spark decides CHUNK staged rows at a time (its answer put back in input order); the
        long layout is DuckDB's, as in every run."""
        held: list[pa.RecordBatch] = []
        for batch in itertools.chain(staged.batches(), [None]):
            if batch is not None:
                held.append(batch)
            if held and (batch is None or sum(b.num_rows for b in held) >= CHUNK):
                answer = self.spark.run_arrow(pa.Table.from_batches(held, self.schema)).sort_by("pid")
                held = []
                self.con.register("decided", answer)
                try:
                    with self._failures("deciding the rows", DECIDE_MEMORY):
                        yield self.con.sql(self.output).to_arrow_table()
                finally:
                    self.con.unregister("decided")

    def fallback(self, rows: list[tuple[int, object]], where: str, problems: list[Problem],
                 sources: dict | None = None) -> pa.Table:
        """Rows the SQL did not accept, judged by `validate` (the messages `check` gives); a Bulk
        export's member is named by its reference, and a fact by the resources it was read from."""
        facts, pids, ids = [], [], []
        for line, data in rows:
            member, provenance = (sources or {}).get(line, (None, None))
            at = f"{where}: {member}" if member else f"{where}:{line}"
            try:
                if isinstance(data, InputError):
                    raise data
                if not isinstance(data, dict):
                    raise InputError([_not_an_object(at, data)])
                patient = validate(self._dated(data), self.vocab, at)
            except InputError as err:
                found = [sourced(p, provenance) for p in err.problems] if provenance else err.problems
                problems.extend(Problem(p.where if p.where.startswith(where) else f"{where}:{line}: {p.where}",
                                        p.message) for p in found)
                continue
            facts.append(self.layout.row(patient.facts, self.vocab))
            pids.append(line)
            ids.append(id_text(data.get("id")))  # validated: text, a whole number or nothing
        columns = [pids, ids] + ([list(col) for col in zip(*facts)] if facts else [[] for _ in self.layout.columns])
        return pa.Table.from_arrays([pa.array(c, type=f.type) for c, f in zip(columns, self.schema)], schema=self.schema)

    def _dated(self, data: object) -> object:
        """The row with `as_of` as its request date when it states none (as the intake query does)."""
        if self.as_of is None or not isinstance(data, dict) or data.get("request_date") is not None:
            return data
        return {**data, "request_date": self.as_of.isoformat()}

    def close(self) -> None:
        for con in (self.intake_con, self.con):
            con.close()
        if self.spark is not None:
            self.spark.close()


class _Staged:
    """The intake query's answer as the decision query's input: the rows it accepted, and in
    their places the rows `validate` accepted after it did not (the others reported)."""

    def __init__(self, pipeline: Pipeline, feed: _Feed, checked: pa.RecordBatchReader, where: str, on_error: str,
                 report: Report, problems: list[Problem]):
        self.pipeline, self.feed, self.checked, self.where = pipeline, feed, checked, where
        self.on_error, self.report, self.problems = on_error, report, problems
        self.failure: BaseException | None = None

    def reader(self) -> pa.RecordBatchReader:
        """The batches, for DuckDB to pull."""
        return pa.RecordBatchReader.from_batches(self.pipeline.schema, _keeping_failure(self, self.batches()))

    def batches(self) -> Iterator[pa.RecordBatch]:
        for batch in self.checked:
            if batch.num_rows:
                yield from self._settled(batch, batch.column("line")[-1].as_py())
        if self.feed.failure is None:
            yield from self._settled(None, None)

    def _settled(self, batch: pa.RecordBatch | None, upto: int | None) -> Iterator[pa.RecordBatch]:
        schema = self.pipeline.schema
        accepted, unsure = pa.Table.from_batches([], schema), []
        if batch is not None:
            ok = batch.column("ok")
            every = pc.all(ok).as_py()  # the usual case: no copy of the batch's 250 columns to keep them all
            unsure = [] if every else batch.filter(pc.invert(ok)).column("line").to_pylist()
            rows = pa.Table.from_batches([batch if every else batch.filter(ok)]).drop_columns(["ok"])
            accepted = rows.rename_columns(schema.names)
            if not accepted.schema.equals(schema):
                accepted = accepted.cast(schema)
        texts = self.feed.texts(unsure) if unsure else {}
        sources = self.feed.sources(unsure) if unsure else {}  # asked before `settle` lets their chunks go
        doubtful = sorted([(line, _json(texts[line])) for line in unsure] + self.feed.settle(upto), key=lambda r: r[0])
        self.report.decided += accepted.num_rows
        if doubtful:  # rare; building even an empty table of every layout column took a millisecond a batch
            found: list[Problem] = []
            rescued = self.pipeline.fallback(doubtful, self.where, found, sources)
            _account(self.report, found, len(doubtful) - rescued.num_rows)
            self.problems.extend(found)
            if found and self.on_error == "reject":
                raise PatientError(found)
            self.report.decided += rescued.num_rows
            if rescued.num_rows:
                accepted = pa.concat_tables([accepted, rescued]).sort_by("pid")
        yield from accepted.to_batches()


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


# the long output's lookup of what a rule says, set once per connection: (version, rule) -> its
# sub-kind, prior authorization, label and citation (a lookup, not a join: a join may reorder rows)
_RULE_FACTS = ("SET VARIABLE rule_facts = (SELECT MAP(COALESCE(list(payer || chr(31) || rule), []), COALESCE(list("
               "{'subkind': subkind, 'prior_auth': prior_auth, 'rule_label': rule_label, 'citation': citation}), [])) "
               "FROM rule_info)")


def enum_types(program: ir.Program, nodes: pa.Table) -> dict[str, list[str]]:
    """Every value each output column of few values can take (from the program itself): the
    output writes them as ENUMs, which reach Arrow and Parquet as dictionaries, so a million
    patients' citations are not copied, hashed and counted as text six million times (measured:
    a second of a 1M-row run); the failing criteria's names and labels likewise, as lists of
    ENUMs (their labels were 40% of the time the output of 1M rows took to reach Arrow), from
    `nodes`, the program's `_node_info`."""
    rules = [r for p in program.policies for r in p.rules]
    values = {"payer": [p.id for p in program.current], "version": [p.id for p in program.policies],
              "decision": [*DECISIONS, "not_addressed"], "rule": [r.name for r in rules],
              "subkind": [r.outcome.subkind for r in rules], "prior_auth": [r.outcome.prior_auth for r in rules],
              "rule_label": [r.label for r in rules] + [NO_RULE], "citation": [str(r.cite) for r in rules]}
    values.update(failing=nodes.column("name").to_pylist(), failing_labels=nodes.column("label").to_pylist())
    return {k: list(dict.fromkeys(v for v in vs if v is not None)) for k, vs in values.items()}


def _enum_statements(types: dict[str, list[str]]) -> list[str]:
    return [f"CREATE TYPE out_{name} AS ENUM ({', '.join(map(literal, values))})"
            for name, values in types.items() if values]


def _criteria_statements(nodes: pa.Table, types: dict[str, list[str]], typed: bool) -> list[str]:
    """A failing criterion's id as an ENUM (`criterion`), and its name and label by the id's
    position (`criterion_names`, `criterion_labels`, lists of the output's ENUMs when `typed`):
    the output casts the ids to the ENUM (a hash each) and indexes the lists, where a MAP from id
    to name was searched key by key (a tenth of the output query). Nothing for a program with no
    criteria, whose failing lists are all empty."""
    ids = nodes.column("id").to_pylist()
    if not ids:
        return []
    out = [f"CREATE TYPE criterion AS ENUM ({', '.join(map(literal, ids))})"]
    for variable, field, column in (("criterion_names", "name", "failing"), ("criterion_labels", "label", "failing_labels")):
        values = ", ".join("NULL" if v is None else literal(v) for v in nodes.column(field).to_pylist())
        of = f"out_{column}" if typed and types.get(column) else "VARCHAR"
        out.append(f"SET VARIABLE {variable} = [{values}]::{of}[]")
    return out


def _output_query(program: ir.Program, csv_cells: bool, decide: str | None, types: dict[str, list[str]]) -> str:
    """One row per patient and payer, in input order then payer order (each patient's decisions
    unnested in payer order, so no sort is needed); for CSV, lists joined with '; ' and every text
    cell that a spreadsheet would run as a formula prefixed with a quote. The decisions come from
    `decide` over the stream `staged`, or with `decide` None from a registered table `decided`
    (Spark's answer). `types`: `enum_types`, created as `out_<column>` ENUMs."""
    if not program.current:
        return ("SELECT " + ", ".join(f"NULL::{'BIGINT' if n == 'row' else 'VARCHAR'} AS {n}" for n in OUTPUT)
                + " WHERE FALSE")
    payers = ", ".join(
        f"{{'payer': {literal(p.id)}, 'version': {_by_version(program, p, 'payer')}, 'rule': {_by_version(program, p, 'rule')}, "
        f"'decision': {_by_version(program, p, 'decision')}, 'failing': {_by_version(program, p, 'failing')}}}"
        for p in program.current)
    failing = "CASE WHEN x.failing = '' OR x.failing IS NULL THEN []::VARCHAR[] ELSE string_split(x.failing, ';') END"
    names = labels = "[]::VARCHAR[]"  # a program with no criteria (`_criteria_statements`)
    if types.get("failing"):
        names = f"list_transform(CAST({failing} AS criterion[]), lambda f: getvariable('criterion_names')[enum_code(f) + 1])"
        labels = f"list_transform(CAST({failing} AS criterion[]), lambda f: getvariable('criterion_labels')[enum_code(f) + 1])"
    if csv_cells:
        names, labels = f"array_to_string({names}, '; ')", f"array_to_string({labels}, '; ')"
    rule = "rf"  # what the deciding rule says, looked up once per row below (four lookups cost half the query)
    cols = {"row": "pid", "id": "id", "payer": "x.payer", "version": "x.version", "decision": "x.decision",
            "subkind": f"{rule}.subkind", "prior_auth": f"{rule}.prior_auth", "rule": "x.rule",
            "rule_label": f"COALESCE({rule}.rule_label, {literal(NO_RULE)})", "citation": f"{rule}.citation",
            "failing": names, "failing_labels": labels}
    if csv_cells:
        text = ("id", "rule_label", "citation", "failing", "failing_labels")
        cols = {n: (f"CASE WHEN regexp_matches({e}, {literal(FORMULA)}) THEN '''' || {e} ELSE {e} END" if n in text else e)
                for n, e in cols.items()}
    if not csv_cells:  # CSV cells are text, escaped above; elsewhere the columns of few values are ENUMs
        typed = {n for n, v in types.items() if v}
        lists = ("failing", "failing_labels")
        cols = {n: (f"CAST({e} AS out_{n}{'[]' if n in lists else ''})" if n in typed else e) for n, e in cols.items()}
    select = ", ".join(f"{e} AS {n}" for n, e in cols.items())
    decided = f"decided AS ({decide}), " if decide else ""
    facts = "map_extract_value(getvariable('rule_facts'), x.version || chr(31) || x.rule) AS rf"
    return (f"WITH {decided}u AS (SELECT pid, id, unnest([{payers}]) AS x FROM decided) "
            f"SELECT {select} FROM (SELECT *, {facts} FROM u)")


def adjudicate(path: Path, loaded: Loaded, pipeline: Pipeline, writer: "Writer", on_error: str,
               problems: list[Problem], progress=None, chunk: int | None = None) -> Report:
    """Decide every valid row of `path`; invalid rows go to `problems` (and stop the run if
    `on_error` is 'reject', raising PatientError)."""
    report = Report(unit="member" if input_format(path) == "fhir-bulk" else "row")
    written = False
    for table in pipeline.decide(chunks(path, loaded, chunk), str(path), on_error, report, problems):
        for (payer, decision), n in zip(*_counts(table)):
            report.decisions[(payer, decision)] += n
        writer.write(table)
        written = True
        if progress:
            progress(report)
    if not written:
        writer.write(pipeline.empty())
    return report


def _account(report: Report, found: list[Problem], rejected: int) -> None:
    report.rejected += rejected
    for problem in found:
        report.reasons[reason_of(problem)] += 1


def _counts(table: pa.Table):
    """(payer, decision) pairs and how many rows have each: from the ENUMs' dictionary indices
    when the columns are dictionaries (one integer pass), else by grouping the text."""
    if table.num_rows == 0:
        return [], []
    payer, decision = table.column("payer"), table.column("decision")
    if pa.types.is_dictionary(payer.type) and pa.types.is_dictionary(decision.type):
        found: Counter = Counter()
        for p, d in zip(payer.chunks, decision.chunks):
            width = len(d.dictionary) + 1  # index len(dictionary) stands for NULL
            keys = pc.add(pc.multiply(_index(p), width), _index(d))
            for pair in pc.value_counts(keys).to_pylist():
                found[(_entry(p, pair["values"] // width), _entry(d, pair["values"] % width))] += pair["counts"]
        return list(found), list(found.values())
    grouped = table.group_by(["payer", "decision"]).aggregate([("row", "count")])
    return list(zip(grouped.column("payer").to_pylist(), grouped.column("decision").to_pylist())), \
        grouped.column("row_count").to_pylist()


def _index(column: pa.DictionaryArray) -> pa.Array:
    """A dictionary column's indices as int64, NULL as one past the last entry."""
    return column.indices.cast(pa.int64()).fill_null(len(column.dictionary))


def _entry(column: pa.DictionaryArray, index: int):
    return column.dictionary[index].as_py() if index < len(column.dictionary) else None


# ---------------------------------------------------------------- writing
class Writer:
    """Writes decision rows as JSONL, CSV or Parquet, a chunk at a time."""

    def __init__(self, out, fmt: str):
        self.out, self.fmt = out, fmt  # a binary file object
        self._parquet = None
        self._csv = None
        self._con = None
        self._group: list[pa.Table] = []  # Parquet rows waiting for a row group of ROW_GROUP rows

    def write(self, table: pa.Table) -> None:
        if self.fmt == "parquet":
            self._group.append(table)
            if sum(t.num_rows for t in self._group) >= ROW_GROUP:
                self._flush()
        elif self.fmt == "csv":
            if self._csv is None:
                self._csv = pacsv.CSVWriter(self.out, table.schema)
            self._csv.write_table(table)
        elif table.num_rows:
            self._con = self._con or duckdb.connect()
            _write_all(self.out, _jsonl_bytes(self._con, table))

    def _flush(self) -> None:
        """The waiting rows as one row group. Statistics only for the columns a reader filters on
        (row, payer, version, decision, ...): min and max of ids, labels and citations serve no
        query, and cost a quarter of the writing."""
        if not self._group:
            return
        table, self._group = pa.concat_tables(self._group), []
        if self._parquet is None:
            self._parquet = pq.ParquetWriter(self.out, table.schema, write_statistics=list(PARQUET_STATISTICS))
        self._parquet.write_table(table)

    def close(self, flush: bool = True) -> None:
        """Finish the format's footer; the file object itself stays open for its owner."""
        if flush:
            self._flush()
        for w in (self._parquet, self._csv):
            if w is not None:
                w.close()
        self._parquet = self._csv = None

    def __enter__(self) -> "Writer":
        return self

    def __exit__(self, *exc) -> None:
        """Closed while the file is still open, even when the run is interrupted (the owner then
        discards the file), so no writer is left to write into a closed file later; rows still
        waiting for their row group are then not written."""
        self.close(flush=exc[0] is None)


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
