"""README figures are the benchmarks' own output (tests/test_notebooks.py checks that notebook 02
prints the deterministic search-power figure)."""
from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "benchmarks"))

import figures  # noqa: E402


def test_every_figures_block_in_the_readme_is_a_benchmark_file_copied_verbatim():
    readme = figures.README.read_text(encoding="utf-8")
    names = [m["name"] for m in figures.BLOCK.finditer(readme)]
    assert set(names) >= {"bench_batch", "bench_planted", "bench_diff", "bench_population", "bench_web"}
    for name in names:
        assert (figures.FIGURES / f"{name}.md").exists(), f"benchmarks/figures/{name}.md missing: run benchmarks/{name}.py"
    assert figures.rendered(readme) == readme, "a README figure differs from its benchmark file: run python benchmarks/figures.py"


def test_each_figures_file_names_the_command_and_the_machine():
    for path in figures.FIGURES.glob("*.md"):
        text = path.read_text(encoding="utf-8")
        assert f"python benchmarks/{path.stem}.py" in text and "cores" in text


def test_a_note_under_a_table_is_its_own_paragraph():
    """Markdown reads a line of text right under a table as one more row of it."""
    for path in figures.FIGURES.glob("*.md"):
        lines = path.read_text(encoding="utf-8").splitlines()
        for above, below in zip(lines, lines[1:]):
            assert not (above.startswith("|") and below and not below.startswith("|")), f"{path.name}: {below[:60]}"
