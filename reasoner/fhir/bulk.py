"""A FHIR Bulk Data export (a folder of NDJSON files, one resource per line) read member by member.

DuckDB reads every `*.ndjson` file of the folder and sorts the resources by the member they are
about (a Patient by its id; any other resource by its subject, patient or beneficiary reference),
spilling to disk beyond its memory limit, so memory stays flat however large the export. The
resources of one member are then read as one Bundle by `reasoner.fhir.bundle` (same mapping, same
messages, model validation aside: see `read_bundle`), giving one patient mapping per member in
the order of their references, numbered from 1. A member that cannot be read is yielded as its
error, for `batch` to report or reject like any bad row. Resources about no member (Practitioner,
Organization, ...) are not read; a resource of a type the mapping reads that names no member
refuses the export, before anything is decided.
"""
from __future__ import annotations

import json
import re
import shutil
import tempfile
from pathlib import Path
from typing import Iterator, NamedTuple

import duckdb

from reasoner.errors import InputError, PatientError, Problem, notes_only
from reasoner.fhir.bundle import PATIENT_REF, VERSION_REF, read_bundle
from reasoner.fhir.mapping import load_mapping
from reasoner.io.patient import unflatten
from reasoner.language.load import Loaded
from reasoner.paths import policies_dir

MEMORY_LIMIT = "300MB"  # the sort spills to disk beyond this
# One thread: with two, or with DuckDB's default left unset, sorting a 100k-member export (2.7 GB)
# ran out of memory under 400 MB; with one it sorts under 300 MB (peak 403 MB), two seconds slower in 120.
THREADS = 1
BATCH = 4096
MEDICATION_FILE = re.compile(r"^Medication([._-].*)?\.ndjson$")  # not MedicationStatement.ndjson
MAX_LINE = 2 << 20  # bytes of one resource (one NDJSON line); a longer line is refused, not cut
# Every line of the export with the member its resource is about. Built from constants only: the
# file names arrive as a bound parameter. The lines are read as text (CSV of one column, with a
# delimiter and no quote character that valid JSON cannot hold raw) and parsed where a key is
# needed: DuckDB spills sorted text to disk, but not its JSON documents (read_ndjson_objects ran
# out of memory sorting a 566 MB export under a 600 MB limit; this sorts 2.7 GB under 300 MB).
# The CSV sniffer stays on (with it off, DuckDB 2.0's reader ran out of memory the same way); every
# setting it could guess that would change a line is fixed here.
LINES = ("read_csv(?, columns={'line': 'VARCHAR'}, delim=chr(1), quote='', escape='', header=false, skip=0, "
         f"comment='', max_line_size={MAX_LINE}")  # closed by the caller, after any further option
TEXTS = f"(SELECT nullif(trim(line), '') AS line FROM {LINES}))"  # a blank line holds no resource
# Asked only once MEMBERS has failed on a line that is not JSON: which file holds it, and how it starts.
NOT_JSON = (f"SELECT filename, left(trim(line), 60) FROM {LINES}, filename=true) "
            "WHERE trim(line) <> '' AND NOT json_valid(line) LIMIT 1")
# A resource of a type the mapping reads that names no member (no subject reference, or one that
# is not a Reference) comes first, with member NULL: the export is refused before anything is decided.
MEMBERS = f"""
SELECT member, line FROM (
  SELECT line,
         CASE WHEN k[1] = 'Patient' THEN 'Patient/' || k[2]
              WHEN regexp_full_match(coalesce(k[3], k[4], k[5]), '{PATIENT_REF}') THEN coalesce(k[3], k[4], k[5])
              ELSE regexp_replace(coalesce(k[3], k[4], k[5]), '^(?:.*/)?({PATIENT_REF})(?:{VERSION_REF})?$',
                                  '\\1') END AS member,  -- absolute or versioned: as relative
         k[1] = 'Patient' AS is_patient,
         list_contains(?, k[1]) AS read
  FROM (SELECT line, json_extract_string(line, ['$.resourceType', '$.id', '$.subject.reference',
                                                 '$.patient.reference', '$.beneficiary.reference']) AS k
        FROM {TEXTS}))  -- each line parsed once for its five keys
WHERE member IS NOT NULL OR read
ORDER BY member NULLS FIRST, is_patient DESC
"""
MAX_ORPHANS = 5  # resources about no member named in the refusal


