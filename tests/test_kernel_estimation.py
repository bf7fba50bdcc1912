"""Free-kernel estimation: the EM's M-step quadratic against its definition, EM's monotonicity for the closed-form
marginal, the marginal's gradient against finite differences, the pyramid and the kernel error."""

from functools import partial

import numpy as np
import pytest
import torch

from landscape import kernel_estimation as ke
from landscape import kernels, marginal
from landscape._checks import InputError
from landscape.operators import Blur
from landscape.priors import GaussianPrior
from landscape.priors.gaussian import power_law


def _prior(shape):
    return GaussianPrior(power_law(shape, 1e-3, 2.0, 0.02), mean=0.4)


def _problem(shape=(24, 24), size=5, rng=0):
    g = np.random.default_rng(rng)
    prior = _prior(shape)
    x = prior.sample(1, rng=g)[0]
    h = g.random((size, size)) ** 4
    h /= h.sum()
    y = Blur(torch.as_tensor(h), shape)(x) + 0.01 * torch.as_tensor(g.standard_normal(shape))
    return y, h, prior


def test_the_m_step_quadratic_equals_the_expected_misfit_computed_densely():
    """Q(h) = h^T A h - 2 b^T h + const against E||h * x - y||^2 under N(mu, C), computed with the dense
    blur matrix H and the dense posterior covariance C = F* diag(c) F: ||H mu - y||^2 + tr(H C H^T)."""
    y, h0, prior = _problem((12, 12), 5)
    mu, c = ke.e_step(y, torch.as_tensor(h0), prior, 0.01)
    A, b, const = ke.m_step_quadratic(y, mu, c, 5)
    g = np.random.default_rng(3)
    h = torch.as_tensor(g.random((5, 5)))
    h /= h.sum()
    Q = float(h.reshape(-1) @ A @ h.reshape(-1) - 2 * b @ h.reshape(-1) + const)
    Hm = Blur(h, (12, 12)).matrix()
    m = torch.fft.ifft2(mu, norm="ortho").real.reshape(-1)
    n = 144
    F = torch.fft.fft2(torch.eye(n, dtype=torch.float64).reshape(n, 12, 12), norm="ortho").reshape(n, n).T
    C = (F.conj().T @ torch.diag(c.reshape(-1).to(torch.complex128)) @ F).real
    dense = float(((Hm @ m - y.reshape(-1)) ** 2).sum() + torch.trace(Hm @ C @ Hm.T))
    assert abs(Q - dense) <= 1e-9 * abs(dense)


def test_the_least_squares_kernel_is_the_dense_simplex_qp_and_recovers_a_noise_free_kernel():
    """``least_squares_kernel``: argmin over the simplex of ||h * x - y||^2, against scipy's SLSQP on the dense
    design matrix (one column per kernel tap: the blur of x by that tap alone); with noise-free data it
    returns the true kernel."""
    from scipy.optimize import minimize
    y, h_true, prior = _problem((24, 24), 5, rng=1)
    x = prior.sample(1, rng=np.random.default_rng(1))[0]        # _problem's image, drawn again from its seed
    taps = torch.eye(25, dtype=torch.float64).reshape(25, 5, 5)
    X = torch.stack([Blur(t, (24, 24))(x).reshape(-1) for t in taps], 1).numpy()
    yv = y.reshape(-1).numpy()
    ref = minimize(lambda v: ((X @ v - yv) ** 2).sum(), np.full(25, 1 / 25), jac=lambda v: 2 * X.T @ (X @ v - yv),
                   bounds=[(0, None)] * 25, constraints=[{"type": "eq", "fun": lambda v: v.sum() - 1}],
                   method="SLSQP", options={"ftol": 1e-15, "maxiter": 1000}).x.reshape(5, 5)
    got = ke.least_squares_kernel(y, x, 5, n_iter=3000)
    np.testing.assert_allclose(got, ref, atol=2e-4)
    assert ((X @ got.ravel() - yv) ** 2).sum() <= ((X @ ref.ravel() - yv) ** 2).sum() * (1 + 1e-6)
    clean = Blur(torch.as_tensor(h_true), (24, 24))(x)
    np.testing.assert_allclose(ke.least_squares_kernel(clean, x, 5, n_iter=3000), h_true, atol=2e-4)
    with pytest.raises(InputError, match="^size:"):
        ke.least_squares_kernel(y, x, 4)
    with pytest.raises(InputError, match="^x:"):
        ke.least_squares_kernel(y, x[:20], 5)


