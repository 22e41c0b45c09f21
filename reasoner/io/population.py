"""A synthetic population written out (`reasoner population`): a FHIR Bulk Data export folder,
or a JSONL or Parquet file of patient rows, the three inputs `batch` reads at scale.

Nothing half-written is left: a file is written through `atomic_output`; an export is written
into a hidden folder beside the target and renamed into place once complete.
"""
from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from reasoner.errors import InputError, Problem
from reasoner.io.output import atomic_output
from reasoner.io.patient import nested
from reasoner.search.population import members as generated

ROWS_PER_GROUP = 10_000  # Parquet rows written at a time


def write_population(out: Path, loaded, count: int, distinct: int | None, seed: int) -> str:
    """Write `count` generated members to `out`; what was written, in words."""
    out = Path(out)
    people = generated(loaded, count, distinct, seed)
    suffix = out.suffix.lower()
    if suffix == ".jsonl":
        with atomic_output(out, []) as handle:
            for pid, facts in people:
                handle.write((json.dumps({"id": pid, **nested(facts, loaded.vocab)}, ensure_ascii=False) + "\n").encode())
        return "patient rows, JSONL"
    if suffix == ".parquet":
        _parquet(out, people, loaded.vocab)
        return "patient rows, Parquet in the vocabulary's column types"
    if suffix:
        raise InputError([Problem("--out", f"'{out.name}': give a new folder for a FHIR Bulk export, or a .jsonl or "
                                           ".parquet file.")])
    return _export(out, people, loaded)


def _parquet(out: Path, people, vocab) -> None:
    from reasoner.engines.intake import arrow_schema

    schema = arrow_schema(vocab)
    with atomic_output(out, []) as handle:
        writer = pq.ParquetWriter(handle, schema)
        rows: list[dict] = []
        for pid, facts in people:
            rows.append({"id": pid, **{k: list(v) if isinstance(v, tuple) else v for k, v in _typed(facts, vocab).items()}})
            if len(rows) >= ROWS_PER_GROUP:
                writer.write_table(pa.Table.from_pylist(rows, schema))
                rows = []
        if rows:
            writer.write_table(pa.Table.from_pylist(rows, schema))
        writer.close()


def _typed(facts: dict, vocab) -> dict:
    """Facts nested as records are, with dates kept as dates (Parquet's date type)."""
    out: dict = {}
    for name, value in facts.items():
        c = vocab.concepts[name]
        if c.record:
            out.setdefault(c.record, {}).setdefault(c.key, {})[c.field] = value
        else:
            out[name] = value
    return out


def _export(out: Path, people, loaded) -> str:
    """A Bulk export, written beside the target and renamed into place when complete."""
    from reasoner.fhir.mapping import load_mapping
    from reasoner.fhir.write import write_bulk
    from reasoner.paths import policies_dir

    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise InputError([Problem(str(out), "exists and is not an empty folder; give a new folder for the export "
                                            "(nothing is overwritten).")])
    if not out.parent.is_dir() or not os.access(out.parent, os.W_OK | os.X_OK):
        raise InputError([Problem(str(out), f"the folder '{out.parent}' does not exist or is not writable; nothing "
                                            "was written.")])
    mapping = load_mapping(loaded.folder or policies_dir(), loaded.vocab)
    partial = Path(tempfile.mkdtemp(prefix=f".{out.name}.", suffix=".partial", dir=out.parent))
    try:
        write_bulk(people, partial, loaded.vocab, mapping)
        if out.exists():
            out.rmdir()  # empty: checked above
        os.replace(partial, out)
    except BaseException:
        shutil.rmtree(partial, ignore_errors=True)
        raise
    return "a FHIR Bulk Data export, one NDJSON file per resource type"
