"""Unrolled networks and PnP baselines: their exact parts against dense answers, their guarantees
as properties, their bad input."""

import numpy as np
import pytest
import torch

import landscape as ls
from landscape import data, kernels as K, priors as P
from landscape._checks import InputError
from landscape.estimators import pnp
from landscape.estimators.unrolled import UnrolledBlind, check_kernel_for, load_unrolled, reconstruct


def test_data_step_is_the_dense_least_squares_solution(rng):
    h = K.Gaussian(5)(torch.tensor([[1.2], [0.4]], dtype=torch.float64))
    y = torch.as_tensor(rng.random((2, 7, 8)))
    z = torch.as_tensor(rng.random((2, 7, 8)))
    sig, s = torch.tensor([0.05, 0.1], dtype=torch.float64), torch.tensor([0.2, 0.03], dtype=torch.float64)
    x = UnrolledBlind.data_step(h, y, z, sig, s)
    for b in range(2):
        H = ls.operators.Blur(h[b], (7, 8)).matrix().numpy()
        A = H.T @ H / sig[b] ** 2 + np.eye(56) / s[b] ** 2
        ref = np.linalg.solve(A.numpy(), H.T @ y[b].reshape(-1).numpy() / sig[b].item() ** 2
                              + z[b].reshape(-1).numpy() / s[b].item() ** 2)
        np.testing.assert_allclose(x[b].reshape(-1).numpy(), ref, rtol=0, atol=1e-10)


def test_the_colour_data_step_is_the_gray_step_on_each_channel(rng):
    """One kernel per image, shared by its three channels: the colour step is three gray steps."""
    h = K.Gaussian(5)(torch.tensor([[1.2], [0.4]], dtype=torch.float64))
    y, z = torch.as_tensor(rng.random((2, 3, 7, 8))), torch.as_tensor(rng.random((2, 3, 7, 8)))
    sig, s = torch.tensor([0.05, 0.1], dtype=torch.float64), torch.tensor([0.2, 0.03], dtype=torch.float64)
    x = UnrolledBlind.data_step(h, y, z, sig, s)
    assert x.shape == y.shape
    for c in range(3):
        torch.testing.assert_close(x[:, c], UnrolledBlind.data_step(h, y[:, c], z[:, c], sig, s), rtol=0, atol=1e-12)


@pytest.mark.parametrize("family", [{"name": "gaussian", "size": 9, "lo": [0.0], "hi": [3.0]},
                                    {"name": "motion", "size": 9, "lo": [0.0, 0.0], "hi": [7.0, 180.0]},
                                    {"name": "free", "size": 9}])
@pytest.mark.parametrize("image_channels", [1, 3], ids=["gray", "colour"])
def test_kernel_branch_stays_in_the_box_or_on_the_simplex(family, image_channels, rng):
    torch.manual_seed(0)
    model = UnrolledBlind(family, iterations=2, channels=4, image_channels=image_channels).double()
    y = torch.as_tensor(rng.random((3, 16, 16) if image_channels == 1 else (3, image_channels, 16, 16)))
    out = model(y, 0.02, trace=True)
    h = out["kernel"]
    assert h.shape == (3, 9, 9) and len(out["iterates"]) == 2 and out["x"].shape == y.shape
    assert (h >= 0).all() and torch.allclose(h.sum((-2, -1)), torch.ones(3, dtype=h.dtype))
    if family["name"] != "free":
        th = out["theta"]
        assert (th >= torch.tensor(family["lo"], dtype=th.dtype)).all()
        assert (th <= torch.tensor(family["hi"], dtype=th.dtype)).all()


