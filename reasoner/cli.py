"""The `reasoner` command: parse arguments, call the API, render, exit with a documented code.

Exit codes: 0 success; 1 `lint` found errors; 2 wrong command-line usage; 3 an input file
(policy, vocabulary or patient) is invalid; 4 an output file could not be written; 130 interrupted.
Bad input never prints a traceback.
"""
from __future__ import annotations

import dataclasses
import errno
import json
import os
import shutil
import signal
import sys
import tempfile
import threading
from contextlib import contextmanager
from pathlib import Path
from typing import Optional

import typer

from reasoner.results import explain

from reasoner.present import render
from reasoner.language.check import DECISIONS
from reasoner.results.decide import Reasoner, period_json
from reasoner.errors import InputError, OutputError, PatientError, Problem, did_you_mean
from reasoner.language.load import VOCABULARY_FILE, Loaded, lint, load, policy_files
from reasoner.io.patient import Patient, load_patient, nested, to_yaml, validate
from reasoner.paths import policies_dir
from reasoner.web.command import serve

EXIT_OK, EXIT_LINT, EXIT_USAGE, EXIT_INPUT, EXIT_OUTPUT, EXIT_RESOURCES, EXIT_INTERRUPTED = 0, 1, 2, 3, 4, 5, 130
EXIT_PIPE = 128 + 13  # the reader of standard output went away, as for a process that SIGPIPE ends

EXIT_CODES = ("Exit codes: 0 success; 1 lint found errors; 2 wrong command-line usage; 3 an input file is invalid; "
              "4 an output file could not be written; 5 batch ran out of memory (try a smaller --chunk); "
              "130/143 interrupted; 141 the reader of standard output went away.")
app = typer.Typer(no_args_is_help=True, pretty_exceptions_enable=False, rich_markup_mode=None, epilog=EXIT_CODES,
                  help="Executable health-insurance coverage policies: decide, compare, explain.")

AsOfOpt = typer.Option(None, "--as-of", metavar="DATE", help="Date the request (YYYY-MM-DD) when it has no request_date: "
                       "each policy's version in force then decides.")
WithOpt = typer.Option(None, "--with", readable=False, metavar="FILE", help="Another input about the same member (a FHIR Bundle, a "
                       "completed QuestionnaireResponse or a patient file), merged with PATIENT; conflicting facts "
                       "are reported (repeatable).")
# readable=False on every path: our own readers say why a file cannot be read (exit 3), where
# click would answer first with a usage error (exit 2)
PatientArg = typer.Argument(..., readable=False, metavar="PATIENT", help="Patient file (YAML or JSON) in the shared vocabulary, a FHIR R4 Bundle (JSON), or a completed QuestionnaireResponse from `reasoner questionnaire`.")
PoliciesOpt = typer.Option(None, "--policies", readable=False, metavar="DIR", help="Policy folder (default: the bundled policies/).")
JsonOpt = typer.Option(False, "--json", help="Print JSON instead of tables.")


def _version(value: bool) -> None:
    if value:
        from importlib.metadata import version

        print(f"reasoner {version('reasoner')}")
        raise typer.Exit(EXIT_OK)


@app.callback()
def _options(
    width: Optional[int] = typer.Option(None, "--width", metavar="N", min=20,
                                        help="Wrap tables and trees at N columns (default: the terminal's width; "
                                             "output to a pipe or file is never wrapped)."),
    version: bool = typer.Option(False, "--version", callback=_version, is_eager=True, help="Print the version and exit."),
) -> None:
    """Executable health-insurance coverage policies: decide, compare, explain."""
    render.WIDTH = width


def _fail(problems, as_json: bool, code: int = EXIT_INPUT) -> None:
    """Report problems on standard error (as JSON with --json) and exit with `code`."""
    if as_json:
        print(json.dumps({"errors": [{"where": p.where, "severity": p.severity, "message": p.message} for p in problems]},
                         indent=2), file=sys.stderr)
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
    patient: Path = PatientArg,
    payer: Optional[list[str]] = typer.Option(None, "--payer", metavar="ID", help="Only these payers (repeatable)."),
    also: Optional[list[Path]] = WithOpt,
    as_of: Optional[str] = AsOfOpt,
    policies: Optional[Path] = PoliciesOpt,
    as_json: bool = JsonOpt,
) -> None:
    """The decision of each payer for one patient, with the deciding rule and its citation."""
    loaded = _load(policies, as_json)
    chosen = _payers(loaded, payer, as_json)
    _check_as_of(as_of, as_json)
    try:
        p = _dated(load_patient(patient, loaded.vocab, loaded.folder, also or ()), as_of, loaded, as_json)
    except InputError as err:
        _fail(err.problems, as_json)
    decisions = Reasoner(loaded).decide(p, chosen)
    if as_json:
        print(json.dumps(_noted({"schema": "reasoner.check/1", "patient": p.id,
                                 "decisions": [d.as_json() for d in decisions]}, p), indent=2))
    else:
        render.console().print(render.decisions_table(p.id, decisions))
        _say_notes(p)


