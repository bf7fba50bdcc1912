import numpy as np
import pytest
import torch

import landscape as ls
from landscape import data, descent, kernels as K, marginal, priors as P, scan
from landscape._checks import InputError
from landscape.studies import trivial_minimizer as TM


@pytest.fixture(scope="module")
def small():
    img = data.center_crop(data.load("camera"), 32)
    prob = ls.BlindDeblur.synthetic(img, K.Gaussian(9), 1.5, 0.01, rng=0)
    return prob


def test_warm_started_branches_match_closed_form(small):
    post = ls.Posterior(small, P.GaussianPrior.fit(data.TRAIN, (32, 32), n_crops=100))
    th = np.linspace(0, 3, 9)
    ds = scan.profile(post, th, warm_start=True, progress=False)
    cf = marginal.profile_closed_form(post, th).numpy()
    assert ds.profile_energy_branch.shape == (2, 9)
    for b in ds.branch.values:                       # a convex problem: both branches agree
        np.testing.assert_allclose(ds.profile_energy_branch.sel(branch=b), cf, rtol=1e-7)
    assert ds.attrs["solver_item_evaluations"] > 0


@pytest.mark.parametrize("warm_start", [False, True])
def test_stored_images_on_the_valid_boundary(rng, warm_start, tmp_path):
    """x_hat (profile) and x_final (descent) are labelled with the image's own dims, larger than y's
    for the valid boundary, and survive a netCDF round trip."""
    from landscape import io
    img = data.center_crop(data.load("camera"), 24)
    prob = ls.BlindDeblur.synthetic(img, K.Gaussian(5), 1.0, 0.02, rng=0, boundary="valid")
    post = ls.Posterior(prob, P.SparseGradientPrior(alpha=0.8, eps=0.01))
    ds = scan.profile(post, [0.0, 1.0, 2.0], warm_start=warm_start, store_images=True, progress=False,
                      solver=ls.solvers.SolverOptions(max_iter=20))
    assert ds.x_hat.dims[-2:] == ("xrow", "xcol") and ds.x_hat.shape[-2:] == (24, 24)
    assert ds.y.shape == (20, 20) and ds.x_true.dims == ("xrow", "xcol")
    th0, x0, labels = descent.initialisations(post, rng=0)
    d = descent.descend(post, th0, x0, labels=labels, n_outer=2, progress=False)
    assert d.x_final.dims == ("init", "xrow", "xcol")
    io.save(ds, tmp_path / "p.nc")
    np.testing.assert_array_equal(io.load(tmp_path / "p.nc").x_hat.values, ds.x_hat.values)


def test_grid2d_corners_are_the_two_pairs(small):
    post = ls.Posterior(small, P.SparseGradientPrior(alpha=0.8, eps=0.01))
    g = scan.grid2d(post, [0.0, 0.5, 1.0], [0.0, 1.0])
    e_triv = post.energy(small.family.zero()[None], small.y[None])
    e_true = post.energy(small.theta_true[None], small.x_true[None])
    assert abs(float(g.energy.sel(t=0.0, u=0.0)) - float(e_triv)) < 1e-8 * abs(float(e_triv))
    assert abs(float(g.energy.sel(t=1.0, u=1.0)) - float(e_true)) < 1e-8 * abs(float(e_true))


def test_alternating_descent_decreases_energy_and_classifies(small):
    post = ls.Posterior(small, P.SparseGradientPrior(alpha=0.8, eps=0.01))
    th0, x0, labels = descent.initialisations(post, rng=0)
    assert labels[0] == "dirac" and torch.equal(th0[0], torch.zeros(1, dtype=th0.dtype))
    ds = descent.descend(post, th0, x0, labels=labels, n_outer=10, record_every=1, progress=False)
    e = ds.energy_path.values
    assert (np.diff(e, axis=1) <= 1e-9 * np.abs(e[:, :-1])).all()        # monotone descent
    assert set(ds.end_class.values) <= set(descent.CLASSES)
    assert ds.end_class.sel(init="dirac") == "trivial"                   # (delta, y) is stationary in theta
    np.testing.assert_allclose(ds.t_coord.isel(step=0).sel(init="dirac"), 0.0, atol=1e-12)
    np.testing.assert_allclose(ds.u_coord.isel(step=0).sel(init="dirac"), 0.0, atol=1e-12)


