"""Data-driven corpora of malformed inputs, each with the exact one-paragraph error expected.

tests/bad/policies/NAME.policy  (or .vocab)  ->  NAME.expected : what `reasoner lint` reports
tests/bad/patients/NAME.yaml|json            ->  NAME.expected : what loading the patient reports
Paths in the expected text are relative to the repository root.
"""
from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from reasoner.cli import EXIT_INPUT, EXIT_LINT, app
from reasoner.errors import PatientError, PolicyError
from reasoner.language.load import lint, load
from reasoner.io.patient import load_patient
from reasoner.language.vocab import load_vocabulary

ROOT = Path(__file__).resolve().parent.parent
BAD = Path("tests/bad")
BAD_POLICIES = sorted(p for p in (ROOT / BAD / "policies").iterdir() if p.suffix in (".policy", ".vocab"))
BAD_PATIENTS = sorted(p for p in (ROOT / BAD / "patients").iterdir() if p.suffix in (".yaml", ".yml", ".json"))
VOCAB = Path("policies/vocabulary.vocab")


def _expected(path: Path) -> str:
    return path.with_suffix(".expected").read_text(encoding="utf-8").strip()


def _policy_errors(rel: Path) -> str:
    if rel.suffix == ".vocab":
        with pytest.raises(PolicyError) as err:
            load_vocabulary(rel)
        return str(err.value)
    _, _, problems = lint([rel], VOCAB)  # the drug tables beside it are read too
    return "\n".join(str(p) for p in problems if p.severity == "error")


def test_corpora_are_large_enough():
    assert len(BAD_POLICIES) >= 15 and len(BAD_PATIENTS) >= 15


@pytest.mark.parametrize("path", BAD_POLICIES, ids=lambda p: p.name)
def test_bad_policy_reports_expected_error(path, at_root):
    rel = BAD / "policies" / path.name
    assert _policy_errors(rel) == _expected(path)


@pytest.mark.parametrize("path", [p for p in BAD_POLICIES if p.suffix == ".policy"], ids=lambda p: p.name)
def test_bad_policy_cli_lint_fails_cleanly(path, at_root):
    result = CliRunner().invoke(app, ["lint", str(BAD / "policies" / path.name)])
    assert result.exit_code == EXIT_LINT, result.output
    assert "Traceback" not in result.output
    where = _expected(path).split(": error:")[0]
    assert where in result.output


@pytest.mark.parametrize("path", BAD_PATIENTS, ids=lambda p: p.name)
def test_bad_patient_reports_expected_error(path, loaded, at_root):
    with pytest.raises(PatientError) as err:
        load_patient(BAD / "patients" / path.name, loaded.vocab)
    assert str(err.value) == _expected(path)


@pytest.mark.parametrize("path", BAD_PATIENTS, ids=lambda p: p.name)
def test_bad_patient_cli_exits_3_without_traceback(path, at_root):
    result = CliRunner().invoke(app, ["check", str(BAD / "patients" / path.name)])
    assert result.exit_code == EXIT_INPUT
    assert "Traceback" not in result.output and "error:" in result.output


def test_many_problems_are_capped(loaded, at_root):
    """A file with thousands of unknown fields reports twenty and a count, not megabytes."""
    with pytest.raises(PatientError) as err:
        load_patient(BAD / "patients" / "many_unknown_fields.json", loaded.vocab)
    problems = err.value.problems
    assert len(problems) == 21 and problems[-1].message == "… and 2980 more problem(s)."


def test_special_files_are_refused_not_read(loaded, tmp_path):
    """A FIFO would block forever and /dev/zero never ends: only regular files are read."""
    import os

    fifo = tmp_path / "patient.yaml"
    os.mkfifo(fifo)
    link = tmp_path / "zero.yaml"
    link.symlink_to("/dev/zero")
    for path in (fifo, link, tmp_path):
        with pytest.raises(PatientError) as err:
            load_patient(path, loaded.vocab)
        assert "not a regular file" in str(err.value)


def test_an_oversized_file_is_refused_before_parsing(loaded, tmp_path):
    big = tmp_path / "big.yaml"
    big.write_text("description: " + "x" * 1_100_000 + "\n")
    with pytest.raises(PatientError) as err:
        load_patient(big, loaded.vocab)
    assert "larger than 1 MB" in str(err.value)


def test_one_bad_policy_loads_nothing(tmp_path):
    """All or nothing: a folder with one broken policy yields no program at all."""
    for vocab in (ROOT / "policies").glob("*.vocab"):
        (tmp_path / vocab.name).write_text(vocab.read_text())
    (tmp_path / "geisinger.policy").write_text((ROOT / "policies/geisinger.policy").read_text())
    (tmp_path / "broken.policy").write_text((ROOT / BAD_POLICIES[0]).read_text() if BAD_POLICIES[0].suffix == ".policy"
                                           else "policy broken {")
    with pytest.raises(PolicyError):
        load(tmp_path)


@pytest.mark.parametrize("entry", [[1, 2], "text", {"some_key": 3}])
def test_a_malformed_record_is_kept_whole_by_flatten_and_named_by_validate(loaded, entry):
    """flatten (used by golden cases, the web form and the diff) once crashed on a record whose
    entries were not mappings; it keeps such a record whole and validate names it."""
    from reasoner.errors import InputError
    from reasoner.io.patient import flatten, validate

    record = next(iter(loaded.vocab.records))
    data = {"service": "implant", record: entry}
    assert flatten(data, loaded.vocab)[record] == entry
    with pytest.raises(InputError) as caught:
        validate(flatten(data, loaded.vocab), loaded.vocab, "p.yaml")
    assert any(record in p.where or record in p.message for p in caught.value.problems)
