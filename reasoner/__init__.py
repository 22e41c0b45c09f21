"""Executable health-insurance coverage policies.

The pipeline, one stage per module, data flowing one way:

    policy text --parse--> syntax tree --check--> IR --compile--> Datalog / SQL / SMT --run--> decisions
    (grammar/policy.lark)   language/              engines/                             results/
                                               --explain--> why / why-not / repairs (results/)
                                               --render--> tables and trees (present/)

Folders name the layers; data flows one way through them (patients, read by io/patient.py, are the
input every later layer consumes):
- `language/`: syntax, parse, vocab (the shared patient vocabulary), check (names, types, units;
  lowering to the IR), ir, load (a whole policy folder, all or nothing);
- `engines/`: datalog + reference (pyDatalog, the reference semantics), sql + duck (the fast path),
  solver (z3, for exhaustive questions);
- `results/`: decide, explain, repair, matrix;
- `search/`: strategies (patients from the vocabulary), diff (disagreements), planted;
- `io/`: patient files and batch files at the edges; `present/`: rich rendering; `cli.py`: the shell.

Typical use:

    >>> from reasoner import load, Reasoner, load_patient
    >>> loaded = load()
    >>> patient = load_patient(examples_dir() / "nonmalignant_implant.yaml", loaded.vocab)
    >>> [(d.policy, d.kind) for d in Reasoner(loaded).decide(patient, ["geisinger"])]
    [('geisinger', 'covered')]
"""
import os as _os

# DuckDB's allocator (its own jemalloc, configured when duckdb is first imported, so this comes
# before any import that reaches duckdb) gives freed pages back to the system after about a second.
# Parsing JSON churns through a new arena every 2,048 rows: on a 1M-row JSONL batch about half a
# million pages came back as page faults, each a zeroed page (1-3 s of system time on 2 cores).
# Kept 30 s they are reused; the memory is the same peak, held a little longer. A user's own
# DUCKDB_JE_MALLOC_CONF wins. (benchmarks/bench_population.py measures the batch.)
_os.environ.setdefault("DUCKDB_JE_MALLOC_CONF", "dirty_decay_ms:30000")

from reasoner.results.decide import Decision, Reasoner
from reasoner.errors import InputError, PatientError, PolicyError, ReasonerError
from reasoner.language.load import Loaded, load
from reasoner.io.patient import Patient, load_patient, validate
from reasoner.paths import examples_dir, policies_dir

__all__ = [
    "Decision", "InputError", "Loaded", "Patient", "PatientError", "PolicyError", "Reasoner", "ReasonerError",
    "examples_dir", "load", "load_patient", "policies_dir", "validate",
]
