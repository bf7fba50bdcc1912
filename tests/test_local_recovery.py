"""The local-recovery study on its exact sandbox: every hypothesis and conclusion the pipeline decides is
checked against the closed form of a separated Gaussian mixture (x* a component's mean)."""

import numpy as np
import pytest
import torch

from landscape import kernels
from landscape.posterior import BlindDeblur
from landscape.studies import local_recovery as lr


@pytest.fixture(scope="module", params=[False, True], ids=["gray", "colour"])
def sandbox(request):
    """The sandbox case on camera (12x12), and in colour on chelsea ((3, 12, 12): a colour mixture, d = 432)."""
    cfg = lr.Config(priors="sandbox", x_star="critical", noise_levels="0,0.003", n_draws=1, radii="0.1,0.3",
                    n_directions=1, n_outer=15, color=request.param)
    return cfg.resolved(), lr.run(cfg, progress=False)


def test_the_sandbox_mode_and_its_hessian_are_the_closed_form(sandbox):
    cfg, ds = sandbox
    c = ds.isel(case=0)
    # the stopping rule's own bound: |x - x*| <= |grad q(x)| / lambda_min where q is strongly convex
    bound = float(c.q_grad_norm) / float(c.closed_q_eigenvalues[0])
    assert float(c.q_grad_norm) <= cfg.q_gtol
    assert np.linalg.norm(c.x_star.values - c.closed_mode.values) <= 1.01 * bound
    np.testing.assert_allclose(c.q_eigenvalues.values, c.closed_q_eigenvalues.values, rtol=1e-8)
    assert str(c.h_verdict.values).startswith("holds (strict")


def test_the_level_zero_energy_gap_is_the_closed_form(sandbox):
    """min_x E(0, x) - E(theta*, x*) = 1/2 (y - mu)^T (Sigma + sigma^2 I)^-1 (y - mu), y = h* * mu."""
    _, ds = sandbox
    c = ds.isel(case=0)
    gap = float(c.energy_gap_dirac_minus_local.sel(noise_level=0.0).isel(draw=0))
    assert gap == pytest.approx(float(c.closed_gap_level0), rel=1e-6)
    # the closed form is positive: at level 0 the trivial pair is *above* the mode, and C1 says so
    assert gap > 0 and "fails at σ = 0" in str(c.c1_verdict.values)


def test_a_case_stores_its_images_with_a_channel_axis_in_colour_only(sandbox):
    cfg, ds = sandbox
    pixels = ("channel", "row", "col") if cfg.color else ("row", "col")
    assert ds.x_star.dims == ("case", *pixels) and ds.closed_mode.dims == ds.x_star.dims
    assert ds.x_star.shape[1:] == ((3, 12, 12) if cfg.color else (12, 12))
    assert str(ds.case_image.values[0]) == ("chelsea" if cfg.color else "camera")


def test_colour_refuses_gray_images_and_takes_every_registry_prior():
    """--color with a gray image name is one error naming ``images``; every registry prior has a colour version,
    so colour EPLL (``patch-gmm``) beside the sandbox resolves."""
    with pytest.raises(ValueError, match="^images: .*with --color"):
        lr.Config(color=True, images="ascent").resolved()
    assert lr.Config(color=True, priors="sandbox,patch-gmm").resolved().priors == ("sandbox", "patch-gmm")


