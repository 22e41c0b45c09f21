"""Syntax tree to IR: every name resolved against the vocabulary, every type and unit checked.

Checking and lowering are one walk, so the rules of resolution live in one place. Problems are
collected, not raised one at a time, so `reasoner lint` can show them all; the loader refuses a
program with any error, so nothing half-checked ever reaches an engine.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from decimal import Decimal

from reasoner.language import ir
from reasoner.language import syntax as s
from reasoner.errors import Problem, did_you_mean
from reasoner.language.vocab import UNITS, Vocabulary, canonical_unit, convert

SCOPE_CONCEPTS = {"service": "service", "indication": "indication", "lines": "line_of_business"}
DECISIONS = {
    "covered": (None,),
    "denied": ("not_medically_necessary", "investigational", "excluded"),
    "review": ("case_by_case", "external"),
    "not_addressed": (None,),
}
CODE = re.compile(r"^[A-Z0-9][A-Z0-9.]{1,9}$")
_OPS = {"<": "<", "<=": "≤", "==": "=", ">=": "≥", ">": ">"}


def _article(word: str) -> str:
    return "an" if word[:1] in "aeiou" else "a"


def describe(test: ir.Test) -> str:
    """A short reading of a test, used where the policy file gives no label."""
    match test:
        case ir.IsTrue(concept):
            return concept
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

    def error(self, span, message: str) -> None:
        self.problems.append(Problem(str(span), message))

    def warn(self, span, message: str) -> None:
        self.problems.append(Problem(str(span), message, "warning"))

    def cite(self, cite: s.Cite | None, span, what: str) -> ir.Citation:
        if cite is None:
            self.error(span, f"{what} has no citation; add cite \"<section of {self.document}>\".")
            return ir.Citation(self.document, "?")
        if not cite.section.strip():
            self.error(cite.span, f"{what} has an empty citation.")
        return ir.Citation(self.document, cite.section)

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
        if "lines" in fields:
            self.scope_values("lines", fields["lines"].values, fields["lines"].span)
            if fields["lines"].cite is None:
                self.error(fields["lines"].span, "'lines' has no citation; cite the section naming the lines of business.")
        return fields

    # ------------------------------------------------------------------ names
    def concept(self, name: str, span, kinds: tuple[str, ...], use: str):
        c = self.vocab.concepts.get(name)
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
        concept = self.vocab.concepts.get(SCOPE_CONCEPTS[dimension])
        if concept is None:
            self.error(span, f"the vocabulary has no '{SCOPE_CONCEPTS[dimension]}' concept for 'for {dimension}'.")
        else:
            self.domain_values(concept, values, span)

    # ------------------------------------------------------------------ criteria
    def node(self, expr: s.Expr, node_id: str, cite: ir.Citation, label: str | None) -> ir.Node:
        if isinstance(expr, s.NameRef) and expr.name in self.defines:
            return self.define_node(expr.name, expr.span)
        test = self.test(expr, node_id, cite)
        return ir.Node(node_id, label or describe(test), cite, test)

    def item(self, item: s.Item, node_id: str, cite: ir.Citation) -> ir.Node:
        own = ir.Citation(self.document, item.cite) if item.cite else cite
        return self.node(item.expr, node_id, own, item.label)

    def test(self, expr: s.Expr, node_id: str, cite: ir.Citation) -> ir.Test:
        match expr:
            case s.Block(op, items, n, span):
                kids = tuple(self.item(it, f"{node_id}.{i}", cite) for i, it in enumerate(items, 1))
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
            case s.InCodes(name, codeset, span):
                self.concept(name, span, ("codes",), "'in <code set>'")
                self.used.add(codeset)
                if codeset not in self.codesets:
                    self.error(span, f"unknown code set '{codeset}'.{did_you_mean(codeset, self.codesets)}")
                    return ir.OneOf(name, ())
                return ir.OneOf(name, self.codesets[codeset].codes)
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
        raise AssertionError(expr)

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
        cite = self.cite(d.cite, d.span, f"criterion '{name}'")
        node_id = f"{self.tree.header.policy_id}/{name}"
        node = ir.Node(node_id, d.label, cite, self.test(d.expr, node_id, cite), name)
        self.resolving.pop()
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
        if d.subkind == "external" and not d.detail:
            self.error(d.span, "an external review must name the criteria it defers to, e.g. review external \"InterQual ...\".")
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
        conds = tuple(self.item(it, f"{pid}/{rule.name}/if{i}", cite) for i, it in enumerate(rule.when, 1))
        excepts = tuple(self.item(it, f"{pid}/{rule.name}/unless{i}", cite) for i, it in enumerate(rule.unless, 1))
        return ir.Rule(f"{pid}/{rule.name}", rule.name, rule.label, cite, tuple(scope), conds, excepts, self.outcome(rule))

    def lines_rule(self, lines: s.HeaderField) -> ir.Rule:
        """The implicit first rule: a line of business the policy does not list is outside its scope."""
        pid = self.tree.header.policy_id
        cite = ir.Citation(self.document, lines.cite.section if lines.cite else "?")
        documented = ir.Node(f"{pid}/outside_lines/if1", "line_of_business documented", cite, ir.Documented("line_of_business"))
        listed_test = ir.OneOf("line_of_business", lines.values)
        listed = ir.Node(f"{pid}/outside_lines/if2.1", describe(listed_test), cite, listed_test)
        not_listed = ir.Node(f"{pid}/outside_lines/if2", "line of business not listed by the policy", cite, ir.Not(listed))
        return ir.Rule(f"{pid}/outside_lines", "outside_lines", "Line of business outside the policy's scope",
                       cite, (), (documented, not_listed), (), ir.Outcome("not_addressed", None, None, None))

    def unreachable(self, rules: list[ir.Rule], decls: list[s.RuleDecl]) -> None:
        """Warn about a rule that an earlier unconditional rule with a wider scope always pre-empts."""
        for i, (later, decl) in enumerate(zip(rules, decls)):
            for earlier in rules[:i]:
                if earlier.conditions or earlier.exceptions:
                    continue
                if all(self._covers(earlier, later, c) for c in SCOPE_CONCEPTS.values()):
                    self.warn(decl.span, f"rule '{later.name}' can never decide: the earlier rule '{earlier.name}' "
                                         "has no conditions and a scope that includes this one.")
                    break

    @staticmethod
    def _covers(a: ir.Rule, b: ir.Rule, concept: str) -> bool:
        va, vb = a.scope_values(concept), b.scope_values(concept)
        return va is None or (vb is not None and set(vb) <= set(va))

    # ------------------------------------------------------------------ whole file
    def run(self) -> ir.Policy:
        fields = self.header()
        for cs in self.tree.codesets:
            if cs.name in self.codesets:
                self.error(cs.span, f"code set '{cs.name}' is declared twice.")
            self.codesets[cs.name] = cs
            self.cite(cs.cite, cs.span, f"code set '{cs.name}'")
            for code in cs.codes:
                if not CODE.match(code):
                    self.error(cs.span, f"{code!r} in code set '{cs.name}' is not a code (capital letters and digits).")
        for d in self.tree.defines:
            if d.name in self.defines:
                self.error(d.span, f"criterion '{d.name}' is defined twice.")
            if d.name in self.vocab.concepts:
                self.error(d.span, f"criterion '{d.name}' has the name of a vocabulary concept; rename it.")
            self.defines[d.name] = d
        lines = fields["lines"].values if "lines" in fields else ()
        rules, seen = [], {}
        for r in self.tree.rules:
            if r.name == "outside_lines":
                self.error(r.span, "'outside_lines' is reserved for the implicit rule on other lines of business; rename the rule.")
            elif r.name in seen:
                self.error(r.span, f"rule '{r.name}' is declared twice (first at line {seen[r.name].span.line}).")
            seen.setdefault(r.name, r)
            rules.append(self.rule(r, lines))
        self.unreachable(rules, list(self.tree.rules))
        for d in self.tree.defines:
            if d.name not in self.used:
                self.warn(d.span, f"criterion '{d.name}' is defined but never used.")
                self.define_node(d.name, d.span)  # still check it
        for cs in self.tree.codesets:
            if cs.name not in self.used:
                self.warn(cs.span, f"code set '{cs.name}' is declared but never used.")
        if not rules:
            self.error(self.tree.span, "the policy has no rules.")
        get = lambda k, i=0: fields[k].values[i] if k in fields else "?"  # noqa: E731
        all_rules = ((self.lines_rule(fields["lines"]),) if "lines" in fields else ()) + tuple(rules)
        return ir.Policy(self.tree.header.policy_id, get("payer"), get("document"), get("document", 1),
                         get("version"), lines, all_rules, self.tree.span.file)


def check_policy(tree: s.PolicyFile, vocab: Vocabulary) -> tuple[ir.Policy, list[Problem]]:
    """Resolve and check one parsed policy; the IR is only usable when no problem is an error."""
    checker = _Checker(tree, vocab)
    policy = checker.run()
    return policy, checker.problems
