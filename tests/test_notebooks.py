"""The analyst notebooks run clean from a fresh kernel, and are stored without outputs."""
from __future__ import annotations

from functools import lru_cache
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

NOTEBOOKS = sorted((Path(__file__).resolve().parent.parent / "notebooks").glob("*.ipynb"))


def test_the_two_analyst_notebooks_exist():
    assert [p.name for p in NOTEBOOKS] == ["01_compare_payers.ipynb", "02_disagreements.ipynb"]


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_notebook_is_stored_without_outputs(path):
    nb = nbformat.read(path, as_version=4)
    assert all(not c.get("outputs") and c.get("execution_count") is None for c in nb.cells if c.cell_type == "code")


@lru_cache(maxsize=None)
def _executed(path: Path):
    """The notebook run from a fresh kernel, once per session (the tests below read its outputs)."""
    nb = nbformat.read(path, as_version=4)
    NotebookClient(nb, timeout=600, kernel_name="python3", resources={"metadata": {"path": str(path.parent)}}).execute()
    return nb


@pytest.mark.slow
@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_notebook_runs_clean(path):
    nb = _executed(path)
    errors = [o for c in nb.cells if c.cell_type == "code" for o in c.outputs if o.output_type == "error"]
    assert not errors


@pytest.mark.slow
def test_notebook_02_draws_its_heatmaps():
    """Each heatmap cell shows a figure (a forced non-interactive backend once left them blank)."""
    nb = _executed(next(p for p in NOTEBOOKS if p.name == "02_disagreements.ipynb"))
    heatmaps = [c for c in nb.cells if c.cell_type == "code" and "imshow" in c.source]
    assert len(heatmaps) == 2
    for cell in heatmaps:
        assert any("image/png" in o.get("data", {}) for o in cell.outputs if o.output_type == "display_data"), cell.source


@pytest.mark.slow
def test_notebook_02_prints_the_readme_figure():
    """The README's search-power figure (300 examples, seed 0, from benchmarks/bench_diff.py) is
    what the notebook prints: both come from the same calls, and the search is deterministic."""
    import re
    import sys

    sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "benchmarks"))
    import figures

    nb = _executed(next(p for p in NOTEBOOKS if p.name == "02_disagreements.ipynb"))
    printed = "".join(o.get("text", "") for c in nb.cells if c.cell_type == "code" for o in c.outputs)
    m = re.search(r"(\d+) classes: (\d+) found by the search", printed)
    assert m, printed[:500]
    row = re.search(r"^\| 300 examples, seed 0 \| .*? \| (\d+) of (\d+) \|",
                    (figures.FIGURES / "bench_diff.md").read_text(encoding="utf-8"), re.M)
    assert (int(m[2]), int(m[1])) == (int(row[1]), int(row[2]))
