"""Image priors behind one protocol (``Prior``): energy q = -log p in nats, its gradient, and
the MMSE denoiser, each flagged exact, exact up to a constant, approximate or unavailable."""

from .base import APPROXIMATE, EXACT, EXPLICIT, UNAVAILABLE, UP_TO_CONSTANT, Capability, Prior
from .adapters import PotentialPrior, from_denoiser, from_epsilon, from_potential, from_score
from .gaussian import GaussianPrior, power_law
from .gmm import GMMPrior, PatchGMMPrior, fit_natural_gmm
from .learned import DiffusionPrior, GradientStepPrior, TweediePrior, divergence, jacobian_asymmetry
from .registry import PRIORS, PriorSettings, make_prior
from .shipped import available, load, load_model
from .sparse import SparseGradientPrior

__all__ = ["Prior", "GaussianPrior", "GMMPrior", "PatchGMMPrior", "SparseGradientPrior",
           "TweediePrior", "GradientStepPrior", "DiffusionPrior", "divergence", "jacobian_asymmetry",
           "load", "load_model", "from_denoiser", "from_epsilon", "from_potential", "from_score", "PotentialPrior", "PRIORS", "PriorSettings", "make_prior", "available", "fit_natural_gmm", "power_law", "EXACT", "APPROXIMATE", "UNAVAILABLE", "UP_TO_CONSTANT", "EXPLICIT", "Capability"]