def test_em_never_increases_the_closed_form_marginal_nll():
    """Each EM iteration (E-step, exact M-step on the simplex) cannot raise -log p(y | h) (the closed form of
    ``marginal.marginal_nll``); from the Dirac it falls."""
    y, h, prior = _problem((24, 24), 5, rng=1)
    _, nll = ke._em_level(y.numpy(), 0.01, prior, kernels.dirac(5).numpy(), n_em=8, n_inner=300)
    d = np.diff(nll)
    assert (d <= 1e-7 * np.abs(nll[:-1])).all(), d
    assert nll[-1] < nll[0] - 1.0


def test_the_marginal_gradient_matches_finite_differences():
    """d/dh of the closed-form -log p(y | h) (autograd through the free family's OTF) against central
    differences along directions that keep the kernel's sum."""
    y, h, prior = _problem((16, 16), 5, rng=2)
    prob = ke.kernel_problem(y.numpy(), 0.01, 5)
    th = prob.family.theta_of(h).requires_grad_(True)
    (g,) = torch.autograd.grad(marginal.marginal_nll(prob, prior, th).sum(), th)
    rng = np.random.default_rng(4)
    for _ in range(3):
        u = torch.as_tensor(rng.standard_normal(25))[None]
        u -= u.mean()
        eps = 1e-6
        f = lambda t: float(marginal.marginal_nll(prob, prior, th.detach() + t * u)[0])
        fd = (f(eps) - f(-eps)) / (2 * eps)
        assert abs(float((g * u).sum()) - fd) <= 1e-5 * max(abs(fd), 1.0)


def test_the_pyramid_runs_coarse_to_fine_on_odd_supports():
    levels = ke.pyramid((128, 128), 29)
    sizes = [k for _, k, _ in levels]
    assert levels[-1] == ((128, 128), 29, 1.0) and sizes[0] <= 3
    assert all(k % 2 == 1 for k in sizes) and sizes == sorted(sizes)
    assert all(min(s) >= k for s, k, _ in levels)
    with pytest.raises(InputError, match="size"):
        ke.pyramid((64, 64), 4)


def test_the_kernel_error_ignores_a_translation_and_the_support():
    h = kernels.load("levin5")
    moved = np.zeros((h.shape[0] + 6, h.shape[0] + 6))
    moved[4:4 + h.shape[0], 1:1 + h.shape[0]] = h               # shifted off-centre on a larger support
    assert ke.kernel_error(moved, h) < 1e-12
    assert abs(ke.kernel_error(kernels.dirac(3).numpy(), h) - np.linalg.norm(kernels.centre(h, 13)
                                                                            - kernels.centre(np.ones((1, 1)), 13))) < 1e-12


def test_the_gaussian_nonblind_step_is_the_closed_form_wiener_filter():
    """``nonblind`` with a Gaussian prior: the exact minimiser, whose gradient of E vanishes."""
    y, h, prior = _problem((16, 16), 5, rng=5)
    x = torch.as_tensor(ke.nonblind(y.numpy(), 0.01, h, prior))
    blur = Blur(torch.as_tensor(h), (16, 16))
    grad = blur.adjoint(blur(x) - y) / 0.01 ** 2 + prior.grad(x[None])[0]
    assert float(grad.norm()) <= 1e-6 * float((blur.adjoint(y) / 0.01 ** 2).norm())


