"""The map-vs-marginal study's claims, measured on the real default configuration."""

from dataclasses import replace

import numpy as np
import pytest
import torch

from landscape._checks import InputError
from landscape.studies import map_vs_marginal as S


@pytest.fixture(scope="module")
def default_run():
    return S.run(S.Config(), progress=False)


def test_default_inputs_stored(default_run):
    ds = default_run
    assert ds.sizes["theta"] == 61 and ds.y.shape == (128, 128)
    for v in ("y", "x_true", "kernel_true", "theta_true", "prior_spectrum", "profile_energy",
              "profile_energy_closed_form", "marginal_nll", "data_term", "prior_term", "kernel_term"):
        assert v in ds, v
    for a in ("noise_sigma", "prior", "kernel_family", "study", "config", "landscape_version",
              "torch_version", "created", "argmin_profile", "argmin_marginal"):
        assert a in ds.attrs, a
    assert ds.profile_energy.attrs["units"] == "nats"


def test_joint_map_picks_the_dirac_marginal_picks_the_readme_blur(default_run):
    """README (default row): joint-MAP argmin 0, marginal argmin 1.40 on the grid, 1.416 refined."""
    a = default_run.attrs
    assert a["argmin_profile"] == 0.0
    assert a["argmin_marginal"] == pytest.approx(1.40, abs=1e-9)
    assert a["argmin_marginal_refined"] == pytest.approx(1.416, abs=5e-4)
    assert a["closed_form_max_rel_diff"] < 1e-6


def test_prior_sample_marginal_within_one_grid_step():
    ds = S.run(S.Config(image="prior-sample"), progress=False)
    a = ds.attrs
    assert a["argmin_profile"] == 0.0
    assert abs(a["argmin_marginal"] - 1.5) <= a["grid_step"] + 1e-12


def test_gmm_prior_on_small_crops():
    ds = S.run(S.Config(prior="gmm", quick=True), progress=False)
    a = ds.attrs
    assert ds.y.shape == (16, 16) and "gmm_covariances" in ds
    assert a["argmin_profile"] == 0.0
    # README (--prior gmm, 61 points): 1.40 / 1.405; the quick grid (step 0.2) holds the same grid point
    assert a["argmin_marginal"] == pytest.approx(1.40, abs=1e-9)
    assert a["argmin_marginal_refined"] == pytest.approx(1.405, abs=2e-3)


def test_blurry_is_more_likely_quick_all_evaluators(tmp_path):
    from landscape import io
    from landscape.studies import blurry_is_more_likely as B
    ds = B.run(B.Config(quick=True, crop=16), progress=False)
    assert set(ds.evaluator.values) == set(B.EVALUATORS)
    assert ds.sizes["image"] == 3 and float(ds.width[-1]) == 3.0
    assert np.isfinite(ds.delta_q.values).all()
    # the exact Gaussian evaluator against a dense log-density (scipy, 256-dimensional covariance
    # F* diag(P) F built from the fitted spectrum): an independent evaluation of the same prior
    import scipy.stats as st
    from landscape import data, priors
    gp = priors.GaussianPrior.fit(data.TRAIN, (16, 16))
    F = np.kron(np.fft.fft(np.eye(16), norm="ortho"), np.fft.fft(np.eye(16), norm="ortho"))
    C = (F.conj().T @ np.diag(gp.spectrum.numpy().reshape(-1)) @ F).real
    mvn = st.multivariate_normal(np.full(256, gp.mean), C)
    imgs = ds.images.values.reshape(*ds.images.shape[:2], 256)
    logp = mvn.logpdf(imgs)
    dense = -(logp - logp[:, :1])
    np.testing.assert_allclose(ds.delta_q.sel(evaluator="gaussian").values, dense, rtol=1e-8, atol=1e-6)
    # README: every evaluator finds every width-3 blur more likely than the sharp crop
    assert (ds.delta_q.isel(width=-1).values < 0).all()
    io.save(ds, tmp_path / "b.nc")
    assert io.load(tmp_path / "b.nc").landscape.plot() is not None


def test_blurry_is_more_likely_in_colour_against_the_dense_colour_gaussian(tmp_path):
    """--color: colour crops of the held-out photographs, the same blur on every channel, and the colour
    Gaussian's q differences equal a dense 768-dimensional quadratic form built from its fitted parts,
    the precision (B x I) blockdiag(F* diag(1/P_k) F) (B x I)^T; a colour run takes its four colour evaluators by
    default."""
    from landscape import data, io, kernels
    from landscape.operators import Blur
    from landscape.priors import make_prior
    from landscape.studies import blurry_is_more_likely as B
    ds = B.run(B.Config(quick=True, crop=16, color=True, evaluators="gaussian"), progress=False)
    assert ds.images.dims == ("image", "width", "channel", "row", "col") and ds.sizes["channel"] == 3
    name, fr, fc = B.COLOR_CROPS[0]
    im, pad = data.load(name, color=True), kernels.Gaussian(25).size
    r, c = int(fr * (im.shape[-2] - 16 - 2 * pad)), int(fc * (im.shape[-1] - 16 - 2 * pad))
    np.testing.assert_allclose(ds.images.values[0, 0], im[:, r + pad:r + pad + 16, c + pad:c + pad + 16], atol=1e-12)
    h = torch.as_tensor(ds.kernels.values[-1])              # each channel blurred by the gray operator alike
    gray = Blur(h, (16 + 2 * pad,) * 2)(torch.as_tensor(im[1, r:r + 16 + 2 * pad, c:c + 16 + 2 * pad])).numpy()
    np.testing.assert_allclose(ds.images.values[0, -1, 1], gray[pad:pad + 16, pad:pad + 16], atol=1e-12)
    gp = make_prior("gaussian", (3, 16, 16))
    Fm = np.kron(np.fft.fft(np.eye(16), norm="ortho"), np.fft.fft(np.eye(16), norm="ortho"))
    # the precision (one component's DC variance is effectively infinite: an improper direction, so the
    # covariance is not invertible in floating point, its inverse is)
    blocks = [(Fm.conj().T @ np.diag(1 / P.reshape(-1)) @ Fm).real for P in gp.spectrum.numpy()]
    Bm = np.kron(np.asarray(gp.basis, dtype=float), np.eye(256))
    Z = np.zeros((256, 256))
    prec = Bm @ np.block([[blocks[i] if i == j else Z for j in range(3)] for i in range(3)]) @ Bm.T
    r = ds.images.values.reshape(*ds.images.shape[:2], 768) - np.repeat(np.asarray(gp.mean, dtype=float), 256)
    q = 0.5 * np.einsum("iwa,ab,iwb->iw", r, prec, r)
    np.testing.assert_allclose(ds.delta_q.sel(evaluator="gaussian").values, q - q[:, :1], rtol=1e-8, atol=1e-6)
    assert B.Config(color=True).resolved().evaluators == B.COLOR_EVALUATORS
    io.save(ds, tmp_path / "b.nc")
    assert io.load(tmp_path / "b.nc").landscape.plot() is not None