@pytest.mark.parametrize("image_channels", [1, 3], ids=["gray", "colour"])
def test_given_a_kernel_the_unrolled_network_is_its_hqs_iterations_with_that_kernel(image_channels, rng):
    """``model(y, sigma, kernel=h)``: every iteration's data step uses h (the kernel branch is not called), so the
    output is x_k = data_step(h, y, z_{k-1}, sigma, s_k), z_k = D(x_k, s_k) from z_0 = y, to 1e-12."""
    torch.manual_seed(0)
    model = UnrolledBlind({"name": "motion", "size": 9, "lo": [0.0, 0.0], "hi": [7.0, 180.0]}, iterations=3,
                          channels=4, image_channels=image_channels).double()
    y = torch.as_tensor(rng.random((2, 16, 16) if image_channels == 1 else (2, image_channels, 16, 16)))
    h = K.get("motion", 9)(torch.tensor([[5.0, 30.0], [3.0, 120.0]], dtype=torch.float64))
    model.kernel_branch.forward = None                # never called with a given kernel
    with torch.no_grad():
        out = model(y, 0.02, kernel=h)
        z, sig = y, torch.full((2,), 0.02, dtype=torch.float64)
        for k in range(3):
            s = torch.exp(model.log_s[k]).expand(2)
            z = model.denoiser(UnrolledBlind.data_step(h, y, z, sig, s), s)
    torch.testing.assert_close(out["x"], z, rtol=0, atol=1e-12)
    assert torch.equal(out["kernel"], h) and out["theta"] is None
    with pytest.raises(InputError, match="^kernel: "):
        model(y, 0.02, kernel=h[:1])


@pytest.mark.parametrize("image_channels", [1, 3], ids=["gray", "colour"])
def test_the_marginal_kernel_step_is_the_closed_form_gaussian_marginal_and_its_mode_is_map_theta(image_channels):
    """``MarginalKernelStep.nll`` on blurred camera/astronaut crops equals ``marginal.marginal_nll`` (dense-free
    closed form, the colour prior's basis and spectra) up to a constant per image, to 1e-6 of its range; with a
    vanishing temperature and no pull the network's kernel is the family's kernel at the grid's argmin of the
    closed form (MAP_theta on the grid), and a strong pull takes it to the grid point nearest the branch's estimate."""
    from landscape.marginal import marginal_nll
    from landscape.posterior import BlindDeblur
    fam = {"name": "motion", "size": 9, "lo": [0.0, 0.0], "hi": [8.0, 180.0], "marginal": [9, 12]}
    torch.manual_seed(0)
    model = UnrolledBlind(fam, iterations=2, channels=4, image_channels=image_channels).double()
    im = data.load("astronaut", color=True)[:, 100:132, 200:236] if image_channels == 3 else \
        data.load("camera")[100:132, 200:236]
    x = torch.as_tensor(np.stack([im, im[..., ::-1, :].copy()]))
    h_true = K.get("motion", 9)(torch.tensor([[6.0, 30.0], [4.0, 120.0]], dtype=torch.float64))
    sig = torch.tensor([0.01, 0.03], dtype=torch.float64)
    gen = torch.Generator().manual_seed(0)
    from landscape.estimators.train_unrolled import simulate
    y = simulate(x, h_true, sig, gen)
    nll = model.marginal.nll(y, sig)
    grid = model.marginal.grid.double()
    ref = torch.stack([marginal_nll(pb, P.make_prior("gaussian", pb.event_shape), grid) for pb in
                       (BlindDeblur(y[b], model.family, float(sig[b])) for b in range(2))])
    for b in range(2):
        d, d_ref = nll[b] - nll[b].mean(), ref[b] - ref[b].mean()
        assert float((d - d_ref).abs().max()) <= 1e-6 * float(d_ref.max() - d_ref.min())
    with torch.no_grad():
        model.marginal.log_temp.fill_(-20.0)
        model.marginal.log_lam.fill_(-60.0)
        out = model(y, sig)
        best = ref.argmin(1)
        torch.testing.assert_close(out["kernel"], model.family(grid[best]), rtol=0, atol=1e-6)
        torch.testing.assert_close(out["theta"], grid[best])
        model.marginal.log_temp.fill_(20.0)          # the data forgotten: the pull alone decides
        model.marginal.log_lam.fill_(10.0)
        pulled = model(y, sig, trace=True)
        th_hat = model.kernel(y, pulled["iterates"][-2])[1]      # the last iteration's branch reads z_{K-1}
        near = model.family.parameter_error(th_hat.repeat_interleave(len(grid), 0), grid.repeat(2, 1),
                                            fam["lo"], fam["hi"]).reshape(2, -1).argmin(1)
        torch.testing.assert_close(pulled["theta"], grid[near])
    with pytest.raises(InputError, match="^marginal: "):                   # one grid count per parameter
        UnrolledBlind({**fam, "marginal": [9]}, iterations=1, channels=4)


