"""The workbench in the browser, driven in-process: every page shows what the library says.

Each test reads what an analyst would see (headings, decisions, table rows, messages at fields)
and holds it equal to what `reasoner check / why-not / matrix / diff` compute for the same input.
"""
from __future__ import annotations

import csv
import io
import json
import re
import time
from html import unescape
from urllib.parse import parse_qsl, urlencode

import pytest
import yaml
from fastapi.testclient import TestClient

from reasoner import load_patient, validate
from reasoner.errors import PatientError
from reasoner.io.patient import flatten
from reasoner.results import explain
from reasoner.results.matrix import as_json as matrix_json, concepts_in, matrix
from reasoner.results.repair import repairs
from reasoner.search import diff
from reasoner.web import forms, layout, matrix_view
from reasoner.web.app import MAX_BODY, create_app
from reasoner.web.disagreements import Job, Options
from reasoner.web.report import diff_report_html

from conftest import ROOT

EXAMPLE = ROOT / "examples" / "nonmalignant_implant.yaml"
HTMX = {"hx-request": "true"}


@pytest.fixture(scope="module")
def app(loaded):
    return create_app(loaded)


@pytest.fixture(scope="module")
def client(app):
    with TestClient(app, base_url="http://127.0.0.1") as test_client:
        yield test_client


@pytest.fixture(scope="module")
def example_qs(client) -> str:
    """The example member as the Member page's address (what "Examples" opens)."""
    response = client.get(f"/member/example/{EXAMPLE.name}", follow_redirects=False)
    assert response.status_code == 303
    return response.headers["location"].split("?", 1)[1]


@pytest.fixture(scope="module")
def example(loaded):
    return load_patient(EXAMPLE, loaded.vocab)


INLINE = r"/?(a|b|code|span|em|strong|label)\b[^>]*"


def text(html: str) -> str:
    """The visible text of some HTML, as a reader sees it: inline tags vanish, block tags break."""
    html = re.sub(r"<(script|style)\b.*?</\1>", " ", html, flags=re.S)
    html = re.sub(rf"<{INLINE}>", "", html)
    return re.sub(r"\s+", " ", unescape(re.sub(r"<[^>]+>", " ", html))).strip()


def rows(html: str, table_id: str) -> list[str]:
    """The body rows of a table, each as visible text."""
    table = re.search(rf'<table[^>]*id="{table_id}".*?</table>', html, re.S)
    assert table, f"no table #{table_id}"
    body = re.search(r"<tbody>(.*?)</tbody>", table[0], re.S)
    return [text(r) for r in re.findall(r"<tr\b.*?</tr>", body[1], re.S)]


def cells(html: str, table_id: str) -> list[list[str]]:
    """The body rows of a table, each as the visible text of its cells."""
    table = re.search(rf'<table[^>]*id="{table_id}".*?</table>', html, re.S)[0]
    body = re.search(r"<tbody>(.*?)</tbody>", table, re.S)[1]
    return [[text(c) for c in re.findall(r"<t[hd]\b.*?</t[hd]>", r, re.S)] for r in re.findall(r"<tr\b.*?</tr>", body, re.S)]


def element(html: str, element_id: str) -> str:
    m = re.search(rf'<(\w+)[^>]*\bid="{re.escape(element_id)}"[^>]*>(.*?)</\1>', html, re.S)
    assert m, f"no #{element_id}"
    return text(m[2])


def with_fact(qs: str, name: str, value: str | None) -> str:
    pairs = [(k, v) for k, v in parse_qsl(qs) if k != name]
    return urlencode(pairs + ([(name, value)] if value is not None else []))


def validate_message(data: dict, vocab, field: str) -> str:
    with pytest.raises(PatientError) as err:
        validate(data, vocab, forms.SOURCE)
    return next(p.message for p in err.value.problems if forms.field_of(p) == field)


# ---------------------------------------------------------------- member: the form
def test_home_opens_the_member_page(client):
    response = client.get("/", follow_redirects=False)
    assert response.status_code == 303 and response.headers["location"] == "/member"