def test_free_kernel_pam_stays_on_the_simplex(small):
    fam = K.Free(5)
    hstar = K.Gaussian(5)(torch.tensor([[0.8]], dtype=torch.float64))[0]
    prob = ls.BlindDeblur.synthetic(small.x_true.numpy(), fam, fam.theta_of(hstar.numpy())[0], 0.01, rng=0)
    post = ls.Posterior(prob, P.SparseGradientPrior(alpha=0.8, eps=0.01))
    th0, x0, labels = descent.initialisations(post, rng=0, n_random=1)
    for scheme in ("alternating", "pam"):
        ds = descent.descend(post, th0, x0, labels=labels, scheme=scheme, n_outer=5, progress=False)
        h = fam(torch.as_tensor(ds.theta_path.isel(step=-1).values))
        assert (h >= -1e-12).all()
        np.testing.assert_allclose(h.sum(dim=(1, 2)).numpy(), 1.0, atol=1e-10)


def test_local_minima():
    np.testing.assert_array_equal(scan.local_minima(np.array([3.0, 1.0, 2.0, 0.5, 4.0])), [1, 3])
    np.testing.assert_array_equal(scan.local_minima(np.array([0.0, 1.0, 2.0])), [0])


def test_trivial_minimizer_quick_with_exact_prior(tmp_path):
    ds = TM.run(TM.Config(priors="sparse", quick=True, crop=24, kernel_size=9, n_draws=1), progress=False)
    assert ds.sizes["case"] == 1
    for v in ("i_dirac_below_truth", "ii_local_min_near_truth", "ii_branch_from_truth", "iii_descents", "iv_smooth_in_sigma",
              "profile_energy_branch", "descent_t", "theta_hat_near_truth", "y", "x_true", "kernel_true"):
        assert v in ds, v
    assert ds.i_dirac_below_truth.values[0] in ("yes", "no", "tie")
    from landscape import io
    io.save(ds, tmp_path / "tm.nc")
    back = io.load(tmp_path / "tm.nc")
    ax = back.landscape.plot()
    assert ax is not None
    assert "trivial-minimizer" in TM.summary(back)


def test_segment_straight_and_profile_paths(small):
    post = ls.Posterior(small, P.GaussianPrior.fit(data.TRAIN, (32, 32), n_crops=100))
    t = np.linspace(0, 1, 5)
    ds = scan.segment(post, small.family.zero(), small.y, small.theta_true, small.x_true, t)
    e0 = post.energy(small.family.zero()[None], small.y[None])
    e1 = post.energy(small.theta_true[None], small.x_true[None])
    np.testing.assert_allclose([ds.energy.values[0], ds.energy.values[-1]], [float(e0), float(e1)], rtol=1e-10)
    cf = marginal.profile_closed_form(post, ds.theta_values.values).numpy()
    np.testing.assert_allclose(ds.profile_energy.values, cf, rtol=1e-7)
    assert (ds.profile_energy.values <= ds.energy.values + 1e-6).all()


def test_profile2d_over_two_components_matches_closed_form(small):
    img = small.x_true.numpy()
    fam = K.Gaussian(9, aniso=True)
    prob = ls.BlindDeblur.synthetic(img, fam, [1.2, 0.6, 30.0], 0.01, rng=0)
    post = ls.Posterior(prob, P.GaussianPrior.fit(data.TRAIN, (32, 32), n_crops=100))
    v1, v2 = np.array([0.0, 0.6, 1.2]), np.array([0.3, 0.6])
    ds = scan.profile2d(post, v1, v2, progress=False)
    assert ds.profile_energy.shape == (3, 2) and ds.attrs["theta1_name"] == "width1"
    for a, w1 in enumerate(v1):
        for b, w2 in enumerate(v2):
            cf = float(marginal.profile_closed_form(post, [[w1, w2, 30.0]])[0])
            assert abs(float(ds.profile_energy[a, b]) - cf) < 1e-7 * abs(cf)


