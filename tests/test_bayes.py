"""The exact Bayes posterior of the GMM sandbox against independent answers: importance sampling from
the generative model, the Wiener filter, the exact marginal, and Bayes optimality over draws."""

import numpy as np
import pytest
import torch

import landscape as ls
from landscape import data, kernels as K, marginal, priors as P
from landscape._checks import InputError
from landscape.estimators.bayes import GMMPosterior


def _tiny(rng, sigma=0.1):
    A = rng.normal(size=(2, 16, 16)) * 0.04
    cov = A @ A.transpose(0, 2, 1) + 0.002 * np.eye(16)
    gmm = P.GMMPrior([0.4, 0.6], 0.3 + 0.4 * rng.random((2, 16)), cov, (4, 4))
    x = gmm.sample(1, rng=3)[0].numpy()
    prob = ls.BlindDeblur.synthetic(x, K.Gaussian(3), 0.8, sigma, rng=4)
    return gmm, prob


def test_mmse_matches_importance_sampling_from_the_generative_model(rng):
    """Self-normalised importance sampling with the prior as proposal (theta uniform on the grid,
    x ~ GMM): E[x | y] and p(theta | y) agree within 4 of the estimator's standard errors."""
    gmm, prob = _tiny(rng, sigma=0.2)
    grid = np.array([0.0, 0.4, 0.8, 1.2])
    exact = GMMPosterior(prob, gmm, grid).mmse()
    n = 400_000
    g = np.random.default_rng(7)
    j = torch.as_tensor(g.integers(0, len(grid), n))
    x = gmm.sample(n, rng=8)
    logw = torch.empty(n, dtype=torch.float64)
    for t in range(len(grid)):
        r = prob.blur(grid[[t]])(x[j == t]) - prob.y
        logw[j == t] = -(r ** 2).sum((-2, -1)) / (2 * prob.noise ** 2)
    w = torch.softmax(logw, 0)
    ess = float(1 / (w ** 2).sum())
    assert ess > 1000, ess          # enough for the standard errors to mean something
    xf = x.reshape(n, -1)
    mu = (w[:, None] * xf).sum(0)
    se = torch.sqrt(((w[:, None] * (xf - mu)) ** 2).sum(0))
    got = exact["x_mmse"].reshape(-1)
    assert ((got - mu).abs() <= 4 * se).all(), float(((got - mu).abs() / se).max())
    pt = torch.stack([w[j == t].sum() for t in range(len(grid))])
    pse = torch.sqrt(torch.stack([((w * ((j == t).double() - pt[t])) ** 2).sum() for t in range(len(grid))]))
    assert ((exact["theta_posterior"] - pt).abs() <= 4 * pse + 1e-12).all()
    # the posterior standard deviation too (weighted second moment)
    sd = torch.sqrt((w[:, None] * (xf - mu) ** 2).sum(0))
    assert float(((exact["x_std"].reshape(-1) - sd).abs() / sd).max()) < 0.05


def test_one_component_is_the_wiener_filter_and_the_marginal_is_the_exact_one(rng):
    img = data.center_crop(data.load("camera"), 8)
    gp = P.GaussianPrior(P.power_law((8, 8), 2e-3, 2.0, 0.1).numpy(), mean=0.5)
    F = np.kron(np.fft.fft(np.eye(8), norm="ortho"), np.fft.fft(np.eye(8), norm="ortho"))
    C = (F.conj().T @ np.diag(gp.spectrum.numpy().reshape(-1)) @ F).real
    gmm = P.GMMPrior([1.0], np.full((1, 64), 0.5), C[None], (8, 8))
    prob = ls.BlindDeblur.synthetic(img, K.Gaussian(5), 1.0, 0.02, rng=0)
    grid = np.array([0.0, 0.7, 1.4])
    out = GMMPosterior(prob, gmm, grid).mmse()
    wiener = marginal.argmin_closed_form(ls.Posterior(prob, gp), grid)      # Gaussian: mean = mode
    torch.testing.assert_close(out["x_given_theta"], wiener, rtol=0, atol=1e-9)
    torch.testing.assert_close(out["marginal_nll"], marginal.marginal_nll(prob, gmm, grid), rtol=1e-10, atol=1e-8)