def test_the_form_has_every_concept_by_topic_with_units_ranges_and_choices(client, loaded):
    page = client.get("/member").text
    vocab = loaded.vocab
    headings = re.findall(r"<h2>(.*?)</h2>", page)
    assert [h for h in headings if h in vocab.topics] == list(vocab.topics)
    for name, concept in vocab.plain().items():
        assert f'name="{name}"' in page, name
    relief = vocab.concepts["pain_trial_relief"]
    assert f"{relief.unit} · {relief.low} to {relief.high}" in text(page)
    age = vocab.concepts["age"]
    assert f"{age.unit} · whole number, {age.low} to {age.high}" in text(page)
    # a boolean: "not documented", "yes" and "no" are three different answers
    for value, label in (("", "not documented"), ("true", "yes"), ("false", "no")):
        assert re.search(rf'name="pain_disabling" value="{value}"[^>]*>\s*{label}', page)
    # an enum is a list of its values, "not documented" first; a set is a box per value
    severity = re.search(r'<select name="pain_severity".*?</select>', page, re.S)[0]
    assert re.findall(r'<option value="([^"]*)"', severity) == ["", *vocab.values_of("pain_severity")]
    for value in vocab.values_of("planned_drugs"):
        assert f'name="planned_drugs" value="{value}"' in page
    # records: one row per key, one control per field, written flat
    for record in vocab.records.values():
        for key in vocab.domains[record.key_domain]:
            for field in record.fields:
                assert f'name="{record.concept(key, field)}"' in page


def test_an_empty_form_asks_for_the_request_not_an_error(client):
    page = client.get("/member").text
    waiting = element(page, "decisions-waiting")
    assert "Still needed" in waiting and "service" in waiting and "line of business" in waiting
    assert 'id="decisions"' not in page


def test_the_example_shows_every_payers_decision_as_check_does(client, example_qs, reasoner, example):
    page = client.get(f"/member?{example_qs}").text
    shown = cells(page, "decisions")
    decisions = reasoner.decide(example)
    assert len(shown) == len(decisions) == len(reasoner.loaded.program.current)
    for (payer, decision, prior_auth, rule, _), d in zip(shown, decisions):
        assert payer.startswith(d.policy) and d.payer in payer
        assert decision.startswith(d.kind.replace("_", " ")) and (d.subkind or "").replace("_", " ") in decision
        assert prior_auth == {"required": "required", "not_required": "not required", None: "—"}[d.prior_auth]
        assert d.rule_label in rule and (d.rule or "") in rule
        assert str(d.cite) in rule if d.cite else True
    assert "Decisions for nonmalignant-implant" in text(page)


def test_a_dated_request_shows_the_version_that_decided(client, example_qs):
    """Dated 2017, CAM 70141 decides by its earlier version; the row says whose version it is."""
    page = client.get(f"/member?{with_fact(example_qs, 'request_date', '2017-06-01')}").text
    row = next(r for r in cells(page, "decisions") if r[0].startswith("cam70141"))
    assert row[0].startswith("cam70141_pre2018") and "version of cam70141, in force 2014-01-15 to 2018-01-29" in row[0]


def test_a_change_re_decides_and_marks_the_field(client, example_qs, loaded):
    response = client.get(f"/member/decide?{with_fact(example_qs, 'age', 'abc')}", headers=HTMX)
    assert response.status_code == 200
    expected = validate_message({"age": "abc"}, loaded.vocab, "age")
    assert element(response.text, "e-f-age") == expected
    assert "must be fixed before the payers can decide" in text(response.text)
    assert 'hx-swap-oob="true"' in response.text
    assert response.headers["hx-replace-url"].startswith("/member?") and "age=abc" in response.headers["hx-replace-url"]
    assert response.headers["hx-trigger"] == "facts-changed"
    fixed = client.get(f"/member/decide?{with_fact(example_qs, 'age', '17')}", headers=HTMX)
    assert element(fixed.text, "e-f-age") == ""
    assert len(rows(fixed.text, "decisions")) == len(loaded.program.current)


def test_out_of_range_and_over_precise_numbers_get_the_files_messages(client, example_qs, loaded):
    page = client.get(f"/member/decide?{with_fact(example_qs, 'pain_trial_relief', '101')}").text
    assert element(page, "e-f-pain_trial_relief") == validate_message({"pain_trial_relief": 101}, loaded.vocab,
                                                                     "pain_trial_relief")
    page = client.get(f"/member/decide?{with_fact(example_qs, 'pain_trial_relief', '49.999999999999999999')}").text
    assert "has 20 significant digits; at most 15 can be compared exactly" in element(page, "e-f-pain_trial_relief")


