"""Policy families: a local edition extends a model policy (MP-442 `bcbsal` over CAM 70141).

The child is checked as the flat policy its family makes; these tests hold what the family adds:
the rule order the child writes, citations (rules cite the child, inherited criteria the parent),
every parent rule accounted for, and what lint and `reasoner policies` say about it.
"""
from __future__ import annotations

import json
import shutil

import pytest
from typer.testing import CliRunner

from reasoner.cli import app
from reasoner.language import ir
from reasoner.language.load import lint, load

from conftest import ROOT

HEADER = '''policy child extends cam70141 {
  payer    "Child plan"
  document "CH-1" "A local edition"
  version  "1"
  lines    all assumed cite "Scope"
}
'''
KEEP = [r for r in ("trial_not_addressed", "pain_implant", "spasticity_implant", "pain_pump_in_use",
                    "spasticity_pump_in_use", "unapproved_drug", "criteria_not_met", "other_uses")]


@pytest.fixture
def folder(tmp_path):
    for name in ("vocabulary.vocab", "drugs.vocab", "cam70141.policy"):
        shutil.copy(ROOT / "policies" / name, tmp_path / name)
    return tmp_path


def _lint(folder, body: str) -> list[str]:
    (folder / "child.policy").write_text(HEADER + body)
    _, _, problems = lint([folder / "child.policy"], folder / "vocabulary.vocab")
    return [f"{p.severity}: {p.message}" for p in problems]


def _inherit(names) -> str:
    return "".join(f'inherit {n} cite "Section {i}"\n' for i, n in enumerate(names, 1))


def test_bcbsal_is_cam70141_with_its_own_citations_and_two_rules_of_its_own(loaded):
    child, parent = loaded.program.policy("bcbsal"), loaded.program.policy("cam70141")
    assert child.extends == "cam70141" and child.changes.added == ("head_pain_referred", "cancer_treatment_standard_of_care")
    written = [r.name for r in parent.rules if not r.name.startswith("outside_")]  # not the implicit rules
    assert [r.name for r in child.rules] == ["head_pain_referred"] + written + ["cancer_treatment_standard_of_care"]
    assert {r.cite.document for r in child.rules} == {"MP-442"}
    pain = next(r for r in child.rules if r.name == "pain_implant")
    assert pain.cite.section == "POLICY, first bullet"
    # the criteria beneath keep the model policy's citations: the text they were read against
    assert {c.cite.document for c in pain.conditions[0].test.children} == {"CAM 70141"}
    model = next(r for r in parent.rules if r.name == "pain_implant")
    labels = lambda rule: [n.label for c in rule.conditions for n in ir.walk(c)]  # noqa: E731
    assert labels(pain) == labels(model)


def test_every_parent_rule_must_be_inherited_replaced_or_removed(folder):
    problems = _lint(folder, _inherit(KEEP[1:]))
    assert problems[0] == ("error: rule 'trial_not_addressed' of cam70141 is neither inherited nor removed: write "
                           "inherit trial_not_addressed cite \"<where this policy's text states it>\", or remove trial_not_addressed.")
    assert all(p.startswith("note:") for p in _lint(folder, "remove trial_not_addressed\n" + _inherit(KEEP[1:])))


@pytest.mark.parametrize("body, message", [
    (_inherit(KEEP) + 'inherit pain_implnt cite "x"\n', "cam70141 has no rule 'pain_implnt' to inherit. Did you mean 'pain_implant'?"),
    (_inherit(KEEP) + 'inherit other_uses cite "x"\n', "rule 'other_uses' is inherited twice."),
    (_inherit(KEEP) + "remove nothing_such\n", "cam70141 has no rule 'nothing_such' to remove."),
    (_inherit(KEEP) + "remove other_uses\n", "rule 'other_uses' is removed but also listed here."),
    (_inherit(KEEP) + 'rule other_uses "O" cite "s" { decide covered }\n',
     "rule 'other_uses' is both inherited and written here; keep one (a rule written here replaces the parent's)."),
])
def test_a_wrong_rule_list_is_an_error_that_names_the_rule(folder, body, message):
    assert f"error: {message}" in _lint(folder, body)


