"""Batch adjudication: a file of patients in, a file of decisions out, a chunk at a time.

Rows are read lazily (JSONL and CSV line by line, Parquet by record batch), validated with the same
rules and messages as `reasoner check`, decided by the fast backend one chunk per query, and written
as they come, so memory stays flat whatever the file size. A malformed row is reported with its line
(or row) number: skipped, or the whole run rejected, as the caller chooses; never silently dropped.
"""
from __future__ import annotations

import csv
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from reasoner.engines.duck import FastBackend
from reasoner.errors import InputError, PatientError, Problem
from reasoner.language.load import Loaded
from reasoner.io.patient import json_object as _json_object, validate

FORMATS = ("jsonl", "csv", "parquet")
CHUNK = 50_000


@dataclass(frozen=True)
class Row:
    number: int  # line number (JSONL, CSV) or 1-based row number (Parquet)
    data: object


def input_format(path: Path) -> str:
    suffix = path.suffix.lower().lstrip(".")
    fmt = {"jsonl": "jsonl", "ndjson": "jsonl", "csv": "csv", "parquet": "parquet", "pq": "parquet"}.get(suffix)
    if fmt is None:
        raise InputError([Problem(str(path), f"cannot tell the format from '.{suffix}'; use .jsonl, .csv or .parquet.")])
    return fmt


def rows(path: Path, loaded: Loaded) -> Iterator[Row]:
    """The rows of a patient file, each with where it is in the file."""
    fmt = input_format(path)
    if fmt == "parquet":
        number = 0
        for batch in pq.ParquetFile(path).iter_batches(batch_size=CHUNK):
            for record in batch.to_pylist():
                number += 1
                yield Row(number, {k: v for k, v in record.items() if v is not None})
        return
    if fmt == "jsonl":
        with path.open("rb") as handle:
            for number, line in enumerate(handle, 1):
                if line.strip():
                    yield Row(number, _json(line))
        return
    # utf-8-sig: a byte-order mark (Excel's "CSV UTF-8") is not part of the first column's name;
    # bytes that are not UTF-8 become surrogates, reported per row instead of ending the run
    with path.open(encoding="utf-8-sig", errors="surrogateescape", newline="") as handle:
        reader = csv.DictReader(handle)
        for record in reader:
            yield Row(reader.line_num, _from_csv(record, loaded))


def count_rows(path: Path) -> int:
    """How many rows the file holds (for the progress bar): Parquet metadata, else counted lines."""
    fmt = input_format(path)
    if fmt == "parquet":
        return pq.ParquetFile(path).metadata.num_rows
    with path.open("rb") as handle:
        lines = sum(block.count(b"\n") for block in iter(lambda: handle.read(1 << 20), b""))
    return max(lines - (1 if fmt == "csv" else 0), 0)


def _json(line: bytes) -> object:
    """One JSONL row, or the InputError that describes what is wrong with it (never an exception:
    one bad row must not end the run)."""
    try:
        text = line.decode("utf-8")
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


def _from_csv(record: dict, loaded: Loaded) -> dict:
    """CSV cells are text: numbers and booleans are read by the concept's kind, sets split on ';'.
    A cell that does not read stays text, so validation reports it with the value found."""
    out = {}
    for key, cell in record.items():
        if key is None or cell is None or cell == "":
            continue
        concept = loaded.vocab.concepts.get(key)
        kind = concept.kind if concept else None
        if kind == "number":
            try:
                out[key] = float(cell)
            except ValueError:
                out[key] = cell
        elif kind == "boolean":
            out[key] = {"true": True, "false": False}.get(cell.strip().lower(), cell)
        elif kind in ("set", "codes"):
            out[key] = [v.strip() for v in cell.split(";") if v.strip()]
        else:
            out[key] = cell
    return out


def _dates_as_text(data: dict) -> dict:
    return {k: (v.isoformat() if hasattr(v, "isoformat") and not isinstance(v, str) else v) for k, v in data.items()}


@dataclass
class Report:
    read: int = 0
    decided: int = 0
    rejected: int = 0


class Writer:
    """Writes decision rows as JSONL, CSV or Parquet, a chunk at a time."""

    def __init__(self, out, fmt: str):
        self.out, self.fmt = out, fmt  # a binary file object
        self._parquet = None
        self._csv = None

    def write(self, table: pa.Table) -> None:
        if self.fmt == "parquet":
            if self._parquet is None:
                self._parquet = pq.ParquetWriter(self.out, table.schema)
            self._parquet.write_table(table)
        elif self.fmt == "csv":
            if self._csv is None:
                self._csv = pacsv.CSVWriter(self.out, table.schema)
            self._csv.write_table(table)
        else:
            self.out.write("".join(json.dumps(record) + "\n" for record in table.to_pylist()).encode("utf-8"))

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


def adjudicate(path: Path, loaded: Loaded, backend: FastBackend, writer: Writer, on_error: str,
               problems: list[Problem], progress=None, chunk: int = CHUNK) -> Report:
    """Decide every valid row of `path`; invalid rows go to `problems` (and stop the run if
    `on_error` is 'reject', raising PatientError)."""
    report, pending, numbers, ids = Report(), [], [], []
    for row in rows(path, loaded):
        report.read += 1
        try:
            if isinstance(row.data, InputError):
                raise row.data
            patient = validate(_dates_as_text(row.data) if isinstance(row.data, dict) else row.data,
                               loaded.vocab, f"{path}:{row.number}")
        except InputError as err:
            report.rejected += 1
            located = [Problem(p.where if p.where.startswith(str(path)) else f"{path}:{row.number}: {p.where}",
                               p.message) for p in err.problems]
            problems.extend(located)
            if on_error == "reject":
                raise PatientError(located) from None
            continue
        pending.append(patient.facts)
        numbers.append(row.number)
        ids.append(patient.id)
        if len(pending) >= chunk:
            report.decided += _flush(backend, writer, pending, numbers, ids)
            if progress:
                progress(report)
    report.decided += _flush(backend, writer, pending, numbers, ids)
    if progress:
        progress(report)
    return report


def _flush(backend: FastBackend, writer: Writer, facts: list, numbers: list, ids: list) -> int:
    if not facts:
        return 0
    result = backend.run_arrow(backend.table(facts)).sort_by("pid")  # the engine may reorder rows
    keep = [n for n in result.column_names if n != "pid"]
    out = pa.table({"row": numbers, "id": ids, **{n: result.column(n) for n in keep}})
    writer.write(out)
    count = len(facts)
    facts.clear(), numbers.clear(), ids.clear()
    return count