def test_secant_predictor_same_profile_fewer_evaluations(small):
    """A convex problem has one minimiser per theta: the predictor changes the cost, never the answer."""
    post = ls.Posterior(small, P.GaussianPrior.fit(data.TRAIN, (32, 32), n_crops=100))
    th = np.linspace(0, 3, 17)
    cf = marginal.profile_closed_form(post, th).numpy()
    runs = {p: scan.profile(post, th, warm_start=True, predictor=p, progress=False) for p in ("none", "secant")}
    for ds in runs.values():
        np.testing.assert_allclose(ds.profile_energy_branch.values, np.stack([cf, cf]), rtol=1e-7)
    assert runs["secant"].attrs["predictor"] == "secant"
    # "auto": secant behind L-BFGS (an energy to rescue a poor prediction), none for score-only priors
    assert scan.profile(post, th[:4], warm_start=True, progress=False).attrs["predictor"] == "secant"
    gp = post.prior
    score_only = ls.Posterior(small, P.TweediePrior(lambda x, s: gp.denoise(x, s), s=0.05))
    ds = scan.profile(score_only, th[:4], warm_start=True, progress=False, solver=ls.solvers.SolverOptions(max_iter=5))
    assert ds.attrs["predictor"] == "none"
    assert runs["secant"].attrs["solver_item_evaluations"] < runs["none"].attrs["solver_item_evaluations"]
    with pytest.raises(InputError, match="predictor"):
        scan.profile(post, th, warm_start=True, predictor="newton", progress=False)


def test_trivial_minimizer_product_of_cases_with_free_kernels(tmp_path):
    cfg = TM.Config(priors="sparse", crop=16, kernel_size=9, n_theta=9, n_draws=1, noise_levels="0.005,0.01",
                    n_outer=6, xtol=1e-4, max_iter=40, image="camera,ascent", family="gaussian,free",
                    noise="0.01,0.02")
    ds = TM.run(cfg, progress=False)
    assert ds.sizes["case"] == 8
    assert list(ds.case_family.values) == ["gaussian"] * 2 + ["free"] * 2 + ["gaussian"] * 2 + ["free"] * 2
    assert list(ds.case_noise.values) == [0.01, 0.02] * 4
    assert set(ds.case_image.values) == {"camera", "ascent"}
    free = ds.case_family.values == "free"
    # the free cases' true kernel is the seeded camera-shake kernel; their path parameter ends at t* = 1
    np.testing.assert_allclose(ds.case_kernel_true.values[free][0], K.camera_shake(9, rng=cfg.seed), atol=1e-6)
    np.testing.assert_array_equal(ds.case_theta_true.values[free], 1.0)
    assert np.nanmax(ds.theta_value.values[free]) == 1.0
    assert np.isfinite(ds.descent_kernel_error.values).all()
    # verdict (iv) does not depend on the case's own noise level: computed once, shared
    np.testing.assert_array_equal(ds.theta_hat_near_truth.values[0], ds.theta_hat_near_truth.values[1])
    assert not np.array_equal(ds.case_y.values[0], ds.case_y.values[1])
    # the plane's corners are pairs (delta, y) and (h*, x*): never below the profile minima there
    for c in range(ds.sizes["case"]):
        pl, th = ds.plane_energy.isel(case=c), ds.theta_value.values[c]
        e0 = float(pl.sel(t=0.0, u=0.0, method="nearest"))
        e1 = float(pl.sel(t=1.0, u=1.0, method="nearest"))
        pe = ds.profile_energy.values[c]
        istar = int(np.nanargmin(np.abs(th - ds.case_theta_true.values[c])))
        assert pe[0] <= e0 * (1 + 1e-5) and pe[istar] <= e1 * (1 + 1e-5)
    io_path = tmp_path / "tmm.nc"
    from landscape import io
    io.save(ds, io_path)
    back = io.load(io_path)
    assert back.landscape.plot() is not None
    assert all(c in TM.summary(back) for c in back.case.values)