def test_not_documented_is_kept_apart_from_no(loaded):
    vocab = loaded.vocab
    base = {"service": ("implant",), "indications": ("nonmalignant_pain",), "line_of_business": ("commercial",)}
    unknown = forms.check(base, vocab).patient
    said_no = forms.check({**base, "pain_disabling": ("false",)}, vocab).patient
    assert "pain_disabling" not in unknown.facts and said_no.facts["pain_disabling"] is False


def test_form_values_become_the_same_patient_as_the_file(loaded, example, example_qs):
    checked = forms.check(forms.raw_from_pairs(parse_qsl(example_qs)), loaded.vocab)
    assert checked.patient.facts == example.facts
    assert (checked.patient.id, checked.patient.description) == (example.id, example.description)


def test_codes_typed_for_a_set_are_read_as_patient_files_read_them(client, example_qs, loaded):
    qs = with_fact(with_fact(example_qs, "diagnoses", None), "diagnoses", "M96.1, G90.5")
    checked = forms.check(forms.raw_from_pairs(parse_qsl(qs)), loaded.vocab)
    assert checked.patient.facts["diagnoses"] == ("crps", "failed_back_surgery")
    page = client.get(f"/member?{with_fact(example_qs, 'diagnoses', 'Q99.ZZZZZ')}").text
    assert element(page, "e-f-diagnoses").startswith("got 'Q99.ZZZZZ'; expected")


def test_what_a_user_types_is_escaped_never_markup(client, example_qs):
    evil = "<script>alert(1)</script>"
    page = client.get(f"/member?{with_fact(example_qs, 'id', evil)}").text
    assert "<script>alert(1)</script>" not in page and "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    page = client.get(f"/member?{with_fact(example_qs, 'pain_severity', evil)}").text
    assert "<script>alert" not in page


# ---------------------------------------------------------------- member: files in and out
def test_opening_a_yaml_file_fills_the_form_and_decides(client, reasoner, example):
    response = client.post("/patient/open", files={"_file": (EXAMPLE.name, EXAMPLE.read_bytes(), "application/yaml")})
    assert response.status_code == 200
    page = response.text
    assert re.search(r'name="pain_trial_relief" id="[^"]+" value="50"', page)
    assert re.search(r'name="indications" value="nonmalignant_pain" checked', page)
    assert [r[0].split(" ")[0] for r in cells(page, "decisions")] == [d.policy for d in reasoner.decide(example)]


def test_opening_a_fhir_bundle_fills_the_form_from_its_resources(client, reasoner, example):
    """A chart-like FHIR Bundle opens as `reasoner check` reads it: the therapy course computed from
    dated visits, the age from the birth date, and the same decisions as the YAML example."""
    chart = EXAMPLE.parent / "fhir" / "chart_nonmalignant_implant.json"
    response = client.post("/patient/open", files={"_file": (chart.name, chart.read_bytes(), "application/json")})
    assert response.status_code == 200
    page = response.text
    assert re.search(r'name="pt_visits" id="[^"]+" value="12"', page)
    assert re.search(r'name="age" id="[^"]+" value="54"', page)
    assert re.search(r'type="date" name="request_date" id="[^"]+" value="2026-03-02"', page)  # a dated request renders
    assert [r[0].split(" ")[0] for r in cells(page, "decisions")] == [d.policy for d in reasoner.decide(example)]
    # the chart's metformin, which the drug table does not list, is said to be unread, not dropped silently
    assert element(page, "upload-notes").startswith("Not read from the file (1):")
    assert "MedicationStatement/med-metformin.medicationCodeableConcept: rxnorm 6809 ('metformin')" in \
        element(page, "upload-notes")
    bad = json.loads(chart.read_text())
    bad["entry"][4]["resource"]["subject"] = {"reference": "Patient/someone-else"}
    response = client.post("/patient/open", files={"_file": ("b.json", json.dumps(bad).encode(), "application/json")})
    assert "not the bundle's Patient" in element(response.text, "upload-error")