def test_exact_draws_have_the_posterior_mean(rng):
    gmm, prob = _tiny(rng)
    post = GMMPosterior(prob, gmm, [0.0, 0.8])
    idx, xs = post.sample(4000, rng=0)
    m = post.mmse()
    se = xs.reshape(4000, -1).std(0) / np.sqrt(4000)
    assert ((xs.reshape(4000, -1).mean(0) - m["x_mmse"].reshape(-1)).abs() <= 4 * se).all()
    assert abs(float((idx == 1).double().mean()) - float(m["theta_posterior"][1])) < 4 * 0.5 / np.sqrt(4000)


def test_bad_input(rng):
    gmm, prob = _tiny(rng)
    with pytest.raises(InputError, match="theta_prior"):
        GMMPosterior(prob, gmm, [0.0, 0.8], theta_prior=[1.0, -1.0])
    with pytest.raises(InputError, match="prior"):
        GMMPosterior(prob, P.SparseGradientPrior(), [0.0])
    with pytest.raises(InputError, match="theta"):
        GMMPosterior(prob, gmm, [99.0])


@pytest.mark.slow
def test_exact_mmse_is_bayes_optimal_over_draws_from_the_sandbox():
    """Over draws (x, theta, noise) from the sandbox's own generative model (x ~ the 16x16 natural-crop GMM,
    theta uniform on the grid, sigma = 0.02), the exact MMSE has the lowest mean squared error of every
    estimator: each other estimator's mean excess MSE is above -3 of its standard errors (paired over
    draws), and the joint MAP's is above +2 (the trivial pair costs it; 16 seeded draws give 2.6 standard
    errors, benchmarks/bayes_optimality.py 5.5 with 48). ``slow`` (100 s on 2 cores): the default run checks the
    exact MMSE against the closed forms draw by draw."""
    from landscape.estimators import sandbox
    from landscape.estimators.unrolled import load_unrolled
    gmm = P.fit_natural_gmm((16, 16), 10, 10000, progress=False)
    grid = np.linspace(0, 3, 7)
    model = load_unrolled("unrolled-gmm16", dtype=torch.float64)
    g = np.random.default_rng(11)
    names = sandbox.NAMES
    err = {n: [] for n in names}
    for d in range(16):
        x, prob = sandbox.draw(gmm, grid, 0.02, d, g)
        for n, (xh, _) in sandbox.estimates(prob, gmm, grid, model).items():
            err[n].append(float(((xh - x) ** 2).mean()))
    e0 = np.array(err["mmse"])
    for n in names[1:]:
        diff = np.array(err[n]) - e0
        se = diff.std(ddof=1) / np.sqrt(len(diff))
        assert diff.mean() > -3 * se, (n, diff.mean(), se)
    diff = np.array(err["joint_map"]) - e0
    assert diff.mean() > 2 * diff.std(ddof=1) / np.sqrt(len(diff))


def _colour_gmm(seed: int, weights: list[float]):
    """A two-component GMM on (3, 4, 4) images (channel-major, d = 48), its means and covariances."""
    rng = np.random.default_rng(seed)
    A = rng.normal(size=(2, 48, 48)) * 0.04
    cov = A @ A.transpose(0, 2, 1) + 0.002 * np.eye(48)
    mu = 0.3 + 0.4 * rng.random((2, 48))
    return P.GMMPrior(weights, mu, cov, (3, 4, 4)), mu, cov


