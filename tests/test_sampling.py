"""Samplers against the exact posterior of a tiny GMM sandbox (its closed forms in estimators.bayes):
MALA's moments within their Monte Carlo error (standard errors from ArviZ's effective sample size),
Gibbs' theta marginal within its sampling error, EM at the exact marginal's maximiser; the ArviZ layout;
bad input and diverging chains."""

import numpy as np
import pytest
import torch

import landscape as ls
from landscape import kernels as K, priors as P
from landscape._checks import InputError
from landscape.estimators.bayes import GMMPosterior
from landscape.sampling import gibbs as G
from landscape.sampling.langevin import ChainDiverged, LangevinOptions, sample_x
from landscape.sampling.layout import diagnostics, inference_data, save_inference

GRID = np.array([0.0, 0.5, 1.0, 1.5])


@pytest.fixture(scope="module")
def sandbox():
    rng = np.random.default_rng(1234)
    A = rng.normal(size=(2, 16, 16)) * 0.04
    cov = A @ A.transpose(0, 2, 1) + 0.002 * np.eye(16)
    gmm = P.GMMPrior([0.4, 0.6], 0.3 + 0.4 * rng.random((2, 16)), cov, (4, 4))
    prob = ls.BlindDeblur.synthetic(gmm.sample(1, rng=3)[0].numpy(), K.Gaussian(3), 1.0, 0.05, rng=4)
    return gmm, prob


def _ess(draws):
    import arviz as az
    return az.ess(az.convert_to_dataset(draws.numpy()), method="bulk")["x"].values


def test_mala_moments_match_the_exact_posterior(sandbox):
    """Per pixel, |mean - E[x|y,theta]| <= 4 SE and |sd - exact sd| <= 4 SE(sd) (16 pixels: a family-wise
    false-alarm rate of about 1e-3 for a correct sampler), SE from ArviZ's bulk ESS."""
    gmm, prob = sandbox
    exact = GMMPosterior(prob, gmm, [1.0]).mmse()
    out = sample_x(ls.Posterior(prob, gmm), [1.0],
                   LangevinOptions(method="mala", n_steps=3000, burn_in=500, chains=16, step_factor=1.0), rng=0)
    d = out["draws"].reshape(16, -1, 16)
    assert 0.3 < out["acceptance"].mean() < 0.99
    ess = _ess(d)
    mean, sd = d.mean((0, 1)), d.std((0, 1))
    m_ex, sd_ex = exact["x_mmse"].reshape(-1), exact["x_std"].reshape(-1)
    assert ((mean - m_ex).abs().numpy() <= 4 * sd_ex.numpy() / np.sqrt(ess)).all()
    assert ((sd - sd_ex).abs().numpy() <= 4 * sd_ex.numpy() / np.sqrt(2 * ess)).all()


@pytest.fixture(scope="module")
def colour_sandbox():
    """The sandbox in colour: a two-component GMM on (3, 4, 4) images (d = 48), the same blur on every channel."""
    rng = np.random.default_rng(4321)
    A = rng.normal(size=(2, 48, 48)) * 0.03
    cov = A @ A.transpose(0, 2, 1) + 0.002 * np.eye(48)
    gmm = P.GMMPrior([0.4, 0.6], 0.3 + 0.4 * rng.random((2, 48)), cov, (3, 4, 4))
    prob = ls.BlindDeblur.synthetic(gmm.sample(1, rng=3)[0].numpy(), K.Gaussian(3), 1.0, 0.05, rng=4)
    return gmm, prob


