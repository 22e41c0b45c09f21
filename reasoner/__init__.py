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
from reasoner.results.decide import Decision, Reasoner
from reasoner.errors import InputError, PatientError, PolicyError, ReasonerError
from reasoner.language.load import Loaded, load
from reasoner.io.patient import Patient, load_patient, validate
from reasoner.paths import examples_dir, policies_dir

__all__ = [
    "Decision", "InputError", "Loaded", "Patient", "PatientError", "PolicyError", "Reasoner", "ReasonerError",
    "examples_dir", "load", "load_patient", "policies_dir", "validate",
]
