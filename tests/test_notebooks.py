"""Every notebook in notebooks/ runs top to bottom in a real Jupyter kernel (nbclient), as a user runs
it: kernel start, display of figures, the working directory of the notebook."""

from pathlib import Path

import pytest

NOTEBOOKS = sorted((Path(__file__).parent.parent / "notebooks").glob("*.ipynb"))


#: ``slow``: the documentation build (``.ci/run``: ``sphinx -W``, ``nb_execution_raise_on_error``) executes every
#: notebook the same way, so the default test run does not do it twice (about 4 min on 2 cores)
@pytest.mark.slow
@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_notebook_runs_in_a_jupyter_kernel(path, monkeypatch):
    nbformat = pytest.importorskip("nbformat")
    from nbclient import NotebookClient
    monkeypatch.delenv("MPLBACKEND", raising=False)     # the kernel draws inline, as in Jupyter
    monkeypatch.delenv("LANDSCAPE_RESULTS", raising=False)       # the --quick path
    nb = nbformat.read(path, as_version=4)
    NotebookClient(nb, timeout=600, kernel_name="python3", resources={"metadata": {"path": str(path.parent)}}).execute()
    outputs = [o for c in nb.cells if c.cell_type == "code" for o in c.outputs]
    assert not [o for o in outputs if o.output_type == "error"]
    assert any("image/png" in o.get("data", {}) for o in outputs), "the notebook displayed no figure"


def test_notebooks_exist():
    from landscape.studies import STUDIES
    assert {p.stem for p in NOTEBOOKS} >= {name.replace("-", "_") for name in STUDIES}


def test_notebook_loads_a_stored_results_file(tmp_path, monkeypatch):
    """With LANDSCAPE_RESULTS set, the notebook draws the stored run instead of computing one."""
    nbformat = pytest.importorskip("nbformat")
    from nbclient import NotebookClient

    from landscape.cli import main
    out = tmp_path / "mvm.nc"
    assert main(["run", "map-vs-marginal", "--quick", "--crop", "32", "--n-theta", "7", "--no-progress",
                 "--out", str(out)]) == 0
    monkeypatch.setenv("LANDSCAPE_RESULTS", str(out))
    monkeypatch.delenv("MPLBACKEND", raising=False)     # the kernel draws inline, as in Jupyter
    path = next(p for p in NOTEBOOKS if p.stem == "map_vs_marginal")
    nb = nbformat.read(path, as_version=4)
    NotebookClient(nb, timeout=600, kernel_name="python3").execute()
    text = "".join(o.get("text", "") for c in nb.cells if c.cell_type == "code" for o in c.outputs)
    assert "grid step 0.500" in text            # the stored 7-point grid, not the quick run's 31 points
