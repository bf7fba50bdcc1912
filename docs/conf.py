"""Sphinx configuration: ``python -m sphinx -W -b html docs docs/_build`` (``docs/build`` wraps it).

Markdown pages (MyST, through myst-nb), the API reference from the numpydoc docstrings (autodoc +
numpydoc), and the notebooks in ``notebooks/`` executed at build time (myst-nb), so every figure they
show was made by code that ran."""

from __future__ import annotations

import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

project = "landscape"
author = "the landscape developers"
copyright = "2026, the landscape developers"
extensions = ["myst_nb", "sphinx.ext.autodoc", "sphinx.ext.autosummary", "sphinx.ext.mathjax", "numpydoc"]
exclude_patterns = ["_build", "**.ipynb_checkpoints"]
html_theme = "alabaster"
html_static_path = ["_static"]
myst_enable_extensions = ["dollarmath"]
myst_heading_anchors = 3
suppress_warnings = ["myst.header"]          # pages moved from the README keep their sub-heading levels

# API reference: numpydoc renders the docstrings' sections; its own validation is not turned on
numpydoc_show_class_members = False
numpydoc_class_members_toctree = False
autodoc_default_options = {"members": True, "undoc-members": False, "show-inheritance": False}
autodoc_typehints = "none"
autodoc_mock_imports: list[str] = []

# notebooks: executed when the page is built (the quick runs: a few minutes in all); LANDSCAPE_DOCS_NB=off
# renders them without executing (a fast build while writing)
nb_execution_mode = "off" if os.environ.get("LANDSCAPE_DOCS_NB") == "off" else "force"
nb_execution_timeout = 900
nb_execution_raise_on_error = True
nb_execution_show_tb = True


def _copy_notebooks(app) -> None:
    """The notebooks live in ``notebooks/`` (the test suite runs them there); the site renders copies in
    ``docs/examples/`` (not tracked), made at each build so they are never stale."""
    import shutil
    dest = Path(app.srcdir) / "examples"
    dest.mkdir(exist_ok=True)
    for nb in sorted((ROOT / "notebooks").glob("*.ipynb")):
        shutil.copyfile(nb, dest / nb.name)


def setup(app) -> None:
    app.connect("builder-inited", _copy_notebooks)
