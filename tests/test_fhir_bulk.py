"""`reasoner batch EXPORT/`: a FHIR Bulk Data export (NDJSON per resource type) decided member by
member, equal to deciding the same members from patient rows; bad members reported, not fatal."""
from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from reasoner.cli import app
from reasoner.fhir.mapping import load_mapping
from reasoner.fhir.write import write_bulk
from reasoner.io.patient import nested
from reasoner.language.load import load
from reasoner.search import diff

from conftest import ROOT

LOADED = load(ROOT / "policies")
MAPPING = load_mapping(ROOT / "policies", LOADED.vocab)
PAYERS = [p.id for p in LOADED.program.current]


def _population(tmp_path, count: int, seed: int, distinct: int | None = None):
    """`count` members: `distinct` generated patients (all of them by default), repeated with new ids."""
    people = []
    for service in ("implant", "trial", "refill", "replacement"):
        people += diff.generate(LOADED, PAYERS, {"service": service}, (distinct or count) // 4, seed=seed)
    members = [(f"m{k}", people[k % len(people)].facts) for k in range(count)]
    export = tmp_path / "export"
    write_bulk(members, export, LOADED.vocab, MAPPING)
    rows = tmp_path / "members.jsonl"
    rows.write_text("".join(json.dumps({"id": i, **nested(f, LOADED.vocab)}) + "\n" for i, f in members))
    return export, rows, len(members)


def _decisions(path) -> dict:
    out = [json.loads(line) for line in path.read_text().splitlines()]
    return {(r["id"], r["payer"]): {k: v for k, v in r.items() if k != "row"} for r in out}


def _batch(*args):
    return CliRunner().invoke(app, ["batch", *map(str, args)])


def _same_as_rows(tmp_path, count: int, seed: int, distinct: int | None = None) -> int:
    export, rows, n = _population(tmp_path, count, seed, distinct)
    done = _batch(export, "--out", tmp_path / "from_export.jsonl")
    assert done.exit_code == 0, done.output
    assert _batch(rows, "--out", tmp_path / "from_rows.jsonl").exit_code == 0
    got, want = _decisions(tmp_path / "from_export.jsonl"), _decisions(tmp_path / "from_rows.jsonl")
    assert len(got) == n * len(PAYERS) and got == want
    return n


@pytest.mark.slow  # several seconds: left to the full run, to keep `-m "not slow"` under two minutes
def test_an_export_is_decided_as_the_same_members_written_as_rows(tmp_path):
    assert _same_as_rows(tmp_path, 200, seed=4) == 200


@pytest.mark.slow
def test_ten_thousand_members_from_an_export_equal_their_rows(tmp_path):
    """Many Arrow batches of resources and two input chunks, members straddling their boundaries
    (bench_bulk.py runs 100,000): 2,000 generated patients, each five times under new ids."""
    assert _same_as_rows(tmp_path, 10_000, seed=5, distinct=2_000) == 10_000


def _lines(path):
    return [json.loads(line) for line in path.read_text().splitlines()]


def _rewrite(path, lines):
    path.write_text("".join(json.dumps(r) + "\n" for r in lines))


@pytest.mark.slow  # several seconds: left to the full run, to keep `-m "not slow"` under two minutes
def test_a_bad_member_is_reported_by_member_and_resource_and_the_others_decided(tmp_path):
    export, _, n = _population(tmp_path, 40, seed=6)
    conditions = _lines(export / "Condition.ndjson")
    victim = conditions[0]
    victim["code"] = {"coding": [{"system": "http://example.org/local-problem-list", "code": "1234"}]}
    _rewrite(export / "Condition.ndjson", conditions)
    member = victim["subject"]["reference"]
    (export / "Observation.ndjson").open("a").write(json.dumps(
        {"resourceType": "Observation", "id": "orphan", "status": "final", "subject": {"reference": "Patient/ghost"},
         "code": {"coding": [{"system": "http://loinc.org", "code": "30525-0"}]},
         "valueQuantity": {"value": 40, "unit": "a"}}) + "\n")
    (export / "Practitioner.ndjson").write_text(json.dumps({"resourceType": "Practitioner", "id": "dr"}) + "\n")
    out = tmp_path / "out.jsonl"
    done = _batch(export, "--out", out)
    assert done.exit_code == 0 and "Traceback" not in done.output
    assert f"{member}: Condition/{victim['id']}.code" in done.output
    assert "Patient/ghost" in done.output and "no Patient resource of the export has this id" in done.output
    decided = {r["id"] for r in _lines(out)}
    assert len(decided) == n - 1 and member.split("/")[1] not in decided
    services = _lines(export / "ServiceRequest.ndjson")
    services[1]["authoredOn"] = "2026-03-02junk"  # no model validation here: the reader's own check
    _rewrite(export / "ServiceRequest.ndjson", services)
    assert "authoredOn: error: '2026-03-02junk' is not a full date" in _batch(export, "--out", out).output
    rejected = _batch(export, "--out", tmp_path / "strict.jsonl", "--on-error", "reject")
    assert rejected.exit_code == 3 and not (tmp_path / "strict.jsonl").exists()


@pytest.mark.parametrize("content, message", [
    (None, "holds no .ndjson files"),
    ('{"resourceType": "Patient", "id": "p1"}\n{"resourceType": \n',
     "Patient.ndjson: error: holds a line that is not JSON (it starts '{\"resourceType\":'"),
    ('{"resourceType": "Patient", "id": "p1", "text": {"div": "' + "x" * (3 << 20) + '"}}\n',
     "Patient.ndjson:1: error: holds a resource of 3,145,789 bytes; this reader takes resources (lines) of up to"),
])
def test_an_unreadable_export_is_refused_whole(tmp_path, content, message):
    export = tmp_path / "export"
    export.mkdir()
    if content is not None:
        (export / "Patient.ndjson").write_text(content)
    out = tmp_path / "out.jsonl"
    done = _batch(export, "--out", out)
    assert done.exit_code == 3 and message in done.output and "Traceback" not in done.output
    assert not out.exists()


def test_blank_lines_and_windows_line_ends_in_an_export_are_read_as_plain_ndjson(tmp_path):
    """Lines are read as text before they are parsed (so the sort can spill to disk): a blank line
    is no resource, a CR before the LF is JSON whitespace, and a line starting like a CSV comment
    or holding a comma, tab or quote is still one whole resource."""
    export, rows, n = _population(tmp_path, 8, seed=6)
    for path in export.glob("*.ndjson"):
        lines = path.read_text().splitlines()
        path.write_bytes(b"\r\n".join(line.encode() for line in ["", *lines, "   ", ""]) + b"\r\n")
    assert _batch(export, "--out", tmp_path / "from_export.jsonl").exit_code == 0
    assert _batch(rows, "--out", tmp_path / "from_rows.jsonl").exit_code == 0
    got, want = _decisions(tmp_path / "from_export.jsonl"), _decisions(tmp_path / "from_rows.jsonl")
    assert len(got) == n * len(PAYERS) and got == want


def test_a_drug_named_by_reference_is_read_from_the_exports_medication_file(tmp_path):
    """Medication resources are about no member: a MedicationStatement pointing at one (as EHR
    exports do) is read through the export's Medication.ndjson, as a single bundle reads it."""
    export, rows, n = _population(tmp_path, 40, seed=7)
    statements, drugs = _lines(export / "MedicationStatement.ndjson"), {}
    assert statements
    for s in statements:
        code = s.pop("medicationCodeableConcept")
        key = code["coding"][0]["code"]
        drugs[key] = {"resourceType": "Medication", "id": f"drug-{key}", "code": code}
        s["medicationReference"] = {"reference": f"Medication/drug-{key}"}
    _rewrite(export / "MedicationStatement.ndjson", statements)
    _rewrite(export / "Medication.ndjson", list(drugs.values()))
    assert _batch(export, "--out", tmp_path / "from_export.jsonl").exit_code == 0
    assert _batch(rows, "--out", tmp_path / "from_rows.jsonl").exit_code == 0
    got, want = _decisions(tmp_path / "from_export.jsonl"), _decisions(tmp_path / "from_rows.jsonl")
    assert len(got) == n * len(PAYERS) and got == want


@pytest.mark.parametrize("spell", [lambda ref: "https://ehr.example.org/fhir/" + ref, lambda ref: ref + "/_history/2",
                                   lambda ref: "https://ehr.example.org/fhir/" + ref + "/_history/2"],
                         ids=["absolute", "versioned", "absolute and versioned"])
def test_other_spellings_of_a_patient_reference_are_the_same_member(tmp_path, spell):
    """Resources may name their Patient by its absolute URL (https://server/fhir/Patient/p1), or
    one version of it (Patient/p1/_history/2): they are grouped with that Patient and read as the
    relative reference would be."""
    export, rows, n = _population(tmp_path, 8, seed=8)
    for path in export.glob("*.ndjson"):
        lines = _lines(path)
        for r in lines:
            for key in ("subject", "beneficiary"):
                if isinstance(r.get(key), dict):
                    r[key]["reference"] = spell(r[key]["reference"])
        _rewrite(path, lines)
    assert _batch(export, "--out", tmp_path / "from_export.jsonl").exit_code == 0
    assert _batch(rows, "--out", tmp_path / "from_rows.jsonl").exit_code == 0
    got, want = _decisions(tmp_path / "from_export.jsonl"), _decisions(tmp_path / "from_rows.jsonl")
    assert len(got) == n * len(PAYERS) and got == want


@pytest.mark.parametrize("subject", [None, "Patient/m0"], ids=["no subject", "a subject that is not a Reference"])
def test_a_resource_about_no_member_refuses_the_export_before_anything_is_decided(tmp_path, subject):
    """A Condition that names no patient belongs to some member, who would be decided without it:
    the export is refused, naming the resource; a Practitioner (about nobody by nature) is fine."""
    export, _, _ = _population(tmp_path, 8, seed=10)
    conditions = _lines(export / "Condition.ndjson")
    del conditions[0]["subject"]
    if subject is not None:
        conditions[0]["subject"] = subject
    _rewrite(export / "Condition.ndjson", conditions)
    (export / "Practitioner.ndjson").write_text(json.dumps({"resourceType": "Practitioner", "id": "dr"}) + "\n")
    out = tmp_path / "out.jsonl"
    done = _batch(export, "--out", out)
    assert done.exit_code == 3 and "Traceback" not in done.output, done.output
    assert f"1 resource(s) name no patient (Condition/{conditions[0]['id']})" in done.output
    assert "Nothing was decided" in done.output and not out.exists()


@pytest.mark.parametrize("change, where", [
    (lambda c: c.update(code={"coding": {"system": "http://hl7.org/fhir/sid/icd-10-cm", "code": "G35"}}), ".code"),
    (lambda c: c.update(code={"coding": ["G35"]}), ".code"),
], ids=["a coding that is not a list", "a coding that is not an object"])
def test_a_malformed_resource_in_an_export_is_that_members_error_not_a_crash(tmp_path, change, where):
    """Exports are not validated against the R4 models up front (for speed); a resource the
    reader cannot take is validated then, and its member reported with the element, the others decided."""
    export, _, n = _population(tmp_path, 8, seed=10)
    conditions = _lines(export / "Condition.ndjson")
    change(conditions[0])
    _rewrite(export / "Condition.ndjson", conditions)
    out = tmp_path / "out.jsonl"
    done = _batch(export, "--out", out)
    assert done.exit_code == 0 and "Traceback" not in done.output, done.output
    assert f"Condition/{conditions[0]['id']}" in done.output and where in done.output
    assert len({r["id"] for r in _lines(out)}) == n - 1
    assert f"{n} member(s) read, {n - 1} decided, 1 rejected as invalid" in done.output  # members, not rows
    assert "rejected: 1 × Condition.code: has no coding this reader maps to diagnoses\n" in done.output


def test_a_quantity_written_as_text_is_refused_naming_the_element(tmp_path):
    """FHIR writes a decimal unquoted; "abc" (or "60") as a Quantity's value is the member's error
    in an export (not a crash), as in a single bundle."""
    export, _, n = _population(tmp_path, 8, seed=12)
    observations = _lines(export / "Observation.ndjson")
    victim = next(o for o in observations if "valueQuantity" in o)
    victim["valueQuantity"]["value"] = "abc"
    _rewrite(export / "Observation.ndjson", observations)
    done = _batch(export, "--out", tmp_path / "out.jsonl")
    assert done.exit_code == 0 and "Traceback" not in done.output, done.output
    assert f"Observation/{victim['id']}.valueQuantity.value" in done.output and "not a number" in done.output


def test_what_members_hold_that_is_not_read_is_counted_in_the_summary(tmp_path):
    """A drug the table does not list (metformin) is not read, as in a single bundle, and the run
    summary counts it by resource, element and code, in text and in --json."""
    export, _, n = _population(tmp_path, 8, seed=10)
    patients = [json.loads(line)["id"] for line in (export / "Patient.ndjson").read_text().splitlines()]
    (export / "MedicationStatement.ndjson").open("a").write("".join(json.dumps(
        {"resourceType": "MedicationStatement", "id": f"met-{p}", "status": "active", "subject": {"reference": f"Patient/{p}"},
         "medicationCodeableConcept": {"coding": [{"system": "http://www.nlm.nih.gov/research/umls/rxnorm", "code": "6809",
                                                   "display": "metformin"}]}}) + "\n" for p in patients[:3]))
    done = _batch(export, "--out", tmp_path / "out.jsonl")
    assert done.exit_code == 0, done.output
    assert "not read: 3 × MedicationStatement.medicationCodeableConcept: rxnorm 6809 ('metformin')" in done.output
    summary = json.loads(_batch(export, "--out", tmp_path / "out2.jsonl", "--json").stdout)
    assert summary["not_read"] == {"MedicationStatement.medicationCodeableConcept: rxnorm 6809 ('metformin')": 3}
    assert summary["decided"] == n


def test_population_writes_the_same_members_as_an_export_and_as_rows(tmp_path):
    """`reasoner population` gives users the generator the benches use: the same seed gives the same
    members as a Bulk export, JSONL and Parquet, which `batch` decides alike; an existing folder
    with files in it is refused, not overwritten."""
    outs = {}
    for target in ("export", "members.jsonl", "members.parquet"):
        made = CliRunner().invoke(app, ["population", "--members", "30", "--distinct", "12", "--seed", "3",
                                        "--out", str(tmp_path / target)])
        assert made.exit_code == 0, made.output
        done = _batch(tmp_path / target, "--out", tmp_path / f"{target}.out.jsonl")
        assert done.exit_code == 0 and "30 decided, 0 rejected" in done.output, done.output
        outs[target] = _decisions(tmp_path / f"{target}.out.jsonl")
    assert len(outs["export"]) == 30 * len(PAYERS)
    assert outs["export"] == outs["members.jsonl"] == outs["members.parquet"]
    again = CliRunner().invoke(app, ["population", "--members", "5", "--out", str(tmp_path / "export")])
    assert again.exit_code == 2 and "is not an empty folder" in again.output
    assert len((tmp_path / "export" / "Patient.ndjson").read_text().splitlines()) == 30
    assert not list(tmp_path.glob(".export.*"))  # no partial folder left


def test_a_value_the_vocabulary_refuses_names_the_member_and_the_resource(tmp_path):
    """A measurement out of the vocabulary's range passes the reader and is refused by the
    vocabulary's check, as in `check`: the message names the member and the resource the fact
    was read from, not a member number."""
    export, _, n = _population(tmp_path, 8, seed=10)
    observations = _lines(export / "Observation.ndjson")
    victim = next(o for o in observations if "valueQuantity" in o and o["code"]["coding"][0]["system"].endswith(":concept"))
    victim["valueQuantity"]["value"] = 1_000_000
    _rewrite(export / "Observation.ndjson", observations)
    done = _batch(export, "--out", tmp_path / "out.jsonl")
    member, concept = victim["subject"]["reference"], victim["code"]["coding"][0]["code"]
    assert done.exit_code == 0, done.output
    assert f"export: {member}: field '{concept}' (read from Observation/{victim['id']}): error:" in done.output, done.output