def test_opening_a_json_file_with_a_wrong_value_shows_it_at_its_field(client, loaded):
    data = {"service": "implant", "indications": ["nonmalignant_pain"], "line_of_business": "commercial", "age": 200}
    response = client.post("/patient/open", files={"_file": ("m.json", json.dumps(data).encode(), "application/json")})
    assert re.search(r'name="age" id="f-age" value="200"', response.text)
    assert element(response.text, "e-f-age") == validate_message(data, loaded.vocab, "age")


@pytest.mark.parametrize("name, content, message", [
    ("bad.yaml", b"age: [1, 2\n", "invalid YAML"),
    ("bad.json", b"{\"age\": 1,}", "invalid JSON"),
    ("list.yaml", b"- 1\n- 2\n", "must be a mapping of concept: value"),
    ("alias.yaml", b"a: &x 1\nb: *x\n", "aliases (*name) are not allowed"),
    ("latin1.yaml", "âge: 1".encode("latin-1"), "not UTF-8"),
    ("big.yaml", b"description: " + b"x" * 1_100_000, "larger than 1 MB"),
])
def test_a_file_that_cannot_be_read_is_reported_and_the_form_kept(client, example_qs, name, content, message):
    current = dict(parse_qsl(example_qs))
    response = client.post("/patient/open", data=current, files={"_file": (name, content, "text/plain")})
    assert response.status_code == 200
    assert message in element(response.text, "upload-error")
    assert re.search(r'name="pain_trial_relief" id="[^"]+" value="50"', response.text), "the form was kept"


def test_saving_writes_a_patient_file_that_reads_back_the_same(client, example_qs, loaded, example, tmp_path):
    for suffix in ("yaml", "json"):
        response = client.get(f"/patient.{suffix}?{example_qs}")
        assert response.status_code == 200
        assert response.headers["content-disposition"] == f'attachment; filename="nonmalignant-implant.{suffix}"'
        path = tmp_path / f"saved.{suffix}"
        path.write_bytes(response.content)
        again = load_patient(path, loaded.vocab)
        assert again.facts == example.facts and again.id == example.id
    assert "medications:" in client.get(f"/patient.yaml?{example_qs}").text, "records are written nested"


def test_a_draft_saves_but_a_wrong_value_does_not(client):
    assert client.get("/patient.yaml?age=54").status_code == 200
    response = client.get("/patient.yaml?age=abc")
    assert response.status_code == 422 and "need fixing" in text(response.text) and "age" in text(response.text)


def test_examples_are_opened_by_name_only(client):
    assert client.get("/member/example/..%2F..%2Fpyproject.toml").status_code == 404
    assert client.get("/member/example/nothing.yaml").status_code == 404


def test_the_member_json_twin_is_check_json(client, example_qs, reasoner, example):
    data = client.get(f"/member.json?{example_qs}").json()
    assert data == {"schema": "reasoner.check/1", "patient": example.id,
                    "decisions": [d.as_json() for d in reasoner.decide(example)]}
    assert client.get("/member.json?age=abc").status_code == 422


# ---------------------------------------------------------------- reasoning
def _denying(reasoner, example):
    """A payer denying the example that a single verified change makes cover (the repair shown first)."""
    for d in reasoner.decide(example):
        if d.kind == "denied":
            found = repairs(reasoner, example, d.policy, "covered", limit=5)
            if found:
                return d.policy, found[0]
    pytest.skip("no denying payer of the example has a repair")


def test_why_not_panel_shows_what_stops_each_rule_and_verified_repairs(client, example_qs, reasoner, example):
    payer, first = _denying(reasoner, example)
    page = client.get(f"/member/reasoning?{example_qs}&_payer={payer}&_wanted=covered", headers=HTMX).text
    shown = text(page)
    assert "Why not covered?" in shown and f"Why {reasoner.decide(example, [payer])[0].kind}" in shown
    wn = explain.why_not(reasoner, example, payer, "covered")
    for path in (p for p in wn.paths if p.in_scope):
        assert path.trace.label in shown
        for step in path.trace.steps:
            for leaf in step.leaves():
                assert leaf.test in shown
    statuses = {leaf.status for p in wn.paths if p.in_scope for s in p.trace.steps for leaf in s.leaves()}
    for status in statuses & {explain.NOT_DOCUMENTED, explain.OTHERWISE}:
        assert f'class="badge {"nd" if status == explain.NOT_DOCUMENTED else "otherwise"}">{status}' in page
    assert "Smallest changes that make it covered" in shown
    change = first.changes[0]
    assert f"{change.concept} : " in shown or f"{change.concept}:" in shown
    assert 'data-apply="1"' in page


