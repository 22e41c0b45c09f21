"""Where the bundled grammar, policies and examples live.

A wheel carries them inside the package (`reasoner/_data/`); a source checkout keeps them at the
top of the repository. `REASONER_POLICIES` points at another policy folder.
"""
from __future__ import annotations

import os
from pathlib import Path

_PACKAGE = Path(__file__).resolve().parent


def _data(name: str) -> Path:
    inside = _PACKAGE / "_data" / name
    return inside if inside.exists() else _PACKAGE.parent / name


def grammar_file() -> Path:
    return _data("grammar") / "policy.lark"


def policies_dir() -> Path:
    override = os.environ.get("REASONER_POLICIES")
    return Path(override) if override else _data("policies")


def examples_dir() -> Path:
    return _data("examples")