def test_a_colour_gmm_posterior_is_the_dense_mixture_posterior():
    """(3, 4, 4) images, the same blur on every channel (H = I_3 (x) H_gray on channel-major vectors), a
    two-component colour GMM, two widths: the evidences are scipy's N(y; H mu_k, H Sigma_k H^T + sigma^2 I),
    the MMSE and the per-value sd the dense mixture of the components' Gaussian posteriors, and exact draws
    come out as (3, 4, 4) images."""
    import scipy.stats as st
    from landscape.operators import Blur
    gmm, mu, cov = _colour_gmm(11, [0.3, 0.7])
    prob = ls.BlindDeblur.synthetic(gmm.sample(1, rng=3)[0].numpy(), K.Gaussian(3), 1.0, 0.05, rng=4)
    grid = np.array([0.6, 1.0])
    post = GMMPosterior(prob, gmm, grid)
    out = post.mmse()
    y = prob.y.numpy().reshape(-1)
    logj, means, second = [], [], []
    for t in grid:
        Hg = Blur(prob.family(torch.tensor([[t]], dtype=torch.float64))[0], (4, 4)).matrix().numpy()
        H = np.kron(np.eye(3), Hg)
        for k in range(2):
            S_y = H @ cov[k] @ H.T + 0.05 ** 2 * np.eye(48)
            logj.append(np.log(gmm.weights[k].item()) + st.multivariate_normal(H @ mu[k], S_y).logpdf(y))
            G = cov[k] @ H.T @ np.linalg.inv(S_y)
            m = mu[k] + G @ (y - H @ mu[k])
            means.append(m)
            second.append(np.diag(cov[k] - G @ H @ cov[k]) + m ** 2)
    logj = np.array(logj)
    np.testing.assert_allclose(post.log_joint().numpy().reshape(-1) - post.log_theta_prior.numpy().repeat(2), logj,
                               rtol=1e-9)
    w = np.exp(logj - logj.max()) * np.repeat(np.exp(post.log_theta_prior.numpy()), 2)
    w /= w.sum()
    ex = w @ np.array(means)
    np.testing.assert_allclose(out["x_mmse"].numpy().reshape(-1), ex, atol=1e-9)
    np.testing.assert_allclose(out["x_std"].numpy().reshape(-1), np.sqrt(w @ np.array(second) - ex ** 2), atol=1e-8)
    assert out["x_mmse"].shape == (3, 4, 4) and post.sample(3, rng=0)[1].shape == (3, 3, 4, 4)
    nll = marginal.marginal_nll(prob, gmm, grid[:, None]).numpy()     # the study-side route to the same evidences
    np.testing.assert_allclose(nll, -np.logaddexp(logj[0::2], logj[1::2]), rtol=1e-9)


def test_perturbation_draws_are_exactly_the_component_posteriors():
    """``GMMPosterior.conditional``'s draw is affine in its standard normals (e1, e2): at zero it is the component's
    posterior mean, and its Jacobian J (read column by column from unit inputs) gives J J^T equal to the dense
    posterior covariance Sigma - Sigma H^T S^-1 H Sigma, to round-off; a (3, 4, 4) colour GMM, two components."""
    from landscape.operators import Blur
    gmm, mu, cov = _colour_gmm(5, [0.4, 0.6])
    prob = ls.BlindDeblur.synthetic(gmm.sample(1, rng=1)[0].numpy(), K.Gaussian(3), 0.9, 0.05, rng=2)
    post = GMMPosterior(prob, gmm, [0.5, 0.9])
    c = post.conditional(1)
    Hg = Blur(prob.family(torch.tensor([[0.9]], dtype=torch.float64))[0], (4, 4)).matrix().numpy()
    H = np.kron(np.eye(3), Hg)
    y = prob.y.numpy().reshape(-1)
    for k in range(2):
        S = H @ cov[k] @ H.T + 0.05 ** 2 * np.eye(48)
        G = cov[k] @ H.T @ np.linalg.inv(S)
        comp = torch.full((97,), k)
        e = torch.zeros(97, 96, dtype=torch.float64)
        e[1:] = torch.eye(96, dtype=torch.float64)                   # row 0: zeros; then each unit input
        x = c.draw(comp, e[:, :48], e[:, 48:]).numpy()
        np.testing.assert_allclose(x[0], mu[k] + G @ (y - H @ mu[k]), atol=1e-10)
        J = (x[1:] - x[0]).T                                          # (48, 96)
        np.testing.assert_allclose(J @ J.T, cov[k] - G @ H @ cov[k], atol=1e-10)
    np.testing.assert_allclose(c.weights.numpy(), torch.softmax(post.at(1).log_evidence, 0).numpy(), rtol=1e-12)
