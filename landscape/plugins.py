"""How users name what they plug in (base layer: syntax only, nothing imported from the model).

A user object is named ``path/to/file.py:factory``, ``package.module:factory``, or by a name an
installed package registers in an entry-point group (priors: ``landscape.priors``). The priors'
loader (:mod:`landscape.priors.user`) builds and checks them; the option checks use these helpers.
"""

from __future__ import annotations

import importlib.metadata
from pathlib import Path
from typing import Any

#: the entry-point group through which installed packages register priors by name
PRIOR_ENTRY_POINTS = "landscape.priors"


def entry_points(group: str = PRIOR_ENTRY_POINTS) -> dict[str, Any]:
    """Installed packages' registered objects of ``group``: name -> entry point."""
    return {ep.name: ep for ep in importlib.metadata.entry_points(group=group)}


def is_spec(name: str, group: str = PRIOR_ENTRY_POINTS) -> bool:
    """A user spec (``file.py:factory`` / ``module:factory``) or a registered entry-point name."""
    return ":" in str(name) or str(name) in entry_points(group)


def spec_file(name: str) -> Path | None:
    """The source file a spec names (``file.py:factory``), for its content hash; ``None`` otherwise."""
    target = str(name).rpartition(":")[0]
    return Path(target) if target.endswith(".py") else None
