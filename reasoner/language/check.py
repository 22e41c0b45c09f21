"""Syntax tree to IR: every name resolved against the vocabulary, every type and unit checked.

Checking and lowering are one walk, so the rules of resolution live in one place. Problems are
collected, not raised one at a time, so `reasoner lint` can show them all; the loader refuses a
program with any error, so nothing half-checked ever reaches an engine.
"""
from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass, field, replace
from decimal import Decimal

from reasoner.language import ir
from reasoner.language import syntax as s
from reasoner.errors import Problem, did_you_mean
from reasoner.language.vocab import REQUEST_KINDS, UNITS, Vocabulary, canonical_unit, convert, exact_problem

SCOPE_CONCEPTS = {"service": "service", "indication": "indications", "lines": "line_of_business"}

DECISIONS = {
    "covered": (None,),
    "denied": ("not_medically_necessary", "investigational", "excluded"),
    "review": ("case_by_case", "external"),
    "not_addressed": (None, "outside_policy", "referral"),
}
NEEDS_DETAIL = {"external": "the criteria it defers to, e.g. review external \"InterQual ...\"",
                "referral": "the policy that decides instead, e.g. not_addressed referral \"policy #314 (headache)\"",
                "outside_policy": "why the request is outside the policy, e.g. not_addressed outside_policy \"standard of care\""}
CODE = re.compile(r"^[A-Z0-9][A-Z0-9.]{1,9}$")
_OPS = {"<": "<", "<=": "≤", "==": "=", ">=": "≥", ">": ">"}


def _article(word: str) -> str:
    return "an" if word[:1] in "aeiou" else "a"


def describe(test: ir.Test) -> str:
    """A short reading of a test, used where the policy file gives no label."""
    match test:
        case ir.IsTrue(concept):
            return concept
        case ir.Compare(concept, op, value, "date"):
            return f"{concept} {_OPS[op]} {dt.date.fromordinal(int(value)).isoformat()}"
        case ir.Compare(concept, op, value, unit):
            return f"{concept} {_OPS[op]} {value.normalize():f} {unit}"
        case ir.OneOf(concept, values):
            return f"{concept} in {{{', '.join(values)}}}"
        case ir.HasAll(concept, values):
            return f"{concept} has all of {{{', '.join(values)}}}"
        case ir.CountAtLeast(concept, values, n):
            return f"at least {n} of {{{', '.join(values)}}} in {concept}"
        case ir.Documented(concept):
            return f"{concept} documented"
        case ir.All():
            return "all of"
        case ir.Any():
            return "any of"
        case ir.AtLeast(n):
            return f"at least {n} of"
        case ir.Not(child):
            return f"not: {child.label}"
    raise AssertionError(test)


