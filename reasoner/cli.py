"""The `reasoner` command: parse arguments, call the API, render, exit with a documented code.

Exit codes: 0 success; 1 `lint` found errors; 2 wrong command-line usage; 3 an input file
(policy, vocabulary or patient) is invalid; 4 an output file could not be written; 130 interrupted.
Bad input never prints a traceback.
"""
from __future__ import annotations

import json
import shutil
import signal
import sys
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import Optional

import typer

from reasoner.results import explain

from reasoner.present import render
from reasoner.language.check import DECISIONS
from reasoner.results.decide import Reasoner
from reasoner.errors import InputError, OutputError, Problem, did_you_mean
from reasoner.language.load import VOCABULARY_FILE, Loaded, lint, load, policy_files
from reasoner.io.patient import Patient, load_patient, validate
from reasoner.paths import policies_dir

EXIT_OK, EXIT_LINT, EXIT_USAGE, EXIT_INPUT, EXIT_OUTPUT, EXIT_INTERRUPTED = 0, 1, 2, 3, 4, 130

app = typer.Typer(add_completion=False, no_args_is_help=True, pretty_exceptions_enable=False,
                  help="Executable health-insurance coverage policies: decide, compare, explain.")

PoliciesOpt = typer.Option(None, "--policies", help="Policy folder (default: the bundled policies/).")
JsonOpt = typer.Option(False, "--json", help="Print JSON instead of tables.")


def _fail(problems, as_json: bool, code: int = EXIT_INPUT) -> None:
    if as_json:
        print(json.dumps({"errors": [{"where": p.where, "severity": p.severity, "message": p.message} for p in problems]}, indent=2))
    else:
        render.console(stderr=True).print(render.problems_text(problems), end="")
    raise typer.Exit(code)


def _load(folder: Optional[Path], as_json: bool) -> Loaded:
    try:
        return load(folder)
    except InputError as err:
        _fail(err.problems, as_json)


def _payers(loaded: Loaded, wanted: list[str] | None, as_json: bool, option: str = "--payer") -> list[str] | None:
    """The payer ids asked for, matched case-insensitively (CMM210 is cmm210); unknown ones are usage errors."""
    known = [p.id for p in loaded.program.policies]
    by_lower = {k.lower(): k for k in known}
    unknown = [w for w in wanted or [] if w.lower() not in by_lower]
    if unknown:
        _fail([Problem(option, f"unknown payer '{u}'.{did_you_mean(u.lower(), known)} Loaded: {', '.join(known)}.")
               for u in unknown], as_json, EXIT_USAGE)
    return [by_lower[w.lower()] for w in wanted] if wanted else None


def _check_request(loaded: Loaded, service: str | None, indication: str | None, as_json: bool) -> None:
    for option, value, concept in (("--service", service, "service"), ("--indication", indication, "indications")):
        known = loaded.vocab.values_of(concept)
        if value is not None and value not in known:
            _fail([Problem(option, f"unknown {concept} '{value}'.{did_you_mean(value, known)} Known: {', '.join(known)}.")],
                  as_json, EXIT_USAGE)


@app.command()
def check(
    patient: Path = typer.Argument(..., help="Patient file (YAML or JSON) in the shared vocabulary."),
    payer: Optional[list[str]] = typer.Option(None, "--payer", help="Only these payers (repeatable)."),
    policies: Optional[Path] = PoliciesOpt,
    as_json: bool = JsonOpt,
) -> None:
    """The decision of each payer for one patient, with the deciding rule and its citation."""
    loaded = _load(policies, as_json)
    chosen = _payers(loaded, payer, as_json)
    try:
        p = load_patient(patient, loaded.vocab)
    except InputError as err:
        _fail(err.problems, as_json)
    decisions = Reasoner(loaded).decide(p, chosen)
    if as_json:
        print(json.dumps({"schema": "reasoner.check/1", "patient": p.id,
                          "decisions": [d.as_json() for d in decisions]}, indent=2))
    else:
        render.console().print(render.decisions_table(p.id, decisions))


def _patient(loaded: Loaded, path: Path, service: Optional[str], as_json: bool) -> Patient:
    """The validated patient, with the requested service replaced when --service is given."""
    _check_request(loaded, service, None, as_json)
    try:
        patient = load_patient(path, loaded.vocab)
        if service is not None:
            facts = {**patient.facts, "service": service, "id": patient.id, "description": patient.description}
            patient = validate(facts, loaded.vocab, f"--service")
        return patient
    except InputError as err:
        _fail(err.problems, as_json)


