"""Loading a policy folder: the vocabulary, then every policy, checked together.

All or nothing: if any file has an error, nothing is returned and every problem is reported.
"""
from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, replace
from pathlib import Path

from reasoner.language import ir
from reasoner.language import syntax as s
from reasoner.language.check import check_policy
from reasoner.language.family import Changes, extend
from reasoner.errors import PolicyError, Problem, did_you_mean
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
    """Check every file and collect every problem; never raises for bad input. A policy that
    extends another is checked as the flat policy its family makes (the parent is read from the
    same folder), and a note says what it changes."""
    try:
        vocab = load_vocabulary(vocab_path, vocabulary_files(vocab_path))
    except PolicyError as err:
        return None, [], list(err.problems)
    problems: list[Problem] = []
    policies: list[ir.Policy] = []
    seen: dict[str, str] = {}
    headers: dict[str, dict] = {}  # policy id -> where its header and each header field are
    family = _Family()
    for path in files:
        tree = family.parse(Path(path), problems)
        if tree is None:
            continue
        flat, changes = family.flatten(tree, Path(path), problems)
        policy, found = check_policy(flat, vocab)
        policy = replace(policy, changes=changes)
        problems += found
        pid = tree.header.policy_id
        if pid in seen:
            problems.append(Problem(str(tree.header.span), f"policy id '{pid}' is already used by {seen[pid]}."))
        seen[pid] = str(path)
        if Path(path).stem != pid:
            problems.append(Problem(str(tree.header.span), f"policy '{pid}' is in a file named '{Path(path).name}'; name it '{pid}.policy'.", "warning"))
        if changes is not None:
            problems.append(Problem(str(tree.header.span), f"policy '{pid}' {changes.summary()}", "note"))
        policies.append(policy)
        headers[pid] = {"policy": str(tree.header.span), "folder": Path(path).parent,
                        **{f.key: str(f.span) for f in tree.header.fields}}
    return vocab, policies, problems + _versions(policies, headers)


def _versions(policies: list[ir.Policy], headers: dict[str, dict]) -> list[Problem]:
    """An earlier version names a policy of the same payer and document as the one that superseded
    it; every version states an effective period, the periods neither overlap nor leave a gap
    (a warning), and the current version's comes last: a request's date picks exactly one."""
    program, problems = ir.Program(tuple(policies)), []
    ids = {p.id: p for p in policies}
    for p in policies:
        if p.superseded_by is not None:
            problems += _superseding(p, ids, headers)
    for current in program.current:
        versions = program.versions(current.id)
        if len(versions) > 1:
            problems += _periods(current, versions, headers)
    return problems


def _superseding(p: ir.Policy, ids: dict[str, ir.Policy], headers: dict[str, dict]) -> list[Problem]:
    """What is wrong with one `superseded by`. Linting one file alone, the later version is read
    from beside it only by name: a `NAME.policy` there is taken as loaded elsewhere."""
    where, later = headers[p.id].get("superseded_by", headers[p.id]["policy"]), ids.get(p.superseded_by)
    if p.superseded_by == p.id:
        return [Problem(where, f"'{p.id}' is superseded by itself; name the later version of {p.document}.")]
    if later is None:
        if (headers[p.id]["folder"] / f"{p.superseded_by}.policy").is_file():
            return []
        return [Problem(where, f"'{p.id}' is superseded by '{p.superseded_by}', which is not loaded."
                               f"{did_you_mean(p.superseded_by, [i for i in ids if i != p.id])}")]
    if (later.payer, later.document) != (p.payer, p.document):
        return [Problem(where, f"'{p.id}' ({p.payer}, {p.document}) is superseded by '{later.id}' ({later.payer}, "
                               f"{later.document}): versions are of one payer's document, so both need the same "
                               "'payer' and 'document' number.")]
    if _returns(ids, p.id):
        return [Problem(where, f"the 'superseded by' chain of '{p.id}' comes back to it.")]
    return []