def _noted(out: dict, patient: Patient) -> dict:
    """A command's JSON with the input's notes (what was deliberately not read), when it has any."""
    if patient.notes:
        out["notes"] = [{"where": n.where, "message": n.message} for n in patient.notes]
    return out


def _say_notes(patient: Patient) -> None:
    """What the input holds that was deliberately not read, after the answer, on stderr (so that
    the answer on stdout is the same as for a patient file giving the same facts)."""
    if patient.notes:
        err = render.console(stderr=True)
        err.print(f"Not read from the input ({len(patient.notes)}):", markup=False)
        for note in patient.notes:
            err.print(f"  {note.where}: {note.message}", markup=False)


def _check_as_of(as_of: Optional[str], as_json: bool):
    """The --as-of date (None when not given); a usage error when it is not written YYYY-MM-DD."""
    import datetime as dt

    try:
        if as_of is not None and len(as_of) == 10:
            return dt.date.fromisoformat(as_of)
    except ValueError:
        pass
    if as_of is not None:
        _fail([Problem("--as-of", f"{as_of!r} is not a date written YYYY-MM-DD.")], as_json, EXIT_USAGE)
    return None


def _dated(patient: Patient, as_of: Optional[str], loaded: Loaded, as_json: bool = False) -> Patient:
    """The patient with request_date set to --as-of when the request has no date (a date it has
    wins, and the terminal says so: the date also picks the policy version)."""
    if as_of is None:
        return patient
    if patient.facts.get("request_date") is not None:
        if not as_json and patient.facts["request_date"].isoformat() != as_of:
            render.console(stderr=True).print(f"--as-of {as_of} not used: the request is dated "
                                              f"{patient.facts['request_date'].isoformat()} (its own date wins).")
        return patient
    facts = {**nested(patient.facts, loaded.vocab), "request_date": as_of, "id": patient.id,
             "description": patient.description}
    try:
        return validate(facts, loaded.vocab, "--as-of", provenance=patient.provenance, notes=patient.notes)
    except InputError as err:
        raise InputError([Problem("--as-of", p.message) for p in err.problems]) from None


def _patient(loaded: Loaded, path: Path, service: Optional[str], as_json: bool, also=(), as_of=None) -> Patient:
    """The validated patient, with the requested service replaced when --service is given."""
    _check_request(loaded, service, None, as_json)
    _check_as_of(as_of, as_json)
    try:
        patient = _dated(load_patient(path, loaded.vocab, loaded.folder, also or ()), as_of, loaded, as_json)
        if service is not None:
            facts = {**patient.facts, "service": service, "id": patient.id, "description": patient.description}
            sources = {**patient.provenance, "service": "--service"} if patient.provenance else None
            patient = validate(facts, loaded.vocab, "--service", provenance=sources, notes=patient.notes)
        return patient
    except InputError as err:
        _fail(err.problems, as_json)


def _one_payer(loaded: Loaded, payer: str, as_json: bool) -> str:
    return _payers(loaded, [payer], as_json)[0]


ServiceOpt = typer.Option(None, "--service", metavar="SERVICE", help="Ask about this service instead of the patient's.")


@app.command()
def why(
    patient: Path = PatientArg,
    payer: str = typer.Option(..., "--payer", metavar="ID", help="The payer whose decision to explain."),
    service: Optional[str] = ServiceOpt,
    also: Optional[list[Path]] = WithOpt,
    as_of: Optional[str] = AsOfOpt,
    policies: Optional[Path] = PoliciesOpt,
    as_json: bool = JsonOpt,
) -> None:
    """Why the payer decided as it did: the deciding rule, its criteria, down to the patient's facts."""
    loaded = _load(policies, as_json)
    pid = _one_payer(loaded, payer, as_json)
    p = _patient(loaded, patient, service, as_json, also, as_of)
    reasoner = Reasoner(loaded)
    result = explain.why(reasoner, p, reasoner.version(pid, p))
    if as_json:
        print(json.dumps(_noted(explain.why_json(result), p), indent=2))
    else:
        render.console().print(render.why_tree(result))
        _say_notes(p)


