import numpy as np
import pytest
import scipy.stats as st
import torch

import landscape as ls
from landscape import kernels as K, marginal, priors as P
from landscape._checks import InputError


def test_synthetic_is_reproducible_and_checked(camera64):
    fam = K.Gaussian(9)
    a = ls.BlindDeblur.synthetic(camera64, fam, 1.0, 0.02, rng=5)
    b = ls.BlindDeblur.synthetic(camera64, fam, 1.0, 0.02, rng=np.random.default_rng(5))
    assert torch.equal(a.y, b.y)
    resid = a.y - ls.operators.Blur(a.kernel_true, (64, 64))(a.x_true)
    assert abs(float(resid.std()) - 0.02) < 0.002
    with pytest.raises(InputError, match="noise"):
        ls.BlindDeblur.synthetic(camera64, fam, 1.0, 0.0)
    with pytest.raises(InputError, match="theta"):
        ls.BlindDeblur.synthetic(camera64, fam, 99.0, 0.01)
    bad = camera64.copy()
    bad[3, 3] = np.nan
    with pytest.raises(InputError, match="image"):
        ls.BlindDeblur.synthetic(bad, fam, 1.0, 0.01)
    with pytest.raises(InputError, match="image"):
        ls.BlindDeblur.synthetic(camera64[None], fam, 1.0, 0.01)


def test_terms_and_gradients(gauss_setup, rng):
    post = gauss_setup
    th = torch.tensor([[0.7], [1.9]], dtype=torch.float64, requires_grad=True)
    x = torch.tensor(rng.random((2, 64, 64)), requires_grad=True)
    t = post.terms(th, x)
    torch.testing.assert_close(t["energy"], t["data_term"] + t["prior_term"] + t["kernel_term"])
    fg, _ = post.x_objective(th.detach())
    f, g = fg(x.detach(), torch.arange(2))
    (auto,) = torch.autograd.grad(t["energy"].sum(), x, retain_graph=True)
    torch.testing.assert_close(f, t["energy"].detach())
    torch.testing.assert_close(g, auto, rtol=1e-9, atol=1e-8)
    # theta-gradient against central finite differences
    (gth,) = torch.autograd.grad(t["energy"].sum(), th)
    eps = 1e-5
    fd = (post.energy(th.detach() + eps, x.detach()) - post.energy(th.detach() - eps, x.detach())) / (2 * eps)
    torch.testing.assert_close(gth[:, 0], fd, rtol=1e-6, atol=1e-4)


def test_generic_profile_matches_closed_form(gauss_setup):
    post = gauss_setup
    th = np.linspace(0, 3, 9)
    x, t, info = post.argmin_x(th)
    cf = marginal.profile_closed_form(post, th)
    assert info.converged.all()
    assert float(((t["energy"] - cf).abs() / cf.abs()).max()) < 1e-6
    xs = marginal.argmin_closed_form(post, th)
    assert float((x - xs).abs().max()) < 1e-4


def test_prior_weight_scales_the_prior_term(gauss_setup):
    post2 = ls.Posterior(gauss_setup.problem, gauss_setup.prior, prior_weight=3.0)
    th = np.array([0.0, 1.0, 2.0])
    _, t, _ = post2.argmin_x(th)
    cf = marginal.profile_closed_form(post2, th)
    assert float(((t["energy"] - cf).abs() / cf.abs()).max()) < 1e-6


def test_posterior_rejects_mismatched_prior(gauss_setup):
    wrong = P.GaussianPrior(np.ones((32, 32)))
    with pytest.raises(InputError, match="prior"):
        ls.Posterior(gauss_setup.problem, wrong)


def test_valid_boundary_problem(camera64):
    fam = K.Gaussian(7)
    prob = ls.BlindDeblur.synthetic(camera64, fam, 1.0, 0.01, rng=0, boundary="valid")
    assert prob.y.shape == (58, 58) and prob.image_shape == (64, 64)
    post = ls.Posterior(prob, P.SparseGradientPrior(alpha=0.8, scale=20.0, eps=0.01))
    x, t, info = post.argmin_x([0.0, 1.0], max_iter=300)
    assert torch.isfinite(t["energy"]).all() and x.shape == (2, 64, 64)


