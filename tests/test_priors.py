import numpy as np
import pytest
import scipy.stats as st
import torch

from landscape import data, priors as P
from landscape._checks import InputError


def _random_gmm(rng, K=3, shape=(3, 3)):
    D = shape[0] * shape[1]
    w = rng.random(K) + 0.2
    mu = rng.normal(size=(K, D))
    A = rng.normal(size=(K, D, D)) / np.sqrt(D)
    cov = A @ A.transpose(0, 2, 1) + 0.05 * np.eye(D)
    return P.GMMPrior(w / w.sum(), mu, cov, shape)


@pytest.fixture
def gaussian8():
    return P.GaussianPrior(P.power_law((8, 8), 1e-3, 2.5, 0.05).numpy() + 1e-4, mean=0.4)


def test_gaussian_energy_is_the_dense_normal_logpdf(gaussian8, rng):
    n = 64
    F = np.fft.fft(np.eye(8), norm="ortho")
    F2 = np.kron(F, F)                                       # unitary 2-D DFT on row-major vec
    C = (F2.conj().T @ np.diag(gaussian8.spectrum.numpy().reshape(-1)) @ F2).real
    x = rng.normal(0.4, 0.1, size=(5, 8, 8))
    ref = -st.multivariate_normal(np.full(n, 0.4), C).logpdf(x.reshape(5, n))
    np.testing.assert_allclose(gaussian8.energy(torch.as_tensor(x)).numpy(), ref, rtol=1e-10)


@pytest.mark.parametrize("make", ["gaussian", "gmm", "patch", "sparse"])
def test_grad_equals_autograd(make, gaussian8, rng):
    if make == "gaussian":
        prior, shape = gaussian8, (8, 8)
    elif make == "gmm":
        prior, shape = _random_gmm(rng), (3, 3)
    elif make == "patch":
        prior, shape = P.PatchGMMPrior(_random_gmm(rng, shape=(3, 3))), (7, 6)
    else:
        prior, shape = P.SparseGradientPrior(alpha=0.7, eps=0.05), (9, 8)
    x = torch.tensor(rng.normal(size=(4, *shape)), requires_grad=True)
    e = prior.energy(x)
    (auto,) = torch.autograd.grad(e.sum(), x)
    torch.testing.assert_close(prior.grad(x.detach()), auto, rtol=1e-9, atol=1e-10)
    e2, g2 = prior.energy_and_grad(x.detach())
    torch.testing.assert_close(e2, e.detach())
    torch.testing.assert_close(g2, auto, rtol=1e-9, atol=1e-10)


def test_gmm_log_density_matches_scipy(rng):
    gmm = _random_gmm(rng)
    z = rng.normal(size=(6, 3, 3))
    for s in (0.0, 0.3):
        cov = gmm.covariances.numpy() + s ** 2 * np.eye(9)
        dens = sum(w * st.multivariate_normal(m, c).pdf(z.reshape(6, 9))
                   for w, m, c in zip(gmm.weights.numpy(), gmm.means.numpy(), cov))
        np.testing.assert_allclose(gmm.log_density(torch.as_tensor(z), s).numpy(), np.log(dens), rtol=1e-10)


@pytest.mark.parametrize("s", [0.01, 0.05, 0.5])
def test_gmm_denoiser_is_tweedie(s, rng):
    """Posterior-mean formula == z + s^2 grad log p_s, computed independently via the noisy GMM."""
    gmm = _random_gmm(rng)
    z = torch.as_tensor(rng.normal(size=(10, 3, 3)))
    tweedie = z + s ** 2 * (-gmm.noisy(s).grad(z))
    torch.testing.assert_close(gmm.denoise(z, s), tweedie, rtol=0, atol=1e-8)
    # the score is the gradient of log p_s (checked against scipy above): central differences
    eps = 1e-6
    v = torch.as_tensor(rng.normal(size=z.shape))
    fd = (gmm.log_density(z + eps * v, s) - gmm.log_density(z - eps * v, s)) / (2 * eps)
    torch.testing.assert_close((gmm.score(z, s) * v).flatten(1).sum(1), fd, rtol=1e-6, atol=1e-6)


def test_gaussian_denoiser_is_tweedie(gaussian8, rng):
    s = 0.1
    z = torch.as_tensor(rng.normal(0.4, 0.2, size=(3, 8, 8)))
    noisy = P.GaussianPrior(gaussian8.spectrum + s ** 2, mean=gaussian8.mean)
    torch.testing.assert_close(gaussian8.denoise(z, s), z - s ** 2 * noisy.grad(z), rtol=0, atol=1e-12)