def test_the_mog_e_step_mean_solves_its_dense_system_and_the_m_step_is_the_dense_expected_misfit():
    """Levin et al. 2011's E-step (``mog_e_step``): the mean of the differences solves
    (H^T H / eta^2 + diag(w)) mu = H^T dy / eta^2 with the dense blur matrix H, for the weights w it used, and
    c = 1/(||h||^2/eta^2 + w); the M-step's Q(h) equals sum_g ||H mu_g - dy_g||^2 + ||h||^2 sum c_g densely."""
    y, h0, _ = _problem((12, 12), 5)
    mix = ke.fit_gradient_mixture()
    dy = ke.differences(y.double())
    ht = torch.as_tensor(h0)
    n2 = 2e-4
    w_in = mix.precision(dy ** 2)
    mu, c, _ = ke.mog_e_step(dy, ht, mix, n2, dy.clone(), w_in, n_reweight=1, cg_iter=500, rtol=1e-12)
    Hm = Blur(ht, (12, 12)).matrix()
    for g in range(2):
        lhs = Hm.T @ Hm / n2 + torch.diag(w_in[g].reshape(-1))
        ref = torch.linalg.solve(lhs, Hm.T @ dy[g].reshape(-1) / n2)
        assert torch.allclose(mu[g].reshape(-1), ref, rtol=0, atol=1e-8 * float(ref.abs().max()))
        assert torch.allclose(c[g], 1 / (float((ht ** 2).sum()) / n2 + w_in[g]))
    A, b, const = ke.mog_m_step_quadratic(dy, mu, c, 5)
    h = torch.as_tensor(np.random.default_rng(4).random((5, 5)))
    h /= h.sum()
    Q = float(h.reshape(-1) @ A @ h.reshape(-1) - 2 * b @ h.reshape(-1) + const)
    Hh = Blur(h, (12, 12)).matrix()
    dense = sum(float(((Hh @ mu[g].reshape(-1) - dy[g].reshape(-1)) ** 2).sum()) + float((h ** 2).sum() * c[g].sum())
                for g in range(2))
    assert abs(Q - dense) <= 1e-9 * abs(dense)


def _colour_prior(shape, basis=None):
    """A colour stationary Gaussian: three spectra (one per component of ``basis``) of different slopes."""
    P = np.stack([power_law(shape, 1e-3, g, 0.02) for g in (2.0, 2.4, 1.8)])
    return GaussianPrior(P, mean=[0.4, 0.45, 0.35], basis=basis)


def test_colour_em_never_increases_the_colour_closed_form_marginal_nll():
    """One kernel blurs three channels whose prior couples them through a rotated colour basis: the M-step sums the
    components' quadratics, and each EM iteration cannot raise the colour -log p(y | h) (the closed form, summed
    over the basis's independent components); from the Dirac it falls."""
    g = np.random.default_rng(5)
    basis, _ = np.linalg.qr(g.standard_normal((3, 3)))
    prior = _colour_prior((24, 24), basis)
    x = prior.sample(1, rng=g)[0]
    h = g.random((5, 5)) ** 4
    h /= h.sum()
    y = Blur(torch.as_tensor(h), (24, 24), channels=3)(x) + 0.01 * torch.as_tensor(g.standard_normal((3, 24, 24)))
    _, nll = ke._em_level(y.numpy(), 0.01, prior, kernels.dirac(5).numpy(), n_em=8, n_inner=300)
    d = np.diff(nll)
    assert (d <= 1e-7 * np.abs(nll[:-1])).all(), d
    assert nll[-1] < nll[0] - 1.0


@pytest.mark.parametrize("estimator", ["map_k", "map_k_mog"])
def test_a_colour_image_of_three_identical_channels_gives_the_gray_kernel(estimator):
    """The colour path (channel axis through the pyramid, the components' quadratics summed) against the gray one:
    three identical channels under a prior that treats them alike triple every quadratic of the M-step, so EM
    follows the gray iterates, level by level, to the same kernel (to 1e-8; the sparse prior's to 1e-6, its PCG
    and reweighting seeing the tripled sums' rounding)."""
    y, h, _ = _problem((32, 32), 7, rng=3)
    y3 = np.stack([y.numpy()] * 3)
    if estimator == "map_k":
        gray = ke.map_k(y.numpy(), 0.01, 7, prior=_prior, n_em=4)
        colour = ke.map_k(y3, 0.01, 7, prior=lambda s: GaussianPrior(np.stack([_prior(s[-2:]).spectrum] * 3),
                                                                      mean=[0.4] * 3), n_em=4)
    else:
        gray, colour = (ke.map_k_mog(v, 0.01, 7, n_em=4) for v in (y.numpy(), y3))
    assert ke.kernel_error(gray["kernel"], h) < ke.kernel_error(kernels.dirac(1).numpy(), h) / 2
    np.testing.assert_allclose(colour["kernel"], gray["kernel"], atol=1e-8 if estimator == "map_k" else 1e-6)