def _one_payer(loaded: Loaded, payer: str, as_json: bool) -> str:
    return _payers(loaded, [payer], as_json)[0]


PatientArg = typer.Argument(..., help="Patient file (YAML or JSON) in the shared vocabulary.")
ServiceOpt = typer.Option(None, "--service", help="Ask about this service instead of the patient's.")


@app.command()
def why(
    patient: Path = PatientArg,
    payer: str = typer.Option(..., "--payer", help="The payer whose decision to explain."),
    service: Optional[str] = ServiceOpt,
    policies: Optional[Path] = PoliciesOpt,
    as_json: bool = JsonOpt,
) -> None:
    """Why the payer decided as it did: the deciding rule, its criteria, down to the patient's facts."""
    loaded = _load(policies, as_json)
    pid = _one_payer(loaded, payer, as_json)
    p = _patient(loaded, patient, service, as_json)
    result = explain.why(Reasoner(loaded), p, pid)
    if as_json:
        print(json.dumps(explain.why_json(result), indent=2))
    else:
        render.console().print(render.why_tree(result))


@app.command("why-not")
def why_not(
    patient: Path = PatientArg,
    payer: str = typer.Option(..., "--payer", help="The payer whose decision to explain."),
    decision: str = typer.Option("covered", "--decision", help="The decision wanted (covered, denied, review, not_addressed)."),
    service: Optional[str] = ServiceOpt,
    repairs: int = typer.Option(5, "--repairs", min=0, help="How many minimal repairs to search for (0: none)."),
    policies: Optional[Path] = PoliciesOpt,
    as_json: bool = JsonOpt,
) -> None:
    """Why the payer did not decide DECISION: every rule that could have, what stops it, and the
    smallest fact changes that would get there (each verified by the engine)."""
    from reasoner.results.repair import repairs as find_repairs

    loaded = _load(policies, as_json)
    pid = _one_payer(loaded, payer, as_json)
    if decision not in DECISIONS:
        _fail([Problem("--decision", f"unknown decision '{decision}'.{did_you_mean(decision, list(DECISIONS))} "
                                     f"Known: {', '.join(DECISIONS)}.")], as_json, EXIT_USAGE)
    p = _patient(loaded, patient, service, as_json)
    reasoner = Reasoner(loaded)
    result = explain.why_not(reasoner, p, pid, decision)
    fixes = find_repairs(reasoner, p, pid, decision, limit=repairs) if repairs and result.paths else ([] if repairs else None)
    if as_json:
        print(json.dumps(explain.why_not_json(result, fixes), indent=2))
    else:
        render.console().print(render.why_not_tree(result, fixes))


@app.command()
def batch(
    input: Path = typer.Argument(..., help="Patients as JSONL, CSV (sets as a;b;c) or Parquet, one per row."),
    payer: Optional[list[str]] = typer.Option(None, "--payer", help="Only these payers (repeatable)."),
    out: Optional[Path] = typer.Option(None, "--out", help="Output file (default: standard output)."),
    fmt: Optional[str] = typer.Option(None, "--format", help="jsonl, csv or parquet (default: from --out, else jsonl)."),
    on_error: str = typer.Option("skip", "--on-error", help="skip: report bad rows and go on; reject: stop at the first."),
    chunk: int = typer.Option(50_000, "--chunk", min=1, help="Patients decided per query."),
    policies: Optional[Path] = PoliciesOpt,
) -> None:
    """Decide a whole file of patients with the fast (DuckDB) backend, streaming in chunks.

    Each output row has the input row's number and id and, per payer, <payer>__rule,
    <payer>__decision and <payer>__failing (the failing criteria of the covered rules in scope)."""
    from reasoner.io import batch as b
    from reasoner.io.output import check_target
    from reasoner.engines.duck import FastBackend

    loaded = _load(policies, False)
    chosen = _payers(loaded, payer, False)
    problems: list[Problem] = []
    fmt = fmt or (out.suffix.lstrip(".").lower() if out else "jsonl")
    usage = []
    if fmt not in b.FORMATS:
        usage.append(Problem("--format", f"unknown format '{fmt}'; use one of {', '.join(b.FORMATS)}."))
    if on_error not in ("skip", "reject"):
        usage.append(Problem("--on-error", f"'{on_error}' is neither skip nor reject."))
    if fmt == "parquet" and out is None:
        usage.append(Problem("--format", "parquet output needs --out FILE."))
    if not input.exists():
        usage.append(Problem(str(input), "no such file."))
    try:
        b.input_format(input)
    except InputError as error:
        usage += error.problems
    if out is not None:
        try:
            check_target(out, [input])
        except OutputError as error:
            usage += error.problems
    if usage:
        _fail(usage, False, EXIT_USAGE)
    program = loaded.program
    if chosen:
        program = type(program)(tuple(p for p in program.policies if p.id in chosen))
    err = render.console(stderr=True)
    try:
        total = b.count_rows(input)
        backend = FastBackend(program, loaded.vocab)
        with _sink(out, input, on_error) as handle, b.Writer(handle, fmt) as writer:
            with render.batch_progress(err, total) as advance:
                report = b.adjudicate(input, loaded, backend, writer, on_error, problems, advance, chunk)
    except InputError as error:
        err.print(render.problems_text(error.problems), end="")
        if isinstance(error, OutputError):
            err.print("nothing written.")
            raise typer.Exit(EXIT_OUTPUT)
        previous = f"; {out} is unchanged" if out and out.exists() else ""
        err.print(f"rejected: {input} has invalid rows; nothing written{previous}.")
        raise typer.Exit(EXIT_INPUT)
    err.print(render.problems_text(problems[:20]), end="")
    more = f" (first 20 shown)" if len(problems) > 20 else ""
    err.print(f"{report.read} row(s) read, {report.decided} decided, {report.rejected} skipped as invalid{more}.")