@pytest.mark.parametrize("image_channels", [1, 3], ids=["gray", "colour"])
def test_the_normalised_theta_branch_ignores_brightness_and_contrast_and_sees_the_blur(image_channels, rng):
    """``branch_normalise``: the parametric kernel branch reads its inputs high-passed and divided by their RMS, so
    y -> a y + b (the same for z) leaves its output unchanged (to 1e-10), while a different blur of the same image
    changes it; the raw branch's features barely move with the blur (its relative feature spread across six motion
    blurs of camera is 0.003 against 0.086 normalised, at the seeded initialisation of ``unrolled-motion``'s repair;
    here a fresh branch's output moves 345 (gray) and 183 (colour) times more with the blur when normalised, measured;
    the bound is 100)."""
    from landscape.estimators.unrolled import ThetaBranch
    torch.manual_seed(0)
    branch = {n: ThetaBranch(2, [0.0, 0.0], [13.0, 180.0], width=8, image_channels=image_channels, normalise=n).double()
              for n in (False, True)}
    shape = (2, 16, 16) if image_channels == 1 else (2, image_channels, 16, 16)
    y, z = torch.as_tensor(rng.random(shape)), torch.as_tensor(rng.random(shape))
    with torch.no_grad():
        torch.testing.assert_close(branch[True](3.0 * y - 0.4, 3.0 * z - 0.4), branch[True](y, z), rtol=0, atol=1e-10)
        assert not torch.allclose(branch[False](3.0 * y - 0.4, 3.0 * z - 0.4), branch[False](y, z), atol=1e-6)
    img = torch.as_tensor(data.center_crop(data.load("camera"), 32))
    if image_channels == 3:
        img = img.expand(3, 32, 32)
    fam = K.get("motion", 15)
    blurred = [ls.operators.Blur(fam(torch.tensor([[L, 30.0]], dtype=torch.float64))[0], (32, 32),
                                 channels=3 if image_channels == 3 else None)(img)[None] for L in (0.0, 9.0)]
    with torch.no_grad():
        moves = {n: float((b(blurred[0], blurred[0]) - b(blurred[1], blurred[1])).abs().max()) for n, b in branch.items()}
    assert moves[True] > 100 * moves[False], moves


@pytest.mark.parametrize("image_channels", [1, 3], ids=["gray", "colour"])
def test_the_free_kernel_branchs_data_steps_lower_the_misfit_and_stay_on_the_simplex(image_channels, rng):
    """With its step sizes at their initial 1/L (tau = 1/2 of 1/max|z_hat|^2 for ||h * z - y||^2, summed over a
    colour image's channels), each projected gradient step of the kernel branch cannot raise the data misfit;
    its output stays on the simplex."""
    from landscape.estimators.unrolled import FreeKernelBranch
    from landscape.operators import Blur
    torch.manual_seed(0)
    C = image_channels
    plain = FreeKernelBranch(9, image_channels=C).double()
    stepped = FreeKernelBranch(9, steps=5, image_channels=C).double()
    stepped.load_state_dict(plain.state_dict(), strict=False)
    shape = (2, 24, 24) if C == 1 else (2, C, 24, 24)
    channels = None if C == 1 else C
    z = torch.as_tensor(rng.random(shape))
    h_true = torch.as_tensor(K.camera_shake(9, rng=1))
    y = Blur(h_true, (24, 24), channels=channels)(z) + 0.01 * torch.as_tensor(rng.standard_normal(shape))
    with torch.no_grad():
        h0, h5 = plain(y, z), stepped(y, z)
    misfit = lambda h: ((Blur(h, (24, 24), channels=channels)(z) - y) ** 2).flatten(1).sum(1)
    assert (misfit(h5) <= misfit(h0)).all() and (misfit(h5) < 0.99 * misfit(h0)).any()
    assert (h5 >= 0).all() and torch.allclose(h5.sum((-2, -1)), torch.ones(2, dtype=h5.dtype))


