"""The ambiguity register and the policy files name the same judgement calls.

A tag such as [Q-4] marks a reading at its rule; policies/AMBIGUITIES.md explains it. A tag in one
place and not the other is a reading nobody can review, or an explanation of nothing.
"""
from __future__ import annotations

import re
from pathlib import Path

POLICIES = Path(__file__).resolve().parent.parent / "policies"
TAG = re.compile(r"\[([A-Z])-(\d+)\]")


def _policy_tags() -> set[str]:
    return {f"{a}-{n}" for path in POLICIES.glob("*.policy") for a, n in TAG.findall(path.read_text())}


def _register_tags() -> set[str]:
    rows = re.findall(r"^\| ([A-Z]-\d+) \|", (POLICIES / "AMBIGUITIES.md").read_text(), re.M)
    assert len(rows) == len(set(rows)), "a tag is registered twice"
    return set(rows)


def test_every_tag_in_a_policy_is_registered():
    assert _policy_tags() - _register_tags() == set()


def test_every_registered_tag_is_marked_in_a_policy():
    assert _register_tags() - _policy_tags() == set()


def test_each_policy_uses_its_own_prefix():
    for path in POLICIES.glob("*.policy"):
        prefixes = {a for a, _ in TAG.findall(path.read_text())}
        assert len(prefixes) <= 1, f"{path.name} mixes tag prefixes {sorted(prefixes)}"
