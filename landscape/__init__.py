"""landscape: where a blind-deblurring posterior puts its minima.

y = h(theta) * x + b, b ~ N(0, sigma^2 I); joint energy
E(theta, x) = ||h(theta) * x - y||^2 / (2 sigma^2) + q(x) + r(theta), q = -log p_X.
"""

from importlib.metadata import PackageNotFoundError as _NotFound, version as _version

try:
    __version__ = _version("landscape")
except _NotFound:                                  # a source tree on sys.path, not installed
    __version__ = "unknown"

from . import data, io, kernels, operators, priors  # noqa: E402  (io registers the ds.landscape accessor)
from .posterior import BlindDeblur, Posterior  # noqa: E402
from . import descent, marginal, scan, solvers  # noqa: E402

#: submodules imported on first use (``landscape.studies``, ...), so ``import landscape`` stays light
_LAZY = ("studies", "sweep", "hessian", "eigen", "certify", "critical", "estimators", "sampling", "kernel_estimation",
         "metrics", "plot", "cli", "denoisers")


def __getattr__(name: str):
    if name in _LAZY:
        import importlib
        return importlib.import_module(f"{__name__}.{name}")
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = ["BlindDeblur", "Posterior", "data", "io", "kernels", "operators", "priors", "marginal", "scan",
           "solvers", "descent", *_LAZY]