def export_files(folder: Path) -> list[Path]:
    return sorted(p for p in Path(folder).glob("*.ndjson") if p.is_file())


def count_members(folder: Path) -> int:
    """Patients in the export (for the progress bar): the lines of its Patient files."""
    total = 0
    for path in export_files(folder):
        if path.name.startswith("Patient"):
            with path.open("rb") as handle:
                total += sum(block.count(b"\n") for block in iter(lambda: handle.read(1 << 20), b""))
    return total


class Member(NamedTuple):
    number: int  # from 1, in the order of the members' references
    data: str | InputError  # the patient mapping as JSON text, or why the member cannot be read
    notes: tuple  # what the member's resources hold that was deliberately not read
    name: str  # the member's reference, Patient/<id>
    provenance: dict  # concept -> the resources it was read from (for the messages of a later check)


def members(folder: Path, loaded: Loaded) -> Iterator[Member]:
    """Every member of the export, in member order."""
    files = export_files(folder)
    if not files:
        raise InputError([Problem(str(folder), "holds no .ndjson files; a FHIR Bulk Data export is a folder of "
                                               "NDJSON files, one per resource type (Patient.ndjson, ...).")])
    mapping = load_mapping(loaded.folder or policies_dir(), loaded.vocab)
    spill = tempfile.mkdtemp(prefix="reasoner-bulk-")
    con = duckdb.connect(config={"memory_limit": MEMORY_LIMIT, "threads": THREADS, "temp_directory": spill})
    try:
        names = [str(f) for f in files]
        try:
            shared = _medications(con, [str(f) for f in files if MEDICATION_FILE.match(f.name)])
            read = sorted({r.resource for r in mapping.reads} | {d.resource for d in mapping.derives if d.resource})
            reader = con.sql(MEMBERS, params=[read, names]).to_arrow_reader(BATCH)
        except duckdb.Error as err:
            raise _unreadable(folder, err, names) from None
        yield from _grouped(_orphans(_rows(reader, folder, names), folder), loaded, mapping, shared)
    finally:
        con.close()
        shutil.rmtree(spill, ignore_errors=True)


def _medications(con, files: list[str]) -> dict[str, dict]:
    """The export's Medication resources by reference (Medication/<id>): they are about no member,
    but a member's MedicationStatement or MedicationRequest may name its drug by pointing at one.
    Read from the Medication files only (Medication.ndjson, Medication_2.ndjson, ...), all held:
    an export has one per product, not one per member."""
    if not files:
        return {}
    query = f"SELECT line FROM {TEXTS} WHERE line->>'$.resourceType' = 'Medication'"
    found = {}
    for (line,) in con.sql(query, params=[files]).fetchall():
        resource = json.loads(line)
        found[f"Medication/{resource.get('id')}"] = resource
    return found


def _rows(reader, folder: Path, names: list[str]) -> Iterator[tuple[str, str]]:
    try:
        for batch in reader:
            yield from zip(batch.column(0).to_pylist(), batch.column(1).to_pylist())
    except duckdb.Error as err:
        raise _unreadable(folder, err, names) from None


def _not_json(files: list[str]) -> tuple[str, str] | None:
    """The first file with a line that is not JSON, and the start of that line."""
    con = duckdb.connect(config={"memory_limit": MEMORY_LIMIT})
    try:
        found = con.sql(NOT_JSON, params=[files]).fetchall()
    except duckdb.Error:  # the first error stands as DuckDB said it
        return None
    finally:
        con.close()
    return (found[0][0], (found[0][1] or "").splitlines()[0] if found[0][1] else "") if found else None