def _dense_problem(rng, shape=(5, 6), sigma=0.05):
    fam = K.Gaussian(3)
    x = rng.random(shape)
    return fam, ls.BlindDeblur.synthetic(x, fam, 0.8, sigma, rng=1)


def test_gaussian_marginal_is_the_dense_formula(rng):
    fam, prob = _dense_problem(rng)
    prior = P.GaussianPrior(P.power_law((5, 6), 2e-3, 2.0, 0.1).numpy(), mean=0.5)
    th = np.array([0.0, 0.5, 1.2])
    got = marginal.marginal_nll(prob, prior, th).numpy()
    n = 30
    F = np.kron(np.fft.fft(np.eye(5), norm="ortho"), np.fft.fft(np.eye(6), norm="ortho"))
    C = (F.conj().T @ np.diag(prior.spectrum.numpy().reshape(-1)) @ F).real
    for i, t in enumerate(th):
        H = prob.blur([[t]]).matrix()[0].numpy()
        ref = -st.multivariate_normal(H @ np.full(n, 0.5), H @ C @ H.T + 0.05 ** 2 * np.eye(n)).logpdf(
            prob.y.numpy().reshape(-1))
        assert abs(got[i] - ref) < 1e-9 * abs(ref) + 1e-9


@pytest.mark.parametrize("channels", [None, 3], ids=["gray", "colour"])
def test_gaussian_posterior_draws_have_the_dense_posterior_mean_and_covariance(channels):
    """marginal.gaussian_posterior_draws (20000 draws on 4x5 images, a Gaussian kernel, sigma = 0.05; colour: one
    kernel on three channels, a random colour basis, one spectrum per component) against the dense posterior
    N(m, S), S = (H^T H / sigma^2 + Sigma^-1)^-1, m = S (H^T y / sigma^2 + Sigma^-1 mu): every mean within 4.5
    standard errors of m, every covariance entry within 4.5 of its standard error sqrt((S_ii S_jj + S_ij^2) / n).
    The draws are real, and the posterior's prior variance would fail the same test."""
    rng = np.random.default_rng(3)
    shape, n_draws = (4, 5), 20000
    F = np.kron(np.fft.fft(np.eye(4), norm="ortho"), np.fft.fft(np.eye(5), norm="ortho"))
    if channels is None:
        spectra = P.power_law(shape, 2e-3, 2.0, 0.1).numpy()[None]
        basis, mu = np.eye(1), np.array([0.5])
        prior = P.GaussianPrior(spectra[0], mean=0.5)
    else:
        spectra = np.stack([P.power_law(shape, a, 2.0, 0.1).numpy() for a in (4e-3, 1e-3, 3e-4)])
        basis, _ = np.linalg.qr(rng.normal(size=(3, 3)))
        mu = np.array([0.45, 0.4, 0.35])
        prior = P.GaussianPrior(spectra, mean=mu, basis=basis)
    C, n = len(mu), 20
    T = np.kron(basis, np.eye(n))                                   # channel-major vec: x = mu + T u
    blocks = [(F.conj().T @ np.diag(p.reshape(-1)) @ F).real for p in spectra]
    Sigma = T @ np.block([[blocks[i] if i == j else np.zeros((n, n)) for j in range(C)] for i in range(C)]) @ T.T
    x = prior.sample(1, rng=rng)[0].numpy()
    prob = ls.BlindDeblur.synthetic(x, K.Gaussian(3), 0.8, 0.05, rng=1)
    post = ls.Posterior(prob, prior)
    kernel = prob.family(torch.tensor([[0.8]], dtype=torch.float64))[0]
    H = np.kron(np.eye(C), ls.operators.Blur(kernel, shape).matrix().numpy())      # one kernel on every channel
    Si = np.linalg.inv(Sigma)
    S = np.linalg.inv(H.T @ H / 0.05 ** 2 + Si)
    m = S @ (H.T @ prob.y.numpy().reshape(-1) / 0.05 ** 2 + Si @ np.repeat(mu, n))
    draws = marginal.gaussian_posterior_draws(post, [[0.8]], n_draws, rng=0)
    assert draws.shape == (n_draws, 1, *x.shape) and not draws.is_complex()
    d = draws[:, 0].reshape(n_draws, -1).numpy()
    sd = np.sqrt(np.diag(S))
    assert (np.abs(d.mean(0) - m) <= 4.5 * sd / np.sqrt(n_draws)).all()
    se = np.sqrt((np.outer(np.diag(S), np.diag(S)) + S ** 2) / n_draws)
    assert (np.abs(np.cov(d.T) - S) <= 4.5 * se).all()
    prior_draws = prior.sample(n_draws, rng=1).numpy().reshape(n_draws, -1)
    assert not (np.abs(np.cov(prior_draws.T) - S) <= 4.5 * se).all()


