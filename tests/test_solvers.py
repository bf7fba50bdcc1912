"""Inner solvers against exact answers: Gaussian-prior closed forms (circular boundary), a dense
least-squares solve (valid boundary), the Newton decrement against the exact energy gap."""

import numpy as np
import pytest
import torch

import landscape as ls
from landscape import data, kernels as K, marginal, priors as P, solvers as S
from landscape._checks import InputError


def _valid_gaussian_post(rng, shape=(10, 11), sigma=0.03):
    """A small valid-boundary problem under a non-white stationary Gaussian prior."""
    fam = K.Gaussian(5)
    x = rng.random(shape)
    prob = ls.BlindDeblur.synthetic(x, fam, 1.1, sigma, rng=2, boundary="valid")
    prior = P.GaussianPrior(P.power_law(prob.image_shape, 2e-3, 2.0, 0.1).numpy(), mean=0.5)
    return ls.Posterior(prob, prior)


def _dense_prior_precision(prior, shape):
    m, n = shape
    F = np.kron(np.fft.fft(np.eye(m), norm="ortho"), np.fft.fft(np.eye(n), norm="ortho"))
    return (F.conj().T @ np.diag(1 / prior.spectrum.numpy().reshape(-1)) @ F).real


def test_valid_boundary_x_gradient_matches_finite_differences(rng):
    post = _valid_gaussian_post(rng)
    th = torch.tensor([[0.7]], dtype=torch.float64)
    x = torch.as_tensor(rng.random((1, *post.problem.image_shape)))
    fg, _ = post.x_objective(th)
    f, g = fg(x, torch.arange(1))
    eps = 1e-6
    for _ in range(5):
        v = torch.as_tensor(rng.normal(size=x.shape))
        fd = (post.energy(th, x + eps * v) - post.energy(th, x - eps * v)) / (2 * eps)
        np.testing.assert_allclose(float((g * v).sum()), float(fd), rtol=1e-6)


@pytest.mark.parametrize("method", ["lbfgs", "hqs"])
def test_valid_boundary_argmin_matches_a_dense_solve(rng, method):
    r"""Gaussian prior, valid boundary: argmin_x solves (H^T H / sigma^2 + C^-1) x = H^T y / sigma^2 + C^-1 mu
    with the dense (M x N) valid-convolution matrix H. HQS is only a preconditioned gradient method
    there (its data step is exact for the circular boundary), so it needs more iterations."""
    post = _valid_gaussian_post(rng)
    prob = post.problem
    th = np.array([0.0, 1.1])
    Q = _dense_prior_precision(post.prior, prob.image_shape)
    mu = np.full(Q.shape[0], 0.5)
    y = prob.y.numpy().reshape(-1)
    x, _, info = post.argmin_x(th, method=method, ftol=0, gtol=1e-10, xtol=1e-13, max_iter=20000,
                               curvature=float((1 / post.prior.spectrum).max()) if method == "hqs" else None)
    for i, t in enumerate(th):
        H = prob.blur([[t]]).matrix()[0].numpy()
        A = H.T @ H / prob.noise ** 2 + Q
        ref = np.linalg.solve(A, H.T @ y / prob.noise ** 2 + Q @ mu)
        np.testing.assert_allclose(x[i].numpy().reshape(-1), ref, rtol=0, atol=1e-6)
    assert info.converged.all()


def test_solver_options_are_validated():
    for bad in ({"method": "newton"}, {"max_iter": 0}, {"etol": -1.0}, {"xtol": float("nan")},
                {"memory": 0}, {"curvature": -2.0}):
        name = next(iter(bad))
        with pytest.raises(InputError, match=name):
            S.SolverOptions(**bad)
    with pytest.raises(InputError, match="solver option"):
        S.SolverOptions().replace(maxiter=3)
    assert S.SolverOptions(etol=0.1).attrs()["solver_etol"] == 0.1


def test_hqs_converges_to_the_closed_form_minimiser():
    img = data.center_crop(data.load("camera"), 32)
    prob = ls.BlindDeblur.synthetic(img, K.Gaussian(9), 1.5, 0.01, rng=0)
    post = ls.Posterior(prob, P.GaussianPrior.fit(data.TRAIN, (32, 32), n_crops=100))
    th = np.array([0.0, 1.0, 2.5])
    L = float((1 / post.prior.spectrum).max())           # Lipschitz constant of grad q
    x, t, info = post.argmin_x(th, method="hqs", curvature=L, xtol=1e-11, max_iter=5000)
    xs = marginal.argmin_closed_form(post, th)
    assert info.converged.all()
    assert float((x - xs).abs().max()) < 1e-6
    cf = marginal.profile_closed_form(post, th)
    assert float(((t["energy"] - cf).abs() / cf.abs()).max()) < 1e-8