def _unreadable(folder: Path, err: duckdb.Error, files: list[str]) -> InputError:
    """DuckDB's error, said in one line: a line too long is named by file and line number, a line
    that is not JSON by its file and how it starts."""
    text = str(err)
    bad = _not_json(files) if "Malformed JSON" in text else None
    if bad:
        return InputError([Problem(bad[0], f"holds a line that is not JSON (it starts {bad[1]!r}); a Bulk Data "
                                           "export holds one resource (one JSON object) per line. Nothing was decided.")])
    size = re.search(r"Maximum line size of (\d+) bytes exceeded\. Actual Size:\s*(\d+)", text)
    if size:
        line = re.search(r"CSV Error on Line: (\d+)", text)
        file = re.search(r"^\s*file = (.+)$", text, re.M)
        where = f"{file.group(1) if file else folder}:{line.group(1) if line else '?'}"
        return InputError([Problem(where, f"holds a resource of {int(size.group(2)):,} bytes; this reader takes "
                                          f"resources (lines) of up to {int(size.group(1)):,} bytes. Nothing was "
                                          "decided.")])
    return InputError([Problem(str(folder), f"is not a readable NDJSON export ({text.splitlines()[0][:300]}); "
                                            "nothing was decided.")])


def _orphans(rows: Iterator[tuple[str | None, str]], folder: Path) -> Iterator[tuple[str, str]]:
    """The rows, once no resource of a type the mapping reads is about nobody: such resources come
    first (NULLS FIRST), and refuse the export, since the member they belong to would be decided
    without them."""
    orphans, count = [], 0
    for who, text in rows:
        if who is not None:
            if orphans:
                break
            yield who, text
            continue
        count += 1
        if len(orphans) < MAX_ORPHANS:
            resource = json.loads(text)
            orphans.append(f"{resource.get('resourceType')}/{resource.get('id') or '?'}")
    if orphans:
        raise InputError([Problem(str(folder), f"{count:,} resource(s) name no patient ({', '.join(orphans)}"
                                               f"{', ...' if count > len(orphans) else ''}): each needs a subject "
                                               "(or patient, beneficiary) Reference to its Patient, "
                                               "{\"reference\": \"Patient/<id>\"}. Nothing was decided.")])


def _grouped(rows, loaded: Loaded, mapping, shared: dict) -> Iterator[Member]:
    number, member, texts = 0, None, []
    for who, text in rows:
        if who != member and texts:
            number += 1
            data, notes, provenance = _member(member, texts, loaded, mapping, shared)
            yield Member(number, data, notes, member, provenance)
            texts = []
        member = who
        texts.append(text)
    if texts:
        data, notes, provenance = _member(member, texts, loaded, mapping, shared)
        yield Member(number + 1, data, notes, member, provenance)


def _member(member: str, texts: list[str], loaded: Loaded, mapping, shared: dict) -> tuple[str | InputError, tuple, dict]:
    resources = [json.loads(t) for t in texts]
    pointed = {r["medicationReference"].get("reference") for r in resources
               if isinstance(r.get("medicationReference"), dict)}
    resources += [shared[ref] for ref in sorted(pointed, key=str) if ref in shared]  # the drugs they name
    bundle = {"resourceType": "Bundle", "type": "collection", "entry": [{"resource": r} for r in resources]}
    if not any(e["resource"].get("resourceType") == "Patient" for e in bundle["entry"]):
        named = ", ".join(f"{e['resource'].get('resourceType')}/{e['resource'].get('id')}" for e in bundle["entry"][:3])
        return InputError([Problem(member, f"is referred to by {named}{' ...' if len(texts) > 3 else ''}, but no "
                                           "Patient resource of the export has this id.")]), (), {}
    try:
        data, provenance, notes = read_bundle(bundle, loaded.vocab, mapping, member, validate=False)
    except PatientError as err:
        return err, (), {}
    except (TypeError, AttributeError, ValueError, ArithmeticError) as err:  # a shape only the models check
        return _invalid(bundle, loaded, mapping, member, err), (), {}
    data.setdefault("id", member.split("/", 1)[-1])
    # hints explain only a refusal, which batch words itself
    return json.dumps(unflatten(data, loaded.vocab)), notes_only(notes), provenance  # records nested, as the intake's SQL reads them


def _invalid(bundle: dict, loaded: Loaded, mapping, member: str, err: Exception) -> InputError:
    """A member whose resources the reader could not take as they are (an export is not validated
    against the R4 models, for speed): validated now, for the models' message naming the element."""
    try:
        read_bundle(bundle, loaded.vocab, mapping, member, validate=True)
    except PatientError as found:
        return found
    except Exception:  # noqa: BLE001 - the first error is the one to report
        pass
    return InputError([Problem(member, f"holds a resource this reader cannot take ({type(err).__name__}: "
                                       f"{str(err)[:200]}); check the member's resources against FHIR R4.")])
