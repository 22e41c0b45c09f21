"""Executable health-insurance coverage policies.

The pipeline, one stage per module, data flowing one way:

    policy text --parse--> syntax tree --check--> IR --datalog--> clauses --engine--> decisions
    (grammar/policy.lark)  (syntax.py)  (check.py, ir.py)  (datalog.py)  (engine.py)  (decide.py)
                                                                         --render--> tables (render.py)

`vocab.py` holds the shared patient vocabulary every policy is checked against; `patient.py`
validates patient files against it; `load.py` loads a whole policy folder, all or nothing.

Typical use:

    >>> from reasoner import load, Reasoner, load_patient
    >>> loaded = load()
    >>> patient = load_patient(examples_dir() / "nonmalignant_implant.yaml", loaded.vocab)
    >>> [(d.policy, d.kind) for d in Reasoner(loaded).decide(patient, ["geisinger"])]
    [('geisinger', 'covered')]
"""
from .decide import Decision, Reasoner
from .errors import InputError, PatientError, PolicyError, ReasonerError
from .load import Loaded, load
from .patient import Patient, load_patient, validate
from .paths import examples_dir, policies_dir

__all__ = [
    "Decision", "InputError", "Loaded", "Patient", "PatientError", "PolicyError", "Reasoner", "ReasonerError",
    "examples_dir", "load", "load_patient", "policies_dir", "validate",
]
