"""The IR compiled to one set-at-a-time SQL query: the fast backend.

Patients are rows of a wide table with one column per concept (a set concept becomes one boolean
column per value the policies can ask about, plus a "documented" flag). Every IR node becomes a
boolean column computed from columns of earlier layers, so a whole program is one query with a
CTE per layer of the criteria tree: no joins, no aggregates, one pass over the patients.

The generated SQL uses only CASE, COALESCE, AND/OR/NOT, comparisons, IN lists, CAST to INTEGER
and concat_ws, all of which Spark SQL runs unchanged; everything DuckDB-specific (connecting,
registering data, reading files) lives in `reasoner/engines/duck.py`. Column names are generated
(`c0`, `n12`), and every literal comes from the checked IR (vocabulary values, policy numbers),
so no text from a patient file ever becomes SQL; patient values travel as data.

Semantics follow `reasoner/engines/datalog.py` exactly (a missing fact makes a positive test false, the
first rule in file order that fires decides); differential tests hold the two backends equal.
"""
from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

from reasoner.language import ir
from reasoner.language.ir import criteria_of
from reasoner.language.vocab import Vocabulary

DOCUMENTED = None  # the member "value" of a set concept's documented flag


@dataclass(frozen=True)
class Column:
    name: str
    sql_type: str  # BOOLEAN | DOUBLE | VARCHAR
    concept: str
    member: str | None = None  # set/codes concepts: the value this flag stands for (None: documented)


@dataclass(frozen=True)
class Layout:
    """The wide patient table: which column holds what."""

    columns: tuple[Column, ...]

    def column(self, concept: str, member: str | None = None) -> str:
        return self._index()[(concept, member)]

    def _index(self) -> dict:
        return {(c.concept, c.member): c.name for c in self.columns}

    def row(self, facts: dict, vocab: Vocabulary) -> tuple:
        """One validated patient's facts as a row of this table."""
        out = []
        for col in self.columns:
            value = facts.get(col.concept)
            kind = vocab.concepts[col.concept].kind
            if kind in ("set", "codes"):
                out.append(bool(value) if col.member is None else col.member in (value or ()))
            elif kind == "date":
                out.append(None if value is None else float(value.toordinal()))
            elif kind == "number":
                out.append(None if value is None else float(value))
            else:
                out.append(value)
        return tuple(out)


def _members(program: ir.Program, concept: str) -> list[str]:
    found = []
    for policy in program.policies:
        for rule in policy.rules:
            for top in ir.rule_nodes(rule):
                for node in ir.walk(top):
                    values = getattr(node.test, "values", ())
                    if getattr(node.test, "concept", None) == concept:
                        found += [v for v in values if v not in found]
    return found


def layout(program: ir.Program, vocab: Vocabulary) -> Layout:
    columns: list[Column] = []
    types = {"boolean": "BOOLEAN", "number": "DOUBLE", "date": "DOUBLE", "enum": "VARCHAR"}
    for i, (name, c) in enumerate(vocab.concepts.items()):
        if c.kind in types:
            columns.append(Column(f"c{i}", types[c.kind], name))
            continue
        members = list(vocab.values_of(name)) if c.kind == "set" else _members(program, name)
        columns.append(Column(f"c{i}_any", "BOOLEAN", name, DOCUMENTED))
        columns += [Column(f"c{i}_{k}", "BOOLEAN", name, m) for k, m in enumerate(members)]
    return Layout(tuple(columns))


def literal(value) -> str:
    if isinstance(value, bool):
        return "TRUE" if value else "FALSE"
    if isinstance(value, (int, float, Decimal)):
        return repr(float(value))
    return "'" + str(value).replace("'", "''") + "'"


def chain(op: str, terms: list[str]) -> str:
    """`a op b op c ...` as a balanced tree of parentheses: a flat chain of a thousand terms nests a
    thousand deep in the parser (DuckDB refuses past 1000), a balanced one only ten.

    >>> chain("AND", ["a", "b", "c"])
    '(a AND (b AND c))'
    """
    if len(terms) == 1:
        return terms[0]
    middle = len(terms) // 2
    return f"({chain(op, terms[:middle])} {op} {chain(op, terms[middle:])})"


def _count(flags: list[str]) -> str:
    return chain("+", [f"CAST({f} AS INTEGER)" for f in flags]) if flags else "0"


