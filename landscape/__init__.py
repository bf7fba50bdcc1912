"""landscape: where a blind-deblurring posterior puts its minima.

y = h(theta) * x + b, b ~ N(0, sigma^2 I); joint energy
E(theta, x) = ||h(theta) * x - y||^2 / (2 sigma^2) + q(x) + r(theta), q = -log p_X.
"""

__version__ = "0.1.0"

from . import data, io, kernels, operators, priors  # noqa: E402
from .posterior import BlindDeblur, Posterior  # noqa: E402
from . import marginal, plot, scan  # noqa: E402  (plot registers ds.landscape)

__all__ = ["BlindDeblur", "Posterior", "data", "io", "kernels", "operators", "priors", "marginal", "scan"]