@dataclass
class _Checker:
    """Resolves one policy file; `problems` collects everything wrong with it."""

    tree: s.PolicyFile
    vocab: Vocabulary
    problems: list[Problem] = field(default_factory=list)
    document: str = "?"
    used: set[str] = field(default_factory=set)
    defines: dict[str, s.Define] = field(default_factory=dict)
    define_nodes: dict[str, ir.Node] = field(default_factory=dict)
    codesets: dict[str, s.CodeSet] = field(default_factory=dict)
    resolving: list[str] = field(default_factory=list)
    body: str | None = None  # an inherited rule or criterion: the parent document its own cites name

    def error(self, span, message: str) -> None:
        self.problems.append(Problem(str(span), message))

    def warn(self, span, message: str) -> None:
        self.problems.append(Problem(str(span), message, "warning"))

    def cite(self, cite: s.Cite | None, span, what: str, document: str | None = None) -> ir.Citation:
        document = document or self.document
        if cite is None:
            self.error(span, f"{what} has no citation; add cite \"<section of {document}>\".")
            return ir.Citation(document, "?")
        if not cite.section.strip():
            self.error(cite.span, f"{what} has an empty citation.")
        return ir.Citation(document, cite.section)

    # ------------------------------------------------------------------ header
    def header(self) -> dict[str, s.HeaderField]:
        fields: dict[str, s.HeaderField] = {}
        for f in self.tree.header.fields:
            if f.key in fields:
                self.error(f.span, f"'{f.key}' is given twice in the policy header.")
            fields[f.key] = f
        for key in ("payer", "document", "version", "lines"):
            if key not in fields:
                self.error(self.tree.header.span, f"the policy header lacks '{key}'.")
        if "document" in fields:
            self.document = fields["document"].values[0]
        self.effective = self.period(fields["effective"]) if "effective" in fields else None
        if "lines" in fields:
            if fields["lines"].values:
                self.scope_values("lines", fields["lines"].values, fields["lines"].span)
            if fields["lines"].cite is None:
                self.error(fields["lines"].span, "'lines' has no citation; cite the section naming the lines of business.")
        return fields

    # ------------------------------------------------------------------ names
    def lines(self, fields: dict[str, s.HeaderField]) -> tuple[str, ...]:
        """The lines of business the policy applies to (`lines all`: every line of the vocabulary)."""
        if "lines" not in fields:
            return ()
        declared = fields["lines"].values
        return declared or tuple(self.vocab.domains.get(self.vocab.concepts["line_of_business"].domain, ())) \
            if "line_of_business" in self.vocab.concepts else declared

    def concept(self, name: str, span, kinds: tuple[str, ...], use: str):
        c = self.vocab.concepts.get(name)
        if c is None and name in self.vocab.records:
            record = self.vocab.records[name]
            example = record.concept(next(iter(self.vocab.domains[record.key_domain])), next(iter(record.fields)))
            self.error(span, f"'{name}' is a record; name one of its fields (e.g. {example}), "
                             f"or count its records with 'at_least N of {name} in {{...}} where ...'.")
            return None
        if c is None:
            known = list(self.vocab.concepts) + list(self.defines)
            self.error(span, f"unknown concept '{name}'.{did_you_mean(name, known)}")
            return None
        if c.kind not in kinds:
            self.error(span, f"'{name}' is {_article(c.kind)} {c.kind} concept; {use} needs a {' or '.join(kinds)} concept.")
            return None
        return c

    def domain_values(self, concept, values: tuple[str, ...], span) -> None:
        if concept.kind == "codes":
            for v in values:
                if not CODE.match(v):
                    self.error(span, f"{v!r} is not a {concept.system} code (capital letters and digits).")
            return
        known = self.vocab.domains[concept.domain]
        for v in values:
            if v not in known:
                self.error(span, f"'{v}' is not a value of {concept.domain} (for '{concept.name}').{did_you_mean(v, known)}")
        if len(set(values)) != len(values):
            self.error(span, f"a value is listed twice in {{{', '.join(values)}}}.")

    def scope_values(self, dimension: str, values: tuple[str, ...], span) -> None:
        name = SCOPE_CONCEPTS[dimension]
        concept = self.vocab.concepts.get(name)
        if concept is None:
            self.error(span, f"the vocabulary has no '{name}' concept for 'for {dimension}'.")
        elif concept.kind not in REQUEST_KINDS[name]:
            self.error(span, f"'for {dimension}' needs the vocabulary's '{name}' to be {' or '.join(REQUEST_KINDS[name])} "
                             f"of a domain, not {_article(concept.kind)} {concept.kind}.")
        else:
            self.domain_values(concept, values, span)

    # ------------------------------------------------------------------ criteria
    def node(self, expr: s.Expr, node_id: str, cite: ir.Citation, label: str | None) -> ir.Node:
        if isinstance(expr, s.NameRef) and expr.name in self.defines:
            return self.define_node(expr.name, expr.span)
        test = self.test(expr, node_id, cite)
        macro = _macro(expr)
        return ir.Node(node_id, label or macro or describe(test), cite, test, macro=macro)

    def item(self, item: s.Item, node_id: str, cite: ir.Citation) -> ir.Node:
        own = ir.Citation(self.body or self.document, item.cite) if item.cite else cite
        return self.node(item.expr, node_id, own, item.label)

    def repeated(self, op: str, items, kids: tuple[ir.Node, ...]) -> None:
        """A condition listed twice in one block: in at_least it would be counted twice (an error, as
        `at_least 2 of {a a}` reads as two conditions but is one); in all/any it adds nothing."""
        seen: dict[ir.Test, int] = {}
        for i, (item, kid) in enumerate(zip(items, kids), 1):
            if kid.test in seen:
                where = f"items {seen[kid.test]} and {i} of this '{op}' block are the same condition"
                if op == "at_least":
                    self.error(item.span, f"{where}; at_least would count it twice. List each condition once.")
                else:
                    self.warn(item.span, f"{where}; the second adds nothing.")
            seen.setdefault(kid.test, i)

    def test(self, expr: s.Expr, node_id: str, cite: ir.Citation) -> ir.Test:
        match expr:
            case s.Block(op, items, n, span):
                kids = tuple(self.item(it, f"{node_id}.{i}", cite) for i, it in enumerate(items, 1))
                self.repeated(op, items, kids)
                if op == "all":
                    return ir.All(kids)
                if op == "any":
                    return ir.Any(kids)
                if not 1 <= n <= len(items):
                    self.error(span, f"at_least {n} of {len(items)} items can never (or always) hold; use 1 to {len(items)}.")
                return ir.AtLeast(n, kids)
            case s.Not(child, _):
                return ir.Not(self.node(child, f"{node_id}.1", cite, None))
            case s.NameRef(name, span):
                self.concept(name, span, ("boolean",), "a bare name (meaning 'is true')")
                return ir.IsTrue(name)
            case s.Compare():
                return self.compare(expr)
            case s.Member(name, values, span):
                c = self.concept(name, span, ("enum", "set", "codes"), "'in { ... }'")
                if c:
                    self.domain_values(c, values, span)
                return ir.OneOf(name, values)
            case s.InNamed(name, named, span):
                return self.in_named(name, named, span)
            case s.CompareDate(name, op, day, span):
                self.concept(name, span, ("date",), "a comparison with a date")
                return ir.Compare(name, op, Decimal(day.toordinal()), "date")
            case s.IsFalse(name, span):
                self.concept(name, span, ("boolean",), "'is false'")
                doc = ir.Node(f"{node_id}.1", f"{name} documented", cite, ir.Documented(name))
                true = ir.Node(f"{node_id}.2.1", name, cite, ir.IsTrue(name))
                return ir.All((doc, ir.Node(f"{node_id}.2", f"not {name}", cite, ir.Not(true))))
            case s.Same():
                return self.same(expr, node_id, cite)
            case s.HasAll(name, values, span):
                c = self.concept(name, span, ("set", "codes"), "'has all { ... }'")
                if c:
                    self.domain_values(c, values, span)
                return ir.HasAll(name, values)
            case s.Count():
                return self.count(expr, node_id, cite)
            case s.Documented(name, span):
                self.concept(name, span, ("boolean", "number", "enum", "set", "codes", "date"), "'documented'")
                return ir.Documented(name)
            case s.RecordCount():
                return self.record_count(expr, node_id, cite)
            case s.EveryListed():
                return self.every_listed(expr, node_id, cite)
        raise AssertionError(expr)

    def in_named(self, name: str, named: str, span) -> ir.Test:
        """`x in NAME`: a code set of the policy (for a codes concept), or a subset of the vocabulary
        (for an enum or set concept of the subset's domain)."""
        c = self.concept(name, span, ("enum", "set", "codes"), "'in <named set>'")
        self.used.add(named)
        if c is not None and c.kind == "codes":
            if named not in self.codesets:
                self.error(span, f"unknown code set '{named}'.{did_you_mean(named, self.codesets)}")
                return ir.OneOf(name, ())
            return ir.OneOf(name, self.codesets[named].codes)
        if named not in self.vocab.subsets:
            self.error(span, f"unknown subset '{named}'.{did_you_mean(named, list(self.vocab.subsets) + list(self.codesets))}")
            return ir.OneOf(name, ())
        domain, values = self.vocab.subsets[named]
        if c is not None and c.domain != domain:
            self.error(span, f"subset '{named}' holds values of {domain}, but '{name}' takes values of {c.domain}.")
        return ir.OneOf(name, values)

    def same(self, expr: s.Same, node_id: str, cite: ir.Citation) -> ir.Test:
        """`a == b` for two concepts of one domain: the same value (enums), the same members (sets);
        lowered to tests on each value, so every engine and explanation reads it as usual."""
        a = self.concept(expr.left, expr.span, ("enum", "set"), "'=='")
        b = self.concept(expr.right, expr.span, ("enum", "set"), "'=='")
        if expr.op != "==":
            self.error(expr.span, f"'{expr.op}' compares numbers; two concepts can only be compared with '=='.")
        if a is None or b is None:
            return ir.All(())
        if (a.kind, a.domain) != (b.kind, b.domain):
            self.error(expr.span, f"'{a.name}' and '{b.name}' do not hold values of the same kind and domain.")
            return ir.All(())
        leaf = lambda concept, v, i, neg=False: ir.Node(  # noqa: E731
            f"{node_id}.{v}.{i}", f"{'not ' if neg else ''}{concept} in {{{v}}}", cite,
            ir.Not(ir.Node(f"{node_id}.{v}.{i}.1", f"{concept} in {{{v}}}", cite, ir.OneOf(concept, (v,))))
            if neg else ir.OneOf(concept, (v,)))
        values = self.vocab.domains[a.domain]
        if a.kind == "enum":
            return ir.Any(tuple(ir.Node(f"{node_id}.{v}", f"both are {v}", cite,
                                        ir.All((leaf(a.name, v, "a"), leaf(b.name, v, "b")))) for v in values))
        agree = []
        for v in values:
            both = ir.Node(f"{node_id}.{v}.in", f"both include {v}", cite, ir.All((leaf(a.name, v, "a"), leaf(b.name, v, "b"))))
            neither = ir.Node(f"{node_id}.{v}.out", f"neither includes {v}", cite,
                              ir.All((leaf(a.name, v, "na", True), leaf(b.name, v, "nb", True))))
            agree.append(ir.Node(f"{node_id}.{v}", f"{v}: in both or in neither", cite, ir.Any((both, neither))))
        documented = [ir.Node(f"{node_id}.doc.{i}", f"{c} documented", cite, ir.Documented(c))
                      for i, c in enumerate((a.name, b.name))]
        return ir.All(tuple(documented + agree))

    def record_count(self, expr: s.RecordCount, node_id: str, cite: ir.Citation) -> ir.Test:
        """`at_least N of REC in {keys} where E` / `every REC in {keys} where E`: E is read once per
        key with its bare names standing for that key's fields, then counted like an at_least block."""
        record = self.vocab.records.get(expr.record)
        if record is None:
            self.error(expr.span, f"unknown record '{expr.record}'.{did_you_mean(expr.record, self.vocab.records)}")
            return ir.All(())
        known = len(self.problems)
        keys = self.record_keys(record, expr.keys, expr.span)
        kids = []
        for key in keys:
            renamed = _rename(expr.where, {f: record.concept(key, f) for f in record.fields})
            if renamed is None:
                self.error(expr.span, "a record quantifier cannot contain another one.")
                return ir.All(())
            kids.append(self.node(renamed, f"{node_id}.{key}", cite, None))
        if expr.n is None:
            return ir.All(tuple(kids))
        if not 1 <= expr.n <= len(kids) and len(self.problems) == known:  # not again after a bad key
            self.error(expr.span, f"at_least {expr.n} of {len(kids)} records can never (or always) hold; use 1 to {len(kids)}.")
        return ir.AtLeast(expr.n, tuple(kids))

    def record_keys(self, record, keys, span) -> tuple[str, ...]:
        domain = self.vocab.domains[record.key_domain]
        if isinstance(keys, str):
            if keys not in self.vocab.subsets or self.vocab.subsets[keys][0] != record.key_domain:
                self.error(span, f"'{keys}' is not a subset of {record.key_domain}.")
                return ()
            return self.vocab.subsets[keys][1]
        for k in keys:
            if k not in domain:
                self.error(span, f"'{k}' is not a key of record '{record.name}' ({record.key_domain}).{did_you_mean(k, domain)}")
        if len(set(keys)) != len(keys):
            self.error(span, f"a key is listed twice in {{{', '.join(keys)}}}.")
        return tuple(k for k in keys if k in domain)

    def every_listed(self, expr: s.EveryListed, node_id: str, cite: ir.Citation) -> ir.Test:
        """`every S listed in T with col = concept, ...`: S is documented, and each value in S has a
        row of T whose bound columns hold the bound concepts' values. Lowered, per value v of S's
        domain, to "v is not in S, or some row for v matches", each row citing its own source."""
        c = self.concept(expr.concept, expr.span, ("set",), "'every ... listed in'")
        table = self.vocab.tables.get(expr.table)
        if table is None:
            self.error(expr.span, f"unknown table '{expr.table}'.{did_you_mean(expr.table, self.vocab.tables)}")
        if c is None or table is None:
            return ir.All(())
        keyed = [col for col, dom in table.columns.items() if dom == c.domain]
        if len(keyed) != 1:
            self.error(expr.span, f"table '{table.name}' needs exactly one column of {c.domain} to look '{c.name}' up.")
            return ir.All(())
        bound, fixed = [], {}
        for column, concept in expr.bindings:
            if column not in table.columns or column == keyed[0]:
                self.error(expr.span, f"'{column}' is not another column of table '{table.name}' "
                                      f"({', '.join(col for col in table.columns if col != keyed[0])}).")
                continue
            if concept not in self.vocab.concepts and concept in self.vocab.domains[table.columns[column]]:
                fixed[column] = concept  # a value, not a concept: rows are filtered now
                continue
            b = self.concept(concept, expr.span, ("enum", "set"), f"column '{column}'")
            if b is not None and b.domain != table.columns[column]:
                self.error(expr.span, f"'{concept}' takes values of {b.domain}, column '{column}' of {table.columns[column]}.")
                continue
            bound.append((column, concept))
        kids = [ir.Node(f"{node_id}.doc", f"{c.name} documented", cite, ir.Documented(c.name))]
        unlisted = []
        for value in self.vocab.domains[c.domain]:
            rows = [r for r in table.rows if r.values[keyed[0]] == value
                    and all(r.values[col] == v for col, v in fixed.items())]
            if not rows:
                unlisted.append(value)
            elif bound:
                kids.append(self._listed(c.name, value, rows, bound, table, f"{node_id}.{value}", cite))
        if unlisted:
            inner = ir.Node(f"{node_id}.none.1", f"{c.name} in {{{', '.join(unlisted)}}}", cite, ir.OneOf(c.name, tuple(unlisted)))
            kids.insert(1, ir.Node(f"{node_id}.none", f"no {c.name} value that {table.name} does not list", cite, ir.Not(inner)))
        return ir.All(tuple(kids))

    def _listed(self, concept: str, value: str, rows, bound, table, node_id: str, cite: ir.Citation) -> ir.Node:
        absent = ir.Node(f"{node_id}.out.1", f"{concept} in {{{value}}}", cite, ir.OneOf(concept, (value,)))
        options = []
        for i, row in enumerate(rows, 1):
            row_cite = ir.Citation(table.source, row.cite)
            tests = tuple(ir.Node(f"{node_id}.row{i}.{col}", f"{b} in {{{row.values[col]}}}", row_cite,
                                  ir.OneOf(b, (row.values[col],))) for col, b in bound)
            label = f"{table.name}: {', '.join(row.values.values())}"
            options.append(ir.Node(f"{node_id}.row{i}", label, row_cite, ir.All(tests)))
        return ir.Node(node_id, f"{value}: not in {concept}, or listed in {table.name} for the request", cite, ir.Any((
            ir.Node(f"{node_id}.out", f"{value} not in {concept}", cite, ir.Not(absent)),
            ir.Node(f"{node_id}.listed", f"{table.name} lists {value} for this request", cite, ir.Any(tuple(options))))))

    def compare(self, expr: s.Compare) -> ir.Test:
        c = self.concept(expr.concept, expr.span, ("number",), "a comparison")
        if c is None:
            return ir.Compare(expr.concept, expr.op, expr.value, "?")
        if expr.unit is None:
            self.error(expr.span, f"write the unit after {expr.value}: '{expr.concept}' is measured in {c.unit}.")
            return ir.Compare(c.name, expr.op, expr.value, c.unit)
        unit = canonical_unit(expr.unit)
        if unit not in UNITS:
            self.error(expr.span, f"unknown unit '{expr.unit}'.{did_you_mean(unit, UNITS)}")
            return ir.Compare(c.name, expr.op, expr.value, c.unit)
        problem = exact_problem(expr.value) if expr.value != 0 else None
        if problem:
            self.error(expr.span, f"the threshold {expr.value} {problem}.")
            return ir.Compare(c.name, expr.op, Decimal(0), c.unit)
        value = convert(expr.value, unit, c.unit)
        if value is None:
            self.error(expr.span, f"unit mismatch: '{c.name}' is measured in {c.unit}, which cannot be compared with {expr.unit}.")
            return ir.Compare(c.name, expr.op, expr.value, c.unit)
        if not c.low <= value <= c.high:
            self.error(expr.span, f"{expr.value} {expr.unit} is outside the range of '{c.name}' ({c.low} to {c.high} {c.unit}).")
        return ir.Compare(c.name, expr.op, value, c.unit)

    def count(self, expr: s.Count, node_id: str, cite: ir.Citation) -> ir.Test:
        """Counts become 'at least n' and its negation, which the engines evaluate without aggregates."""
        c = self.concept(expr.concept, expr.span, ("set", "codes"), "'count'")
        if c:
            self.domain_values(c, expr.values, expr.span)
        at_least = lambda n: ir.CountAtLeast(expr.concept, expr.values, n)  # noqa: E731
        bound = {">=": expr.n, ">": expr.n + 1, "<": expr.n, "<=": expr.n + 1}.get(expr.op)
        if expr.op == "==":
            low = ir.Node(f"{node_id}.1", describe(at_least(expr.n)), cite, at_least(expr.n))
            high = ir.Node(f"{node_id}.2", describe(at_least(expr.n + 1)), cite, at_least(expr.n + 1))
            return ir.All((low, ir.Node(f"{node_id}.3", f"not: {high.label}", cite, ir.Not(high))))
        if bound > len(expr.values):
            self.error(expr.span, f"a count over {len(expr.values)} values can never reach {bound}.")
        if expr.op in (">=", ">"):
            return at_least(bound)
        inner = ir.Node(f"{node_id}.1", describe(at_least(bound)), cite, at_least(bound))
        return ir.Not(inner)

    def define_node(self, name: str, span) -> ir.Node:
        """The shared node of a named criterion, built on first use; cycles are refused."""
        self.used.add(name)
        if name in self.define_nodes:
            return self.define_nodes[name]
        if name in self.resolving:
            cycle = " -> ".join(self.resolving[self.resolving.index(name):] + [name])
            self.error(span, f"named criteria refer to each other in a cycle ({cycle}); "
                             "a criterion cannot depend on itself (negation could not be stratified).")
            return ir.Node(f"{self.tree.header.policy_id}/{name}", name, ir.Citation(self.document, "?"), ir.All(()))
        d = self.defines[name]
        self.resolving.append(name)
        outer, self.body = self.body, d.origin
        cite = self.cite(d.cite, d.span, f"criterion '{name}'", d.origin)
        node_id = f"{self.tree.header.policy_id}/{name}"
        if isinstance(d.expr, s.NameRef) and d.expr.name in self.defines:  # an alias of another criterion
            test = ir.All((self.define_node(d.expr.name, d.expr.span),))
        else:
            test = self.test(d.expr, node_id, cite)
        node = ir.Node(node_id, d.label, cite, test, name, _macro(d.expr))
        self.resolving.pop()
        self.body = outer
        self.define_nodes[name] = node
        return node

    # ------------------------------------------------------------------ rules
    def outcome(self, rule: s.RuleDecl) -> ir.Outcome:
        if len(rule.decisions) != 1:
            self.error(rule.span, f"rule '{rule.name}' must have exactly one 'decide' (it has {len(rule.decisions)}).")
        if not rule.decisions:
            return ir.Outcome("not_addressed", None, None, None)
        d = rule.decisions[0]
        allowed = DECISIONS[d.kind]
        if d.subkind not in allowed:
            kinds = ", ".join(a for a in allowed if a) or "nothing"
            self.error(d.span, f"'{d.kind}' takes {kinds} after it, not '{d.subkind}'.{did_you_mean(d.subkind or '', [a for a in allowed if a])}")
        if d.subkind in NEEDS_DETAIL and not d.detail:
            self.error(d.span, f"'{d.kind} {d.subkind}' must say {NEEDS_DETAIL[d.subkind]}.")
        if d.kind in ("not_addressed",) and d.prior_auth:
            self.error(d.span, "a decision of not_addressed cannot carry a prior_auth flag.")
        return ir.Outcome(d.kind, d.subkind, d.detail, d.prior_auth)

    def rule(self, rule: s.RuleDecl, lines: tuple[str, ...]) -> ir.Rule:
        pid = self.tree.header.policy_id
        cite = self.cite(rule.cite, rule.span, f"rule '{rule.name}'")
        scope, dims = [], set()
        for i, sc in enumerate(rule.scopes, 1):
            if sc.dimension not in SCOPE_CONCEPTS:
                self.error(sc.span, f"'for {sc.dimension}' is not a scope; use for service, for indication or for lines.{did_you_mean(sc.dimension, SCOPE_CONCEPTS)}")
                continue
            if sc.dimension in dims:
                self.error(sc.span, f"'for {sc.dimension}' is given twice in rule '{rule.name}'.")
            dims.add(sc.dimension)
            self.scope_values(sc.dimension, sc.values, sc.span)
            if sc.dimension == "lines" and lines:
                for v in sc.values:
                    if v not in lines:
                        self.error(sc.span, f"line of business '{v}' is not among the policy's lines ({', '.join(lines)}).")
            test = ir.OneOf(SCOPE_CONCEPTS[sc.dimension], sc.values)
            scope.append(ir.Node(f"{pid}/{rule.name}/for{i}", describe(test), cite, test))
        self.body = rule.origin
        conds = tuple(self.item(it, f"{pid}/{rule.name}/if{i}", cite) for i, it in enumerate(rule.when, 1))
        excepts = tuple(self.item(it, f"{pid}/{rule.name}/unless{i}", cite) for i, it in enumerate(rule.unless, 1))
        self.body = None
        return ir.Rule(f"{pid}/{rule.name}", rule.name, rule.label, cite, tuple(scope), conds, excepts,
                       self.outcome(rule), str(rule.span))

    def lines_rule(self, lines: s.HeaderField, values: tuple[str, ...]) -> ir.Rule:
        """The implicit first rule: a line of business the policy does not list is outside its scope."""
        pid = self.tree.header.policy_id
        cite = ir.Citation(self.document, lines.cite.section if lines.cite else "?")
        documented = ir.Node(f"{pid}/outside_lines/if1", "line_of_business documented", cite, ir.Documented("line_of_business"))
        listed_test = ir.OneOf("line_of_business", values)
        listed = ir.Node(f"{pid}/outside_lines/if2.1", describe(listed_test), cite, listed_test)
        not_listed = ir.Node(f"{pid}/outside_lines/if2", "line of business not listed by the policy", cite, ir.Not(listed))
        return ir.Rule(f"{pid}/outside_lines", "outside_lines", "Line of business outside the policy's scope",
                       cite, (), (documented, not_listed), (), ir.Outcome("not_addressed", None, None, None),
                       str(lines.span))

    def period(self, field: s.HeaderField) -> tuple | None:
        """The header's effective period as dates (first day, last day or None); None when wrong."""
        *dates, _detail = field.values
        days = []
        for text in dates:
            try:
                days.append(dt.date.fromisoformat(text))
            except ValueError:
                self.error(field.span, f"{text} is not a date.")
                return None
        problems = len(self.problems)
        if len(days) == 2 and days[1] < days[0]:
            self.error(field.span, f"the effective period ends ({days[1]}) before it starts ({days[0]}).")
        if field.cite is None:
            self.error(field.span, "'effective' has no citation; cite where the document states its dates.")
        if "request_date" not in self.vocab.concepts:
            self.error(field.span, "'effective' needs the vocabulary's request_date concept (a date).")
        return (days[0], days[1] if len(days) == 2 else None) if len(self.problems) == problems else None

    def period_rule(self, field: s.HeaderField) -> ir.Rule:
        """The implicit first rule of a versioned policy: a request dated outside the version's
        period is not decided by it; the decision says so, with the document's own words on what
        applies instead when it gives them."""
        pid = self.tree.header.policy_id
        start, end = self.effective
        cite = ir.Citation(self.document, field.cite.section if field.cite else "?")
        bounds = [("<", start, "before"), (">", end, "after")]
        tests = [ir.Node(f"{pid}/outside_period/if2.{k}", f"dated {word} {day.isoformat()}", cite,
                         ir.Compare("request_date", op, Decimal(day.toordinal()), "date"))
                 for k, (op, day, word) in enumerate(((o, d, w) for o, d, w in bounds if d), 1)]
        documented = ir.Node(f"{pid}/outside_period/if1", "request_date documented", cite, ir.Documented("request_date"))
        outside = tests[0] if len(tests) == 1 else ir.Node(f"{pid}/outside_period/if2", "dated outside the period",
                                                           cite, ir.Any(tuple(tests)))
        span = f"{start.isoformat()}" + (f" to {end.isoformat()}" if end else " onward")
        detail = field.values[-1] or f"this version applies to requests dated {span}"
        return ir.Rule(f"{pid}/outside_period", "outside_period", "Request dated outside this version's period",
                       cite, (), (documented, outside), (), ir.Outcome("not_addressed", "outside_policy", detail, None),
                       str(field.span))

    def unreachable(self, rules: list[ir.Rule], decls: list[s.RuleDecl]) -> None:
        """Warn about a rule that an earlier unconditional rule with a wider scope always pre-empts.

        Only the distinct scopes of unconditional rules are kept, so this stays linear in the number
        of rules (`reasoner lint` also asks the solver, which finds every rule that can never decide)."""
        seen: dict[tuple, ir.Rule] = {}  # scope of an unconditional rule -> the first such rule
        for later, decl in zip(rules, decls):
            for scope, earlier in seen.items():
                if all(va is None or (vb is not None and set(vb) <= set(va))
                       for va, vb in zip(scope, _scope(later))):
                    self.warn(decl.span, f"rule '{later.name}' can never decide: the earlier rule '{earlier.name}' "
                                         "has no conditions and a scope that includes this one.")
                    break
            if not later.conditions and not later.exceptions:
                seen.setdefault(_scope(later), later)

    # ------------------------------------------------------------------ whole file
    def run(self) -> ir.Policy:
        fields = self.header()
        for cs in self.tree.codesets:
            if cs.name in self.codesets:
                self.error(cs.span, f"code set '{cs.name}' is declared twice.")
            self.codesets[cs.name] = cs
            self.cite(cs.cite, cs.span, f"code set '{cs.name}'", cs.origin)
            for code in cs.codes:
                if not CODE.match(code):
                    self.error(cs.span, f"{code!r} in code set '{cs.name}' is not a code (capital letters and digits).")
        for d in self.tree.defines:
            if d.name in self.defines:
                self.error(d.span, f"criterion '{d.name}' is defined twice.")
            if d.name in self.vocab.concepts:
                self.error(d.span, f"criterion '{d.name}' has the name of a vocabulary concept; rename it.")
            self.defines[d.name] = d
        lines = self.lines(fields)
        rules, seen = [], {}
        for r in self.tree.rules:
            if r.name in ("outside_lines", "outside_period"):
                self.error(r.span, f"'{r.name}' is reserved for an implicit rule of the policy header; rename the rule.")
            elif r.name in seen:
                self.error(r.span, f"rule '{r.name}' is declared twice (first at line {seen[r.name].span.line}).")
            seen.setdefault(r.name, r)
            rules.append(self.rule(r, lines))
        self.unreachable(rules, list(self.tree.rules))
        for d in self.tree.defines:  # an inherited criterion the child no longer uses is not dead text
            if d.name not in self.used:
                if d.origin is None:
                    self.warn(d.span, f"criterion '{d.name}' is defined but never used.")
                self.define_node(d.name, d.span)  # still check it
        for cs in self.tree.codesets:
            if cs.name not in self.used and cs.origin is None:
                self.warn(cs.span, f"code set '{cs.name}' is declared but never used.")
        if not rules:
            self.error(self.tree.span, "the policy has no rules.")
        get = lambda k, i=0: fields[k].values[i] if k in fields else "?"  # noqa: E731
        every_line = set(lines) >= set(self.lines({"lines": s.HeaderField("lines", (), None, self.tree.span)}))
        outside = (self.lines_rule(fields["lines"], lines),) if "lines" in fields and not every_line else ()
        if self.effective:
            outside = (self.period_rule(fields["effective"]),) + outside
        period = self.effective or (None, None)
        assumed = "lines" in fields and fields["lines"].assumed
        return ir.Policy(self.tree.header.policy_id, get("payer"), get("document"), get("document", 1),
                         get("version"), lines, outside + tuple(rules), self.tree.span.file, assumed, period,
                         self.tree.header.extends, superseded_by=get("superseded_by") if "superseded_by" in fields else None)