@pytest.mark.parametrize("which", ["sandbox", "colour_sandbox"], ids=["gray", "colour"])
def test_gibbs_theta_marginal_matches_the_exact_one(which, request):
    """Total variation between the kept draws' histogram and p(theta|y) below 3 times its expected
    sampling error sum_j sqrt(p_j (1 - p_j) / n_eff) / 2 (n_eff: ArviZ's ESS of the theta chain); in gray and
    on the colour sandbox (its MALA x-steps and its theta-step's data energies over three channels)."""
    import arviz as az
    gmm, prob = request.getfixturevalue(which)
    exact = GMMPosterior(prob, gmm, GRID).theta_posterior()
    out = G.gibbs(ls.Posterior(prob, gmm), GRID, sweeps=1500, burn_in=200, x_steps=3, chains=8, step_factor=1.0,
                  rng=1)
    n_eff = float(az.ess(az.convert_to_dataset(out["theta"][..., 0].numpy()), method="bulk")["x"])
    tv = 0.5 * float((out["theta_posterior"] - exact).abs().sum())
    bound = 3 * 0.5 * float(torch.sqrt(exact * (1 - exact) / n_eff).sum())
    assert tv <= bound, (tv, bound, n_eff, exact)


def test_em_reaches_the_exact_marginal_maximiser(sandbox):
    gmm, prob = sandbox
    post = ls.Posterior(prob, gmm)
    best = GRID[int(np.argmin(GMMPosterior(prob, gmm, GRID).marginal_nll().numpy()))]
    out = G.em_theta(post, GRID, 0.0, n_iter=6, options=LangevinOptions(method="mala", n_steps=600, burn_in=200,
                                                                        chains=4, step_factor=1.0), rng=0)
    assert abs(float(out["theta"][0]) - best) <= GRID[1] - GRID[0]


def test_arviz_layout_round_trip(sandbox, tmp_path):
    import arviz as az
    gmm, prob = sandbox
    out = G.gibbs(ls.Posterior(prob, gmm), GRID, sweeps=110, burn_in=10, thin=2, chains=3, rng=2)
    idata = inference_data(prob, theta=out["theta"].numpy(), x=out["x"].numpy(),
                           sample_stats={"theta_index": out["theta_index"].numpy()})
    save_inference(idata, tmp_path / "s.nc")
    back = az.from_netcdf(tmp_path / "s.nc")
    assert {"posterior", "sample_stats", "observed_data", "constant_data"} <= set(back.groups())
    assert back.posterior.theta.dims[:2] == ("chain", "draw") and back.posterior.sizes["draw"] == 50
    assert back.posterior.x.dims == ("chain", "draw", "row", "col")
    np.testing.assert_allclose(back.observed_data.y.values, prob.y.numpy())
    d = diagnostics(back, ["theta"])
    assert np.isfinite(d["rhat"]["theta"].values).all() and (d["ess_bulk"]["theta"].values > 0).all()
    # save_draws: thinned evenly to max_draws per chain, each draw's data energy that of its own (theta, x)
    post = ls.Posterior(prob, gmm)
    path = G.save_draws(tmp_path / "deep" / "d.nc", post, GRID, out, max_draws=7)
    saved = az.from_netcdf(path)
    assert saved.posterior.sizes["draw"] == 7
    th, x = float(saved.posterior.theta[2, 3, 0]), torch.as_tensor(saved.posterior.x[2, 3].values)
    expect = float(post.data_term(torch.tensor([[th]], dtype=x.dtype), x[None]))
    np.testing.assert_allclose(float(saved.sample_stats.data_energy[2, 3]), expect, rtol=1e-6)
    with pytest.raises(InputError, match="max_draws"):
        G.save_draws(tmp_path / "e.nc", post, GRID, out, max_draws=0)


def test_bad_input_and_diverging_chains(sandbox):
    gmm, prob = sandbox
    for bad, name in (({"step": -1.0}, "step"), ({"step": float("nan")}, "step"), ({"chains": 0}, "chains"),
                      ({"n_steps": 0}, "n_steps"), ({"burn_in": 3000, "n_steps": 2000}, "burn_in"),
                      ({"method": "annealed", "levels": (0.1, 0.2), "burn_in": 0}, "levels")):
        with pytest.raises(InputError, match=name):
            LangevinOptions(**bad)
    with pytest.raises(InputError, match="method"):
        sample_x(ls.Posterior(prob, P.load("denoiser-gray")), [1.0], LangevinOptions(method="mala"))
    with pytest.raises(ChainDiverged, match=r"chain \d+ diverged .* at step \d+") as info:
        sample_x(ls.Posterior(prob, gmm), [1.0], LangevinOptions(method="ula", step=1.0, n_steps=400, burn_in=0,
                                                                 chains=2), rng=0)
    assert info.value.draws.shape[0] == 2 and info.value.draws.shape[1] == info.value.step