def test_a_rule_of_the_same_name_replaces_the_parents_in_place(folder):
    body = _inherit(KEEP[:6]) + 'rule criteria_not_met "Local" cite "Local section" { for indication spasticity decide review case_by_case }\n' + \
        _inherit(KEEP[7:])
    problems = _lint(folder, body)
    assert problems == ["note: policy 'child' extends cam70141: 7 rule(s) inherited; replaced: criteria_not_met."]
    policy = load(folder).program.policy("child")
    replaced = next(r for r in policy.rules if r.name == "criteria_not_met")
    assert replaced.outcome.kind == "review" and [r.name for r in policy.rules][-2:] == ["criteria_not_met", "other_uses"]


def test_a_criterion_of_the_same_name_replaces_the_parents_everywhere_it_is_used(folder):
    body = 'define successful_trial "A local trial" cite "Local": pain_trial_relief >= 30 %\n' + _inherit(KEEP)
    assert _lint(folder, body)[-1].endswith("criteria replaced: successful_trial.")
    policy = load(folder).program.policy("child")
    pain = next(r for r in policy.rules if r.name == "pain_implant")
    local = next(n for n in pain.conditions[0].test.children if n.name == "successful_trial")
    assert local.cite.document == "CH-1" and local.label == "A local trial"


@pytest.mark.parametrize("header, files, message", [
    ("policy child extends nowhere {", (), "policy 'child' extends 'nowhere', but there is no nowhere.policy beside it."),
    ("policy child extends child {", (), "policies extend each other in a cycle (child -> child)."),
    ("policy child extends broken {", ("broken.policy",), "the parent policy"),
])
def test_a_parent_that_cannot_be_used_is_named(folder, header, files, message):
    for name in files:
        (folder / name).write_text("policy broken {")
    (folder / "child.policy").write_text(HEADER.replace("policy child extends cam70141 {", header) + _inherit(KEEP))
    _, _, problems = lint([folder / "child.policy"], folder / "vocabulary.vocab")
    assert any(message in p.message for p in problems if p.severity == "error"), problems


def test_inherit_and_remove_need_a_parent(folder):
    (folder / "solo.policy").write_text(HEADER.replace(" extends cam70141", "").replace("child", "solo") +
                                        'rule r "R" cite "s" { decide covered }\nremove other_uses\n')
    _, _, problems = lint([folder / "solo.policy"], folder / "vocabulary.vocab")
    assert [p.message for p in problems] == ["'remove other_uses' is only for a policy that extends another "
                                             "(policy solo extends PARENT { ... })."]


def test_policies_and_lint_show_the_family():
    runner = CliRunner()
    listed = json.loads(runner.invoke(app, ["policies", "--json"]).output)
    bcbsal = next(p for p in listed["policies"] if p["id"] == "bcbsal")
    assert bcbsal["extends"] == "cam70141" and bcbsal["changes"]["removed"] == [] and len(bcbsal["changes"]["inherited"]) == 8
    assert "extends cam70141" in runner.invoke(app, ["policies"], env={"COLUMNS": "250"}).output
    linted = runner.invoke(app, ["lint"])
    assert linted.exit_code == 0 and "note: policy 'bcbsal' extends cam70141: 8 rule(s) inherited; added: " \
        "head_pain_referred, cancer_treatment_standard_of_care." in linted.output
    assert "0 warning(s)" in linted.output


def test_a_broken_parent_linted_after_its_child_still_shows_its_own_errors(folder):
    """The parent is read once for its child; its syntax error must still be reported for itself."""
    (folder / "cam70141.policy").write_text("policy cam70141 {\n")
    (folder / "child.policy").write_text(HEADER + _inherit(KEEP))
    _, _, problems = lint([folder / "child.policy", folder / "cam70141.policy"], folder / "vocabulary.vocab")
    where = {p.where.split(":")[0].rsplit("/", 1)[-1] for p in problems if p.severity == "error"}
    assert where == {"child.policy", "cam70141.policy"}
    assert any("syntax error" in p.message for p in problems)
