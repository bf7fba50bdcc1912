r"""User priors by name: ``path/to/file.py:factory``, ``package.module:factory``, or a name an installed
package registers in the entry-point group ``landscape.priors``.

The factory is called with no arguments and returns a :class:`~landscape.priors.base.Prior`, or a
denoiser ``D(x, sigma)`` (a callable or ``torch.nn.Module`` in deepinv's convention, data in
:math:`[0, 1]`), taken as a Tweedie score prior at the study's level ``s``
(:func:`~landscape.priors.adapters.from_denoiser`; other units: return ``from_denoiser(net, s,
data_range=(-1, 1))`` from the factory). Every spec is checked before a study uses it: the factory is
called and the prior evaluated once on a small image; a missing file, a missing attribute, a factory
that raises, an object that is neither a prior nor a denoiser, a wrong output shape or a non-finite
output each raise :class:`~landscape._checks.InputError` naming ``priors``.
"""

from __future__ import annotations

import hashlib
import importlib
import importlib.util
from pathlib import Path
from typing import Any

import torch

from .._checks import InputError
from ..plugins import entry_points, spec_file
from .base import Prior


def _factory(spec: str) -> Any:
    eps = entry_points()
    if spec in eps:
        try:
            return eps[spec].load()
        except Exception as exc:  # noqa: BLE001 - a broken plugin is a bad --priors value
            raise InputError("priors", f"an importable entry point {spec!r}", f"{type(exc).__name__}: {exc}") from None
    target, _, attr = spec.rpartition(":")
    if not target or not attr:
        raise InputError("priors", "file.py:factory or package.module:factory", repr(spec))
    if target.endswith(".py"):
        path = Path(target)
        if not path.is_file():
            raise InputError("priors", "an existing Python file (file.py:factory)", str(path))
        mod_name = "landscape_user_prior_" + hashlib.sha256(str(path.resolve()).encode()).hexdigest()[:12]
        loader = importlib.util.spec_from_file_location(mod_name, path)
        module = importlib.util.module_from_spec(loader)
        try:
            loader.loader.exec_module(module)
        except Exception as exc:  # noqa: BLE001 - any error in the user's file is a bad --priors value
            raise InputError("priors", f"a Python file that runs ({path})", f"{type(exc).__name__}: {exc}") from None
    else:
        try:
            module = importlib.import_module(target)
        except Exception as exc:  # noqa: BLE001
            raise InputError("priors", f"an importable module {target!r}", f"{type(exc).__name__}: {exc}") from None
    if not hasattr(module, attr):
        raise InputError("priors", f"a factory named {attr!r} in {target}", "no such attribute")
    return getattr(module, attr)


def load_user_prior(spec: str, s: float = 0.01, shape: tuple[int, ...] = (16, 16), device: Any = None) -> Prior:
    """Build and check the user prior ``spec`` (module docstring).

    Parameters
    ----------
    spec : str
        ``file.py:factory``, ``package.module:factory`` or an entry-point name.
    s : float
        The Tweedie level for a factory that returns a denoiser.
    shape : (int, int) or (C, int, int)
        Image shape of the one evaluation that checks the prior.
    device : torch.device or str, optional
        The study's device (default: the CPU). The factory is called with it as torch's default device, so
        a network it builds lands there; a denoiser module it returns is moved there; the checking
        evaluation runs there.

    Returns
    -------
    Prior
        With ``describe()`` holding the spec and the SHA-256 of its source file.
    """
    from .adapters import from_denoiser
    factory = _factory(str(spec))
    if not callable(factory):
        raise InputError("priors", f"a callable factory ({spec})", type(factory).__name__)
    dev = torch.device(device if device is not None else "cpu")
    try:
        with dev:
            obj = factory()
    except Exception as exc:  # noqa: BLE001 - the user's factory failing is a bad --priors value
        raise InputError("priors", f"a factory that returns a prior or a denoiser ({spec})",
                         f"{type(exc).__name__}: {exc}") from None
    if isinstance(obj, Prior):
        prior = obj
    elif callable(obj):                      # a denoiser D(x, sigma): gray, or colour for a (C, H, W) shape
        color = len(shape) == 3
        prior = from_denoiser(obj, s, name=str(spec), channels=shape[0] if color else 1, color=color, device=dev)
    else:
        raise InputError("priors", f"a Prior or a denoiser D(x, sigma) from {spec}", type(obj).__name__)
    _probe(prior, spec, shape, dev)
    src = spec_file(spec)
    digest = hashlib.sha256(src.read_bytes()).hexdigest()[:16] if src is not None else ""
    prior.provenance = {**prior.provenance, "spec": str(spec), "source_sha256": digest}
    return prior


def _probe(prior: Prior, spec: str, shape: tuple[int, int], device: torch.device) -> None:
    """One evaluation of what the prior offers, on a smooth image (``shape`` ``(H, W)``, or ``(C, H, W)``
    for colour) on ``device``: shapes and finite values."""
    h, w = shape[-2:]
    lin = dict(dtype=torch.float64, device=device)
    yy, xx = torch.meshgrid(torch.linspace(0, 1, h, **lin), torch.linspace(0, 1, w, **lin), indexing="ij")
    x = (0.3 + 0.4 * yy * xx).expand(*shape[:-2], h, w)[None].clone()
    try:
        g = prior.grad(x)
    except InputError as exc:              # the adapter's own checks (output shape, ...), named as --priors
        raise InputError("priors", f"{exc.expected} ({spec})", exc.got) from None
    except NotImplementedError as exc:
        raise InputError("priors", f"a prior with a gradient or a score ({spec})", str(exc)) from None
    except Exception as exc:  # noqa: BLE001 - a network that fails on an image is a bad --priors value
        raise InputError("priors", f"a prior whose gradient evaluates on a {h}x{w} image ({spec})",
                         f"{type(exc).__name__}: {exc}") from None
    if tuple(g.shape) != tuple(x.shape):
        raise InputError("priors", f"a gradient of the image's shape {tuple(x.shape)} ({spec})", tuple(g.shape))
    if not torch.isfinite(g).all():
        raise InputError("priors", f"finite values from the prior ({spec})", "NaN or inf")