def test_gaussian_sample_has_the_spectrum(gaussian8):
    x = gaussian8.sample(4000, rng=0)
    per = (torch.fft.fft2(x - gaussian8.mean, norm="ortho").abs() ** 2).mean(0)
    ratio = per / gaussian8.spectrum
    assert abs(float(ratio.mean()) - 1) < 0.02


def test_gaussian_fit_recovers_a_known_power_law():
    """Fitted to samples of a stationary Gaussian with spectrum a (f^2 + f0^2)^(-gamma/2), gamma = 2.3, the
    power-law fit returns gamma within 0.05 (400 crops of 32x32: the periodogram's scatter is ~1/sqrt(400))."""
    truth = P.GaussianPrior(P.power_law((32, 32), 2e-3, 2.3, 0.05).numpy(), mean=0.4)
    samples = [s.numpy() for s in truth.sample(400, rng=0)]
    gp = P.GaussianPrior.fit(samples, (32, 32), n_crops=400)
    assert abs(gp.info["exponent"] - 2.3) < 0.05, gp.info["exponent"]
    assert abs(gp.mean - 0.4) < 0.01


def test_empirical_spectrum_is_even():
    gp2 = P.GaussianPrior.fit(data.TRAIN, (32, 32), model="empirical", n_crops=200)
    assert torch.allclose(gp2.spectrum, gp2.spectrum.flip(0).roll(1, 0), rtol=1e-12)   # P(w) = P(-w)


def test_gmm_em_recovers_a_known_mixture(rng):
    truth = P.GMMPrior(np.array([0.3, 0.7]), np.array([[2.0, 2.0, 0, 0], [-1.0, 0, 0, 1.0]]),
                       np.stack([np.eye(4) * 0.1, np.diag([0.2, 0.3, 0.1, 0.05])]), (2, 2))
    x = truth.sample(6000, rng=3)
    fit = P.GMMPrior.fit(x, (2, 2), 2, n_iter=100, rng=0, progress=False)
    order = torch.argsort(fit.weights)
    torch.testing.assert_close(fit.weights[order], truth.weights, atol=0.02, rtol=0)
    torch.testing.assert_close(fit.means[order], truth.means, atol=0.05, rtol=0)
    ll_fit = float(fit.log_density(x).mean())
    ll_true = float(truth.log_density(x).mean())
    assert ll_fit >= ll_true - 1e-3                            # MLE beats the truth in-sample


def test_gmm_save_load(tmp_path, rng):
    gmm = _random_gmm(rng)
    gmm.save(tmp_path / "g.npz")
    back = P.GMMPrior.load(tmp_path / "g.npz")
    z = torch.as_tensor(rng.normal(size=(2, 3, 3)))
    torch.testing.assert_close(back.energy(z), gmm.energy(z))


def test_patch_energy_is_sum_over_wrapped_patches(rng):
    gmm = _random_gmm(rng, shape=(2, 2))
    prior = P.PatchGMMPrior(gmm)
    x = torch.as_tensor(rng.normal(size=(3, 4)))
    ref = 0.0
    for i in range(3):
        for j in range(4):
            patch = x[[i, (i + 1) % 3]][:, [j, (j + 1) % 4]]
            ref += float(gmm.energy(patch))
    assert abs(float(prior.energy(x)) - ref) < 1e-10


def test_sparse_prior_is_shift_invariant_and_checks(rng):
    sp = P.SparseGradientPrior(alpha=0.8)
    x = torch.as_tensor(rng.random((6, 6)))
    torch.testing.assert_close(sp.energy(x + 0.3), sp.energy(x))
    with pytest.raises(InputError, match="alpha"):
        P.SparseGradientPrior(alpha=1.5)
    with pytest.raises(NotImplementedError, match="unavailable"):
        sp.denoise(x, 0.1)
    assert sp.capabilities["energy"] == P.UP_TO_CONSTANT


def test_shape_and_parameter_errors(gaussian8):
    with pytest.raises(InputError, match="x"):
        gaussian8.energy(torch.zeros(7, 8, dtype=torch.float64))
    with pytest.raises(InputError, match="spectrum"):
        P.GaussianPrior(-np.ones((4, 4)))
    with pytest.raises(InputError, match="weights"):
        P.GMMPrior([0.5, 0.6], np.zeros((2, 1)), np.ones((2, 1, 1)), (1, 1))