def test_a_free_kernel_model_on_another_support_is_the_same_weights_built_for_that_support(rng):
    """``reconstruct(model, y, sigma, support=k)`` of a 9x9-support model equals, to the bit, the same weights
    loaded into a model built for a k x k support (7 and 13): the support is a crop, not a weight; the kernel is
    k x k on the simplex. A parametric model, an even or too large support are refused naming ``support``."""
    torch.manual_seed(0)
    base = UnrolledBlind({"name": "free", "size": 9}, iterations=2, channels=4).double().eval()
    y = rng.random((24, 24))
    for k in (7, 13):
        built = UnrolledBlind({"name": "free", "size": k}, iterations=2, channels=4).double().eval()
        built.load_state_dict(base.state_dict())
        got, want = reconstruct(base, y, 0.02, support=k), reconstruct(built, y, 0.02)
        assert got["kernel"].shape == (k, k) and np.array_equal(got["kernel"], want["kernel"])
        assert np.array_equal(got["x"], want["x"]) and np.isclose(got["kernel"].sum(), 1.0)
    assert not np.array_equal(reconstruct(base, y, 0.02, support=9)["x"], reconstruct(base, y, 0.02, support=13)["x"])
    gauss = UnrolledBlind({"name": "gaussian", "size": 9, "lo": [0.0], "hi": [3.0]}, iterations=1, channels=4)
    for model, bad in ((gauss, 9), (base, 8), (base, 25)):
        with pytest.raises(InputError, match="^support: "):
            reconstruct(model, y, 0.02, support=bad)


def test_unrolled_bad_input(tmp_path):
    with pytest.raises(InputError, match="model"):
        load_unrolled("no-such-model")
    (tmp_path / "junk.pt").write_bytes(b"not weights")
    with pytest.raises(InputError, match="model"):
        load_unrolled(tmp_path / "junk.pt")
    model = UnrolledBlind({"name": "free", "size": 9}, iterations=1, channels=4)
    with pytest.raises(InputError, match="kernel_file"):
        check_kernel_for(model, np.ones((11, 11)) / 121)
    padded = check_kernel_for(model, np.ones((3, 3)) / 9)
    assert padded.shape == (9, 9) and padded[4, 4] == pytest.approx(1 / 9) and padded.sum() == pytest.approx(1)
    with pytest.raises(InputError, match="y"):
        reconstruct(model, np.zeros((8, 8)), 0.01)
    colour = UnrolledBlind({"name": "free", "size": 9}, iterations=1, channels=4, image_channels=3)
    with pytest.raises(InputError, match=r"y: expected a \(3, H, W\) colour image"):
        reconstruct(colour, np.zeros((16, 16)), 0.01)
    assert reconstruct(colour, np.zeros((3, 16, 16)), 0.01)["x"].shape == (3, 16, 16)


@pytest.mark.parametrize("shape", [(4, 4), (3, 4, 4)], ids=["gray", "colour"])
def test_fixed_level_pnp_with_the_exact_gmm_denoiser_reaches_the_smoothed_map(shape, rng):
    r"""With D the exact MMSE denoiser of a GMM at level s, a fixed point x = argmin data + |x - D(x)|^2/(2 s^2)
    satisfies H^T(Hx - y)/sigma^2 + (x - D(x))/s^2 = 0, and Tweedie gives (x - D(x))/s^2 = grad(-log p_s)(x):
    x is a critical point of data + q_s, the minimiser found by L-BFGS with the smoothed GMM (noisy(s)).
    In colour: a GMM on (3, 4, 4) images, the same blur on every channel."""
    D = int(np.prod(shape))
    A = rng.normal(size=(2, D, D)) * 0.05
    cov = A @ A.transpose(0, 2, 1) + 0.004 * np.eye(D)
    gmm = P.GMMPrior([0.5, 0.5], 0.3 + 0.4 * rng.random((2, D)), cov, shape)
    prob = ls.BlindDeblur.synthetic(gmm.sample(1, rng=1)[0].numpy(), K.Gaussian(3), 0.8, 0.05, rng=2)
    s = 0.05
    out = pnp.pnp_nonblind(prob, gmm, [0.8], pnp.PnPOptions(variant="fixed", s=s, n_iter=3000))
    ref, _, info = ls.Posterior(prob, gmm.noisy(s)).argmin_x([[0.8]], gtol=1e-12, ftol=0, max_iter=5000)
    assert info.converged.all()
    np.testing.assert_allclose(out["x"].numpy(), ref[0].numpy(), atol=1e-6)