def test_applying_a_repair_changes_the_member_and_flips_the_decision(client, example_qs, reasoner, example):
    payer, first = _denying(reasoner, example)
    page = client.get(f"/member/reasoning?{example_qs}&_payer={payer}").text
    href = unescape(re.search(r'href="(/member\?[^"]+)"[^>]*data-apply="1"', page, re.S)[1])
    after = client.get(href).text
    row = next(r for r in rows(after, "decisions") if r.startswith(payer))
    assert "covered" in row and first.rule_label in row
    for change in first.changes:
        assert f"{change.concept}={forms.texts(change.after)[0]}" in href.replace("%2C", ",")
    assert f"Why covered" in text(element(after, "reasoning") if 'id="reasoning"' in after else after)


def test_any_of_reads_as_any_of(client, example_qs, reasoner, example):
    for d in reasoner.decide(example):
        wn = explain.why_not(reasoner, example, d.policy, "covered")
        steps = [s for p in wn.paths if p.in_scope for top in p.trace.steps for s in _walk(top)]
        if any(s.test == "any of" and not s.holds for s in steps):
            page = client.get(f"/member/reasoning?{example_qs}&_payer={d.policy}").text
            assert "any of — none holds" in text(page)
            return
    pytest.skip("no failing any-of in the example's explanations")


def _walk(step):
    yield step
    for child in step.children:
        yield from _walk(child)


def test_every_step_cites_and_links_to_its_criterion_on_the_policy_page(client, example_qs, reasoner, example):
    payer, _ = _denying(reasoner, example)
    page = client.get(f"/member/reasoning?{example_qs}&_payer={payer}").text
    steps = len(re.findall(r'<li class="step ', page))
    links = re.findall(rf'<a class="cite[^"]*" href="/policies/{payer}#([^"]+)"', page)
    assert steps and len(links) == steps
    policy_page = client.get(f"/policies/{payer}").text
    for anchor in set(links):
        assert f'id="{anchor}"' in policy_page, anchor


def test_the_reasoning_page_has_every_payer_and_the_criteria_grid(client, example_qs, reasoner, example):
    page = client.get(f"/reasoning?{example_qs}&_payer=geisinger").text
    assert "<h1>Reasoning</h1>" in page
    tabs = re.search(r'<nav class="tabs".*?</nav>', page, re.S)[0]
    for d in reasoner.decide(example):
        assert d.policy in text(tabs) and d.kind.replace("_", " ") in text(tabs)
    grid = rows(page, "criteria-grid")
    assert grid and any(r.startswith("pain_trial_relief") for r in grid)
    assert "Why covered" in text(page)


def test_the_reasoning_page_without_a_member_offers_the_examples(client):
    page = client.get("/reasoning").text
    assert "No member yet" in text(page) and f"/member/example/{EXAMPLE.name}" in page


def test_an_unknown_payer_has_no_reasoning_panel(client, example_qs):
    response = client.get(f"/member/reasoning?{example_qs}&_payer=nobody", headers=HTMX)
    assert response.status_code == 404 and response.headers["hx-retarget"] == "#flash"
    assert "No such payer" in text(response.text)


# ---------------------------------------------------------------- matrix
def test_the_matrix_shows_every_criterion_of_every_payer(client, loaded):
    page = client.get("/matrix?service=implant&indication=nonmalignant_pain").text
    columns = matrix(loaded.program, "implant", "nonmalignant_pain")
    shown = rows(page, "matrix")
    assert shown[0].startswith("decision rules")
    assert [r.split(" ")[0] for r in shown[1:]] == concepts_in(columns)
    heads = re.search(r'<table class="matrix".*?</thead>', page, re.S)[0]
    assert [c.policy for c in columns] == re.findall(r">(\w+)</a></th>", heads)
    conflict = re.findall(r'data-agreement="conflict"', page)
    assert conflict and 'class="odd"' in page