@contextmanager
def _sink(out: Optional[Path], source: Path, on_error: str):
    """Where batch rows go: a file replaced only when complete, or standard output. In reject mode,
    rows for standard output are held back until the whole input has been read, since a run that
    ends rejected must print no decisions."""
    from reasoner.io.output import atomic_output

    if out is not None:
        with atomic_output(out, [source]) as handle:
            yield handle
        return
    if on_error != "reject":
        yield sys.stdout.buffer
        return
    with tempfile.TemporaryFile() as spool:
        yield spool
        spool.seek(0)
        shutil.copyfileobj(spool, sys.stdout.buffer)


@app.command("lint")
def lint_cmd(
    files: Optional[list[Path]] = typer.Argument(None, help="Policy files (default: every *.policy in the folder)."),
    policies: Optional[Path] = PoliciesOpt,
    as_json: bool = JsonOpt,
) -> None:
    """Check policy files against the grammar and vocabulary; print every problem with file:line:column."""
    folder = Path(policies) if policies else policies_dir()
    vocab_path = folder / VOCABULARY_FILE
    if files:
        vocab_path = next((f.parent / VOCABULARY_FILE for f in files if (f.parent / VOCABULARY_FILE).exists()), vocab_path)
    targets = list(files) if files else policy_files(folder)
    _, checked, problems = lint(targets, vocab_path)
    errors = [p for p in problems if p.severity == "error"]
    if as_json:
        print(json.dumps({"schema": "reasoner.lint/1", "files": [str(t) for t in targets],
                          "problems": [{"where": p.where, "severity": p.severity, "message": p.message} for p in problems]}, indent=2))
    else:
        out = render.console()
        out.print(render.problems_text(problems), end="")
        out.print(f"{len(targets)} file(s) checked: {len(errors)} error(s), {len(problems) - len(errors)} warning(s).")
    raise typer.Exit(EXIT_LINT if errors else EXIT_OK)


@app.command("matrix")
def matrix_cmd(
    service: Optional[str] = typer.Option(None, "--service", help="Only rules for this service (e.g. implant)."),
    indication: Optional[str] = typer.Option(None, "--indication", help="Only rules for this indication."),
    payer: Optional[list[str]] = typer.Option(None, "--payer", help="Only these payers (repeatable)."),
    policies: Optional[Path] = PoliciesOpt,
    as_json: bool = JsonOpt,
) -> None:
    """Which payer requires what, for each service and indication, generated from the policies."""
    from reasoner.results.matrix import as_json as matrix_json, matrix

    loaded = _load(policies, as_json)
    chosen = _payers(loaded, payer, as_json)
    _check_request(loaded, service, indication, as_json)
    program = loaded.program
    if chosen:
        program = type(program)(tuple(p for p in program.policies if p.id in chosen))
    columns = matrix(program, service, indication)
    if as_json:
        print(json.dumps(matrix_json(columns, service, indication), indent=2))
    else:
        render.console().print(render.matrix_table(columns, service, indication))


