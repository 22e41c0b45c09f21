"""README figures come from benchmark runs, never from typing.

Each benchmark writes its table to `benchmarks/figures/<name>.md` (Markdown, with the date and
the machine it ran on); the README holds each table between the markers

    <!-- figures: <name> -->
    ...
    <!-- /figures -->

and `python benchmarks/figures.py` (run by every benchmark after it writes) copies the files in.
`tests/test_readme_figures.py` holds the README equal to the files, so a figure edited by hand
fails the tests.
"""
from __future__ import annotations

import datetime
import os
import platform
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
FIGURES = ROOT / "benchmarks" / "figures"
README = ROOT / "README.md"
BLOCK = re.compile(r"(<!-- figures: (?P<name>[\w-]+) -->\n)(?P<body>.*?)(<!-- /figures -->)", re.S)


def machine() -> str:
    """One line naming where and when the figures were measured."""
    return (f"measured {datetime.date.today().isoformat()} on {os.cpu_count()} cores, "
            f"Python {platform.python_version()}, {platform.system()} {platform.machine()}")


def write(name: str, table: str) -> Path:
    """Write a benchmark's Markdown table (plus the measuring line) and update the README."""
    FIGURES.mkdir(exist_ok=True)
    path = FIGURES / f"{name}.md"
    path.write_text(f"{table.rstrip()}\n\n<sub>`python benchmarks/{name}.py`, {machine()}</sub>\n", encoding="utf-8")
    update_readme()
    return path


def rendered(readme: str) -> str:
    """The README with every figures block replaced by its file's content (unknown names kept)."""
    def fill(m: re.Match) -> str:
        path = FIGURES / f"{m['name']}.md"
        body = path.read_text(encoding="utf-8") if path.exists() else m["body"]
        return m.group(1) + body + m.group(4)
    return BLOCK.sub(fill, readme)


def update_readme() -> None:
    text = README.read_text(encoding="utf-8")
    new = rendered(text)
    if new != text:
        README.write_text(new, encoding="utf-8")


def table(header: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


if __name__ == "__main__":
    update_readme()