@pytest.mark.parametrize("channels", [None, 3], ids=["gray", "colour"])
def test_dps_is_exact_for_a_white_gaussian_prior_seen_through_the_dirac(channels):
    """With x ~ N(m, c I), h = delta and data_var = c, DPS's guidance (the likelihood at D(x_i, s_i)
    with variance sigma^2 + r_i^2) is the exact p(y | x_i), so the guided reverse diffusion samples the
    posterior exactly in the limit of many levels: per pixel posterior mean (c y + sigma^2 m)/(c + sigma^2)
    and variance c sigma^2/(c + sigma^2) where y sees the pixel, the prior's on the valid boundary's
    unobserved rim. Mean within 4 SE per pixel (36 pixels); sd averaged over pixels within 2 %
    (its Monte Carlo error 0.3 %; the 300-level schedule's own bias is about -1 %, measured: -3.3 % at
    100 levels, -0.4 % at 1000). Guidance 0 gives the prior's moments. In colour: the same prior on each of
    three independent channels, the same blur on each, the same moments per channel."""
    from landscape.sampling.diffusion import DiffusionOptions, dps
    c, m0, sig, C = 0.04, 0.5, 0.1, 2000
    shape = (6, 6) if channels is None else (channels, 6, 6)
    prior = P.GaussianPrior(np.full(shape, c), mean=m0)
    prob = ls.BlindDeblur.synthetic(prior.sample(1, rng=1)[0].numpy(), K.Gaussian(3), 0.0, sig, rng=2,
                                    boundary="valid")
    post = ls.Posterior(prob, prior)
    mean, var = np.full(shape, m0), np.full(shape, c)
    mean[..., 1:-1, 1:-1] = (c * prob.y.numpy() + sig ** 2 * m0) / (c + sig ** 2)
    var[..., 1:-1, 1:-1] = c * sig ** 2 / (c + sig ** 2)
    for guidance, m, v in ((1.0, mean, var), (0.0, np.full(shape, m0), np.full(shape, c))):
        out = dps(post, [0.0], DiffusionOptions(levels=300, chains=C, data_var=c, mean=m0, guidance=guidance), rng=0)
        d = out["draws"][:, 0].numpy()
        assert out["draws"].shape == (C, 1, *shape) and out["calls"] == 0       # an exact prior: no network
        assert out["limited"].sum() == 0                  # the trust region never acts on an exact denoiser here
        assert np.all(np.abs(d.mean(0) - m) <= 4 * np.sqrt(v / C)), guidance
        assert abs((d.std(0) / np.sqrt(v)).mean() - 1) <= 0.02, guidance


def test_dps_guidance_is_the_gradient_of_the_likelihood_at_the_denoised_image():
    """For a Gaussian prior D(x, s) = m + A_s (x - m) is linear and symmetric, so the guidance is
    A_s H^T (y - H D(x, s)) / (sigma^2 + r^2) in closed form, r^2 = s^2 v / (s^2 + v)."""
    from landscape.sampling.diffusion import guided_denoise
    prior = P.GaussianPrior(P.power_law((8, 8), 2e-3, 2.0, 0.1).numpy(), mean=0.5)
    prob = ls.BlindDeblur.synthetic(prior.sample(1, rng=0)[0].numpy(), K.Gaussian(5), 1.2, 0.03, rng=1,
                                    boundary="valid")
    post = ls.Posterior(prob, prior)
    blur = prob.blur([[1.2]])
    x = torch.as_tensor(np.random.default_rng(3).normal(0.5, 0.3, (3, 8, 8)))
    s, v, zeta = 0.2, 0.06, 1.5
    x0, g = guided_denoise(post, blur, x, s, zeta, v)
    torch.testing.assert_close(x0, prior.denoise(x, s))
    r = blur.adjoint(prob.y - blur(x0)) / (0.03 ** 2 + s ** 2 * v / (s ** 2 + v))
    torch.testing.assert_close(g, zeta * (prior.denoise(r + 0.5, s) - 0.5), rtol=1e-10, atol=1e-10)