def test_map_vs_mmse_sandbox_quick_the_map_falls_into_the_trivial_pair_the_mmse_does_not():
    """Sandbox (16x16 GMM draw, exact prior): the joint MAP is the trivial pair (theta = 0, kernel error
    equal to the Dirac's); the exact MMSE and the unrolled MMSE have lower errors than the joint MAP
    and higher joint energies; the exact posterior std is stored and positive."""
    from landscape.studies import map_vs_mmse as S
    ds = S.run(S.Config(sandbox=True, quick=True), progress=False)
    assert ds.sizes["case"] == 1 and float(ds.theta_map[0]) == 0.0
    ke = ds.kernel_error.isel(case=0)
    assert float(ke.sel(estimator="map_trivial")) == pytest.approx(float(ds.kernel_error_dirac[0]))
    for e in ("mmse_exact", "unrolled"):
        assert float(ds.psnr.isel(case=0).sel(estimator=e)) > float(ds.psnr.isel(case=0).sel(estimator="map_trivial"))
        assert float(ds.energy.isel(case=0).sel(estimator=e)) > float(ds.energy.isel(case=0).sel(estimator="map_trivial"))
    assert (ds.x_std_exact.values > 0).all()
    assert bool(ds.mmse_avoids_trivial[0]) and bool(ds.mmse_higher_energy_lower_error[0])


def test_map_vs_mmse_on_a_colour_photograph(capsys):
    """--color: chelsea's (3, 32, 32) crop blurred by one Gaussian kernel on the three channels; the results
    hold (channel, row, col) images whose truth is the photograph's crop, MAP_theta's width is the argmin of
    the colour Gaussian's closed-form marginal on the grid, the colour unrolled network's kernel is on the
    simplex and its image beats y; the figure draws one error map per channel under one colour bar; a gray
    image is one error naming its option."""
    import matplotlib.pyplot as plt

    from landscape import data, kernels, marginal, priors as P
    from landscape.posterior import BlindDeblur
    from landscape.studies import map_vs_mmse as S
    cfg = S.Config(quick=True, color=True)
    ds = S.run(cfg, progress=False)
    c = cfg.resolved()
    assert c.images == ("chelsea",) and c.prior == "gaussian" and ds.attrs["model"] == "unrolled-gaussian-color"
    assert ds.images.dims == ("case", "panel", "channel", "row", "col") and ds.sizes["channel"] == 3
    x_true = data.center_crop(data.load("chelsea", color=True), c.crop)
    np.testing.assert_allclose(ds.images.sel(panel="x_true").values[0], x_true, atol=1e-6)
    problem = BlindDeblur.synthetic(x_true, kernels.get("gaussian", 15), [1.0], c.noise[0], rng=c.seed,
                                    dtype=torch.float32)
    grid = np.unique(np.append(np.linspace(0, 2.0, c.n_theta), 1.0))
    nll = marginal.marginal_nll(problem, P.make_prior("gaussian", problem.event_shape), grid[:, None])
    assert float(ds.theta_map_theta[0]) == pytest.approx(grid[int(np.argmin(nll.numpy()))])
    k = ds.kernels.sel(kpanel="unrolled").values[0]
    assert (k >= 0).all() and k.sum() == pytest.approx(1.0, abs=1e-5)
    assert float(ds.psnr.sel(estimator="unrolled")[0]) > float(ds.psnr_y[0])
    fig = S.plot(ds).figure
    errors = [im for a in fig.axes for im in a.get_images() if np.ndim(im.get_array()) == 2]
    # y and the four estimates (no exact MMSE outside the sandbox), three channels each, one shared scale
    assert len(errors) == 3 * 5 and len({id(im.norm) for im in errors}) == 1
    assert any(getattr(a, "_colorbar", None) is not None and a._colorbar.norm is errors[0].norm for a in fig.axes)
    plt.close(fig)
    assert S.Config(color=True).resolved().prior == "patch-gmm"       # the colour default: EPLL
    with pytest.raises(InputError, match="^images: "):
        S.Config(color=True, images=("camera",)).resolved()


def test_map_vs_mmse_in_colour_with_the_motion_family_runs_the_colour_motion_network():
    """--color --family motion (chelsea's (3, 32, 32) crop, length 5 at 30 degrees blurring the three channels): the colour
    motion network unrolled-motion-color runs, its kernel is a motion kernel of the family (on the simplex) nearer h*
    than the Dirac, MAP_theta's length is the argmin of the colour Gaussian's closed-form marginal over the grid
    (the angle at the truth's), and the results keep the channel axis."""
    from landscape import data, kernels, marginal, priors as P
    from landscape.posterior import BlindDeblur
    from landscape.studies import map_vs_mmse as S
    cfg = S.Config(quick=True, color=True, family="motion", theta_true=5.0)
    ds = S.run(cfg, progress=False)
    c = cfg.resolved()
    assert ds.attrs["model"] == "unrolled-motion-color" and ds.sizes["channel"] == 3
    k = ds.kernels.sel(kpanel="unrolled").values[0]
    assert (k >= 0).all() and k.sum() == pytest.approx(1.0, abs=1e-5)
    assert float(ds.kernel_error.sel(estimator="unrolled")[0]) < float(ds.kernel_error_dirac[0])
    x_true = data.center_crop(data.load("chelsea", color=True), c.crop)
    theta_true = [c.theta_true[0], *S.OTHER_PARAMS["motion"]]
    problem = BlindDeblur.synthetic(x_true, kernels.get("motion", 15), theta_true, c.noise[0], rng=c.seed,
                                    dtype=torch.float32)
    grid = np.unique(np.append(np.linspace(0, 2 * c.theta_true[0], c.n_theta), c.theta_true[0]))
    th = np.stack([grid, *[np.full_like(grid, v) for v in S.OTHER_PARAMS["motion"]]], 1)
    nll = marginal.marginal_nll(problem, P.make_prior("gaussian", problem.event_shape), th)
    assert float(ds.theta_map_theta[0]) == pytest.approx(grid[int(np.argmin(nll.numpy()))])


def test_map_vs_mmse_in_colour_with_a_measured_kernel_runs_the_colour_camera_shake_network():
    """--color --kernel-file levin5 (Levin et al.'s measured 11x11 kernel on chelsea's (3, 32, 32) crop): the colour
    free-kernel network unrolled-shake-color runs, its kernel is on the simplex, nearer h* than half the Dirac's
    distance (measured 0.136 against 1.00) and its image beats y (measured 23.40 -> 29.93 dB), while the joint
    MAP from (delta, y) keeps the Dirac (its kernel error is the Dirac's)."""
    from landscape.studies import map_vs_mmse as S
    ds = S.run(S.Config(quick=True, color=True, kernel_file="levin5"), progress=False)
    assert ds.attrs["model"] == "unrolled-shake-color" and ds.sizes["channel"] == 3
    k = ds.kernels.sel(kpanel="unrolled").values[0]
    assert (k >= 0).all() and k.sum() == pytest.approx(1.0, abs=1e-5)
    assert bool(ds.mmse_avoids_trivial[0]) and float(ds.psnr.sel(estimator="unrolled")[0]) > float(ds.psnr_y[0]) + 3
    assert float(ds.kernel_error.sel(estimator="map_trivial")[0]) == pytest.approx(float(ds.kernel_error_dirac[0]))