@app.command("diff")
def diff_cmd(
    payers: Optional[list[str]] = typer.Option(None, "--payers", help="Payers to compare: --payers A,B or repeated "
                                               "(default: all)."),
    service: Optional[str] = typer.Option(None, "--service", help="Only requests for this service (e.g. implant)."),
    indication: Optional[str] = typer.Option(None, "--indication", help="Only requests for this indication."),
    examples: int = typer.Option(500, "--examples", min=1, help="Patients to generate."),
    seed: int = typer.Option(0, "--seed", help="Seed: the same seed gives the same patients and classes."),
    exhaustive: bool = typer.Option(False, "--exhaustive", help="Also prove, with a solver over a finite abstraction "
                                    "of the vocabulary, which classes exist; report those the search missed."),
    report: Optional[Path] = typer.Option(None, "--report", help="Write the full report to FILE.md or FILE.html."),
    show: int = typer.Option(25, "--show", min=0, help="Classes to print in the terminal (the report has all)."),
    policies: Optional[Path] = PoliciesOpt,
    as_json: bool = JsonOpt,
) -> None:
    """Find patients on whom payers decide differently, grouped into classes by the rules and
    criteria responsible on each side, each with a minimal witness patient and citations."""
    from reasoner.search import diff

    loaded = _load(policies, as_json)
    wanted = list(dict.fromkeys(name for value in payers or [] for name in value.split(",") if name))
    chosen = _payers(loaded, wanted, as_json, "--payers") or [p.id for p in loaded.program.policies]
    _check_request(loaded, service, indication, as_json)
    if len(chosen) < 2:
        _fail([Problem("--payers", "name at least two payers to compare.")], as_json, EXIT_USAGE)
    if report is not None and report.suffix.lower() not in (".md", ".html"):
        _fail([Problem("--report", f"'{report}' must end in .md or .html.")], as_json, EXIT_USAGE)
    if report is not None and not report.resolve().parent.is_dir():
        _fail([Problem("--report", f"the folder of '{report}' does not exist; nothing was searched.")], as_json, EXIT_USAGE)
    err = render.console(stderr=True)
    with render.diff_progress(err) as progress:
        result = diff.search(loaded, chosen, service, indication, examples, seed, progress)
        if exhaustive:
            diff.complete(loaded, result, progress)
    themes = diff.themes(result)
    if report is not None:
        if report.suffix.lower() == ".md":
            report.write_text(render.diff_markdown(result, themes), encoding="utf-8")
        else:
            recorder = render.console(width=120)
            recorder.record = True
            with recorder.capture():
                for part in render.diff_summary(result, themes):
                    recorder.print(part)
            recorder.save_html(str(report))
        err.print(f"report written to {report}")
    if as_json:
        print(json.dumps(diff.as_json(result), indent=2))
    else:
        out = render.console()
        for part in render.diff_summary(result, themes, limit=show):
            out.print(part)


@app.command("policies")
def policies_cmd(policies: Optional[Path] = PoliciesOpt, as_json: bool = JsonOpt) -> None:
    """List the loaded policies, their documents, lines of business and what they cover."""
    loaded = _load(policies, as_json)
    if as_json:
        print(json.dumps({"schema": "reasoner.policies/1", "policies": [
            {"id": p.id, "payer": p.payer, "document": p.document, "title": p.title, "version": p.version,
             "lines": list(p.lines), "source": p.source,
             "rules": [{"name": r.name, "label": r.label, "decision": r.outcome.kind, "subkind": r.outcome.subkind,
                        "citation": str(r.cite)} for r in p.rules]}
            for p in loaded.program.policies]}, indent=2))
    else:
        render.console().print(render.policies_table(loaded.program))


def _stop(signum, frame) -> None:
    """Ctrl-C and SIGTERM end a run the same way: cleanup runs and partial output files are removed."""
    _signals.append(signum)
    raise KeyboardInterrupt


_signals: list[int] = []


def main() -> None:
    """Console entry point; click's usage errors already exit with 2, an interruption with 128 + the
    signal's number (130 for Ctrl-C, 143 for SIGTERM)."""
    signal.signal(signal.SIGTERM, _stop)
    signal.signal(signal.SIGINT, _stop)
    try:
        app()
    except BrokenPipeError:  # e.g. `reasoner policies | head`
        sys.exit(EXIT_OK)
    except SystemExit as done:
        if done.code == EXIT_INTERRUPTED or _signals:  # typer turns KeyboardInterrupt into exit 130
            print("interrupted; no partial output was left.", file=sys.stderr)
            sys.exit(128 + _signals[-1] if _signals else EXIT_INTERRUPTED)
        raise


if __name__ == "__main__":
    main()
