"""The workbench in a real browser: Chromium (the Debian package), driven by Playwright.

`reasoner serve` runs in a subprocess on a free port, exactly as an analyst starts it; each test
does what an analyst does — fill the member form from nothing, open a payer's why-not, apply a
repair, run a disagreement search and open a witness, export the matrix — and saves a
screenshot of the page to `docs/screenshots/` (shown in docs/WEB.md). A page that logs a script
error or a content-security-policy violation fails its test.
"""
from __future__ import annotations

import csv
import os
import re
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
import yaml
from playwright.sync_api import expect

from reasoner import load_patient
from reasoner.results.repair import repairs
from reasoner.web import forms
from reasoner.web.layout import dom_id

from conftest import ROOT

CHROMIUM = Path("/usr/bin/chromium")
ARGS = ["--no-sandbox", "--headless", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
        "--disable-sync", "--no-first-run"]
SHOTS = ROOT / "docs" / "screenshots"
EXAMPLE = ROOT / "examples" / "nonmalignant_implant.yaml"
WAIT = 120_000  # ms: a search or a repair on a busy machine

pytestmark = [pytest.mark.slow,
              pytest.mark.skipif(not CHROMIUM.exists(), reason="needs Chromium at /usr/bin/chromium "
                                                                "(Debian: apt-get install chromium)")]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def server():
    """`reasoner serve --port N` in a subprocess, until the module's tests are done."""
    port = _free_port()
    env = {k: v for k, v in os.environ.items() if k != "REASONER_POLICIES"}
    command = [sys.executable, "-c", "import typer; from reasoner.web.command import serve; typer.run(serve)",
               "--port", str(port)]
    process = subprocess.Popen(command, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(f"{url}/member", timeout=2) as response:
                if response.status == 200:
                    break
        except OSError:
            if process.poll() is not None:
                pytest.fail(f"reasoner serve exited: {process.stdout.read().decode(errors='replace')}")
            time.sleep(0.3)
    else:
        process.terminate()
        pytest.fail("reasoner serve did not answer within 60 s")
    yield url
    process.terminate()
    try:
        process.wait(timeout=10)
    except subprocess.TimeoutExpired:
        process.kill()


@pytest.fixture(scope="module")
def browser():
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        chromium = p.chromium.launch(executable_path=str(CHROMIUM), args=ARGS)
        yield chromium
        chromium.close()


@pytest.fixture
def page(browser):
    """A fresh page; any script error or refused resource on it fails the test."""
    context = browser.new_context(viewport={"width": 1440, "height": 900}, accept_downloads=True)
    tab = context.new_page()
    tab.set_default_timeout(WAIT)
    problems: list[str] = []
    tab.on("pageerror", lambda error: problems.append(f"script error: {error}"))
    tab.on("console", lambda m: problems.append(f"console {m.type}: {m.text}") if m.type == "error" else None)
    yield tab
    context.close()
    assert not problems, problems


def shot(page, name: str, locator: str | None = None) -> None:
    SHOTS.mkdir(parents=True, exist_ok=True)
    if locator:
        page.locator(locator).first.scroll_into_view_if_needed()
    page.screenshot(path=str(SHOTS / f"{name}.png"))


def fill(page, vocab, name: str, values: tuple[str, ...]) -> None:
    """Enter one fact as an analyst would: click yes / no, pick from a list, tick boxes, type."""
    concept = vocab.concepts[name]
    target = f"#{dom_id(name)}"
    if concept.kind == "boolean" and concept.record:
        page.select_option(target, values[0])
    elif concept.kind == "boolean":
        page.locator(f"{target} label:has(input[value='{values[0]}'])").click()
    elif concept.kind == "enum":
        page.select_option(target, values[0])
    elif concept.kind == "set":
        names = vocab.domains[concept.domain]
        for value in values:
            if value in names:
                page.locator(f"input[name='{name}'][value='{value}']").check()
            else:  # a code, typed
                page.fill(f"{target}-codes", value)
    else:
        page.fill(target, ", ".join(values))


def decisions_shown(page) -> dict[str, str]:
    rows = page.locator("#decisions tbody tr")
    return {rows.nth(i).get_attribute("data-payer"): rows.nth(i).get_attribute("data-decision")
            for i in range(rows.count())}


def test_fill_a_member_see_every_payers_decision_why_not_and_apply_a_repair(server, page, loaded, reasoner):
    vocab = loaded.vocab
    example = load_patient(EXAMPLE, vocab)
    expected = {d.policy: d.kind for d in reasoner.decide(example)}
    page.goto(f"{server}/member")
    expect(page.locator("#decisions-waiting")).to_contain_text("Every payer decides once the request says what it is")
    raw = forms.raw_from_facts(yaml.safe_load(EXAMPLE.read_text()), vocab)
    page.fill("#f-id", raw["id"][0])
    for name, values in raw.items():
        if name not in ("id", "description"):
            fill(page, vocab, name, values)
    expect(page.locator("#decisions tbody tr")).to_have_count(len(loaded.program.current))
    for payer, kind in expected.items():
        expect(page.locator(f"#decisions tr[data-payer='{payer}']")).to_have_attribute("data-decision", kind)
    assert decisions_shown(page) == expected
    assert page.locator("#decisions caption").inner_text().startswith("Decisions for nonmalignant-implant")

    payer, fix = next((d.policy, found[0]) for d in reasoner.decide(example) if d.kind == "denied"
                      for found in [repairs(reasoner, example, d.policy, "covered")] if found)
    page.click(f"button[data-why='{payer}']")
    panel = page.locator(f"#reasoning .reasoning-block[data-payer='{payer}']")
    panel.wait_for()
    assert "Why not covered?" in panel.inner_text()
    assert page.locator("#reasoning .badge.otherwise, #reasoning .badge.nd").count() > 0
    page.set_viewport_size({"width": 1440, "height": 1100})
    page.locator("#member-heading").scroll_into_view_if_needed()
    shot(page, "member")

    page.click("#reasoning a.apply[data-apply='1']")
    page.locator(f"#decisions tr[data-payer='{payer}'][data-decision='covered']").wait_for()
    change = fix.changes[0]
    if vocab.concepts[change.concept].kind == "number":
        assert page.input_value(f"#{dom_id(change.concept)}") == forms.texts(change.after)[0]
    expect(page.locator("#reasoning h3.why-title")).to_contain_text(re.compile(r"Why\s+covered"))
    assert f"/member?" in page.url and f"_panel={payer}" in page.url

    if vocab.concepts[change.concept].kind == "number":  # undo it by hand: the decision and the panel follow
        page.fill(f"#{dom_id(change.concept)}", forms.texts(change.before)[0])
        page.locator(f"#decisions tr[data-payer='{payer}'][data-decision='denied']").wait_for()
        expect(page.locator("#reasoning h3.why-not-title")).to_contain_text("Why not covered?")
        assert f"_panel={payer}" in page.url, "the address keeps the open panel"

    page.click("text=All payers criterion by criterion")
    page.locator("#criteria-grid").wait_for()
    assert page.locator("nav.tabs a").count() == len(loaded.program.current)  # one tab per payer
    shot(page, "reasoning")


def test_open_a_patient_file_and_save_it_back(server, page, loaded, reasoner, tmp_path):
    example = load_patient(EXAMPLE, loaded.vocab)
    page.goto(f"{server}/member")
    page.set_input_files("#open-file", str(EXAMPLE))
    expect(page.locator("#decisions tbody tr")).to_have_count(len(loaded.program.current))
    assert decisions_shown(page) == {d.policy: d.kind for d in reasoner.decide(example)}
    assert page.input_value(f"#{dom_id('pain_trial_relief')}") == "50"
    with page.expect_download() as download:
        page.click("#save-yaml")
    saved = tmp_path / download.value.suggested_filename
    download.value.save_as(saved)
    assert saved.name == "nonmalignant-implant.yaml" and load_patient(saved, loaded.vocab).facts == example.facts
    page.set_input_files("#open-file", files=[{"name": "broken.yaml", "mimeType": "text/yaml", "buffer": b"age: [1,"}])
    expect(page.locator("#upload-error")).to_contain_text("invalid YAML")
    assert page.input_value(f"#{dom_id('pain_trial_relief')}") == "50", "a file that cannot be read leaves the form"


def test_load_a_witness_from_the_disagreements_page(server, page):
    page.goto(f"{server}/disagreements")
    for box in page.locator("input[name=payers]").all():
        if box.get_attribute("value") not in ("cam70141", "uhc"):
            box.uncheck()
    page.fill("#d-examples", "10")
    page.click("#run-diff")
    page.locator("#job").wait_for()
    page.locator("#classes-table").wait_for(timeout=300_000)
    assert "/disagreements?job=" in page.url
    page.locator("#fig-pairs .main-svg").first.wait_for()

    heading = page.locator("#classes-table th", has_text="members")
    heading.click()
    heading.click()  # descending: most members first
    counts = [int(c) for c in page.locator("#classes-table tbody tr td:nth-child(7)").all_inner_texts()]
    assert counts == sorted(counts, reverse=True) and heading.get_attribute("aria-sort") == "descending"
    total = int(page.inner_text("#classes-total"))
    assert total == sum(counts) == int(page.inner_text("#pairs-total"))
    shot(page, "disagreements", "#classes")

    row = page.locator("#classes-table tbody tr").first
    a, a_decides, b, b_decides = (row.locator(f"td:nth-child({i})").inner_text() for i in (3, 4, 5, 6))
    with page.expect_download() as download:
        row.locator("a[download]").click()
    assert yaml.safe_load(Path(download.value.path()).read_text())["service"] == "implant"
    row.locator("a.open-witness").click()
    page.locator("#decisions").wait_for()
    shown = decisions_shown(page)
    assert a_decides.startswith(shown[a]) and b_decides.startswith(shown[b])


def test_export_the_matrix(server, page):
    page.goto(f"{server}/matrix?service=implant&indication=nonmalignant_pain")
    rows = page.locator("#matrix tbody tr[data-concept]")
    before = rows.count()
    page.fill("#m-q", "trial")
    page.wait_for_url("**q=trial**")
    expect(rows).not_to_have_count(before)
    visible = rows.count()
    assert visible > 0 and all("trial" in r.lower() for r in rows.all_inner_texts())
    shot(page, "matrix", "#matrix tbody tr[data-concept]")
    with page.expect_download() as download:
        page.click("#export-csv")
    assert download.value.suggested_filename == "matrix-implant-nonmalignant_pain.csv"
    table = list(csv.reader(Path(download.value.path()).open(encoding="utf-8", newline="")))
    assert table[0][0] == "criterion" and len(table) == visible + 2  # header, decision rules, one per criterion
    with page.expect_download() as download:
        page.click("#export-md")
    assert Path(download.value.path()).read_text(encoding="utf-8").startswith("# Criteria matrix")
    page.fill("#m-q", "")
    expect(rows).to_have_count(before)


def test_read_a_policy_and_follow_an_ambiguity_tag(server, page, loaded):
    page.goto(f"{server}/policies")
    assert page.locator("#policies tbody tr").count() == len(loaded.program.policies)
    page.click("#policies a[href='/policies/cam70141']")
    page.locator("section.rule").first.wait_for()
    rules = page.locator("section.rule h3 code").all_inner_texts()
    assert rules == [r.name for r in loaded.program.policy("cam70141").rules]
    shot(page, "policies")
    tag = page.locator("section.rule a.tag").first
    name = tag.inner_text()
    tag.click()
    page.wait_for_url(f"**/ambiguities#{name}")
    assert page.locator(f"tr[id='{name}']").is_visible()
