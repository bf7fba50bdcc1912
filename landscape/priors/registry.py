r"""One registry of the priors studies and the command line build by name.

Every entry builds a :class:`~landscape.priors.base.Prior` for images of a given shape from one
:class:`PriorSettings`; studies name priors (``--priors tweedie,gs``) and never build them
themselves, so two studies never build "the same" prior two ways. A property test iterates over
``PRIORS`` (``tests/test_priors.py``): every member answers the protocol, and its gradient agrees
with its energy where both are available.

=============  ====================================================================================
name           prior
=============  ====================================================================================
``tweedie``    shipped ``denoiser-gray``: Tweedie score :math:`(D_s(x) - x)/s^2` at level ``s``
``gs``         shipped ``gs-denoiser-gray``: explicit potential :math:`g_s/s^2`
``pf-ode``     shipped ``denoiser-gray``: :math:`-\log p` by the probability-flow ODE
``gaussian``   stationary Gaussian, power-law spectrum fitted to ``data.TRAIN`` (exact)
``gmm``        GMM on whole crops of ``shape`` fitted to ``data.TRAIN`` (exact; small shapes)
``patch-gmm``  EPLL: sum of an 8x8-patch GMM over all patches (exact energy)
``sparse``     Levin's sparse-gradient prior :math:`\sum |\nabla x|^{0.8}` (exact up to a constant)
=============  ====================================================================================

Colour images (``shape`` ``(3, H, W)``): ``tweedie`` and ``pf-ode`` use the shipped ``denoiser-color``,
``gs`` the shipped ``gs-denoiser-color``, ``gaussian`` is fitted to ``data.COLOR_TRAIN`` with its inter-channel
covariance (``GaussianPrior.fit_color``), ``patch-gmm`` to its colour patches, ``gmm`` to its whole colour crops
(one mixture on channel-major vectors of :math:`3HW` values: its covariances couple channels and pixels; keep
:math:`3HW` small, the fit is :math:`O(K (3HW)^3)` per EM iteration), and ``sparse`` sums over the channels
(every entry has a colour version).
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Any, Callable

import torch

from .._checks import choice, device_check, flag, integer, one_of, option, positive_number, validate
from .base import Prior


@dataclass(frozen=True)
class PriorSettings:
    """What a registry entry may need besides the image shape.

    Parameters
    ----------
    s : float
        Noise level of the Tweedie score and the gradient-step potential.
    dtype : torch.dtype
        Dtype the learned priors compute in.
    ode_steps, probes : int
        PF-ODE RK4 steps and Hutchinson probes (``pf-ode``).
    gmm_components, gmm_samples : int
        Components and training crops of the whole-image GMM (``gmm``).
    spectrum : {"power-law", "empirical"}
        Spectrum model of the stationary Gaussian (``gaussian``).
    seed : int
        Seed of fits that draw random crops.
    progress : bool
        Progress bars during fits.
    device : torch.device or str, optional
        Where the learned priors' networks live (the problem's device; default: the CPU). The other priors
        follow their input's device.
    """

    s: float = option(0.01, "noise level of the Tweedie score and the gradient-step potential", positive_number())
    dtype: torch.dtype = option(torch.float64, "dtype of the learned priors", one_of((torch.float32, torch.float64)))
    ode_steps: int = option(16, "PF-ODE RK4 steps", integer(1))
    probes: int = option(4, "Hutchinson probes", integer(1))
    gmm_components: int = option(10, "components of the whole-image GMM", integer(1))
    gmm_samples: int = option(10000, "training crops of the whole-image GMM", integer(1))
    spectrum: str = option("power-law", "spectrum model of the stationary Gaussian", one_of(("power-law", "empirical")))
    seed: int = option(0, "seed of fits that draw random crops", integer(0))
    progress: bool = option(False, "progress bars during fits", flag())
    device: Any = option(None, "device of the learned priors' networks (None: the CPU)", device_check())

    def __post_init__(self):
        validate(self)


def _shipped_name(shape) -> str:
    return "denoiser-color" if len(shape) == 3 else "denoiser-gray"


def _tweedie(shape, st):
    from .shipped import load
    return load(_shipped_name(shape), "tweedie", s=st.s, dtype=st.dtype, device=st.device)


def _gs(shape, st):
    from .shipped import load
    name = "gs-denoiser-color" if len(shape) == 3 else "gs-denoiser-gray"
    return load(name, "gs", s=st.s, dtype=st.dtype, device=st.device)


def _pf_ode(shape, st):
    from .shipped import load
    return load(_shipped_name(shape), "diffusion", steps=st.ode_steps, probes=st.probes, device=st.device)


def _gaussian(shape, st):
    return _fitted_gaussian(tuple(shape), st.spectrum, st.seed)


@functools.lru_cache(maxsize=32)
def _fitted_gaussian(shape, spectrum, seed):
    """The spectrum fitted to the training images, once per (shape, model, seed) in a process (a pyramid and a
    study's several uses of one shape share it; the prior holds no state that a caller changes)."""
    from .. import data
    from .gaussian import GaussianPrior
    if len(shape) == 3:
        return GaussianPrior.fit_color(data.COLOR_TRAIN, shape[-2:], model=spectrum, rng=seed)
    return GaussianPrior.fit(data.TRAIN, shape, model=spectrum, rng=seed)


def _gmm(shape, st):
    """The whole-image GMM, fitted by EM to random crops of ``shape``: of ``data.TRAIN`` for gray shapes, of the
    colour photographs ``data.COLOR_TRAIN`` for ``(3, H, W)`` (cached on disk once fitted)."""
    from .gmm import fit_natural_gmm
    return fit_natural_gmm(shape, st.gmm_components, st.gmm_samples, progress=st.progress)


def _patch_gmm(shape, st):
    """EPLL's prior: a 10-component GMM on 8x8 patches (on (3, 8, 8) colour patches of ``data.COLOR_TRAIN`` for
    colour images; that fit takes about a minute once, then loads from the cache)."""
    from .gmm import PatchGMMPrior, fit_natural_gmm
    patch = (3, 8, 8) if len(shape) == 3 else (8, 8)
    return PatchGMMPrior(fit_natural_gmm(patch, 10, 20000, progress=st.progress))


def _sparse(shape, st):
    from .sparse import SparseGradientPrior
    return SparseGradientPrior(alpha=0.8, eps=0.01, color=len(shape) == 3)


#: name -> builder ``(shape, settings) -> Prior``
PRIORS: dict[str, Callable[[tuple[int, int], PriorSettings], Prior]] = {
    "tweedie": _tweedie, "gs": _gs, "pf-ode": _pf_ode, "gaussian": _gaussian, "gmm": _gmm,
    "patch-gmm": _patch_gmm, "sparse": _sparse,
}
#: priors on images of any shape (the others are fitted to one shape)
ANY_SHAPE = ("tweedie", "gs", "pf-ode", "patch-gmm", "sparse")


def make_prior(name: str, shape: tuple[int, int], settings: PriorSettings | None = None) -> Prior:
    """Build the registered prior ``name`` for images of ``shape``.

    Parameters
    ----------
    name : str
        One of ``PRIORS``, or a user prior: ``file.py:factory``, ``package.module:factory`` or a name
        registered in the entry-point group ``landscape.priors`` (:mod:`landscape.priors.user`).
    shape : (int, int) or (3, int, int)
        Image shape (the Gaussian and GMM priors are fitted to it); ``(3, H, W)`` for colour images (every
        entry has a colour version).
    settings : PriorSettings, optional

    Returns
    -------
    Prior

    Examples
    --------
    >>> make_prior("sparse", (32, 32)).name
    'sparse-gradient'
    """
    from ..plugins import is_spec
    from .user import load_user_prior
    st = settings or PriorSettings()
    if is_spec(name):
        return load_user_prior(name, st.s, tuple(shape), st.device)
    choice("prior", name, PRIORS)
    return PRIORS[name](tuple(shape), st)