def test_the_level_zero_certificate_is_the_gauss_newton_matrix_of_the_closed_form(sandbox):
    """At noise-free data the residual vanishes at (theta*, x*), so the joint Hessian is exactly
    J^T J / sigma^2 + blockdiag(0, Sigma^-1), J = [d(h_theta * x)/d theta, H*]; its smallest eigenvalue is
    the certificate's."""
    cfg, ds = sandbox
    c = ds.isel(case=0)
    x = torch.as_tensor(c.x_star.values)
    fam = kernels.get("gaussian", cfg.kernel_size)
    pb = BlindDeblur(x, fam, 1.0)
    th = torch.tensor([[cfg.theta_true]], dtype=torch.float64)
    dtheta = torch.autograd.functional.jacobian(lambda t: pb.blur(t[None])(x[None])[0], th[0]).reshape(-1, 1)
    basis = torch.eye(x.numel(), dtype=torch.float64).reshape(-1, *x.shape)
    H = pb.blur(th.expand(len(basis), 1))(basis).reshape(len(basis), -1).T
    J = torch.cat([dtheta, H], 1).numpy()
    M = J.T @ J / cfg.sigma_zero ** 2
    sigma_inv = np.linalg.inv(lr.prior_and_image(cfg.resolved(), np.random.default_rng(cfg.seed))[0].covariances[0].numpy())
    M[1:, 1:] += cfg.weight * sigma_inv
    lam0 = np.linalg.eigvalsh(M)[0]
    assert float(c.cert_eig_min.sel(noise_level=0.0)) == pytest.approx(lam0, rel=1e-6)
    assert str(c.c2_verdict.values) == "certified local minimiser"
    assert float(c.theta_hat.sel(noise_level=0.0).isel(draw=0)) == pytest.approx(cfg.theta_true, abs=1e-8)


def test_cases_pair_every_prior_image_and_role_but_the_sandbox_natural_one():
    cfg = lr.Config(priors="gs,sandbox", images="camera,ascent", x_star="critical,natural")
    got = [(*c.priors, *c.images, *c.x_star) for c in lr.cases(cfg)]       # one entry of each list per case
    assert got == [("gs", "camera", "critical"), ("gs", "camera", "natural"), ("gs", "ascent", "critical"),
                   ("gs", "ascent", "natural"), ("sandbox", "camera", "critical"), ("sandbox", "ascent", "critical")]


def test_a_kernel_larger_than_the_sandbox_image_is_refused():
    with pytest.raises(ValueError, match="^kernel_size:"):
        lr.Config(priors="sandbox", kernel_size=15).resolved()


def test_cases_of_different_image_sizes_combine_nan_padded():
    """The sandbox (12x12) beside a 16x16 case: one file, the smaller images NaN-padded, their size kept."""
    ds = lr.run(lr.Config(quick=True, priors="sparse,sandbox", x_star="critical", n_outer=3), progress=False)
    assert ds.sizes["row"] == 16 and list(ds.image_size.values) == [16, 12]
    sand = ds.x_star.sel(case="sandbox/camera/critical").values
    assert np.isfinite(sand[:12, :12]).all() and np.isnan(sand[12:, :]).all()


@pytest.mark.parametrize("prior,x_star,color", [("sandbox", "critical", False), ("gaussian", "natural", False),
                                                 # 64 s: the network's Hessian on meta; gaussian-natural covers the path
                                                 pytest.param("tweedie", "natural", False, marks=pytest.mark.slow),
                                                 ("sandbox", "critical", True)])
def test_a_case_allocates_nothing_off_its_device(prior, x_star, color, same_on_meta):
    """One case (H, the ladder with its certificates, the segment, C4's descents) with torch's default device
    set to ``meta`` and ``device="cpu"``: a tensor made without the case's device lands on ``meta`` and fails
    (the error a GPU run meets). The case's numbers equal a normal run's."""
    cfg = lr.Config(quick=True, priors=prior, x_star=x_star, crop=16, noise_levels="0,0.01", n_draws=1, radii="0.3",
                    n_directions=1, n_outer=3, q_max_iter=30, certify_k=1, device="cpu", color=color)
    (case,) = lr.cases(cfg)
    same_on_meta(lambda: lr.run_part(case, progress=False),
                 ("x_star", "theta_hat", "energy_gap_dirac_minus_local", "cert_eig_min", "segment_energy",
                  "basin_theta_end", "start_theta_end"))
