"""Shared fixtures: the bundled program is loaded once per test session."""
from __future__ import annotations

from pathlib import Path

import pytest

from reasoner.results.decide import Reasoner
from reasoner.language.load import load

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="session")
def loaded():
    return load(ROOT / "policies")


@pytest.fixture(scope="session")
def reasoner(loaded):
    return Reasoner(loaded)


def scenario_data(base: dict, scenario: dict, vocab) -> dict:
    """A golden scenario's patient: the base (records flattened), `set` applied, `unset` removed."""
    from reasoner.io.patient import flatten

    return {k: v for k, v in {**flatten(base, vocab), **scenario.get("set", {})}.items()
            if k not in scenario.get("unset", [])}


# The suite runs on every core (pytest-xdist, `-n auto` in pyproject.toml). Modules that build
# something once for all their tests (a server, a Spark session, an executed notebook, a large
# input, a search) keep their tests on one worker, so it is built once; others spread test by test.
BUILD_ONCE = {"test_batch_faults", "test_cli_conventions", "test_diff", "test_engine", "test_fast_backend",
              "test_notebooks", "test_spark", "test_web", "test_web_browser"}


def pytest_collection_modifyitems(config, items):
    for item in items:
        module = getattr(item, "module", None)  # doctest items have none
        name = module.__name__.rsplit(".", 1)[-1] if module else ""
        if name in BUILD_ONCE:
            item.add_marker(pytest.mark.xdist_group(name))


@pytest.fixture
def at_root(monkeypatch):
    """Run from the repository root so that file names in messages are stable."""
    monkeypatch.chdir(ROOT)
    return ROOT