def test_dps_bad_options():
    from landscape.sampling.diffusion import DiffusionOptions
    for kw, name in (({"levels": 1}, "levels"), ({"s_min": 20.0}, "s_min"), ({"chains": 0}, "chains"),
                     ({"guidance": -1.0}, "guidance"), ({"s_max": float("nan")}, "s_max"),
                     ({"max_move": 0.0}, "max_move")):
        with pytest.raises(InputError, match=name):
            DiffusionOptions(**kw)


def test_em_with_a_dps_e_step_uses_the_dps_draws(sandbox):
    """Diffusion EM: the E-step's objective at iteration 0 is minus the mean data energy of the DPS draws at
    theta_0 (recomputed here with the same seed), the M-step its argmax on the grid; other option types are
    refused naming ``options``."""
    from landscape.sampling.diffusion import DiffusionOptions, dps
    gmm, prob = sandbox
    post = ls.Posterior(prob, gmm)
    opts = DiffusionOptions(levels=50, chains=8)
    out = G.em_theta(post, GRID, 1.5, n_iter=2, options=opts, rng=3)
    seed = int(np.random.default_rng(3).integers(2 ** 31, size=2)[0])
    d = dps(post, [1.5], opts, rng=seed)["draws"]
    q0 = -G.data_energies(post, torch.as_tensor(GRID)[:, None], d.reshape(-1, 4, 4)).mean(0).numpy()
    np.testing.assert_allclose(out["q_values"][0], q0, rtol=1e-12)
    assert out["theta_path"][1, 0] == GRID[np.argmax(q0)] and out["q_values"].shape == (2, len(GRID))
    with pytest.raises(InputError, match="options"):
        G.em_theta(post, GRID, 1.5, options={"method": "ula"})


def test_mala_on_a_colour_problem_matches_the_dense_colour_gaussian_posterior():
    """A colour problem ((3, 4, 4) images, the same blur on every channel) under a one-component colour GMM
    (a Gaussian whose covariance couples channels and pixels): the posterior is N(m, S), S = (H^T H / sigma^2
    + Sigma^-1)^-1, m = S (H^T y / sigma^2 + Sigma^-1 mu), H = I_3 (x) H_gray on channel-major vectors. MALA's
    per-value mean and sd within 4 SE of m and sqrt(diag S) (48 values, SE from ArviZ's bulk ESS)."""
    from landscape.operators import Blur
    rng = np.random.default_rng(7)
    A = rng.normal(size=(48, 48)) * 0.04
    cov = A @ A.T + 0.002 * np.eye(48)
    mu = 0.3 + 0.4 * rng.random(48)
    gmm = P.GMMPrior([1.0], mu[None], cov[None], (3, 4, 4))
    prob = ls.BlindDeblur.synthetic(gmm.sample(1, rng=3)[0].numpy(), K.Gaussian(3), 1.0, 0.05, rng=4)
    Hg = Blur(prob.family(torch.tensor([[1.0]], dtype=torch.float64))[0], (4, 4)).matrix().numpy()
    H = np.kron(np.eye(3), Hg)
    P_inv = np.linalg.inv(cov)
    S = np.linalg.inv(H.T @ H / 0.05 ** 2 + P_inv)
    m = S @ (H.T @ prob.y.numpy().reshape(-1) / 0.05 ** 2 + P_inv @ mu)
    out = sample_x(ls.Posterior(prob, gmm), [1.0],
                   LangevinOptions(method="mala", n_steps=3000, burn_in=500, chains=16, step_factor=1.0), rng=0)
    assert out["draws"].shape[2:] == (3, 4, 4) and 0.3 < out["acceptance"].mean() < 0.99
    d = out["draws"].reshape(16, -1, 48)
    ess = _ess(d)
    sd_ex = np.sqrt(np.diag(S))
    assert (np.abs(d.mean((0, 1)).numpy() - m) <= 4 * sd_ex / np.sqrt(ess)).all()
    assert (np.abs(d.std((0, 1)).numpy() - sd_ex) <= 4 * sd_ex / np.sqrt(2 * ess)).all()