@pytest.mark.parametrize("curvature", [None, 5.0])
def test_fixed_point_rate_matches_the_gaussian_closed_form(gauss_setup, curvature):
    r"""For a stationary Gaussian prior the HQS map is Fourier-diagonal:
    eigenvalues 1 - (|h^|^2/sigma^2 + lambda/P) / (|h^|^2/sigma^2 + c)."""
    post = gauss_setup
    th = torch.tensor([[0.5], [1.5], [3.0]], dtype=torch.float64)
    c = S.default_curvature(post, "hqs", post.default_start()) if curvature is None else curvature
    blur = post.problem.blur(th)
    dc = (blur.otf.real ** 2 + blur.otf.imag ** 2) / post.problem.noise ** 2
    P_half = post.prior.spectrum[:, : 64 // 2 + 1]
    exact = (1 - (dc + 1 / P_half) / (dc + c)).abs().flatten(1).max(1).values
    est = S.fixed_point_rate(post, th, post.problem.y, curvature=curvature)
    np.testing.assert_allclose(est.numpy(), exact.numpy(), rtol=1e-6)


def test_hqs_map_fixed_point_is_the_minimiser(gauss_setup):
    """T(x) = x - M grad E vanishes in its step exactly at argmin_x E (closed form)."""
    post = gauss_setup
    th = torch.tensor([[1.2]], dtype=torch.float64)
    x = marginal.argmin_closed_form(post, th)
    T = S.hqs_map(post, th)
    step = (T(x) - x).norm() / x.norm()
    assert float(step) < 1e-12
    assert float((T(post.problem.y[None]) - post.problem.y).norm()) > 1e-3


@pytest.mark.parametrize("method", ["lbfgs", "hqs"])
def test_etol_bounds_the_energy_gap(gauss_setup, method):
    r"""Stopped by etol, E - E* <= K etol with K = max over frequencies of the preconditioner's
    curvature over the true one, (|h^|^2/sigma^2 + c) / (|h^|^2/sigma^2 + lambda/P) (Gaussian prior:
    closed form); and the stop comes earlier than the solve to round-off."""
    post = gauss_setup
    th = np.array([0.5, 1.5, 2.5])
    etol = 0.05
    # HQS converges for c at least the Lipschitz constant of grad q
    c = float((1 / post.prior.spectrum).max()) if method == "hqs" else S.default_curvature(post, method, post.default_start())
    dc = post.problem.blur(post.theta(th)).gram_spectrum() / post.problem.noise ** 2
    K = float(((dc + c) / (dc + post.prior_weight / post.prior.spectrum[:, : 64 // 2 + 1])).max())
    x, t, info = post.argmin_x(th, method=method, etol=etol, xtol=0, ftol=0, gtol=0, max_iter=3000, curvature=c)
    gap = (t["energy"] - marginal.profile_closed_form(post, th)).numpy()
    assert info.converged.all()
    assert (gap >= -1e-9).all() and (gap <= K * etol).all(), (gap, K)
    _, _, full = post.argmin_x(th, method=method, etol=0, xtol=1e-12, max_iter=3000, curvature=c)
    assert (info.n_iter < full.n_iter).all()


def test_every_options_object_declares_a_check_on_every_field_and_refuses_its_bad_values():
    """One options mechanism: each options dataclass validates on construction, every field has its Check,
    and every listed bad value raises an InputError that names that field."""
    import dataclasses

    from landscape._checks import InputError
    from landscape.denoisers.train import TrainConfig
    from landscape.estimators.pnp import PnPOptions
    from landscape.estimators.train_unrolled import UnrolledTrainConfig
    from landscape.priors.registry import PriorSettings
    from landscape.sampling.diffusion import DiffusionOptions
    from landscape.sampling.langevin import LangevinOptions
    from landscape.solvers import SolverOptions
    for cls in (SolverOptions, LangevinOptions, DiffusionOptions, PnPOptions, PriorSettings, TrainConfig,
                UnrolledTrainConfig):
        cls()
        for f in dataclasses.fields(cls):
            assert "check" in f.metadata, f"{cls.__name__}.{f.name} has no Check"
            for bad in f.metadata["check"].bad:
                with pytest.raises(InputError, match=f.name):
                    cls(**{f.name: bad})
