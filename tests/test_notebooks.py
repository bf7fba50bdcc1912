"""Every notebook in notebooks/ runs top to bottom (code cells executed in order, Agg backend)."""

import json
from pathlib import Path

import matplotlib
import matplotlib.pyplot as plt
import pytest

NOTEBOOKS = sorted((Path(__file__).parent.parent / "notebooks").glob("*.ipynb"))


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_notebook_runs(path, tmp_path, monkeypatch):
    matplotlib.use("Agg")
    monkeypatch.chdir(tmp_path)
    nb = json.loads(path.read_text())
    ns: dict = {"__name__": "__main__"}
    for i, cell in enumerate(nb["cells"]):
        if cell["cell_type"] == "code":
            exec(compile("".join(cell["source"]), f"{path.name}[cell {i}]", "exec"), ns)
    assert plt.get_fignums(), "the notebook drew no figure"
    plt.close("all")


def test_notebooks_exist():
    assert {p.stem for p in NOTEBOOKS} >= {"map_vs_marginal", "blurry_is_more_likely", "trivial_minimizer"}