def _periods(current: ir.Policy, versions, headers: dict[str, dict]) -> list[Problem]:
    """The periods of one document's versions, earliest first: each stated, none overlapping,
    no gap between them, the current one last."""
    problems, names = [], ", ".join(v.id for v in versions)
    where = lambda v: headers[v.id].get("effective", headers[v.id]["policy"])  # noqa: E731
    for v in versions:
        if "effective" not in headers[v.id]:
            problems.append(Problem(headers[v.id]["policy"], f"policies {names} are versions of {v.document}; '{v.id}' "
                                                             "needs an 'effective' period so that a request's date selects one of them."))
    dated = [v for v in versions if v.effective != (None, None)]
    for a, b in zip(dated, dated[1:]):
        if a.effective[1] is None or b.effective[0] is None or a.effective[1] >= b.effective[0]:
            problems.append(Problem(where(a), f"the periods of '{a.id}' and '{b.id}' (versions of {a.document}) "
                                              f"overlap; end '{a.id}' the day before '{b.id}' starts."))
        elif (b.effective[0] - a.effective[1]).days > 1:
            problems.append(Problem(where(a), f"no version of {a.document} is in force from {a.effective[1] + dt.timedelta(days=1)} "
                                              f"to {b.effective[0] - dt.timedelta(days=1)} (between '{a.id}' and '{b.id}'); "
                                              f"a request dated then is decided by '{a.id}' as outside its period.", "warning"))
    if dated and dated[-1].id != current.id:
        problems.append(Problem(where(dated[-1]), f"'{dated[-1].id}' starts after '{current.id}', the current version of "
                                                  f"{current.document} (the end of its 'superseded by' chain); an earlier "
                                                  "version's period must come before the current one's."))
    for v in versions:
        if v.id != current.id:
            problems.append(Problem(headers[v.id]["policy"], f"policy '{v.id}' is an earlier version of '{current.id}'; "
                                                             "a request dated in its period is decided by it.", "note"))
    return problems


def _returns(ids: dict[str, ir.Policy], pid: str) -> bool:
    """Whether following `superseded by` from `pid` comes back to it."""
    seen, current = set(), ids[pid].superseded_by
    while current in ids and current not in seen:
        if current == pid:
            return True
        seen.add(current)
        current = ids[current].superseded_by
    return False


class _Family:
    """Parsed policy files by path, and the flat form of each child (its parents first). Each is
    worked out once, with the problems found on the way, and those problems are reported to
    every caller: a parent read first for its child still has its own errors shown when it is
    linted itself."""

    def __init__(self) -> None:
        self.trees: dict[Path, tuple[s.PolicyFile | None, list[Problem]]] = {}
        self.flat: dict[Path, tuple[s.PolicyFile, Changes | None, list[Problem]]] = {}

    def parse(self, path: Path, problems: list[Problem]) -> s.PolicyFile | None:
        if path not in self.trees:
            found: list[Problem] = []
            try:
                tree = parse_file(path)
            except PolicyError as err:
                found += err.problems
                tree = None
            if tree is not None and not isinstance(tree, s.PolicyFile):
                found.append(Problem(f"{path}:1:1", "expected a policy file (starting with 'policy').", "error"))
                tree = None
            self.trees[path] = (tree, found)
        tree, found = self.trees[path]
        problems += found
        return tree

    def flatten(self, tree: s.PolicyFile, path: Path, problems: list[Problem],
                chain: tuple[str, ...] = ()) -> tuple[s.PolicyFile, Changes | None]:
        if path not in self.flat:
            self.flat[path] = self._flatten(tree, path, chain)
        flat, changes, found = self.flat[path]
        problems += found
        return flat, changes

    def _flatten(self, tree: s.PolicyFile, path: Path, chain: tuple[str, ...]):
        parent_id = tree.header.extends
        problems: list[Problem] = []
        if parent_id is None:
            for item in tree.inherits + tree.removes:
                problems.append(Problem(str(item.span), f"'{'inherit' if isinstance(item, s.Inherit) else 'remove'} "
                                                        f"{item.name}' is only for a policy that extends another "
                                                        f"(policy {tree.header.policy_id} extends PARENT {{ ... }})."))
            return tree, None, problems
        parent_path = path.parent / f"{parent_id}.policy"
        if parent_id in chain + (tree.header.policy_id,):
            problems.append(Problem(str(tree.header.span), f"policies extend each other in a cycle "
                                                           f"({' -> '.join(chain + (tree.header.policy_id, parent_id))})."))
            return tree, None, problems
        if not parent_path.is_file():
            problems.append(Problem(str(tree.header.span), f"policy '{tree.header.policy_id}' extends '{parent_id}', "
                                                           f"but there is no {parent_path.name} beside it."))
            return tree, None, problems
        parent = self.parse(parent_path, [])
        if parent is None:
            problems.append(Problem(str(tree.header.span), f"the parent policy {parent_path} has errors; "
                                                           "fix it first (reasoner lint shows them)."))
            return tree, None, problems
        flat_parent, _ = self.flatten(parent, parent_path, [], chain + (tree.header.policy_id,))
        flat, changes, found = extend(tree, flat_parent)
        return flat, changes, problems + found


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
    return Loaded(vocab, ir.Program(tuple(policies)), tuple(p for p in problems if p.severity == "warning"), folder)