def test_map_vs_mmse_runs_the_network_given_by_model_and_refuses_one_of_another_family():
    """--model unrolled-motion-marginal (--quick --family motion): the study's network is the one named, its kernel
    and image are that network's on the stored y (``reconstruct``, to float tolerance), and a motion network for a
    Gaussian-family case is refused naming ``model``."""
    from landscape.estimators.unrolled import load_unrolled, reconstruct
    from landscape.studies import map_vs_mmse as S
    ds = S.run(S.Config(quick=True, family="motion", theta_true=7.0, model="unrolled-motion-marginal"), progress=False)
    assert ds.attrs["model"] == "unrolled-motion-marginal"
    y = ds.images.sel(panel="y").values[0]
    want = reconstruct(load_unrolled("unrolled-motion-marginal"), y, float(ds.case_noise[0]))
    np.testing.assert_allclose(ds.kernels.sel(kpanel="unrolled").values[0][:15, :15], want["kernel"], atol=1e-6)
    np.testing.assert_allclose(ds.images.sel(panel="unrolled").values[0], want["x"], atol=1e-5)
    with pytest.raises(InputError, match="^model: expected an unrolled network of the 'gaussian' family"):
        S.run(S.Config(quick=True, model="unrolled-motion-marginal"), progress=False)


def test_map_vs_mmse_kernel_file_larger_than_the_model_support_exits_2(tmp_path, capsys):
    from landscape.cli import main
    k = np.ones((21, 21)) / 441
    np.save(tmp_path / "k.npy", k)
    assert main(["run", "map-vs-mmse", "--quick", "--kernel-file", str(tmp_path / "k.npy"),
                 "--out", str(tmp_path / "r.nc")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("landscape: error: kernel_file")       # 21x21 > the 15x15 support
    assert not (tmp_path / "r.nc").exists()


def test_posterior_statistics_sandbox_exact_intervals_are_calibrated_and_rhat_flags_a_stuck_gibbs(tmp_path):
    """Exact posterior draws on images drawn from the model cover x* at about the nominal rates (50 %, 90 %;
    256 correlated pixels per image: +-0.1); wherever the Gibbs theta marginal is far from the exact one
    (total variation > 0.3), ArviZ's R-hat says so (> 1.1). The draws written in ArviZ's layout open with
    arviz as they are, and their data energies are those of the stored (theta, x) draws."""
    import arviz as az
    from landscape.operators import Blur
    from landscape.studies import posterior_statistics as S
    ds = S.run(S.Config(sandbox=True, quick=True, samples=str(tmp_path / "s")), progress=False)
    files = sorted((tmp_path / "s").glob("*.nc"))
    assert len(files) == ds.sizes["case"]
    idata = az.from_netcdf(files[0])
    assert set(idata.groups()) >= {"posterior", "sample_stats", "observed_data", "constant_data"}
    assert idata.posterior.x.dims[:2] == ("chain", "draw") and idata.posterior.sizes["draw"] <= S.SAMPLE_DRAWS
    th, x = float(idata.posterior.theta[1, 7, 0]), idata.posterior.x[1, 7].values
    from landscape import kernels
    y = idata.observed_data.y.values
    res = Blur(kernels.Gaussian(15)(torch.tensor([[th]], dtype=torch.float64))[0], x.shape)(torch.as_tensor(x)).numpy() - y
    np.testing.assert_allclose(float(idata.sample_stats.data_energy[1, 7]), (res ** 2).sum() / (2 * 0.02 ** 2), rtol=1e-9)
    assert np.isfinite(az.rhat(idata, var_names=["theta"]).theta.values).all()
    assert np.all(np.abs(ds.coverage_exact_50.values - 0.5) < 0.1)
    assert np.all(np.abs(ds.coverage_exact_90.values - 0.9) < 0.1)
    far = ds.tv_theta_exact.values > 0.3
    assert np.all(ds.rhat_theta.values[far] > 1.1)
    np.testing.assert_allclose(ds.theta_posterior.sum("theta").values, 1.0)
    # the point estimates beside the posterior mean: the exact MMSE image is E[x | y] of the sandbox
    # (recomputed here), every stored PSNR is the one of its stored image against x*
    from landscape import kernels
    from landscape.estimators.bayes import GMMPosterior
    from landscape.priors import PriorSettings, make_prior
    gmm = make_prior("gmm", (16, 16), PriorSettings(progress=False))
    from landscape.posterior import BlindDeblur
    prob = BlindDeblur.synthetic(ds.x_true.values[0], kernels.Gaussian(15), [1.5], 0.02, rng=0)
    exact = GMMPosterior(prob, gmm, ds.theta.values).mmse()["x_mmse"].numpy()
    np.testing.assert_allclose(ds.estimate_image.sel(estimate="mmse_exact").values[0], exact, atol=1e-8)
    np.testing.assert_array_equal(ds.estimate_image.sel(estimate="posterior_mean").values, ds.posterior_mean.values)
    for e in S.POINT_ESTIMATES[1:]:
        err = ((ds.estimate_image.sel(estimate=e) - ds.x_true) ** 2).mean(("row", "col")).values
        np.testing.assert_allclose(ds[f"psnr_{e}"].values, 10 * np.log10(1 / err), rtol=1e-10)
    assert np.all(ds.theta_map.values <= ds.theta_map_near_truth.values)


def test_morse_bott_spectra_against_a_dense_autograd_hessian_and_the_descent_rule():
    """The exact GMM and the GS potential at 8x8: the study's dense spectrum at each end point equals the
    eigenvalues of torch's dense autograd Hessian of q there (1e-6 relative to lambda_max); the counts
    follow from those eigenvalues (the paper's s^2|lambda| <= 1e-5 too, where the prior has a level s); each
    descent stopped by its rule (||grad q|| <= gtol, or the cap)."""
    from landscape.priors import PriorSettings, make_prior
    from landscape.studies import morse_bott as S
    cfg = S.Config(images="camera,ascent", crop=8, priors="gmm,gs", max_iter=60)
    ds = S.run(cfg, progress=False)
    for b, name in enumerate(ds.prior.values):
        prior = make_prior(str(name), (8, 8), PriorSettings(s=cfg.s, dtype=torch.float64))
        for a in range(ds.sizes["image"]):
            x = torch.as_tensor(ds.x_end.values[a, b], dtype=torch.float64).reshape(-1)
            H = torch.autograd.functional.hessian(lambda z: prior.energy(z.reshape(1, 8, 8))[0], x).numpy()
            lam = np.linalg.eigvalsh(0.5 * (H + H.T))
            top = np.abs(lam).max()
            np.testing.assert_allclose(ds.eigenvalues.values[a, b], lam, rtol=0, atol=1e-6 * top)
            assert list(ds.near_zero_count.values[a, b]) == [int((np.abs(lam) <= t * top).sum()) for t in ds.threshold.values]
            assert ds.grad_norm_end.values[a, b] <= cfg.gtol or ds.descent_iterations.values[a, b] == cfg.max_iter
            assert ds.paper_count.values[a, b] == (int((cfg.s ** 2 * np.abs(lam) <= 1e-5).sum()) if name == "gs" else -1)
    assert (ds.q_change.values < 0).all()            # descending q lowered it, for every image and prior


def test_morse_bott_lanczos_counts_equal_the_dense_counts():
    """With n_eig > 0 the counts come from eigen.near_zero_count: at 16x16 (gs, camera) they equal the
    dense spectrum's at every threshold, from fewer products, with the same lambda_max, and every kept
    Ritz value lies within its residual bound of a dense eigenvalue."""
    from landscape.studies import morse_bott as S
    base = dict(images="camera", crop=16, priors="gs", max_iter=60)
    dense = S.run(S.Config(**base), progress=False)
    lan = S.run(S.Config(**base, n_eig=8), progress=False)
    np.testing.assert_array_equal(lan.near_zero_count.values, dense.near_zero_count.values)
    np.testing.assert_allclose(lan.lambda_max.values, dense.lambda_max.values, rtol=1e-6)
    assert int(lan.hessian_products.values.max()) < 256 == int(dense.hessian_products.values.max())
    lam = dense.eigenvalues.values[0, 0]
    for th, r in zip(lan.eigenvalues.values[0, 0], lan.eig_residuals.values[0, 0]):
        assert np.abs(lam - th).min() <= r + 1e-9 * np.abs(lam).max()


def test_morse_bott_in_colour_gives_the_closed_form_gaussian_spectrum_and_the_colour_denoisers_jacobian():
    """``--color`` at 8x8x3 (d = 192) on both held-out colour photographs: the colour Gaussian's dense spectrum
    is its inverse component spectra 1/C_k(omega), sorted (1e-12 of lambda_max), whatever the descent reached; the
    colour Tweedie score's is the spectrum of (I - (J + J^T)/2)/s^2, J torch's dense Jacobian of the colour
    denoiser at the end point (1e-6 of lambda_max); the colour gradient-step prior's is the spectrum of torch's
    dense double-backward Hessian of its energy there (1e-6), and its Hessian is symmetric (an explicit
    potential); the images carry a channel axis."""
    from landscape.priors import PriorSettings, make_prior
    from landscape.studies import morse_bott as S
    cfg = S.Config(color=True, crop=8, priors="gaussian,tweedie,gs", max_iter=40)
    ds = S.run(cfg, progress=False)
    assert list(ds.image.values) == ["chelsea", "coffee"] and ds.attrs["dimension"] == 192
    assert ds.x_end.dims == ("image", "prior", "channel", "row", "col") and ds.x_start.shape == (2, 3, 8, 8)
    gauss = make_prior("gaussian", (3, 8, 8), PriorSettings(dtype=torch.float64))
    lam = np.sort(1.0 / gauss.spectrum.numpy().ravel())
    tw = make_prior("tweedie", (3, 8, 8), PriorSettings(s=cfg.s, dtype=torch.float64))
    gs = make_prior("gs", (3, 8, 8), PriorSettings(s=cfg.s, dtype=torch.float64))
    for a in range(2):
        np.testing.assert_allclose(ds.eigenvalues.values[a, 0], lam, rtol=1e-12, atol=1e-12 * lam.max())
        x = torch.as_tensor(ds.x_end.values[a, 1], dtype=torch.float64)
        J = torch.autograd.functional.jacobian(lambda z: tw.denoise(z[None], cfg.s, differentiable=True)[0], x)
        J = J.reshape(192, 192).numpy()
        ref = np.linalg.eigvalsh((np.eye(192) - 0.5 * (J + J.T)) / cfg.s ** 2)
        np.testing.assert_allclose(ds.eigenvalues.values[a, 1], ref, rtol=0, atol=1e-6 * np.abs(ref).max())
        x = torch.as_tensor(ds.x_end.values[a, 2], dtype=torch.float64)
        Hg = torch.autograd.functional.hessian(lambda z: gs.energy(z[None])[0], x).reshape(192, 192).numpy()
        assert np.abs(Hg - Hg.T).max() <= 1e-8 * np.abs(Hg).max()
        ref = np.linalg.eigvalsh(0.5 * (Hg + Hg.T))
        np.testing.assert_allclose(ds.eigenvalues.values[a, 2], ref, rtol=0, atol=1e-6 * np.abs(ref).max())
        assert (ds.q_change.values[a] < 0).all()


def test_morse_bott_in_colour_descends_the_whole_image_colour_gmm_to_a_critical_point_with_its_exact_hessian():
    """``--color --priors gmm`` at 8x8x3 (d = 192): the registry's colour GMM is fitted to colour crops of
    data.COLOR_TRAIN (its mixture mean is their sample mean: EM's M-step keeps it, to 1e-8, channel-major), the
    descent reaches ||grad q|| <= gtol on both colour photographs, and the study's dense spectrum there is that
    of the GMM's exact Hessian (1e-6 of lambda_max)."""
    from landscape import data
    from landscape.priors import make_prior
    from landscape.studies import morse_bott as S
    cfg = S.Config(color=True, crop=8, priors="gmm", max_iter=200)
    ds = S.run(cfg, progress=False)
    gmm = make_prior("gmm", (3, 8, 8))
    crops = data.random_crops(data.training_images(color=True), (8, 8), gmm.info["n_samples"], rng=0)
    assert gmm.shape == (3, 8, 8) and gmm.event_ndim == 3 and gmm.info["training"].endswith("COLOR_TRAIN")
    mixture_mean = (gmm.weights[:, None] * gmm.means).sum(0).numpy()
    np.testing.assert_allclose(mixture_mean, crops.reshape(len(crops), -1).mean(0), rtol=0, atol=1e-8)
    for a in range(2):
        assert ds.grad_norm_end.values[a, 0] <= cfg.gtol
        x = torch.as_tensor(ds.x_end.values[a, 0], dtype=torch.float64)
        lam = np.linalg.eigvalsh(gmm.hessian_matrix(x[None])[0].numpy())
        np.testing.assert_allclose(ds.eigenvalues.values[a, 0], lam, rtol=0, atol=1e-6 * np.abs(lam).max())


def test_morse_bott_in_colour_refuses_gray_images_and_a_dense_spectrum_above_its_limit():
    """``--color`` with a gray-only image is one error naming ``images``; a colour dimension above the dense
    limit asks for ``n_eig``."""
    from landscape._checks import InputError
    from landscape.studies import morse_bott as S
    with pytest.raises(InputError, match="images"):
        S.Config(color=True, images="camera", priors="tweedie").resolved()
    with pytest.raises(InputError, match="n_eig"):
        S.Config(color=True, crop=24, priors="tweedie").resolved()          # d = 1728
    assert S.Config(color=True, crop=24, priors="tweedie", n_eig=4).resolved().dimension == 1728


@pytest.mark.parametrize("n_eig", [0, 4])
def test_morse_bott_allocates_nothing_off_its_device(n_eig, same_on_meta):
    """The root finders, the dense and the Lanczos Hessian reports and the Jacobian asymmetry (gmm, gs and
    tweedie) with torch's default device set to ``meta`` and ``device="cpu"``: a tensor made without the study's
    device lands on ``meta`` and fails; the numbers equal a normal run's."""
    from landscape.studies import morse_bott as S
    cfg = S.Config(images="camera", crop=8, priors="gmm,gs,tweedie", max_iter=20, n_eig=n_eig, device="cpu")
    same_on_meta(lambda: S.run(cfg, progress=False),
                 ("x_end", "eigenvalues", "near_zero_count", "jacobian_asymmetry", "q_change"))


@pytest.mark.parametrize("prior, image", [("gaussian", "camera"), ("gmm", "prior-sample")])
def test_map_vs_marginal_allocates_nothing_off_its_device(prior, image, same_on_meta):
    """The profile, the marginal likelihood and the closed forms with torch's default device set to ``meta`` and
    ``device="cpu"``: a tensor made without the study's device lands on ``meta`` and fails; the numbers equal a
    normal run's."""
    from landscape.studies import map_vs_marginal as M
    cfg = M.Config(quick=True, prior=prior, image=image, crop=16, n_theta=5, device="cpu")
    same_on_meta(lambda: M.run(cfg, progress=False), ("profile_energy", "marginal_nll", "y"))


def test_pnp_vs_unrolled_allocates_nothing_off_its_device(same_on_meta):
    """Every PnP variant from every start and the unrolled network with torch's default device set to ``meta``
    and ``device="cpu"``: a tensor made without the study's device lands on ``meta`` and fails; the numbers
    equal a normal run's."""
    from landscape.studies import pnp_vs_unrolled as P
    (case,) = P.cases(P.Config(quick=True, n_iter=3, crop=32, device="cpu"))
    same_on_meta(lambda: P.run_part(case, progress=False), ("psnr", "kernel_error", "network_calls", "y"))


@pytest.mark.parametrize("sandbox", [True, pytest.param(False, marks=pytest.mark.slow), "colour"])
def test_map_vs_mmse_allocates_nothing_off_its_device(sandbox, same_on_meta):
    """Every point estimate (profile, MAP_θ through the exact GMM posterior or the Gaussian marginal and PnP,
    the unrolled network; gray, and colour with the colour Gaussian and network) with torch's default device set
    to ``meta`` and ``device="cpu"``: a tensor made without the study's device lands on ``meta`` and fails; the
    numbers equal a normal run's."""
    from landscape.studies import map_vs_mmse as M
    kw = dict(sandbox=True) if sandbox is True else dict(crop=32, color=True) if sandbox == "colour" else dict(crop=32)
    (case, *_) = M.cases(M.Config(quick=True, n_theta=5, device="cpu", **kw))
    same_on_meta(lambda: M.run_part(case, progress=False), ("psnr", "kernel_error", "energy", "images"))


@pytest.mark.parametrize("sandbox", [True, pytest.param(False, marks=pytest.mark.slow)])
def test_posterior_statistics_allocates_nothing_off_its_device(sandbox, same_on_meta):
    """The Gibbs sampler and the point estimates (the sandbox: exact x-steps; natural images: ULA with the
    Tweedie score, and the hard case's fixed, annealed and DPS samplers), with torch's default device set to
    ``meta`` and ``device="cpu"``: a tensor made without the study's device lands on ``meta`` and fails; the
    numbers equal a normal run's."""
    from landscape.studies import posterior_statistics as P
    kw = dict(sandbox=True, skip_hard=True) if sandbox else dict(crop=16, hard_theta=1.0)
    (case, *_) = P.cases(P.Config(quick=True, sweeps=10, burn_in=2, n_theta=4, device="cpu", **kw))
    ref, got = same_on_meta(lambda: P.run_part(case, progress=False),
                            ("theta_posterior", "posterior_mean", "estimate_image"))
    assert got.attrs == ref.attrs


def test_real_shake_allocates_nothing_off_its_device(same_on_meta):
    """Every estimator (true kernel, MAP_xk, MAP_k under the Gaussian and the MoG prior, the unrolled network,
    blind PnP), the non-blind step and the marginal likelihoods with torch's default device set to ``meta`` and
    ``device="cpu"``: a tensor made without the study's device lands on ``meta`` and fails; the numbers equal a
    normal run's."""
    from landscape.studies import real_shake as R
    (case, *_) = R.cases(R.Config(quick=True, n_outer=2, n_em=2, pnp_iter=3, device="cpu"))
    same_on_meta(lambda: R.run_part(case, progress=False),
                 ("kernel_error", "psnr", "error_ratio", "energy", "marginal_nll", "kernel_hat"))


def test_morse_bott_bad_input():
    from landscape.studies import morse_bott as S
    with pytest.raises(InputError, match="priors"):
        S.run(S.Config(crop=32, priors="gmm"), progress=False)
    with pytest.raises(InputError, match="n_eig"):
        S.run(S.Config(crop=8, priors="gs", n_eig=65), progress=False)
    with pytest.raises(InputError, match="n_eig"):
        S.run(S.Config(crop=48, priors="gs"), progress=False)


def test_real_shake_the_true_kernel_scores_one_and_the_success_curve_counts_the_ratios(tmp_path):
    """real-shake on two measured kernels (one image, 64x64, short runs): the true kernel's error ratio is
    exactly 1 and its kernel error round-off; every estimate has a finite ratio and kernel error; the stored success
    rates are the fractions of the stored ratios at or below each threshold; the estimated kernels lie on the
    simplex; the inputs (y, x*) are stored."""
    from landscape.studies import real_shake as rs
    cfg = rs.Config(kernels="levin5,levin3", images="camera", crop=64, n_outer=3, n_em=2, n_em_diffusion=1,
                    dps_levels=5, dps_chains=1, skip="pnp")
    ds = rs.run(cfg, progress=False)
    assert ds.sizes["case"] == 2 and list(ds.case_kernel.values) == ["levin5", "levin3"]
    r = ds.error_ratio.values
    j = list(ds.estimator.values).index("true")
    assert np.array_equal(r[:, j], [1.0, 1.0]) and (ds.kernel_error.values[:, j] <= 1e-15).all()   # (h - δ) + δ
    live = [e for e in ds.estimator.values if e not in ("pnp", *rs.ON_REQUEST)]
    assert np.isfinite(ds.error_ratio.sel(estimator=live).values).all()
    assert np.isnan(ds.error_ratio.sel(estimator=["pnp", *rs.ON_REQUEST]).values).all()
    for i, e in enumerate(ds.estimator.values):
        if e in live:
            expect = [(r[:, i] <= t).mean() for t in ds.threshold.values]
            assert np.array_equal(ds.success_curve.values[i], expect)
            k = ds.kernel_hat.sel(estimator=e).values
            assert np.allclose(np.nansum(k, axis=(-2, -1)), 1.0, atol=1e-6) and np.nanmin(k) >= 0
    assert ds.y.shape == (2, 64, 64) and ds.x_true.shape == (2, 64, 64)


def test_real_shake_warm_starts_the_joint_map_from_the_networks_kernel_and_from_the_truth():
    """The two warm-started joint MAPs (levin5 on camera, 64x64, 3 alternations): ``map_xk_from_unrolled``'s kernel
    is ``map_xk`` run at full size from the stored unrolled kernel and its Wiener image, to the bit;
    ``map_xk_from_truth`` starts at the truth, so after 3 alternations its kernel error is below a tenth of the
    Dirac's and below half of ``map_xk``'s from the Dirac (measured 0.019, 0.207, 1.002), and its joint energy lies
    above E(delta, y), the trivial pair's."""
    from landscape import kernels, kernel_estimation as ke
    from landscape.priors import make_prior
    from landscape.studies import real_shake as rs
    ds = rs.run(rs.Config(kernels="levin5", images="camera", crop=64, n_outer=3,
                          skip="map_k,map_k_mog,map_k_diffusion,pnp"),
                progress=False)
    h_true, y = kernels.load("levin5"), ds.y.values[0]
    start = kernels.centre(ds.kernel_hat.sel(estimator="unrolled").values[0], h_true.shape[0])
    start = start / start.sum()
    nb = make_prior("gaussian", y.shape)
    want = ke.map_xk(y, 0.01, h_true.shape[0], make_prior("sparse", y.shape), n_outer=3,
                     start=(start, ke.nonblind(y, 0.01, start, nb)))["kernel"]
    got = ds.kernel_hat.sel(estimator="map_xk_from_unrolled").values[0]
    assert np.array_equal(got, kernels.centre(want, rs.GALLERY))
    dirac_error = ke.kernel_error(kernels.dirac(1, device="cpu").numpy(), h_true)
    err = ds.kernel_error.sel(estimator=["map_xk_from_truth", "map_xk"]).values[0]
    assert err[0] < 0.1 * dirac_error and err[0] < 0.5 * err[1]
    assert ds.energy.sel(estimator="map_xk_from_truth").item() > ds.energy_trivial_pair.item()


def test_real_shake_runs_the_diffusion_map_k_from_the_truth_only_when_asked_and_it_stays_near_the_truth():
    """``map_k_diffusion_from_truth`` (levin5 on camera, 64x64, one EM iteration of one 10-level draw) is left out
    unless ``diffusion_from_truth``; asked for, its stored kernel is ``map_k_diffusion`` started at the true kernel
    with the study's seed, to float32 round-off, and it stays near the truth: kernel error below 0.1 (measured 0.063;
    the same EM from the Dirac, coarse to fine, ends at 0.170)."""
    from landscape import kernels, kernel_estimation as ke
    from landscape.priors import PriorSettings, make_prior
    from landscape.studies import real_shake as rs
    base = dict(kernels="levin5", images="camera", crop=64, n_em_diffusion=1, dps_levels=10, dps_chains=1,
                skip="map_xk,map_k,map_k_mog,map_k_diffusion,unrolled,pnp,map_xk_from_unrolled,map_xk_from_truth")
    off = rs.run(rs.Config(**base), progress=False)
    assert np.isnan(off.error_ratio.sel(estimator="map_k_diffusion_from_truth").values).all()
    ds = rs.run(rs.Config(**base, diffusion_from_truth=True), progress=False)
    h_true, y = kernels.load("levin5"), ds.y.values[0]
    settings = PriorSettings(dtype=torch.float32)
    want = ke.map_k_diffusion(y, 0.01, 11, prior=lambda shape: make_prior("tweedie", shape, settings), n_em=1,
                              start=h_true, rng=0,
                              sampler=ke.dps_sampler(replace(ke.DIFFUSION_E_STEP, levels=10, chains=1)))["kernel"]
    got = ds.kernel_hat.sel(estimator="map_k_diffusion_from_truth").values[0]
    assert np.allclose(got, kernels.centre(want, rs.GALLERY), atol=1e-6)
    assert ds.kernel_error.sel(estimator="map_k_diffusion_from_truth").item() < 0.1


def test_real_shakes_gaussian_draws_control_is_map_k_run_by_monte_carlo_em_only_when_asked():
    """``map_k_gaussian_draws`` (levin5 on camera, 64x64, one EM iteration per pyramid level) is left out unless
    ``gaussian_draws``; asked for, it is map_k_diffusion's EM with exact draws of the Gaussian posterior, so with many
    draws it is ``map_k``'s exact EM run for the same iterations: with 256 draws per E-step its kernel lies within
    0.01 of map_k's (measured 0.0025), with one draw 0.036 (the Monte Carlo error, falling as 1/sqrt(J))."""
    from landscape.studies import real_shake as rs
    base = dict(kernels="levin5", images="camera", crop=64, n_em=1, n_em_diffusion=1,
                skip="map_xk,map_k_mog,map_k_diffusion,unrolled,pnp,map_xk_from_unrolled,map_xk_from_truth")
    off = rs.run(rs.Config(**base), progress=False)
    assert np.isnan(off.error_ratio.sel(estimator="map_k_gaussian_draws").values).all()
    dist = {}
    for chains in (1, 256):
        ds = rs.run(rs.Config(**base, gaussian_draws=True, dps_chains=chains), progress=False)
        exact, mc = (ds.kernel_hat.sel(estimator=e).values[0] for e in ("map_k", "map_k_gaussian_draws"))
        dist[chains] = np.linalg.norm(mc - exact)
    assert dist[256] < 0.01 < 0.02 < dist[1]
    assert ds.kernel_error.sel(estimator="map_k").item() > 0.1             # the EM's kernel is not the truth


def test_real_shake_runs_the_29_network_on_the_cases_support_by_default_and_on_its_own_when_asked():
    """By default (levin5, 11x11, on camera at 64x64) the stored network kernel is the shipped unrolled-shake-29 run
    on y with the case's 11x11 support, to the bit; ``unrolled_support="model"`` stores its 29x29 estimate centred
    on 11x11 instead, a different kernel."""
    from landscape import kernels
    from landscape.estimators.unrolled import load_unrolled, reconstruct
    from landscape.studies import real_shake as rs
    base = dict(kernels="levin5", images="camera", crop=64,
                skip="map_xk,map_k,map_k_mog,map_k_diffusion,pnp,map_xk_from_unrolled,map_xk_from_truth")
    ds = rs.run(rs.Config(**base), progress=False)
    assert '"model": "unrolled-shake-29"' in ds.attrs["config"]
    y, net = ds.y.values[0], load_unrolled("unrolled-shake-29")
    got = ds.kernel_hat.sel(estimator="unrolled").values[0]
    assert np.array_equal(got, kernels.centre(reconstruct(net, y, 0.01, support=11)["kernel"], rs.GALLERY))
    own = rs.run(rs.Config(**base, unrolled_support="model"), progress=False)
    got = own.kernel_hat.sel(estimator="unrolled").values[0]
    assert np.array_equal(got, kernels.centre(reconstruct(net, y, 0.01)["kernel"], rs.GALLERY))
    assert not np.allclose(got, ds.kernel_hat.sel(estimator="unrolled").values[0], atol=1e-3)


def test_real_shake_in_colour_estimates_the_kernel_from_the_colour_y_and_deconvolves_in_colour():
    """real-shake --color (levin5 on chelsea, 64x64): y is the colour image blurred channel by channel plus
    noise sigma per channel (the residual's std within 5 % of sigma; 12288 values give a 0.6 % standard error);
    MAP_k's and the sparse MAP_k's stored kernels are exactly those estimators run on the colour y at sigma (MAP_k
    under the colour Gaussian prior), not on its luminance; the true kernel's stored deconvolution is the colour
    Gaussian prior's Wiener filter of y, its ratio exactly 1; the energies are the colour problem's (E(h*, x*)
    recomputed); images are stored with a channel dimension."""
    from landscape import data, kernels, kernel_estimation as ke, operators
    from landscape.posterior import Posterior
    from landscape.priors import make_prior
    from landscape.studies import real_shake as rs
    cfg = rs.Config(color=True, kernels="levin5", images="chelsea", crop=64, n_em=2,
                    skip="map_xk,map_k_diffusion,unrolled,pnp,map_xk_from_unrolled,map_xk_from_truth")
    ds = rs.run(cfg, progress=False)
    img = data.center_crop(data.load("chelsea", color=True), 64)
    h = kernels.load("levin5")
    y = ds.y.values[0]
    assert ds.y.dims == ("case", "channel", "row", "col") and np.array_equal(ds.x_true.values[0], img)
    blur = operators.Blur(torch.as_tensor(h), (64, 64), channels=3)
    assert abs((y - blur(torch.as_tensor(img)).numpy()).std() / 0.01 - 1) < 0.05
    for e, est in (("map_k", ke.map_k), ("map_k_mog", ke.map_k_mog)):
        want = est(y, 0.01, h.shape[0], n_em=2)["kernel"]
        assert np.allclose(ds.kernel_hat.sel(estimator=e).values[0], kernels.centre(want, rs.GALLERY), atol=1e-10)
    lum = ke.map_k(data.luminance(y), 0.01 * np.linalg.norm(data.LUMA), h.shape[0], n_em=2)["kernel"]
    assert not np.allclose(ds.kernel_hat.sel(estimator="map_k").values[0], kernels.centre(lum, rs.GALLERY), atol=1e-4)
    x_true_kernel = ke.nonblind(y, 0.01, h, make_prior("gaussian", img.shape))
    assert np.allclose(ds.x_hat.sel(estimator="true").values[0], x_true_kernel, atol=1e-10)
    assert ds.error_ratio.sel(estimator="true").item() == 1.0
    assert np.isfinite(ds.error_ratio.sel(estimator=["map_k", "map_k_mog"]).values).all()
    post = Posterior(ke.kernel_problem(y, 0.01, h.shape[0]), make_prior("sparse", img.shape))
    assert np.isclose(ds.energy_truth.item(), post.energy_at_kernel(h, img), rtol=1e-12)


def test_real_shake_in_colour_runs_the_colour_unrolled_network_on_the_colour_y_and_a_gray_one_on_the_luminance():
    """real-shake --color (levin5, 11x11, on chelsea, 64x64): the unrolled kernel stored is the colour network's on the
    colour y at sigma on the case's support (the --color default model, unrolled-shake-color-29), or, given the gray
    network's weights file, the gray network's on the luminance at sigma * ||LUMA||_2; the file says which; a colour
    network without --color is one error naming ``model``."""
    from landscape import data, kernels
    from landscape.estimators.unrolled import load_unrolled, reconstruct
    from landscape.studies import real_shake as rs
    base = dict(color=True, kernels="levin5", images="chelsea", crop=64,
                skip="map_xk,map_k,map_k_mog,map_k_diffusion,pnp,map_xk_from_unrolled,map_xk_from_truth")
    ds = rs.run(rs.Config(**base), progress=False)
    y = ds.y.values[0]
    assert ds.attrs["unrolled_input"] == "colour" and '"model": "unrolled-shake-color-29"' in ds.attrs["config"]
    want = reconstruct(load_unrolled("unrolled-shake-color-29"), y, 0.01, support=11)["kernel"]
    assert np.allclose(ds.kernel_hat.sel(estimator="unrolled").values[0], kernels.centre(want, rs.GALLERY), atol=1e-12)
    from landscape.resources import weights_path          # the gray default's name alone is the colour default
    gray = rs.run(rs.Config(**base, model=str(weights_path("unrolled-shake"))), progress=False)
    assert gray.attrs["unrolled_input"] == "luminance"
    want = reconstruct(load_unrolled("unrolled-shake"), data.luminance(y), 0.01 * np.linalg.norm(data.LUMA),
                       support=11)["kernel"]
    assert np.allclose(gray.kernel_hat.sel(estimator="unrolled").values[0], kernels.centre(want, rs.GALLERY), atol=1e-12)
    with pytest.raises(InputError, match="^model: "):
        rs.run(rs.Config(kernels="levin5", images="camera", crop=64, skip="map_xk,map_k,map_k_mog,map_k_diffusion,pnp,map_xk_from_unrolled",
                         model="unrolled-shake-color"), progress=False)


def test_real_shake_in_colour_refuses_gray_images_and_takes_the_colour_photographs_by_default():
    from landscape.studies import real_shake as rs
    with pytest.raises(InputError, match="images"):
        rs.Config(color=True, images="camera").resolved()
    assert rs.Config(color=True).resolved().images == ("chelsea", "coffee")


def test_real_shake_bad_kernel_names_exit_2_naming_the_option(tmp_path, capsys):
    from landscape.cli import main
    assert main(["run", "real-shake", "--kernels", "levin9", "--out", str(tmp_path / "r.nc")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("landscape: error: kernels")
    assert main(["run", "real-shake", "--kernels", "", "--out", str(tmp_path / "r.nc")]) == 2
    assert "kernels" in capsys.readouterr().err
    assert not (tmp_path / "r.nc").exists()


def test_blurry_is_more_likely_takes_a_user_prior_and_gives_its_exact_energy_differences(tmp_path):
    """The README's own denoiser (a Wiener filter of a known spectrum P) as an evaluator by its spec: its Tweedie
    energy differences equal the closed form of the smoothed Gaussian q_s, spectrum P + s^2, on the stored crops."""
    from pathlib import Path

    from landscape.priors import GaussianPrior
    from landscape.studies import blurry_is_more_likely as b
    spec = str(Path(__file__).resolve().parents[1] / "docs" / "guide" / "mydenoiser.py") + ":make"
    ds = b.run(b.Config(crop=16, n_images=1, width_max=3.0, width_step=1.5, evaluators=spec), progress=False)
    fy, fx = np.meshgrid(np.fft.fftfreq(16), np.fft.fftfreq(16), indexing="ij")
    exact = GaussianPrior(2e-3 / (fy ** 2 + fx ** 2 + 1e-3) + 0.01 ** 2, mean=0.5)
    imgs = torch.as_tensor(ds.images.values[0])
    q = exact.energy(imgs).numpy()
    np.testing.assert_allclose(ds.delta_q.sel(evaluator=spec).values[0], q - q[0], rtol=1e-4, atol=1e-3)
    assert ds.delta_q_error.sel(evaluator=spec).values.max() < 1e-3 * np.abs(q - q[0]).max()


def test_blurry_is_more_likely_on_image_files_crops_each_file_as_the_held_out_images_centre(tmp_path, capsys):
    """--image-file: the central crop of each file. The photograph saved as a file gives the named image's
    central crop and its q differences to the last bit; a file smaller than the crop and the blur's margin is
    one line naming image_file, exit 2, nothing written."""
    from landscape import data
    from landscape.cli import main
    from landscape.studies import blurry_is_more_likely as b
    np.save(tmp_path / "cam.npy", data.load("camera"))
    np.save(tmp_path / "asc.npy", data.load("ascent"))
    kw = dict(crop=16, width_max=2.0, width_step=1.0, evaluators="gaussian")
    named = b.run(b.Config(n_images=2, **kw), progress=False)
    files = b.run(b.Config(image_file=f"{tmp_path / 'cam.npy'},{tmp_path / 'asc.npy'}", **kw), progress=False)
    np.testing.assert_array_equal(files.images.values, named.images.values)
    np.testing.assert_array_equal(files.delta_q.values, named.delta_q.values)
    assert [str(v).split("@")[0] for v in files.image.values] == [str(tmp_path / "cam.npy"), str(tmp_path / "asc.npy")]
    np.save(tmp_path / "small.npy", data.load("camera")[:40, :40])
    assert main(["run", "blurry-is-more-likely", "--image-file", str(tmp_path / "small.npy"), "--crop", "16",
                 "--evaluators", "gaussian", "--no-progress", "--out", str(tmp_path / "r.nc")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "image_file" in err[0] and "66x66" in err[0]
    assert not (tmp_path / "r.nc").exists()


@pytest.mark.parametrize("evaluator", ["gaussian", "patch-gmm", "tweedie", "gs", "pf-ode"])
def test_blurry_is_more_likely_allocates_nothing_off_its_device(evaluator, same_on_meta):
    """One evaluator's part with torch's default device set to ``meta`` and ``device="cpu"``: a tensor made
    without the study's device lands on ``meta`` and fails (the error a GPU run meets); the numbers equal a
    normal run's."""
    from landscape.studies import blurry_is_more_likely as b
    cfg = b.Config(crop=16, n_images=1, width_max=2.0, width_step=1.0, evaluators=evaluator, ode_steps=2, probes=1,
                   device="cpu")
    same_on_meta(lambda: b.run_part(cfg, progress=False), ("delta_q", "delta_q_error"))


def test_import_landscape_loads_no_study_and_a_study_on_first_use():
    """``import landscape`` imports no study (nor the second-order and sweep modules); asking the registry
    for one study imports that one alone; the ``ds.landscape`` accessor is registered without them."""
    import subprocess
    import sys
    code = ("import sys, xarray as xr, landscape\n"
            "heavy = [m for m in sys.modules if m.startswith(('landscape.studies', 'landscape.sweep', "
            "'landscape.hessian', 'landscape.certify'))]\n"
            "assert not heavy, heavy\n"
            "assert hasattr(xr.Dataset(), 'landscape')\n"
            "landscape.studies.get('map-vs-marginal')\n"
            "loaded = sorted(m for m in sys.modules if m.startswith('landscape.studies.'))\n"
            "assert loaded == ['landscape.studies.common', 'landscape.studies.map_vs_marginal'], loaded\n")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr


def test_map_vs_marginal_on_a_colour_photograph_keeps_its_closed_forms():
    """--color on map-vs-marginal (chelsea, the colour Gaussian with its fitted inter-channel covariance):
    the generic profile equals the closed form, the joint MAP picks the Dirac while the marginal does not,
    and the file holds the per-component spectra and the colour basis."""
    ds = S.run(S.Config(quick=True, color=True, image="chelsea", crop=48), progress=False)
    assert ds.attrs["closed_form_max_rel_diff"] < 1e-9
    assert ds.y.dims == ("channel", "row", "col") and ds.prior_spectrum.dims == ("component", "row", "col")
    A = ds.prior_color_basis.values
    np.testing.assert_allclose(A.T @ A, np.eye(3), atol=1e-12)
    g = ds.theta.values
    assert g[int(np.argmin(ds.profile_energy.values))] == 0.0 and g[int(np.argmin(ds.marginal_nll.values))] > 1.0


def test_pnp_vs_unrolled_and_posterior_statistics_on_a_colour_photograph(tmp_path):
    """--color on both studies: chelsea's (3, 32, 32) / (3, 16, 16) crop is the stored truth (with a ``channel``
    dimension); non-blind PnP with the colour denoiser beats y and the colour unrolled kernel is nearer h* than
    the Dirac is; the Gibbs theta posterior is a distribution on the grid, the coverages are fractions and the
    posterior std is positive on every channel; the figures draw."""
    import matplotlib.pyplot as plt

    from landscape import data
    from landscape.studies import pnp_vs_unrolled as PU, posterior_statistics as PS
    ds = PU.run(PU.Config(quick=True, color=True, n_iter=8, gs_prior="gaussian"), progress=False)
    assert ds.x_true.dims == ("case", "channel", "row", "col") and ds.attrs["model"] == "unrolled-gaussian-color"
    np.testing.assert_allclose(ds.x_true.values[0], data.center_crop(data.load("chelsea", color=True), 32), atol=1e-6)
    assert float(ds.psnr.sel(estimator="fixed", start="nonblind")[0]) > float(ds.psnr_y[0])
    dirac = np.zeros((15, 15))
    dirac[7, 7] = 1
    from landscape import kernels
    h_true = kernels.Gaussian(15)(torch.tensor([[1.0]], dtype=torch.float64))[0].numpy()
    assert float(ds.kernel_error.sel(estimator="unrolled", start="blind_dirac")[0]) < np.linalg.norm(dirac - h_true)
    plt.close(PU.plot(ds).figure)

    ps = PS.run(PS.Config(quick=True, color=True, sweeps=20, burn_in=5, chains=2, skip_hard=True, map_prior="gaussian"),
                progress=False)
    assert ps.posterior_std.dims == ("case", "channel", "row", "col") and ps.sizes["channel"] == 3
    np.testing.assert_allclose(ps.x_true.values[0], data.center_crop(data.load("chelsea", color=True), 16), atol=1e-6)
    assert float(ps.theta_posterior.sum()) == pytest.approx(1.0) and (ps.theta_posterior.values >= 0).all()
    assert all(0 <= float(ps[f"coverage_{lv}"][0]) <= 1 for lv in (50, 90))
    assert (ps.posterior_std.values.reshape(3, -1) > 0).any(1).all()
    assert np.isfinite(ps.estimate_image.sel(estimate="unrolled").values).all()
    plt.close(PS.plot(ps).figure)


@pytest.mark.slow
def test_the_colour_sandbox_puts_the_joint_map_at_the_trivial_pair_and_its_exact_answers_beside_it():
    """--sandbox --color (a (3, 16, 16) draw of the GMM fitted to colour crops, d = 768; fitting it takes about
    2 min once, hence slow): map-vs-mmse's truth is that draw, the joint MAP is the trivial pair (theta 0, the
    Dirac's kernel error), the exact MMSE beats it in PSNR at a higher joint energy, the exact posterior std is
    stored per channel and positive, the network is unrolled-gmm16-color; posterior-statistics' exact
    intervals' coverages are fractions and its Gibbs theta posterior a distribution on the grid."""
    import matplotlib.pyplot as plt

    from landscape import priors as P
    from landscape.studies import map_vs_mmse as S, posterior_statistics as PS
    ds = S.run(S.Config(sandbox=True, color=True, quick=True), progress=False)
    gmm = P.make_prior("gmm", (3, 16, 16), P.PriorSettings(progress=False))
    np.testing.assert_allclose(ds.images.sel(panel="x_true").values[0], gmm.sample(1, rng=10_000)[0].numpy())
    assert ds.attrs["model"] == "unrolled-gmm16-color" and float(ds.theta_map[0]) == 0.0
    ke = ds.kernel_error.isel(case=0)
    assert float(ke.sel(estimator="map_trivial")) == pytest.approx(float(ds.kernel_error_dirac[0]))
    at = lambda v, e: float(ds[v].isel(case=0).sel(estimator=e))
    assert at("psnr", "mmse_exact") > at("psnr", "map_trivial") and at("energy", "mmse_exact") > at("energy", "map_trivial")
    assert ds.x_std_exact.dims == ("case", "channel", "row", "col") and (ds.x_std_exact.values > 0).all()
    assert bool(ds.mmse_avoids_trivial[0])          # the network's kernel near h*, its image above y
    plt.close(S.plot(ds).figure)
    ps = PS.run(PS.Config(sandbox=True, color=True, quick=True, n_draws=1, sweeps=40, burn_in=10, chains=2,
                          skip_hard=True), progress=False)
    assert ps.posterior_mean.dims == ("case", "channel", "row", "col")
    assert float(ps.theta_posterior.sum()) == pytest.approx(1.0)
    assert all(0 <= float(ps[f"coverage_exact_{lv}"][0]) <= 1 for lv in (50, 90))
