import os

import matplotlib
import numpy as np
import pytest
import torch

matplotlib.use("Agg")


@pytest.fixture(autouse=True, scope="session")
def _cache(tmp_path_factory):
    """Fitted priors are cached per test session, never in the user's cache."""
    os.environ.setdefault("LANDSCAPE_CACHE", str(tmp_path_factory.mktemp("cache")))
    yield


@pytest.fixture
def rng():
    return np.random.default_rng(1234)


@pytest.fixture
def camera64():
    from landscape import data
    return data.center_crop(data.load("camera"), 64)


def f64(a):
    return torch.as_tensor(np.asarray(a), dtype=torch.float64)


@pytest.fixture
def gauss_setup(camera64):
    """Gaussian blur (9x9, width 1.5, sigma 0.01) of the 64x64 camera crop, stationary Gaussian prior."""
    import landscape as ls
    from landscape import data, kernels, priors
    prob = ls.BlindDeblur.synthetic(camera64, kernels.Gaussian(9), 1.5, 0.01, rng=0)
    return ls.Posterior(prob, priors.GaussianPrior.fit(data.TRAIN, (64, 64), n_crops=100))


@pytest.fixture
def same_on_meta():
    """``same_on_meta(run, keys)``: ``run()`` normally, then again with torch's default device set to ``meta``
    (the problem's device stays the CPU): any tensor made without the problem's device lands on ``meta`` and
    fails the first operation that mixes it with the problem's tensors, the error a GPU run meets. The
    results' ``keys`` must be equal, bit for bit. Returns both runs' results."""
    def check(run, keys):
        ref = run()
        torch.set_default_device("meta")
        try:
            got = run()
        finally:
            torch.set_default_device(None)
        for k in keys:
            np.testing.assert_array_equal(got[k].values, ref[k].values, err_msg=k)
        return ref, got
    return check