def test_gmm_marginal_matches_gaussian_for_one_component(rng):
    """A one-component GMM with the stationary covariance is the Gaussian prior: same marginal."""
    fam, prob = _dense_problem(rng)
    gp = P.GaussianPrior(P.power_law((5, 6), 2e-3, 2.0, 0.1).numpy(), mean=0.5)
    F = np.kron(np.fft.fft(np.eye(5), norm="ortho"), np.fft.fft(np.eye(6), norm="ortho"))
    C = (F.conj().T @ np.diag(gp.spectrum.numpy().reshape(-1)) @ F).real
    gmm = P.GMMPrior([1.0], np.full((1, 30), 0.5), C[None], (5, 6))
    th = np.array([0.0, 0.6, 1.4])
    torch.testing.assert_close(marginal.marginal_nll(prob, gmm, th), marginal.marginal_nll(prob, gp, th),
                               rtol=1e-10, atol=1e-9)


def test_gmm_marginal_two_components_dense(rng):
    fam, prob = _dense_problem(rng, shape=(4, 4))
    A = rng.normal(size=(2, 16, 16)) / 4
    cov = A @ A.transpose(0, 2, 1) + 0.01 * np.eye(16)
    mu = rng.random((2, 16))
    gmm = P.GMMPrior([0.4, 0.6], mu, cov, (4, 4))
    th = np.array([0.3, 1.0])
    got = marginal.marginal_nll(prob, gmm, th).numpy()
    y = prob.y.numpy().reshape(-1)
    for i, t in enumerate(th):
        H = prob.blur([[t]]).matrix()[0].numpy()
        p = sum(w * st.multivariate_normal(H @ m, H @ c @ H.T + 0.05 ** 2 * np.eye(16)).pdf(y)
                for w, m, c in zip([0.4, 0.6], mu, cov))
        assert abs(got[i] + np.log(p)) < 1e-8


def test_marginal_rejects_other_priors(camera64):
    prob = ls.BlindDeblur.synthetic(camera64, K.Gaussian(5), 1.0, 0.01, rng=0)
    with pytest.raises(InputError, match="prior"):
        marginal.marginal_nll(prob, P.SparseGradientPrior(), [1.0])


def test_gmm_marginal_valid_boundary_dense(rng):
    """The GMM marginal's 'any boundary' claim: on the valid boundary, p(y | theta) is a mixture of
    N(H m_k, H C_k H^T + sigma^2 I) with the (M x N) valid-convolution matrix H."""
    fam = K.Gaussian(3)
    x = rng.random((6, 6))
    prob = ls.BlindDeblur.synthetic(x, fam, 0.8, 0.05, rng=1, boundary="valid")
    assert prob.y.shape == (4, 4) and prob.image_shape == (6, 6)
    A = rng.normal(size=(2, 36, 36)) / 6
    cov = A @ A.transpose(0, 2, 1) + 0.01 * np.eye(36)
    mu = rng.random((2, 36))
    gmm = P.GMMPrior([0.3, 0.7], mu, cov, (6, 6))
    th = np.array([0.0, 0.5, 1.1])
    got = marginal.marginal_nll(prob, gmm, th).numpy()
    y = prob.y.numpy().reshape(-1)
    for i, t in enumerate(th):
        H = prob.blur([[t]]).matrix()[0].numpy()
        assert H.shape == (16, 36)
        p = sum(w * st.multivariate_normal(H @ m, H @ c @ H.T + 0.05 ** 2 * np.eye(16)).pdf(y)
                for w, m, c in zip([0.3, 0.7], mu, cov))
        assert abs(got[i] + np.log(p)) < 1e-8