def test_a_warm_started_map_xk_is_the_full_size_descent_of_its_scheme_and_bad_input_is_refused():
    """``map_xk(start=(h0, x0), scheme=s)`` skips the pyramid: its kernel is ``descend(scheme=s)``'s at full size
    from (h0, x0), to the bit, for PAM and for the exact-projection scheme (which end apart: the comparison is of
    two kernel steps); a kernel of another size or off the simplex, or an image of another shape, is one error
    naming ``start``, an unknown scheme one naming ``scheme``."""
    from landscape.descent import descend
    from landscape.posterior import Posterior
    y, h, prior = _problem((24, 24), 5)
    h0 = np.full((5, 5), 1 / 25)
    x0 = np.asarray(y) + 0.01
    post = Posterior(ke.kernel_problem(np.asarray(y), 0.01, 5), prior)
    fam = post.problem.family
    ends = {}
    for scheme in ("pam", "alternating"):
        got = ke.map_xk(y, 0.01, 5, prior, n_outer=3, x_iters=2, start=(h0, x0), scheme=scheme)
        ds = descend(post, fam.theta_of(h0), torch.as_tensor(x0)[None], scheme=scheme, n_outer=3, x_iters=2,
                     record_every=3, progress=False)
        want = fam(torch.as_tensor(ds.theta_path.values[0, -1])[None])[0].numpy()
        assert got["levels"] == [5] and np.array_equal(got["kernel"], want)
        assert not np.allclose(got["kernel"], h0, atol=1e-3)        # it moved: the comparison is not of two starts
        ends[scheme] = got["kernel"]
    assert not np.allclose(ends["pam"], ends["alternating"], atol=1e-4)
    for bad in ((np.full((3, 3), 1 / 9), x0), (h0 * 2, x0), (h0, x0[:20])):
        with pytest.raises(InputError, match="^start: "):
            ke.map_xk(y, 0.01, 5, prior, n_outer=1, start=bad)
    with pytest.raises(InputError, match="^scheme: "):
        ke.map_xk(y, 0.01, 5, prior, n_outer=1, scheme="joint")


@pytest.mark.parametrize("channels", [None, 3])
def test_the_draws_m_step_quadratic_is_the_draws_mean_misfit(channels):
    """draws_m_step's Q(h) = h^T A h - 2 b^T h + const against (1/J) sum_j ||h * x_j - y||^2 computed with the blur
    operator, at random kernels on the simplex: the draws' Fourier moments give it exactly (gray, and colour with
    one kernel on every channel: the channels' misfits summed)."""
    g = np.random.default_rng(4)
    shape = (12, 14) if channels is None else (channels, 12, 14)
    y = torch.as_tensor(g.random(shape))
    draws = torch.as_tensor(g.random((5, *shape)))
    A, b, const = ke.draws_m_step(y, draws, 5)
    for _ in range(3):
        h = torch.as_tensor(g.random((5, 5)) ** 3)
        h /= h.sum()
        blur = Blur(h, (12, 14), channels=channels)
        want = float(sum(((blur(x) - y) ** 2).sum() for x in draws)) / len(draws)
        Q = float(h.reshape(-1) @ A @ h.reshape(-1) - 2 * b @ h.reshape(-1) + const)
        assert Q == pytest.approx(want, rel=1e-10)


def test_posterior_draws_move_the_kernel_off_the_dirac_where_y_itself_does_not():
    """The mechanism of map_k_diffusion (Levin et al.'s measured levin3, 13x13, on camera at 64x64, sigma = 0.01):
    from h = delta, the M-step fitted to y itself (the image the joint MAP pairs with delta) is delta again (peak
    1), while fitted to two diffusion posterior draws at delta (the shipped denoiser, 30 levels) it moves mass off
    the centre (measured peak 0.965) and towards the measured kernel (error 0.955 against delta's 0.991): the
    draws' fine detail is not in y, and a blur explains it away."""
    from landscape import data
    from landscape.posterior import BlindDeblur, Posterior
    from landscape.sampling.diffusion import DiffusionOptions, dps
    h_true = kernels.load("levin3")
    K = h_true.shape[0]
    fam = kernels.Free(K)
    prob = BlindDeblur.synthetic(data.center_crop(data.load("camera"), 64), fam, fam.theta_of(h_true), 0.01, rng=0,
                                 dtype=torch.float32)
    delta = kernels.dirac(K, device="cpu").double().reshape(-1)
    draws = dps(Posterior(prob, ke.tweedie_prior((64, 64))), fam.theta_of(delta.reshape(K, K).float()),
                DiffusionOptions(levels=30, chains=2, s_max=1.0), rng=0)["draws"][:, 0]
    y = prob.y.double()
    fits = {name: ke._fista_simplex(*ke.draws_m_step(y, d, K)[:2], delta, 100).reshape(K, K).numpy()
            for name, d in (("y", y[None]), ("draws", draws))}
    assert fits["y"].max() > 0.999
    assert fits["draws"].max() < 0.98
    err_delta = ke.kernel_error(delta.reshape(K, K).numpy(), h_true)
    assert ke.kernel_error(fits["draws"], h_true) < err_delta - 0.02


