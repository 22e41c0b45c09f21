"""Parsing: positions are kept, every construct of the language builds the right node."""
from decimal import Decimal

import pytest

from reasoner.language import syntax as s
from reasoner.errors import PolicyError
from reasoner.language.parse import parse_text

HEADER = 'policy p { payer "P" document "D1" "Title" version "v1" lines commercial cite "Lines" }\n'


def test_header_fields_and_positions():
    tree = parse_text(HEADER, "x.policy")
    assert isinstance(tree, s.PolicyFile)
    assert tree.header.policy_id == "p"
    keys = [f.key for f in tree.header.fields]
    assert keys == ["payer", "document", "version", "lines"]
    lines = tree.header.fields[3]
    assert lines.values == ("commercial",) and lines.cite.section == "Lines"
    assert str(lines.span) == "x.policy:1:57"


def test_expression_forms():
    text = HEADER + '''define d "label" cite "s":
  all {
    a >= 50 % "half" cite "s2"
    b
    c in {x, y}
    q in codes_name
    r.k.f == s.k.g
    t is false
    u < 2019-04-01
    e has all {x, y}
    count f in {x, y, z} > 1
    g documented
    not h
    at_least 2 of { i j k }
    any { l m }
  }
'''
    tree = parse_text(text, "x.policy")
    block = tree.defines[0].expr
    kinds = [type(i.expr) for i in block.items]
    assert kinds == [s.Compare, s.NameRef, s.Member, s.InNamed, s.Same, s.IsFalse, s.CompareDate, s.HasAll, s.Count,
                     s.Documented, s.Not, s.Block, s.Block]
    first = block.items[0]
    assert (first.expr.op, first.expr.value, first.expr.unit, first.label, first.cite) == (">=", Decimal(50), "%", "half", "s2")
    assert block.items[8].expr.op == ">" and block.items[8].expr.n == 1
    assert block.items[11].expr.op == "at_least" and block.items[11].expr.n == 2
    assert (block.items[4].expr.left, block.items[4].expr.right) == ("r.k.f", "s.k.g")
    assert first.span.line == 4 and first.span.column == 5


def test_rule_fields():
    text = HEADER + '''rule r "Label" cite "Sec" {
  for service implant, trial
  for lines commercial
  if a "labelled" cite "Sec 2"
  unless b
  decide review external "InterQual" prior_auth required
}'''
    rule = parse_text(text).rules[0]
    assert [sc.dimension for sc in rule.scopes] == ["service", "lines"]
    assert rule.when[0].label == "labelled" and rule.when[0].cite == "Sec 2"
    assert rule.unless[0].expr == s.NameRef("b", rule.unless[0].expr.span)
    d = rule.decisions[0]
    assert (d.kind, d.subkind, d.detail, d.prior_auth) == ("review", "external", "InterQual", "required")


def test_vocabulary_file():
    tree = parse_text('''vocabulary v "V"
domain dk "D" { a "A" codes "X1", "X2"  b "B" }
concept n: number % [0 .. 100] "N"
concept e: one of dk "E"
concept t: set of dk "T"
concept c: codes "CPT" "C"
concept d: date "D"
concept f: boolean "F"
''')
    assert isinstance(tree, s.VocabularyFile)
    assert tree.domains[0].values[0].codes == ("X1", "X2")
    assert [c.kind.name for c in tree.concepts] == ["number", "enum", "set", "codes", "date", "boolean"]
    assert tree.concepts[0].kind.low == 0 and tree.concepts[0].kind.high == 100


@pytest.mark.parametrize("text, where", [
    (HEADER + "rule r \"L\" cite \"s\" { decide covered", "x.policy:2:37"),
    (HEADER + "rule r \"L\" cite \"s\" { if a >= \"fifty\" decide covered }", "x.policy:2:31"),
    (HEADER + "rule r $", "x.policy:2:8"),
])
def test_syntax_errors_name_line_and_column(text, where):
    with pytest.raises(PolicyError) as err:
        parse_text(text, "x.policy")
    assert str(err.value).startswith(where + ": error: syntax error")
    assert "Traceback" not in str(err.value)