def test_the_matrix_filters_and_says_what_is_unknown(client):
    only = client.get("/matrix?service=implant&indication=nonmalignant_pain&diff=1").text
    assert set(re.findall(r'data-agreement="(\w+)"', only)) == {"conflict"}
    trial = client.get("/matrix?service=implant&indication=nonmalignant_pain&q=trial").text
    assert all("trial" in r.lower() for r in rows(trial, "matrix")[1:])
    bad = client.get("/matrix?service=implnat")
    assert bad.status_code == 422 and "unknown service 'implnat'. Did you mean 'implant'?" in text(bad.text)


def test_the_matrix_exports_what_is_shown(client, loaded):
    query = "service=implant&indication=nonmalignant_pain&q=trial"
    shown = rows(client.get(f"/matrix?{query}").text, "matrix")
    response = client.get(f"/matrix.csv?{query}")
    assert response.headers["content-disposition"] == 'attachment; filename="matrix-implant-nonmalignant_pain.csv"'
    table = list(csv.reader(io.StringIO(response.text)))
    assert table[0][:-1] == ["criterion", *(p.id for p in loaded.program.policies)]
    assert [r[0] for r in table[1:]] == ["decision rules"] + [r.split(" ")[0] for r in shown[1:]]
    markdown = client.get(f"/matrix.md?{query}").text
    assert markdown.startswith("# Criteria matrix — implant, nonmalignant\\_pain")
    assert markdown.count("\n| ") == len(shown) + 1


def test_csv_cells_cannot_run_as_formulas():
    assert matrix_view._spreadsheet_safe("=1+1") == "'=1+1" and matrix_view._spreadsheet_safe("≥ 50 %") == "≥ 50 %"


def test_the_matrix_json_twin_is_matrix_json(client, loaded):
    data = client.get("/matrix.json?service=implant").json()
    assert data == json.loads(json.dumps(matrix_json(matrix(loaded.program, "implant", None), "implant", None)))


# ---------------------------------------------------------------- policies
def test_policies_are_listed_with_their_documents(client, loaded):
    shown = rows(client.get("/policies").text, "policies")
    for row, p in zip(shown, loaded.program.policies):
        assert row.startswith(p.id) and p.payer in row and p.document in row and str(len(p.rules)) in row
        assert (f"extends {p.extends}" in row) == bool(p.extends)


def test_a_policy_page_has_its_rules_in_decision_order_with_citations(client, loaded):
    for policy in loaded.program.policies:
        page = client.get(f"/policies/{policy.id}").text
        assert re.findall(r'<section class="rule" id="rule-([^"]+)"', page) == [r.name for r in policy.rules]
        shown = text(page)
        assert f"Source document {policy.document}" in shown
        for rule in policy.rules:
            assert rule.label in shown and rule.cite.section.split(" [")[0] in shown


def test_ambiguity_tags_link_to_their_entries(client, loaded):
    register = client.get("/ambiguities").text
    entries = set(re.findall(r'<tr id="([A-Z]-\d+)"', register))
    assert entries
    linked = set()
    for policy in loaded.program.policies:
        linked |= set(re.findall(r'href="/ambiguities#([A-Z]-\d+)"', client.get(f"/policies/{policy.id}").text))
    assert linked and linked <= entries, linked - entries


def test_the_policy_source_is_shown_line_by_line(client, loaded):
    policy = loaded.program.policies[0]
    page = client.get(f"/policies/{policy.id}/source").text
    lines = open(policy.source, encoding="utf-8").read().splitlines()
    assert page.count('<li id="L') == len(lines)
    rule_line = int(policy.rules[0].where.rsplit(":", 2)[1])
    assert f'id="L{rule_line}"' in page


def test_the_register_shows_markup_in_it_as_text(tmp_path, loaded):
    from reasoner.web.policies_view import register_html

    path = tmp_path / "AMBIGUITIES.md"
    path.write_text("# R\n\n<script>alert(1)</script>\n\n| tag | x |\n|---|---|\n| Z-1 | [a](javascript:alert(1)) |\n")
    html = str(register_html(path, path.stat().st_mtime))
    assert "<script>" not in html and 'href="javascript' not in html and '<tr id="Z-1">' in html


# ---------------------------------------------------------------- disagreements
def test_the_disagreements_form_checks_its_options_at_each_field(client):
    response = client.post("/disagreements/run", data={"payers": ["cam70141"], "examples": "0", "seed": "x",
                                                       "service": "implnat"})
    assert response.status_code == 422
    page = response.text
    assert element(page, "err-payers") == "name at least two payers to compare."
    assert "Did you mean 'implant'?" in element(page, "err-service")
    assert "out of range" in element(page, "err-examples") and "not a whole number" in element(page, "err-seed")