def test_map_k_diffusion_refuses_bad_samplers_and_starts():
    from landscape.sampling.diffusion import DiffusionOptions
    y = np.random.default_rng(0).random((32, 32))
    with pytest.raises(InputError, match="^options: "):
        ke.dps_sampler({"levels": 10})
    with pytest.raises(InputError, match="^sampler: "):
        ke.map_k_diffusion(y, 0.01, 5, sampler=DiffusionOptions(levels=10))
    with pytest.raises(InputError, match="^sampler: .*draws of shape \\(J, 32, 32\\)"):
        ke.map_k_diffusion(y, 0.01, 5, prior=lambda s: _prior(s), sampler=lambda post, th, rng: torch.zeros(2, 16, 16),
                           start=kernels.dirac(5).numpy(), dtype=torch.float64)
    with pytest.raises(InputError, match="^chains: "):
        ke.gaussian_sampler(0)
    with pytest.raises(InputError, match="^start: "):
        ke.map_k_diffusion(y, 0.01, 5, start=np.ones((5, 5)), sampler=ke.dps_sampler(DiffusionOptions(levels=2, chains=1)))
    with pytest.raises(InputError, match="^noise"):
        ke.map_k_diffusion(y, -1.0, 5)


def test_map_k_diffusion_with_exact_gaussian_draws_is_a_monte_carlo_step_of_the_exact_em():
    """map_k_diffusion's E-step is a ``sampler`` argument. With exact Gaussian posterior draws
    (``gaussian_sampler``, 256 draws) one EM iteration from a kernel halfway between delta and the truth (7x7 on a
    32x32 draw of the prior, sigma = 0.01) lands within 0.01 of the exact EM's iteration under the same prior
    (``e_step``'s posterior moments, the same FISTA; measured 0.0026, falling as 1/sqrt(J): 0.009 at 16 draws). That
    iteration moves the kernel 0.13; a researcher's sampler that returns the posterior *mean* (a lambda, J = 1, no
    spread) lands 0.154 from it: the draws' variance is what the M-step needs."""
    g = np.random.default_rng(0)
    shape, K, sig = (32, 32), 7, 0.01
    prior = GaussianPrior(power_law(shape, 1e-3, 2.0, 0.02).numpy(), mean=0.4)
    x = prior.sample(1, rng=g)[0]
    h = g.random((K, K)) ** 4
    h /= h.sum()
    y = (Blur(torch.as_tensor(h), shape)(x) + sig * torch.as_tensor(g.standard_normal(shape))).numpy()
    h0 = 0.5 * h + 0.5 * kernels.dirac(K).numpy()
    mu, c = ke.e_step(torch.as_tensor(y), torch.as_tensor(h0), prior, sig)
    A, b, _ = ke.m_step_quadratic(torch.as_tensor(y), mu, c, K)
    exact = ke._fista_simplex(A, b, torch.as_tensor(h0).reshape(-1), 100).reshape(K, K).numpy()
    assert np.linalg.norm(exact - h0) > 0.1
    run = partial(ke.map_k_diffusion, y, sig, K, prior=lambda s: prior, n_em=1, start=h0, rng=0, dtype=torch.float64)
    mc = run(sampler=ke.gaussian_sampler(256))["kernel"]
    assert np.linalg.norm(mc - exact) < 0.01
    mean_only = run(sampler=lambda post, th, rng: marginal.argmin_closed_form(post, th.reshape(1, -1)))["kernel"]
    assert np.linalg.norm(mean_only - exact) > 0.1
