"""Loading a policy folder: the vocabulary, then every policy, checked together.

All or nothing: if any file has an error, nothing is returned and every problem is reported.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from reasoner.language import ir
from reasoner.language import syntax as s
from reasoner.language.check import check_policy
from reasoner.errors import PolicyError, Problem
from reasoner.language.parse import parse_file
from reasoner.paths import policies_dir
from reasoner.language.vocab import Vocabulary, load_vocabulary

VOCABULARY_FILE = "vocabulary.vocab"


@dataclass(frozen=True)
class Loaded:
    vocab: Vocabulary
    program: ir.Program
    warnings: tuple[Problem, ...]
    folder: Path | None = None  # where the vocabulary was read (its FHIR mapping lives beside it)


def policy_files(folder: Path) -> list[Path]:
    return sorted(folder.glob("*.policy"))


def vocabulary_files(vocab_path: Path) -> list[Path]:
    """Other vocabulary files beside the main one (e.g. knowledge tables), in name order."""
    return sorted(p for p in vocab_path.parent.glob("*.vocab") if p.name != vocab_path.name)


def lint(files: list[Path], vocab_path: Path) -> tuple[Vocabulary | None, list[ir.Policy], list[Problem]]:
    """Check every file and collect every problem; never raises for bad input."""
    try:
        vocab = load_vocabulary(vocab_path, vocabulary_files(vocab_path))
    except PolicyError as err:
        return None, [], list(err.problems)
    problems: list[Problem] = []
    policies: list[ir.Policy] = []
    seen: dict[str, str] = {}
    for path in files:
        try:
            tree = parse_file(path)
        except PolicyError as err:
            problems += err.problems
            continue
        if not isinstance(tree, s.PolicyFile):
            problems.append(Problem(f"{path}:1:1", "expected a policy file (starting with 'policy').", "error"))
            continue
        policy, found = check_policy(tree, vocab)
        problems += found
        pid = tree.header.policy_id
        if pid in seen:
            problems.append(Problem(str(tree.header.span), f"policy id '{pid}' is already used by {seen[pid]}."))
        seen[pid] = str(path)
        if Path(path).stem != pid:
            problems.append(Problem(str(tree.header.span), f"policy '{pid}' is in a file named '{Path(path).name}'; name it '{pid}.policy'.", "warning"))
        policies.append(policy)
    return vocab, policies, problems


def load(folder: Path | None = None, files: list[Path] | None = None) -> Loaded:
    """The checked program of a policy folder; raises PolicyError listing every error."""
    folder = Path(folder) if folder else policies_dir()
    vocab_path = folder / VOCABULARY_FILE
    if not vocab_path.exists():
        raise PolicyError([Problem(str(folder), f"no {VOCABULARY_FILE} in this folder; every policy folder needs the shared vocabulary.")])
    files = files if files is not None else policy_files(folder)
    if not files:
        raise PolicyError([Problem(str(folder), "no *.policy files found.")])
    vocab, policies, problems = lint(files, vocab_path)
    errors = [p for p in problems if p.severity == "error"]
    if errors:
        raise PolicyError(errors)
    return Loaded(vocab, ir.Program(tuple(policies)), tuple(problems), folder)