@pytest.fixture(scope="module")
def finished(client, app):
    """A small search run through the page, as an analyst starts it (two payers, 10 members)."""
    response = client.post("/disagreements/run", data={"payers": ["cam70141", "uhc"], "service": "implant",
                                                       "indication": "nonmalignant_pain", "examples": "10", "seed": "0"},
                           follow_redirects=False)
    assert response.status_code == 303
    job_id = response.headers["location"].split("job=")[1]
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        page = client.get(f"/disagreements/jobs/{job_id}").text
        if 'id="classes-table"' in page:
            return job_id, app.state.site.jobs.get(job_id).result
        assert "did not finish" not in page
        time.sleep(0.5)
    pytest.fail("the search did not finish in 5 minutes")


def test_a_running_search_shows_its_progress(client, loaded):
    job = Job("t", Options(("cam70141", "uhc")))
    job.progress.advance(job.progress.add_task("generating patients", total=10), 4)
    client.app.state.site.jobs.add(job)
    page = client.get("/disagreements/jobs/t").text
    assert "Searching" in text(page) and "generating patients" in text(page) and 'value="4"' in page
    assert 'hx-trigger="load delay:600ms"' in page


@pytest.mark.slow
def test_the_search_results_are_the_same_classes_as_diff(client, finished):
    job_id, result = finished
    page = client.get(f"/disagreements?job={job_id}").text
    shown = rows(page, "classes-table")
    assert len(shown) == len(result.classes)
    for row, c in zip(shown, result.classes):
        assert c.a.policy in row and c.b.policy in row and c.a.decision in row and c.b.decision in row
    assert f"Disagreements among {', '.join(result.payers)}" in text(page)
    data = client.get(f"/disagreements/jobs/{job_id}/diff.json").json()
    assert data == json.loads(json.dumps(diff.as_json(result)))


@pytest.mark.slow
def test_the_counts_add_up(client, finished):
    job_id, result = finished
    page = client.get(f"/disagreements?job={job_id}").text
    classes_total = int(element(page, "classes-total"))
    pairs_total = int(element(page, "pairs-total"))
    assert classes_total == pairs_total == sum(c.count for c in result.classes) == sum(result.by_pair.values())
    for row in rows(page, "pairs-table"):
        _, patients, _, in_classes = row.rsplit(" ", 3)
        assert patients == in_classes
    figure = json.loads(unescape(re.search(r"data-figure='([^']+)'", page)[1]))
    assert figure["data"][0]["type"] == "heatmap" and figure["data"][0]["z"][0][1] == result.pair_count(*result.payers)


@pytest.mark.slow
def test_each_witness_opens_in_the_member_page_and_downloads(client, finished, loaded, reasoner, tmp_path):
    job_id, result = finished
    page = client.get(f"/disagreements?job={job_id}").text
    links = [unescape(h) for h in re.findall(r'<a class="button small open-witness" href="([^"]+)"', page)]
    assert len(links) == len(result.classes)
    for number, (href, c) in enumerate(zip(links, result.classes), 1):
        member = client.get(href).text
        decided = {r.split(" ")[0]: r for r in rows(member, "decisions")}
        assert c.a.decision.split(" ")[0].replace("_", " ") in decided[c.a.policy]
        assert c.b.decision.split(" ")[0].replace("_", " ") in decided[c.b.policy]
        download = client.get(f"/disagreements/jobs/{job_id}/witness/{number}.yaml")
        path = tmp_path / f"w{number}.yaml"
        path.write_bytes(download.content)
        patient = load_patient(path, loaded.vocab)
        assert {d.policy: d.rule for d in reasoner.decide(patient, [c.a.policy, c.b.policy])} == \
            {c.a.policy: c.a.rule, c.b.policy: c.b.rule}