class _Compiler:
    def __init__(self, program: ir.Program, vocab: Vocabulary, table: Layout):
        self.vocab, self.table = vocab, table
        self.node_col: dict[str, str] = {}
        self.depth: dict[str, int] = {}
        self.expr: dict[str, str] = {}
        self.uses: dict[str, set[str]] = {}  # node id -> the columns its expression reads
        self._used: set[str] = set()
        for policy in program.policies:
            for rule in policy.rules:
                for top in ir.rule_nodes(rule):
                    self.node(top)

    def node(self, node: ir.Node) -> str:
        if node.id not in self.node_col:
            kids = ir.children(node)
            for kid in kids:
                self.node(kid)
            self.node_col[node.id] = f"n{len(self.node_col)}"
            self.depth[node.id] = 1 + max((self.depth[k.id] for k in kids), default=0)
            self._used = {self.node_col[k.id] for k in kids}
            self.expr[node.id] = self.test(node.test)
            self.uses[node.id] = self._used
        return self.node_col[node.id]

    def _column(self, concept: str, member=None) -> str:
        name = self.table.column(concept, member)
        self._used.add(name)
        return name

    def _flags(self, concept: str, values) -> list[str]:
        return [self._column(concept, v) for v in values]

    def test(self, test: ir.Test) -> str:
        kind = self.vocab.concepts[test.concept].kind if isinstance(test, ir.LEAVES) else None
        match test:
            case ir.IsTrue(concept):
                return f"COALESCE({self._column(concept)}, FALSE)"
            case ir.Compare(concept, op, value, _):
                op = "=" if op == "==" else op
                return f"COALESCE({self._column(concept)} {op} {literal(value)}, FALSE)"
            case ir.OneOf(concept, values) if kind == "enum":
                return f"COALESCE({self._column(concept)} IN ({', '.join(map(literal, values))}), FALSE)"
            case ir.OneOf(concept, values):
                return chain("OR", self._flags(concept, values)) if values else "FALSE"
            case ir.HasAll(concept, values):
                return chain("AND", self._flags(concept, values)) if values else "TRUE"
            case ir.CountAtLeast(concept, values, n):
                return f"({_count(self._flags(concept, values))} >= {n})"
            case ir.Documented(concept) if kind in ("set", "codes"):
                return self._column(concept, DOCUMENTED)
            case ir.Documented(concept):
                return f"({self._column(concept)} IS NOT NULL)"
            case ir.All(children):
                return chain("AND", [self.node_col[c.id] for c in children]) if children else "TRUE"
            case ir.Any(children):
                return chain("OR", [self.node_col[c.id] for c in children]) if children else "FALSE"
            case ir.AtLeast(n, children):
                return f"({_count([self.node_col[c.id] for c in children])} >= {n})"
            case ir.Not(child):
                return f"(NOT {self.node_col[child.id]})"
        raise AssertionError(test)

    def layers(self, source: str, final: set[str]) -> list[str]:
        """One CTE per depth: each adds the node columns whose children are already there, and
        carries on only the columns a later layer or the final SELECT (`final`) still reads:
        carrying every column through every layer made planning, not deciding, the cost of a
        chunk (a second per query at 1,400 nodes)."""
        depth = max(self.depth.values(), default=0)
        last: dict[str, int] = {name: depth + 1 for name in final}  # column -> last layer that reads it
        for n, used in self.uses.items():
            for name in used:
                last[name] = max(last.get(name, 0), self.depth[n])
        nodes = set(self.node_col.values())
        ctes, previous = [], source
        have = sorted(name for name in last if name not in nodes)  # the source's columns still read
        for d in range(1, depth + 1):
            new = [n for n in self.node_col if self.depth[n] == d]
            kept = [name for name in have if last.get(name, 0) > d]
            cols = kept + [f"{self.expr[n]} AS {self.node_col[n]}" for n in new]
            ctes.append(f"layer{d} AS (SELECT {', '.join(cols)} FROM {previous})")
            have = kept + [self.node_col[n] for n in new]
            previous = f"layer{d}"
        return ctes


def _fires(c: _Compiler, rule: ir.Rule) -> str:
    parts = [c.node_col[n.id] for n in rule.scope + rule.conditions]
    parts += [f"NOT {c.node_col[n.id]}" for n in rule.exceptions]
    return chain("AND", parts) if parts else "TRUE"


def _scope(c: _Compiler, rule: ir.Rule) -> str:
    return chain("AND", [c.node_col[n.id] for n in rule.scope]) if rule.scope else "TRUE"


