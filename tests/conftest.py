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


@pytest.fixture
def at_root(monkeypatch):
    """Run from the repository root so that file names in messages are stable."""
    monkeypatch.chdir(ROOT)
    return ROOT