def _scope(rule: ir.Rule) -> tuple:
    return tuple(rule.scope_values(c) for c in SCOPE_CONCEPTS.values())


def _macro(expr: s.Expr) -> str | None:
    """How the policy wrote a construct that is lowered into several IR nodes."""
    match expr:
        case s.Same(left, op, right, _):
            return f"{left} {op} {right}"
        case s.IsFalse(concept, _):
            return f"{concept} is false"
        case s.EveryListed(concept, table, bindings, _):
            withs = ", ".join(f"{col} = {b}" for col, b in bindings)
            return f"every {concept} listed in {table}" + (f" with {withs}" if withs else "")
    return None


def _rename(expr: s.Expr, names: dict[str, str]) -> s.Expr | None:
    """`expr` with the concept names in `names` replaced (a record's bare field names by the
    key's flattened names); None when it holds a record quantifier of its own."""
    n = lambda name: names.get(name, name)  # noqa: E731
    match expr:
        case s.Block(op, items, k, span):
            kids = [_rename(i.expr, names) for i in items]
            if any(kid is None for kid in kids):
                return None
            return s.Block(op, tuple(replace(i, expr=kid) for i, kid in zip(items, kids)), k, span)
        case s.Not(child, span):
            inner = _rename(child, names)
            return None if inner is None else s.Not(inner, span)
        case s.Same():
            return replace(expr, left=n(expr.left), right=n(expr.right))
        case s.NameRef() | s.Compare() | s.Member() | s.InNamed() | s.HasAll() | s.Count() | s.Documented():
            field_name = "name" if isinstance(expr, s.NameRef) else "concept"
            return replace(expr, **{field_name: n(getattr(expr, field_name))})
        case s.EveryListed():
            return replace(expr, concept=n(expr.concept), bindings=tuple((c, n(b)) for c, b in expr.bindings))
    return None


def check_policy(tree: s.PolicyFile, vocab: Vocabulary) -> tuple[ir.Policy, list[Problem]]:
    """Resolve and check one parsed policy (a child already made flat by family.extend); the IR is
    only usable when no problem is an error."""
    checker = _Checker(tree, vocab)
    policy = checker.run()
    return policy, checker.problems