@app.command("why-not")
def why_not(
    patient: Path = PatientArg,
    payer: str = typer.Option(..., "--payer", metavar="ID", help="The payer whose decision to explain."),
    decision: str = typer.Option("covered", "--decision", metavar="DECISION", help="The decision wanted (covered, denied, review, not_addressed)."),
    service: Optional[str] = ServiceOpt,
    repairs: int = typer.Option(5, "--repairs", min=0, metavar="N", help="How many minimal repairs to search for (0: none)."),
    also: Optional[list[Path]] = WithOpt,
    as_of: Optional[str] = AsOfOpt,
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
    p = _patient(loaded, patient, service, as_json, also, as_of)
    reasoner = Reasoner(loaded)
    pid = reasoner.version(pid, p)
    result = explain.why_not(reasoner, p, pid, decision)
    fixes = find_repairs(reasoner, p, pid, decision, limit=repairs) if repairs and result.paths else ([] if repairs else None)
    if as_json:
        print(json.dumps(_noted(explain.why_not_json(result, fixes), p), indent=2))
    else:
        render.console().print(render.why_not_tree(result, fixes))
        _say_notes(p)


@app.command()
def batch(
    input: Path = typer.Argument(..., readable=False, metavar="INPUT", help="Patients as JSONL, CSV (sets as a;b;c) or Parquet, one per row; or a FHIR Bulk Data export folder (NDJSON per resource type), one member per Patient."),
    payer: Optional[list[str]] = typer.Option(None, "--payer", metavar="ID", help="Only these payers (repeatable)."),
    out: Optional[Path] = typer.Option(None, "--out", readable=False, metavar="FILE", help="Output file (default: standard output)."),
    fmt: Optional[str] = typer.Option(None, "--format", metavar="FORMAT", help="jsonl, csv or parquet (default: from --out, else jsonl)."),
    on_error: str = typer.Option("skip", "--on-error", metavar="MODE", help="skip: report bad rows and decide the others; reject: decide nothing if a row is bad (the bad rows found are reported, no output is left)."),
    chunk: Optional[int] = typer.Option(None, "--chunk", min=1, metavar="N", help="Patients checked and decided per query (default: 50,000 for a Parquet file in the vocabulary's own column types, 5,000 JSON lines or members of a FHIR Bulk export, 20,000 otherwise)."),
    engine: str = typer.Option("duckdb", "--engine", metavar="ENGINE", help="duckdb (embedded) or spark (needs the spark extra)."),
    as_of: Optional[str] = typer.Option(None, "--as-of", metavar="DATE", help="Date the requests (YYYY-MM-DD) that have no request_date: each policy's version in force then decides them (a dated request keeps its date)."),
    policies: Optional[Path] = PoliciesOpt,
    as_json: bool = typer.Option(False, "--json", help="The run summary as JSON (on stdout with --out, else on stderr)."),
) -> None:
    """Decide a whole file of patients with the fast backend, streaming in chunks.

    One output row per patient and payer: row (the input's line or row number), id, payer,
    version (the policy version that decided, by the row's request_date), decision, subkind,
    prior_auth, rule, rule_label, citation, and the failing criteria of the
    covered rules in scope by name and label (failing, failing_labels). A summary (rows read,
    decided, rejected by reason, decisions per payer) ends the run on stderr."""
    from reasoner.io import batch as b
    from reasoner.io.output import check_target

    day = _check_as_of(as_of, as_json)
    loaded = _load(policies, as_json)
    chosen = _payers(loaded, payer, as_json)
    problems: list[Problem] = []
    usage = []
    folder = out is not None and out.is_dir()  # said once, by check_target below: its format is not asked about
    named = out.suffix.lstrip(".").lower() if out is not None else None  # the format the file's name says
    if fmt is None and out is not None and not folder and named not in b.FORMATS:
        usage.append(Problem("--out", f"cannot tell the output format from '{out.name}'; name the file .jsonl, .csv or "
                                      ".parquet, or give --format."))
    if fmt is not None and named in b.FORMATS and named != fmt.lower():
        usage.append(Problem("--format", f"'{fmt}' contradicts the name of --out '{out.name}'; give one of them, "
                                         f"or name the file .{fmt.lower()}."))
    fmt = fmt or (named if out is not None and not folder else "jsonl")
    if fmt not in b.FORMATS and not usage:
        usage.append(Problem("--format", f"unknown format '{fmt}'; use one of {', '.join(b.FORMATS)}."))
    if on_error not in ("skip", "reject"):
        usage.append(Problem("--on-error", f"'{on_error}' is neither skip nor reject."))
    if engine not in ("duckdb", "spark"):
        usage.append(Problem("--engine", f"unknown engine '{engine}'; use duckdb or spark."))
    if fmt == "parquet" and out is None:
        usage.append(Problem("--format", "parquet output needs --out FILE."))
    if not input.exists():  # one mistake, one message: its format is then not asked about
        usage.append(Problem(str(input), "no such file."))
    else:
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
        _fail(usage, as_json, EXIT_USAGE)
    program = loaded.program
    if chosen:
        program = program.only(chosen)
    err = render.console(stderr=True)
    try:
        pipeline = b.Pipeline(program, loaded, fmt, engine, day)
    except InputError as error:  # the engine asked for cannot run here (no PySpark, no Java)
        _fail(error.problems, as_json, EXIT_USAGE)
    try:
        total = b.count_rows(input, lines=err.is_terminal)  # the bar is drawn only on a terminal
        with _sink(out, input, on_error) as handle, b.Writer(handle, fmt) as writer:
            with render.batch_progress(err, total) as advance:
                report = b.adjudicate(input, loaded, pipeline, writer, on_error, problems, advance, chunk)
    except b.OutOfMemory as error:
        err.print(f"{input}: error: {error}; nothing written" + (f", {out} is unchanged." if out and out.exists() else "."))
        raise typer.Exit(EXIT_RESOURCES)
    except InputError as error:
        if as_json:
            _emit_json({"errors": [{"where": p.where, "severity": p.severity, "message": p.message}
                                   for p in error.problems]}, out is None)
        err.print(render.problems_text(error.problems[:20]), end="")
        if isinstance(error, OutputError):
            err.print("nothing written.")
            raise typer.Exit(EXIT_OUTPUT)
        previous = f"; {out} is unchanged" if out and out.exists() else ""
        what = "has invalid rows" if isinstance(error, PatientError) else "cannot be read"
        err.print(f"rejected: {input} {what}; nothing written{previous}.")
        raise typer.Exit(EXIT_INPUT)
    finally:
        pipeline.close()
    err.print(render.problems_text(problems[:20]), end="")
    err.print(render.batch_summary(report, len(problems)))
    if as_json:
        _emit_json(report.as_json(), out is None)


def _emit_json(data: dict, to_stderr: bool) -> None:
    """JSON to stdout, unless stdout carries the decisions (batch without --out)."""
    text = json.dumps(data, indent=2)
    if to_stderr:
        print(text, file=sys.stderr)
    else:
        print(text)


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
    _rows_to_stdout.append(True)
    if on_error != "reject":
        yield sys.stdout.buffer
        return
    with tempfile.TemporaryFile() as spool:
        yield spool
        spool.seek(0)
        shutil.copyfileobj(spool, sys.stdout.buffer)


_rows_to_stdout: list[bool] = []  # batch rows go to standard output: a closed pipe truncates data


def _pipe_closed(done: BaseException) -> bool:
    """Whether the run ended because the reader of standard output went away (`| head`): click
    turns that EPIPE into a silent exit 1, which scripts cannot tell from a failure."""
    cause = done if isinstance(done, OSError) else done.__context__
    return isinstance(cause, OSError) and cause.errno == errno.EPIPE


def _exit_pipe_closed() -> None:
    """Exit as a Unix tool killed by SIGPIPE would (141), saying so when the output was data."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())  # the interpreter's last flush must not fail again
    if _rows_to_stdout:
        print("standard output was closed by its reader (e.g. `| head`) before every row was written; "
              "stopped there. Use --out FILE for a complete file.", file=sys.stderr)
    sys.exit(EXIT_PIPE)


@app.command("lint")
def lint_cmd(
    files: Optional[list[Path]] = typer.Argument(None, readable=False, metavar="[POLICY]...", help="Policy files (default: every *.policy in the folder)."),
    policies: Optional[Path] = PoliciesOpt,
    as_json: bool = JsonOpt,
) -> None:
    """Check policy files against the grammar and vocabulary; print every problem with file:line:column."""
    folder = Path(policies) if policies else (files[0].parent if files else policies_dir())
    vocab_path = folder / VOCABULARY_FILE
    if files and not policies and not vocab_path.is_file():
        vocab_path = policies_dir() / VOCABULARY_FILE  # a draft outside any policy folder: the bundled vocabulary
    targets = list(files) if files else policy_files(folder)
    if not vocab_path.is_file():  # as `load` does: a folder without its vocabulary is not a policy folder
        problems = [Problem(str(folder), f"no {VOCABULARY_FILE} in this folder; every policy folder needs the shared "
                                         "vocabulary (or give --policies FOLDER).")]
        checked = []
    elif not targets:
        problems, checked = [Problem(str(folder), "no *.policy files found.")], []
    else:
        vocab, checked, problems = lint(targets, vocab_path)
        if vocab is not None and not any(p.severity == "error" for p in problems):
            problems += _dead_rules(checked, vocab, problems)
        if vocab is not None:
            problems += _mapping_problems(vocab_path.parent, vocab)
    errors = [p for p in problems if p.severity == "error"]
    if as_json:
        print(json.dumps({"schema": "reasoner.lint/1", "files": [str(t) for t in targets],
                          "problems": [{"where": p.where, "severity": p.severity, "message": p.message} for p in problems]}, indent=2))
    else:
        out = render.console()
        out.print(render.problems_text(problems), end="")
        warnings = sum(p.severity == "warning" for p in problems)
        out.print(f"{len(targets)} file(s) checked: {len(errors)} error(s), {warnings} warning(s).")
    raise typer.Exit(EXIT_LINT if errors else EXIT_OK)


def _mapping_problems(folder: Path, vocab) -> list[Problem]:
    """The folder's FHIR mapping, when it has one, checked against the vocabulary."""
    from reasoner.fhir.mapping import load_mapping, mapping_file

    if not mapping_file(folder).is_file():
        return []
    try:
        load_mapping(folder, vocab)
    except InputError as err:
        return list(err.problems)
    return []


def _dead_rules(policies, vocab, known: list[Problem]) -> list[Problem]:
    """Warnings for rules that can never decide, proven by the solver (rules the checker already
    warned about are not repeated)."""
    from reasoner.engines.solver import RULES_CHECKED, dead_rules

    warned = {p.where for p in known}
    out = []
    for policy in policies:
        if len(policy.rules) > RULES_CHECKED:
            out.append(Problem(policy.source, f"{len(policy.rules)} rules: more than {RULES_CHECKED}, so rules that can "
                                              "never decide were not looked for.", "warning"))
            continue
        for rule, by in dead_rules(policy, vocab):
            if rule.where in warned or not rule.where:
                continue
            why = (f"the rules before it ({', '.join(by)}) always decide first" if by
                   else "its scope, conditions and exceptions can never hold together")
            out.append(Problem(rule.where, f"rule '{rule.name}' can never decide: {why}.", "warning"))
    return out


@app.command("matrix")
def matrix_cmd(
    service: Optional[str] = typer.Option(None, "--service", metavar="SERVICE", help="Only rules for this service (e.g. implant)."),
    indication: Optional[str] = typer.Option(None, "--indication", metavar="INDICATION", help="Only rules for this indication."),
    payer: Optional[list[str]] = typer.Option(None, "--payer", metavar="ID", help="Only these payers (repeatable)."),
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
        program = program.only(chosen)
    columns = matrix(program, service, indication)
    if as_json:
        print(json.dumps(matrix_json(columns, service, indication), indent=2))
    else:
        render.console().print(render.matrix_table(columns, service, indication))


@app.command("questionnaire")
def questionnaire_cmd(
    payer: str = typer.Option(..., "--payer", metavar="ID", help="The payer whose questions to ask."),
    service: str = typer.Option(..., "--service", metavar="SERVICE", help="The service requested (e.g. implant)."),
    indication: Optional[str] = typer.Option(None, "--indication", metavar="INDICATION",
                                             help="The indication (default: every indication's questions)."),
    out: Optional[Path] = typer.Option(None, "--out", readable=False, metavar="FILE", help="Write the JSON here (default: standard output)."),
    prefill: Optional[Path] = typer.Option(None, "--prefill", readable=False, metavar="PATIENT",
                                           help="Write instead the QuestionnaireResponse answered from this patient file."),
    as_of: Optional[str] = typer.Option(None, "--as-of", metavar="DATE", help="The request's date (YYYY-MM-DD): the questions of the payer's policy version in force then (default: its current version; an earlier version may also be named by its id)."),
    policies: Optional[Path] = PoliciesOpt,
    as_json: bool = typer.Option(False, "--json", help="Errors as JSON too (the questionnaire is always JSON)."),
) -> None:
    """The facts one payer's rules read for one request, as a FHIR R4 Questionnaire (JSON).

    Generated from the policy's encoding: exactly the concepts its rules for this service and
    indication test, grouped by the vocabulary's topics, with units, ranges and answer options.
    With --prefill, the QuestionnaireResponse answering it from a patient file (what the file does
    not document is left unanswered); `reasoner check` reads such a response as a patient."""
    from reasoner.fhir.questionnaire import prefill as prefilled, questionnaire

    day = _check_as_of(as_of, as_json)
    loaded = _load(policies, as_json)
    (chosen,) = _payers(loaded, [payer], as_json)
    _check_request(loaded, service, indication, as_json)
    if day is not None:
        chosen = loaded.program.in_force(chosen, day).id
    document = questionnaire(loaded.program, loaded.vocab, chosen, service, indication)
    if prefill is not None:
        try:
            patient = load_patient(prefill, loaded.vocab, loaded.folder)
        except InputError as error:
            _fail(error.problems, as_json, EXIT_INPUT)
        document = prefilled(document, patient.facts, loaded.vocab, patient.id)
    _emit_document(document, out, as_json, "questionnaire", [prefill])


@app.command("fhir")
def fhir_cmd(
    patient: Path = typer.Argument(..., readable=False, metavar="PATIENT", help="Patient file (YAML or JSON) to write as FHIR."),
    out: Optional[Path] = typer.Option(None, "--out", readable=False, metavar="FILE", help="Write the JSON here (default: standard output)."),
    policies: Optional[Path] = PoliciesOpt,
    as_json: bool = typer.Option(False, "--json", help="Errors as JSON too (the bundle is always JSON)."),
) -> None:
    """A patient file as a FHIR R4 Bundle (JSON) that `check`, `why` and `why-not` read back.

    Written through the policy folder's FHIR mapping (policies/fhir_mapping.yaml): Patient,
    Coverage, the ServiceRequest, MedicationRequests for the planned drugs, Conditions with ICD-10-CM
    codes, MedicationStatements for drugs tried, Procedures for nerve blocks and spine surgery
    with their outcome, and Observations for the other facts."""
    from reasoner.fhir.mapping import load_mapping
    from reasoner.fhir.write import to_bundle

    loaded = _load(policies, as_json)
    try:
        p = load_patient(patient, loaded.vocab, loaded.folder)
        mapping = load_mapping(loaded.folder or policies_dir(), loaded.vocab)
    except InputError as error:
        _fail(error.problems, as_json, EXIT_INPUT)
    _emit_document(to_bundle(p.facts, loaded.vocab, mapping, p.id), out, as_json, "bundle", [patient])


@app.command("population")
def population_cmd(
    out: Path = typer.Option(..., "--out", readable=False, metavar="PATH", help="A new folder for a FHIR Bulk Data export, or a .jsonl / .parquet file of patient rows."),
    members: int = typer.Option(1_000, "--members", min=1, metavar="N", help="How many members."),
    distinct: Optional[int] = typer.Option(None, "--distinct", min=1, metavar="N", help="Patients generated (default 2,000); more members repeat them under new ids."),
    seed: int = typer.Option(0, "--seed", metavar="S", help="The same seed gives the same population."),
    policies: Optional[Path] = PoliciesOpt,
    as_json: bool = typer.Option(False, "--json", help="Errors as JSON."),
) -> None:
    """Write a synthetic population to try `batch` on: generated members (near each payer's
    coverage boundaries, and random), as a FHIR Bulk Data export (one NDJSON file per resource
    type, through the FHIR mapping) or as patient rows (JSONL, or Parquet in the vocabulary's own
    column types). Ids are m1, m2, ...; the same seed gives the same members."""
    from reasoner.io.population import write_population

    loaded = _load(policies, as_json)
    try:
        written = write_population(out, loaded, members, distinct, seed)
    except OutputError as error:  # (an InputError too: caught first)
        _fail(error.problems, as_json, EXIT_OUTPUT)
    except InputError as error:
        _fail(error.problems, as_json, EXIT_USAGE)
    render.console(stderr=True).print(f"{members:,} members written to {out} ({written})")


@app.command("diff")
def diff_cmd(
    payers: Optional[list[str]] = typer.Option(None, "--payers", metavar="IDS", help="Payers to compare: --payers A,B or repeated "
                                               "(default: all)."),
    service: Optional[str] = typer.Option(None, "--service", metavar="SERVICE", help="Only requests for this service (e.g. implant)."),
    indication: Optional[str] = typer.Option(None, "--indication", metavar="INDICATION", help="Only requests for this indication."),
    examples: int = typer.Option(500, "--examples", min=1, metavar="N", help="Patients to generate."),
    seed: int = typer.Option(0, "--seed", metavar="N", help="Seed: the same seed gives the same patients and classes."),
    exhaustive: bool = typer.Option(False, "--exhaustive", help="Also prove, with a solver over a finite abstraction "
                                    "of the vocabulary, which classes exist; report those the search missed."),
    lines: Optional[str] = typer.Option(None, "--lines", metavar="LINE", help="Only members of this line of business "
                                        "(e.g. commercial); without it, classes that turn on the line are listed as "
                                        "scope effects."),
    report: Optional[Path] = typer.Option(None, "--report", readable=False, metavar="FILE", help="Write the full report to FILE.md or FILE.html."),
    save_witnesses: Optional[Path] = typer.Option(None, "--save-witnesses", readable=False, metavar="DIR",
                                                  help="Write each class's witness as a patient file into DIR."),
    show: int = typer.Option(25, "--show", min=0, metavar="N", help="Classes to print in the terminal (the report has all)."),
    as_of: Optional[str] = typer.Option(None, "--as-of", metavar="DATE", help="Compare the versions in force on DATE "
                                        "(YYYY-MM-DD; default: each payer's current version). A payer named ID@DATE "
                                        "is read at its own date, e.g. --payers cam70141@2017-06-01,cam70141."),
    policies: Optional[Path] = PoliciesOpt,
    as_json: bool = JsonOpt,
) -> None:
    """Find patients on whom payers decide differently, grouped into classes by the rules and
    criteria responsible on each side, each with a minimal witness patient and citations.
    Policies are compared on what they say, not on when they apply: each side is one version
    (the current one, or the one in force at a date), read for requests dated in its period."""
    from reasoner.search import diff

    loaded = _load(policies, as_json)
    wanted = list(dict.fromkeys(name for value in payers or [] for name in value.split(",") if name))
    chosen, named = _sides(loaded, wanted or [p.id for p in loaded.program.current], as_of, as_json)
    _check_request(loaded, service, indication, as_json)
    known_lines = loaded.vocab.values_of("line_of_business")
    if lines is not None and lines not in known_lines:
        _fail([Problem("--lines", f"unknown line of business '{lines}'.{did_you_mean(lines, known_lines)} "
                                  f"Known: {', '.join(known_lines)}.")], as_json, EXIT_USAGE)
    if save_witnesses is not None and not save_witnesses.is_dir():
        _fail([Problem("--save-witnesses", f"'{save_witnesses}' is not a folder; create it first.")], as_json, EXIT_USAGE)
    if len(chosen) < 2:
        _fail([Problem("--payers", "name at least two payers to compare.")], as_json, EXIT_USAGE)
    if report is not None and report.suffix.lower() not in (".md", ".html"):
        _fail([Problem("--report", f"'{report}' must end in .md or .html.")], as_json, EXIT_USAGE)
    if report is not None and not report.resolve().parent.is_dir():
        _fail([Problem("--report", f"the folder of '{report}' does not exist; nothing was searched.")], as_json, EXIT_USAGE)
    err = render.console(stderr=True)
    if not as_json:
        for pid, name in named.items():
            err.print(f"{name}: compared as {pid} ({render.in_force(loaded.program.policy(pid).effective).lstrip('; ')})")
    with render.diff_progress(err) as progress:
        result = diff.search(loaded, chosen, service, indication, examples, seed, progress, lines)
        result.named = named
        if exhaustive:
            diff.complete(loaded, result, progress)
    themes = diff.themes(result)
    try:
        if report is not None:
            _write_report(report, result, themes, loaded.vocab)
            err.print(f"report written to {report}")
        if save_witnesses is not None:
            files = diff.witness_files(result, loaded.vocab)
            for name, patient in files.items():
                _write_text(save_witnesses / f"{name}.yaml", to_yaml(patient))
            err.print(f"{render.plural(len(files), 'witness', 'witnesses')} written to {save_witnesses}")
    except OutputError as error:
        _fail(error.problems, as_json, EXIT_OUTPUT)
    if as_json:
        print(json.dumps(diff.as_json(result), indent=2))
    else:
        out = render.console()
        for part in render.diff_summary(result, themes, limit=show):
            out.print(part)


def _sides(loaded: Loaded, names: list[str], as_of: Optional[str], as_json: bool) -> tuple[list[str], dict]:
    """The policy versions a diff compares (see diff.resolve), and how each side read as another
    version was named; unknown or undated names, and two names for one version, are usage errors."""
    from reasoner.search.diff import resolve

    day = _check_as_of(as_of, as_json)
    resolved = [(name, *resolve(loaded.program, name, day)) for name in names]
    problems = [Problem("--payers" if "@" in name or error.startswith("unknown") else "--as-of", error)
                for name, _, error in resolved if error]
    ids = [pid for _, pid, error in resolved if not error]
    twice = sorted({pid for pid in ids if ids.count(pid) > 1})
    problems += [Problem("--payers", f"two names given read the same version, '{pid}'.") for pid in twice]
    if problems:
        _fail(problems, as_json, EXIT_USAGE)
    named = {pid: name + (f" (--as-of {as_of})" if as_of and "@" not in name else "")
             for name, pid, _ in resolved if pid != name.partition("@")[0] or "@" in name}
    return ids, named


def _emit_document(document: dict, out: Optional[Path], as_json: bool, what: str, inputs=()) -> None:
    """A FHIR document as JSON: on standard output, or written whole to --out. An --out that is
    one of the inputs, or in no folder, is a usage error (exit 2, as for batch); a write that
    fails is exit 4."""
    from reasoner.io.output import check_target

    text = json.dumps(document, indent=2, ensure_ascii=False) + "\n"
    if out is None:
        sys.stdout.write(text)
        return
    try:
        check_target(out, [Path(p) for p in inputs if p is not None])
    except OutputError as error:
        _fail(error.problems, as_json, EXIT_USAGE)
    try:
        _write_text(out, text, inputs)
    except OutputError as error:
        _fail(error.problems, as_json, EXIT_OUTPUT)
    render.console(stderr=True).print(f"{what} written to {out}")


def _write_text(path: Path, text: str, inputs=()) -> None:
    from reasoner.io.output import atomic_output

    with atomic_output(path, [Path(p) for p in inputs if p is not None], binary=False) as handle:
        handle.write(text)


def _write_report(report: Path, result, themes, vocab=None) -> None:
    """The full report as Markdown, or as the web workbench's disagreements page saved as one
    self-contained HTML file (headings, classes table, heatmap, witnesses; works offline)."""
    if report.suffix.lower() == ".md":
        _write_text(report, render.diff_markdown(result, themes))
        return
    from reasoner.web.report import diff_report_html

    _write_text(report, diff_report_html(result, themes, vocab))


@app.command("policies")
def policies_cmd(policies: Optional[Path] = PoliciesOpt, as_json: bool = JsonOpt) -> None:
    """List the loaded policies, their documents, lines of business and what they cover."""
    loaded = _load(policies, as_json)
    if as_json:
        print(json.dumps({"schema": "reasoner.policies/1", "policies": [
            {"id": p.id, "payer": p.payer, "document": p.document, "title": p.title, "version": p.version,
             "effective": period_json(p.effective),
             "lines": list(p.lines), "source": p.source, "extends": p.extends,
             "current": loaded.program.is_current(p.id), "superseded_by": p.superseded_by,
             "versions": [v.id for v in loaded.program.versions(p.id)],
             "changes": dataclasses.asdict(p.changes) if p.changes else None,
             "rules": [{"name": r.name, "label": r.label, "decision": r.outcome.kind, "subkind": r.outcome.subkind,
                        "citation": str(r.cite)} for r in p.rules]}
            for p in loaded.program.policies]}, indent=2))
    else:
        render.console().print(render.policies_table(loaded.program))


def _stop(signum, frame) -> None:
    """Ctrl-C and SIGTERM end a run the same way: cleanup runs and partial output files are removed.

    Libraries on the stack (the solver, the Datalog engine) may catch the KeyboardInterrupt and go
    on; a watchdog then ends the process 1.5 s later with the same exit code. Outputs are written to
    partial files renamed only when complete, so ending there leaves nothing that looks finished."""
    _signals.append(signum)
    if len(_signals) == 1:
        def _exit():
            sys.stderr.write("interrupted; no partial output was left.\n")
            sys.stderr.flush()
            os._exit(128 + signum)
        watchdog = threading.Timer(1.5, _exit)
        watchdog.daemon = True
        watchdog.start()
    raise KeyboardInterrupt


_signals: list[int] = []


def _unraisable(unraisable) -> None:
    """An interruption that lands in a callback Python cannot raise from (a garbage-collection hook)
    is not an error to report: the watchdog above ends the run."""
    if not issubclass(unraisable.exc_type, KeyboardInterrupt):
        sys.__unraisablehook__(unraisable)


app.command("serve")(serve)  # the workbench: reasoner/web, over the same library as these commands


def main() -> None:
    """Console entry point; click's usage errors already exit with 2, an interruption with 128 + the
    signal's number (130 for Ctrl-C, 143 for SIGTERM)."""
    signal.signal(signal.SIGTERM, _stop)
    signal.signal(signal.SIGINT, _stop)
    sys.unraisablehook = _unraisable
    try:
        app()
    except BrokenPipeError:  # e.g. `reasoner policies | head`, closed outside click's own handler
        _exit_pipe_closed()
    except SystemExit as done:
        if _pipe_closed(done):
            _exit_pipe_closed()
        if done.code == EXIT_INTERRUPTED or _signals:  # typer turns KeyboardInterrupt into exit 130
            print("interrupted; no partial output was left.", file=sys.stderr)
            sys.exit(128 + _signals[-1] if _signals else EXIT_INTERRUPTED)
        raise
    except OSError as err:  # a path the system refuses (a name too long, /proc, /sys): said plainly
        if _signals:
            sys.exit(128 + _signals[-1])
        name = f"{err.filename}: " if err.filename else ""
        print(f"{name}error: {err.strerror or err}; nothing was written.", file=sys.stderr)
        sys.exit(EXIT_OUTPUT if err.errno in (errno.EACCES, errno.EROFS, errno.ENOSPC) else EXIT_INPUT)
    except Exception:
        # a library that caught the interruption may raise something else in its place (DuckDB
        # wraps it in the error of whatever it was doing): after a signal, any failure is that signal
        if _signals:
            print("interrupted; no partial output was left.", file=sys.stderr)
            sys.exit(128 + _signals[-1])
        raise


if __name__ == "__main__":
    main()