def _policy_columns(c: _Compiler, policy: ir.Policy, fires: dict[int, str], scopes: dict[int, str]) -> list[str]:
    """The deciding rule, its decision kind, and (unless covered) the failing criteria of every
    covered rule whose scope the request is in: failing conditions and exceptions that hold.
    `fires` and `scopes` name each rule's columns of the rules layer (by the rule's id())."""
    cases = " ".join(f"WHEN {fires[id(r)]} THEN {literal(r.name)}" for r in policy.rules)
    kinds = " ".join(f"WHEN {fires[id(r)]} THEN {literal(r.outcome.kind)}" for r in policy.rules)
    failing, in_scope = [], []
    for rule in (r for r in policy.rules if r.outcome.kind == "covered"):
        scope = scopes[id(rule)]
        in_scope.append(scope)
        failing += [f"CASE WHEN {scope} AND NOT {c.node_col[x.id]} THEN {literal(x.id)} END"
                    for n in rule.conditions for x in criteria_of(n)]
        failing += [f"CASE WHEN {scope} AND {c.node_col[n.id]} THEN {literal(n.id)} END" for n in rule.exceptions]
    joined = f"concat_ws(';', {', '.join(failing)})" if failing else "''"
    # a row in no covered rule's scope has no failing criterion: its many CASEs are not evaluated
    unscoped = f"NOT ({chain('OR', in_scope)})" if in_scope else "TRUE"
    return [f"CASE {cases} END AS {policy.id}__rule",
            f"CASE {kinds} ELSE 'not_addressed' END AS {policy.id}__decision",
            f"CASE WHEN (CASE {kinds} END) = 'covered' OR {unscoped} THEN '' ELSE {joined} END AS {policy.id}__failing"]


def _version_column(program: ir.Program, table: Layout, current: ir.Policy) -> str:
    """<id>__version: which version of a current policy decides the row, by its request date
    (`ir.Program.selection`, the same clauses the reference backend follows)."""
    day = table.column("request_date")
    cases = []
    for lo, hi, pid in program.selection(current.id):
        bounds = ([f"{day} >= {float(lo.toordinal())}"] if lo else []) + ([f"{day} <= {float(hi.toordinal())}"] if hi else [])
        cases.append(f"WHEN {chain('AND', bounds) if bounds else 'TRUE'} THEN {literal(pid)}")
    return f"CASE WHEN {day} IS NULL THEN {literal(current.id)} {' '.join(cases)} END AS {current.id}__version"


def versioned(program: ir.Program) -> list[ir.Policy]:
    """The current policies that have earlier versions (each gets a <id>__version column)."""
    return [p for p in program.current if len(program.versions(p.id)) > 1]


def compile_query(program: ir.Program, vocab: Vocabulary, table: Layout, source: str = "patients",
                  keep: tuple[str, ...] = ()) -> str:
    """SELECT pid, the `keep` columns of `source` (e.g. the row's id) and, per policy, <id>__rule,
    <id>__decision, <id>__failing from `source`; per current policy with earlier versions, the
    version that decides the row (<id>__version)."""
    c = _Compiler(program, vocab, table)
    rules = [r for p in program.policies for r in p.rules]
    fires = {id(r): f"r{i}" for i, r in enumerate(rules)}
    scopes = {id(r): f"s{i}" for i, r in enumerate(rules) if r.outcome.kind == "covered"}
    outputs = ["pid", *keep] + [col for p in program.policies for col in _policy_columns(c, p, fires, scopes)]
    outputs += [_version_column(program, table, p) for p in versioned(program)]
    read = {"pid", *keep} | ({table.column("request_date")} if versioned(program) else set())
    for rule in rules:  # what the final SELECT reads besides the rules layer: the criteria it names
        read |= {c.node_col[x.id] for n in rule.conditions for x in criteria_of(n)} | {c.node_col[n.id] for n in rule.exceptions}
    final = read | {c.node_col[n.id] for r in rules for n in r.scope + r.conditions + r.exceptions}
    ctes = c.layers(source, final)
    flags = [f"{_fires(c, r)} AS {fires[id(r)]}" for r in rules] + [f"{_scope(c, r)} AS {scopes[id(r)]}" for r in rules if id(r) in scopes]
    ctes.append(f"rules AS (SELECT {', '.join(sorted(read) + flags)} FROM layer{max(c.depth.values())})")
    return "WITH " + ",\n".join(ctes) + f"\nSELECT {', '.join(outputs)} FROM rules"