def test_trivial_minimizer_bad_case_options():
    with pytest.raises(InputError, match="theta_true"):
        TM.Config(family="gaussian,motion", theta_true="1.5").resolved()
    with pytest.raises(InputError, match="family"):
        TM.Config(family="gaussian,blurry").resolved()
    with pytest.raises(InputError, match="noise"):
        TM.Config(noise="0.01,-1").resolved()
    with pytest.raises(InputError, match="etol"):
        TM.Config(etol=-0.1).resolved()


def test_free_kernel_descent_float32_stays_finite_near_stationary_kernels():
    """Regression: at a stationary kernel every theta step was accepted and grew x1.5 without bound
    until float32 overflowed; trial moves are now capped by the domain's diameter."""
    fam = K.Free(9)
    img = data.center_crop(data.load("camera"), 32)
    prob = ls.BlindDeblur.synthetic(img, fam, fam.theta_of(K.camera_shake(9, rng=0))[0], 0.01, rng=0,
                                    dtype=torch.float32)
    post = ls.Posterior(prob, P.GaussianPrior.fit(data.TRAIN, (32, 32), n_crops=100))
    th0, x0, labels = descent.initialisations(post, rng=0)
    ds = descent.descend(post, th0, x0, labels=labels, n_outer=40, progress=False,
                         solver=ls.solvers.SolverOptions(xtol=1e-5))
    h = fam(torch.as_tensor(ds.theta_path.isel(step=-1).values))
    assert torch.isfinite(h).all() and (h >= -1e-6).all()
    np.testing.assert_allclose(h.sum(dim=(1, 2)).numpy(), 1.0, atol=1e-5)
    assert ds.end_class.sel(init="dirac") == "trivial"
    with pytest.raises(InputError, match="finite"):
        K.project_simplex(torch.tensor([[0.5, float("nan")]]))




def test_trivial_minimizer_certificates_agree_with_a_dense_hessian():
    """Defocus, sparse prior, 16x16, float64: the near-truth candidates polish to one point that is a
    certified local minimiser; its smallest Hessian eigenvalue and its gradient against a dense autograd
    Hessian of E(theta, x) at that point (d = 257); the Dirac is certified with the x-Hessian (the disk
    kernel is the Dirac for radii below half a pixel, so E is flat in theta there)."""
    cfg = TM.Config(priors="sparse", crop=16, kernel_size=7, family="defocus", theta_true="2", n_theta=9,
                    n_draws=1, noise_levels="0.01", n_outer=10, dtype="float64")
    part = TM.run_part(cfg, progress=False)
    verdict = part.cert_verdict.values
    assert verdict[0] == "certified local minimiser (boundary, flat in θ)"
    near = [i for i in range(1, 4) if verdict[i] == "certified local minimiser"]
    assert near
    i = near[0]
    fam, theta_true, image, grid, _ = TM.setup(cfg.resolved().problems()[0], cfg)
    prob = ls.BlindDeblur.synthetic(image, fam, theta_true, 0.01, rng=cfg.seed, dtype=torch.float64)
    post = ls.Posterior(prob, P.make_prior("sparse", prob.image_shape, P.PriorSettings(dtype=torch.float64)))
    z = torch.cat([torch.tensor([float(part.cert_theta.values[i])], dtype=torch.float64),
                   torch.as_tensor(part.cert_x.values[i], dtype=torch.float64).reshape(-1)])
    f = lambda w: post.energy(w[:1][None], w[1:].reshape(16, 16)[None])[0]
    lam = np.linalg.eigvalsh(torch.autograd.functional.hessian(f, z).numpy())[0]
    assert lam > 0 and abs(lam - float(part.cert_eig_min.values[i])) < 1e-3 * lam
    g = torch.autograd.functional.jacobian(f, z)
    assert float(g.norm()) <= TM.CERT_GTOL


