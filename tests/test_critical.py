"""Critical points of q against closed forms: a separated Gaussian mixture's modes and Hessians, the
Anderson root of an exact MMSE denoiser, and the hypothesis verdict on a mixture's exact saddle."""

import numpy as np
import pytest
import torch

from landscape import critical, data
from landscape.priors.adapters import from_denoiser
from landscape.priors.gmm import GMMPrior

SIZE = 8


@pytest.fixture(scope="module")
def sandbox():
    means = [data.center_crop(data.load(n), SIZE) for n in data.TEST]
    return GMMPrior.separated(means, (SIZE, SIZE), rng=0), np.stack(means)


def test_lbfgs_reaches_the_mode_of_a_separated_mixture_and_its_hessian_is_sigma_inverse(sandbox):
    prior, means = sandbox
    x0 = means[0] + 0.02 * np.random.default_rng(1).standard_normal(means[0].shape)
    cp = critical.critical_point(prior, x0, gtol=1e-6)
    assert cp["converged"] and cp["method"] == "lbfgs" and cp["grad_norm"] <= 1e-6 < cp["grad_norm_start"]
    # the mode is the mean up to the other components' responsibilities (exp(-hundreds) here)
    assert np.abs(cp["x"].numpy() - means[0]).max() < 1e-8
    rep = critical.hessian_report(prior, cp["x"], k=SIZE * SIZE)
    closed = np.sort(1.0 / np.linalg.eigvalsh(prior.covariances[0].numpy()))
    np.testing.assert_allclose(rep["eigenvalues"], closed, rtol=1e-8)
    assert rep["lambda_max"] == pytest.approx(closed[-1], rel=1e-8)
    assert critical.verdict_hypothesis(cp["grad_norm"], 1e-6, rep).startswith("holds (strict")


def test_anderson_finds_the_fixed_point_of_an_exact_mmse_denoiser(sandbox):
    """A denoiser given as a plain function (the adapter's route): its fixed point D_s(x) = x is the mode of
    the smoothed mixture p_s, which for separated components is the mean (to 1e-8)."""
    prior, means = sandbox
    s = 0.01

    def net(u, sigma):
        return prior.denoise(u[:, 0], sigma)[:, None]

    score = from_denoiser(net, s=s)
    x0 = means[1] + 0.01 * np.random.default_rng(2).standard_normal(means[1].shape)
    cp = critical.critical_point(score, x0, gtol=1e-5, max_iter=500)
    assert cp["method"] == "anderson" and cp["converged"]
    assert np.abs(cp["x"].numpy() - means[1]).max() < 1e-8


def test_the_midpoint_of_two_equal_components_is_an_exact_saddle_and_the_verdict_says_so():
    tau, a, d = 0.1, 0.3, 4
    mu = np.zeros((2, d))
    mu[0, 0], mu[1, 0] = a, -a
    prior = GMMPrior([0.5, 0.5], mu, np.stack([tau ** 2 * np.eye(d)] * 2), (2, 2))
    x = torch.zeros(2, 2, dtype=torch.float64)        # critical by symmetry
    rep = critical.hessian_report(prior, x, k=d)
    # along e1: 1/tau^2 - a^2/tau^4 (< 0 for a > tau); the other directions 1/tau^2
    assert rep["eigenvalues"][0] == pytest.approx(1 / tau ** 2 - a ** 2 / tau ** 4, rel=1e-10)
    g = float(prior.grad(x[None]).norm())
    assert g < 1e-12
    assert critical.verdict_hypothesis(g, 1e-6, rep).startswith("fails (saddle of q: 1 eigenvalues")
    assert critical.verdict_hypothesis(1.0, 1e-6, rep).startswith("fails (not critical")


def test_bad_arguments_name_themselves(sandbox):
    prior, means = sandbox
    for kw, name in (({"gtol": 0}, "gtol"), ({"max_iter": 0}, "max_iter")):
        with pytest.raises(ValueError, match=f"^{name}:"):
            critical.critical_point(prior, means[0], **kw)
    with pytest.raises(ValueError, match="^x0:"):
        critical.critical_point(prior, np.full((SIZE, SIZE), np.nan))