def test_gradient_step_pnp_energy_never_increases():
    img = data.center_crop(data.load("camera"), 32)
    prob = ls.BlindDeblur.synthetic(img, K.Gaussian(9), 1.2, 0.02, rng=0, dtype=torch.float32)
    gs = P.load("gs-denoiser-gray", "gs", s=0.02, dtype=torch.float32)
    out = pnp.pnp_nonblind(prob, gs, [1.2], pnp.PnPOptions(variant="gradient-step", s=0.02, n_iter=15))
    e = out["energy"]
    assert np.all(np.diff(e) <= 1e-6 * np.abs(e[1:]))
    assert out["calls"] >= 15


def test_pnp_options_and_problems_are_checked():
    with pytest.raises(InputError, match="variant"):
        pnp.PnPOptions(variant="admm")
    with pytest.raises(InputError, match="s_min"):
        pnp.PnPOptions(s_min=0.5, s_max=0.1)
    img = data.center_crop(data.load("camera"), 24)
    valid = ls.BlindDeblur.synthetic(img, K.Gaussian(5), 1.0, 0.02, rng=0, boundary="valid")
    with pytest.raises(InputError, match="problem"):
        pnp.pnp_nonblind(valid, P.SparseGradientPrior(), [1.0])
    circ = ls.BlindDeblur.synthetic(img, K.Gaussian(5), 1.0, 0.02, rng=0)
    with pytest.raises(InputError, match="prior"):
        pnp.pnp_nonblind(circ, P.load("denoiser-gray"), [1.0], pnp.PnPOptions(variant="gradient-step"))


def test_point_estimates_share_a_given_exact_posterior_and_refuse_one_on_another_grid():
    """``point_estimates(exact=GMMPosterior)`` (a two-component 16x16 GMM, Gaussian blur 1.0, grid 0..2 and
    theta* on it) gives the exact MMSE, MAP_theta and its kernel identical to ``exact=True``'s, and the posterior
    it was given holds the evidences it used; one built on another grid is an error naming ``exact``."""
    from landscape.estimators.bayes import GMMPosterior
    from landscape.estimators.compare import point_estimates
    g = np.random.default_rng(2)
    A = g.normal(size=(2, 256, 256)) * 0.01
    gmm = P.GMMPrior([0.5, 0.5], 0.3 + 0.4 * g.random((2, 256)), A @ A.transpose(0, 2, 1) + 1e-3 * np.eye(256),
                     (16, 16))
    prob = ls.BlindDeblur.synthetic(gmm.sample(1, rng=1)[0].numpy(), K.Gaussian(15), [1.0], 0.02, rng=2)
    model = load_unrolled("unrolled-gmm16", dtype=torch.float64)
    first = np.linspace(0, 2, 5)
    shared = GMMPosterior(prob, gmm, first[:, None])
    a, ea = point_estimates(prob, gmm, model, np.array([1.0]), first, exact=shared)
    b, eb = point_estimates(prob, gmm, model, np.array([1.0]), first, exact=True)
    for name in ("mmse_exact", "map_theta"):
        for u, v in zip(a[name], b[name]):
            torch.testing.assert_close(u, v, rtol=0, atol=0)
    assert ea["theta_map_theta"] == eb["theta_map_theta"] and sorted(shared._cache) == list(range(5))
    with pytest.raises(InputError, match="^exact: "):
        point_estimates(prob, gmm, model, np.array([1.0]), first, exact=GMMPosterior(prob, gmm, first[:4, None]))