def test_local_minimiser_is_the_refined_argmin_of_the_closed_form_profile(small):
    """scan.local_minimiser on theta* [0.6, 1.4] equals grid_argmin of the closed-form profile on the same 7
    points (a convex x-problem: warm starts cannot change the inner minimum), here with a kernel term
    r = 400 (theta - 1.6)^2 that puts a minimum inside; without it the Gaussian prior's profile only rises
    there (NaN: no local minimum inside); a window that reaches the domain's boundary keeps its end."""
    prior = P.GaussianPrior.fit(data.TRAIN, (32, 32), n_crops=100)
    solver = ls.solvers.SolverOptions(xtol=1e-10, max_iter=3000)
    post = ls.Posterior(small, prior, kernel_energy=lambda th: 400 * (th[:, 0] - 1.6) ** 2)
    g = np.linspace(0.9, 2.1, 7)
    cf = marginal.profile_closed_form(post, g).numpy()
    assert 0 < int(np.argmin(cf)) < 6
    got = scan.local_minimiser(post, [1.5], solver, width=0.4, n=7)
    assert abs(got - scan.grid_argmin(cf, g)[1]) < 1e-4
    plain = ls.Posterior(small, prior)
    assert np.all(np.diff(marginal.profile_closed_form(plain, g).numpy()) > 0)
    assert np.isnan(scan.local_minimiser(plain, [1.5], solver, width=0.4, n=7))
    assert scan.local_minimiser(plain, [0.2], solver, width=1.0, n=7) == 0.0
    with pytest.raises(InputError, match="width, n"):
        scan.local_minimiser(plain, [1.5], solver, n=2)


def test_a_colour_problem_with_identical_channels_has_three_times_the_gray_energies(small, rng):
    """Three identical channels under a colour Gaussian prior with the gray spectrum on every component (any
    orthonormal colour basis: the covariance is then P I): data, prior and kernel terms, the L-BFGS profile
    and its closed form are three times the gray problem's; the solved images are the gray ones per channel."""
    gray = P.GaussianPrior.fit(data.TRAIN, (32, 32), n_crops=100)
    q, _ = np.linalg.qr(rng.normal(size=(3, 3)))
    col = P.GaussianPrior(np.stack([gray.spectrum.numpy()] * 3), mean=[gray.mean] * 3, basis=q)
    prob3 = ls.BlindDeblur(torch.stack([small.y] * 3), small.family, small.noise,
                           x_true=torch.stack([small.x_true] * 3), theta_true=small.theta_true)
    p1, p3 = ls.Posterior(small, gray), ls.Posterior(prob3, col)
    th = np.linspace(0, 3, 5)
    x = torch.stack([small.x_true] * 5)
    for k, v in p1.terms(th, x).items():
        torch.testing.assert_close(p3.terms(th, torch.stack([x] * 3, 1))[k], 3 * v, rtol=1e-12, atol=1e-9)
    solver = ls.solvers.SolverOptions(xtol=1e-10, max_iter=2000)
    a, b = (scan.profile(p, th, warm_start=True, store_images=True, solver=solver, progress=False) for p in (p1, p3))
    np.testing.assert_allclose(b.profile_energy, 3 * a.profile_energy.values, rtol=1e-7)
    np.testing.assert_allclose(marginal.profile_closed_form(p3, th), 3 * marginal.profile_closed_form(p1, th), rtol=1e-10)
    assert b.x_hat.dims[2] == "channel"
    for c in range(3):
        np.testing.assert_allclose(b.x_hat.values[:, :, c], a.x_hat.values, atol=1e-5)