@pytest.mark.slow
def test_the_static_report_is_the_same_page_without_a_server(finished, loaded):
    _, result = finished
    html = diff_report_html(result, diff.themes(result), loaded.vocab)
    shown = text(html)
    assert html.startswith("<!doctype html>") and f"Disagreements among {', '.join(result.payers)}" in shown
    assert len(rows(html, "classes-table")) == len(result.classes)
    assert "Where one payer denies and others cover" in shown or not diff.themes(result)
    assert 'id="heat-table"' in html and "data-figure=" in html and "plotly.js v" in html
    assert 'href="/' not in html and "127.0.0.1" not in html, "no links to a server"
    assert html.count("data:application/yaml;charset=utf-8,") == 2 * len(result.classes)
    lean = diff_report_html(result, plotly=False)
    assert len(lean) < len(html) - 3_000_000 and "plotly.js v" not in lean


# ---------------------------------------------------------------- errors and guards
def test_an_unknown_page_is_a_page_not_a_traceback(client):
    response = client.get("/nowhere")
    assert response.status_code == 404 and "<h1>Not found</h1>" in response.text
    assert "Traceback" not in response.text


def test_a_server_error_is_a_page_not_a_traceback(loaded, monkeypatch):
    app = create_app(loaded)
    client = TestClient(app, base_url="http://127.0.0.1", raise_server_exceptions=False)
    monkeypatch.setattr(layout, "sections", lambda vocab: 1 / 0)
    response = client.get("/member")
    assert response.status_code == 500 and "Something went wrong" in text(response.text)
    assert "Traceback" not in response.text and "ZeroDivisionError" not in response.text


def test_requests_are_size_limited(client):
    response = client.post("/patient/open", content=b"x" * (MAX_BODY + 1),
                           headers={"content-type": "multipart/form-data; boundary=x"})
    assert response.status_code == 413
    assert client.get("/member?" + "a=" + "x" * 20_000).status_code == 414

    def chunks():  # no length given: counted as it arrives
        yield b'--x\r\nContent-Disposition: form-data; name="_file"; filename="a.yaml"\r\n\r\n'
        yield from (b"a" * 100_000 for _ in range(MAX_BODY // 100_000 + 1))
        yield b"\r\n--x--\r\n"
    response = client.post("/patient/open", content=chunks(), headers={"content-type": "multipart/form-data; boundary=x"})
    assert response.status_code == 413 and "larger than 2 MB" in text(response.text)


def test_pages_refuse_other_hosts_and_carry_a_content_security_policy(app, client):
    other = TestClient(app, base_url="http://attacker.example")
    assert other.get("/member").status_code == 400
    headers = client.get("/member").headers
    assert "script-src 'self'" in headers["content-security-policy"] and "unsafe-inline" not in \
        headers["content-security-policy"].split("script-src")[1].split(";")[0]
    assert headers["x-content-type-options"] == "nosniff"


def test_no_page_loads_anything_from_another_site(client, example_qs):
    for url in ("/member", f"/member?{example_qs}", "/matrix", "/disagreements", "/policies", "/policies/uhc"):
        page = client.get(url).text
        assert not re.search(r'(src|href)="(https?:)?//', page), url
    assert client.get("/static/htmx.min.js").text.startswith("/*! htmx.org 2")
    assert client.get("/vendor/plotly.min.js").status_code == 200


# ---------------------------------------------------------------- the command
def test_serve_reports_a_bad_policy_folder_and_a_busy_port(tmp_path):
    import socket

    import typer
    from typer.testing import CliRunner

    from reasoner.web.command import serve

    cli = typer.Typer()
    cli.command()(serve)
    runner = CliRunner()
    result = runner.invoke(cli, ["--policies", str(tmp_path)])
    assert result.exit_code == 3 and "vocabulary.vocab" in result.output
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        result = runner.invoke(cli, ["--port", str(port)])
    assert result.exit_code == 2 and f"port {port} is already in use" in result.output


def test_raw_values_from_files_show_as_typed(loaded):
    raw = forms.raw_from_facts(yaml.safe_load(EXAMPLE.read_text()), loaded.vocab)
    assert raw["medications.nsaid.weeks"] == ("12",) and raw["pain_chronic_intractable"] == ("true",)
    assert list(raw)[:2] == ["id", "description"]
    assert forms.raw_from_facts({"medications": "lots"}, loaded.vocab) == {"medications": ("lots",)}
    assert flatten({"medications": {"nsaid": {"outcome": "failed"}}}, loaded.vocab) == {"medications.nsaid.outcome": "failed"}