def test_colour_profile_of_a_fitted_colour_prior_matches_the_closed_form():
    """A colour photograph (chelsea, held out of the colour fit) blurred in every channel: the warm-started
    L-BFGS profile and its minimisers equal the closed forms of the colour Gaussian prior with its fitted
    inter-channel covariance."""
    img = data.center_crop(data.load("chelsea", color=True), 32)
    prob = ls.BlindDeblur.synthetic(img, K.Gaussian(9), 1.5, 0.01, rng=0)
    assert prob.y.shape == (3, 32, 32)
    post = ls.Posterior(prob, P.GaussianPrior.fit_color(data.COLOR_TRAIN, (32, 32), n_crops=100))
    th = np.linspace(0, 3, 7)
    ds = scan.profile(post, th, warm_start=True, store_images=True, progress=False,
                      solver=ls.solvers.SolverOptions(xtol=1e-10, max_iter=2000))
    np.testing.assert_allclose(ds.profile_energy, marginal.profile_closed_form(post, th), rtol=1e-7)
    best = ds.x_hat.values[ds.best_branch.values, np.arange(7)]
    np.testing.assert_allclose(best, marginal.argmin_closed_form(post, th).numpy(), atol=1e-5)
    assert ds.y.dims == ("channel", "row", "col")


USER_NETS = '''
import numpy as np
import torch
from landscape.priors import from_epsilon, from_potential


class Smoother(torch.nn.Module):
    """A small linear denoiser in deepinv's convention: (B, 1, H, W) in [0, 1], sigma a float."""

    def __init__(self):
        super().__init__()
        self.conv = torch.nn.Conv2d(1, 1, 3, padding=1, padding_mode="circular", bias=False)
        with torch.no_grad():
            self.conv.weight.copy_(torch.tensor([[1.0, 2, 1], [2, 4, 2], [1, 2, 1]]) / 16)

    def forward(self, u, sigma):
        return u + sigma ** 2 / (sigma ** 2 + 0.01) * (self.conv(u) - u)


def denoiser():
    return Smoother()


class Potential(Smoother):
    """A gradient-step potential g(u, sigma) = |u - conv(u)|^2 / 2, one value per image."""

    def forward(self, u, sigma):
        return 0.5 * ((u - self.conv(u)) ** 2).sum((1, 2, 3))


class Epsilon(Smoother):
    """An epsilon-prediction network eps(x_t, t) (the diffusers convention)."""

    def forward(self, xt, t):
        return 0.1 * (xt - self.conv(xt))


def potential():
    return from_potential(Potential(), 0.01, data_range=(-1, 1))


def epsilon():
    return from_epsilon(Epsilon(), np.cumprod(1 - np.linspace(1e-4, 0.02, 1000)), 0.01)
'''


@pytest.mark.parametrize("prior", ["sparse", "gaussian",
                                   # gs: 22 s (its certificate's double backward through the UNet); the same
                                   # path runs for the user potential network below
                                   pytest.param("gs", marks=pytest.mark.slow), "tweedie", "user:denoiser",
                                   "user:potential", "user:epsilon"])
def test_a_trivial_minimizer_case_allocates_nothing_off_the_problems_device(prior, tmp_path, same_on_meta):
    """The case's pipeline (profile, descents, plane, near-truth draws, certificates) with torch's default device
    set to ``meta`` and the problem on the CPU: any tensor made without the problem's device (the bug that breaks
    a run on a GPU) lands on ``meta`` and fails the first operation that mixes it with the problem's tensors.
    The user priors (a denoiser module, a potential and an epsilon network through the adapters, built by a
    factory in a file) are built inside the case too. The case's numbers equal those of the same case run
    normally."""
    if prior.startswith("user:"):
        (tmp_path / "nets.py").write_text(USER_NETS)
        prior = f"{tmp_path / 'nets.py'}:{prior[5:]}"
    cfg = TM.Config(quick=True, priors=prior, crop=16, n_theta=5, n_draws=1, noise_levels="0.01", n_outer=2,
                    max_iter=5, certify_k=1).resolved()
    (case,) = cfg.problems()
    fam, theta_true, image, grid, free = TM.setup(case, cfg)
    problem = ls.BlindDeblur.synthetic(image, fam, theta_true, case.noise, rng=cfg.seed, dtype=torch.float32,
                                       device="cpu")
    same_on_meta(lambda: TM.run_case(cfg, problem, prior, 1.0, theta_true, grid, False, free),
                 ("profile_energy", "descent_theta", "plane_energy", "theta_hat_near_truth", "cert_energy"))
