"""Adapters and user priors against exact answers: the exact Gaussian prior's MMSE denoiser, written as
a plain user module in [-1, 1] units, must give back the exact score and energy differences of the
smoothed prior; a user prior named on the command line must give the registry's numbers."""

import math
import textwrap

import numpy as np
import pytest
import torch

from landscape import data, io
from landscape._checks import InputError
from landscape.cli import main
from landscape.priors import GaussianPrior, make_prior, power_law
from landscape.priors.adapters import from_denoiser, from_potential, from_score

S = 0.05


@pytest.fixture(scope="module")
def gauss():
    return GaussianPrior(power_law((16, 16), 2e-3, 2.0, 0.1).numpy(), mean=0.5)


class UserDenoiser(torch.nn.Module):
    """What a researcher has: (B, C, H, W) in [-1, 1], sigma in those units (deepinv's convention);
    here the exact MMSE denoiser of ``gauss``, so the answer is known."""

    def __init__(self, prior, data_range=(-1.0, 1.0)):
        super().__init__()
        self.prior, (self.a, self.b) = prior, data_range
        self.w = torch.nn.Parameter(torch.zeros((), dtype=torch.float64), requires_grad=False)

    def forward(self, u, sigma):
        assert u.ndim == 4 and u.shape[1] == 1
        k = self.b - self.a
        x = (u[:, 0] - self.a) / k
        return (self.a + k * self.prior.denoise(x, sigma / k))[:, None]


@pytest.mark.parametrize("data_range", [(0.0, 1.0), (-1.0, 1.0)])
def test_denoiser_adapter_reproduces_the_exact_smoothed_score_and_energy_differences(gauss, data_range):
    img = torch.as_tensor(data.center_crop(data.load("camera"), 16))[None]
    p = from_denoiser(UserDenoiser(gauss, data_range), S, data_range=data_range)
    smoothed = GaussianPrior(gauss.spectrum + S ** 2, mean=gauss.mean)          # p_s, exact
    np.testing.assert_allclose(p.grad(img).numpy(), smoothed.grad(img).numpy(), rtol=1e-10, atol=1e-8)
    x0 = torch.full_like(img, 0.5)
    diff, err = p.energy_difference(x0, img)
    exact = smoothed.energy(img) - smoothed.energy(x0)
    assert abs(float(diff - exact)) <= max(float(err), 1e-8 * abs(float(exact)))
    assert float(err) < 1e-6 * abs(float(exact))         # a quadratic q: Gauss-Legendre is exact


def test_score_and_potential_adapters_reproduce_the_exact_prior(gauss):
    img = torch.as_tensor(data.center_crop(data.load("ascent"), 16))[None]
    # score in [-1, 1] units of the smoothed prior: grad_u log p_sigma(u)
    def score(u, sigma):
        x = (u[:, 0] + 1) / 2
        return (-GaussianPrior(gauss.spectrum + (sigma / 2) ** 2, mean=gauss.mean).grad(x) / 2)[:, None]
    p = from_score(score, S, data_range=(-1, 1))
    smoothed = GaussianPrior(gauss.spectrum + S ** 2, mean=gauss.mean)
    np.testing.assert_allclose(p.grad(img).numpy(), smoothed.grad(img).numpy(), rtol=1e-10, atol=1e-8)
    # an explicit potential g(u, sigma) = sigma^2 q(x(u)): q back exactly, gradient by autograd
    pot = from_potential(lambda u, sigma: sigma ** 2 * gauss.energy((u[:, 0] + 1) / 2), S, data_range=(-1, 1))
    np.testing.assert_allclose(pot.energy(img).numpy(), gauss.energy(img).numpy(), rtol=1e-12)
    np.testing.assert_allclose(pot.grad(img).numpy(), gauss.grad(img).numpy(), rtol=1e-10, atol=1e-10)


USER_FILE = '''
import torch
from landscape.priors import load_model

def make():
    """The shipped denoiser as a user would bring any network: D(x, sigma), (B, 1, H, W) in [0, 1]."""
    net = load_model("denoiser-gray")
    return lambda x, sigma: net(x[:, 0].to(torch.float32), sigma)[:, None]
'''


def test_a_user_prior_through_the_adapter_gives_the_registrys_numbers(tmp_path):
    """trivial-minimizer with --priors user.py:make (the shipped network wrapped by the adapter) equals
    --priors tweedie (the registry's built-in) number for number, same seed."""
    f = tmp_path / "user.py"
    f.write_text(textwrap.dedent(USER_FILE))
    small = ["--quick", "--crop", "16", "--kernel-size", "5", "--n-theta", "5", "--n-draws", "1",
             "--noise-levels", "0.01", "--n-outer", "2", "--max-iter", "20", "--no-progress"]
    out = {}
    for name in ("tweedie", f"{f}:make"):
        out[name] = tmp_path / f"{len(out)}.nc"
        assert main(["run", "trivial-minimizer", *small, "--priors", name, "--out", str(out[name])]) == 0
    a, b = (io.load(p) for p in out.values())
    for k in ("profile_energy", "descent_energy", "plane_energy", "theta_hat_near_truth"):
        np.testing.assert_allclose(a[k].values, b[k].values, rtol=1e-6, err_msg=k)
    assert list(a.i_dirac_below_truth.values) == list(b.i_dirac_below_truth.values)
    import hashlib, json
    described = json.loads(b.attrs["verdicts"])[0]["prior_description"]
    assert described["spec"] == f"{f}:make"
    assert described["source_sha256"] == hashlib.sha256(f.read_bytes()).hexdigest()[:16]


@pytest.mark.parametrize("body, expected", [
    ("", "a factory named 'make'"),
    ("def make():\n    raise RuntimeError('boom')\n", "a factory that returns a prior or a denoiser"),
    ("def make():\n    return 3\n", "a Prior or a denoiser"),
    ("def make():\n    return lambda x, s: x[..., :3, :3]\n", "output of shape"),
    ("import torch\ndef make():\n    return lambda x, s: x * float('nan')\n", "finite values"),
    ("raise ImportError('x')\n", "a Python file that runs"),
])
def test_a_bad_user_prior_is_one_line_naming_priors_and_nothing_is_written(tmp_path, capsys, body, expected):
    f = tmp_path / "bad.py"
    f.write_text(body)
    out = tmp_path / "r.nc"
    rc = main(["run", "trivial-minimizer", "--quick", "--priors", f"{f}:make", "--no-progress", "--out", str(out)])
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 2 and len(err) == 1 and err[0].startswith("landscape: error: priors:") and expected in err[0], err
    assert not out.exists() and not list(tmp_path.glob(".r.nc.cases/*.nc"))


def test_make_prior_builds_a_user_prior_and_names_a_missing_file(tmp_path):
    with pytest.raises(InputError, match="priors: expected an existing Python file"):
        make_prior(str(tmp_path / "none.py") + ":make", (16, 16))
    with pytest.raises(InputError, match="priors: expected an importable module"):
        make_prior("no_such_module_xyz:make", (16, 16))


def test_the_readmes_own_denoiser_runs_in_both_studies(tmp_path, capsys):
    """The README's block, as written: docs/guide/mydenoiser.py through trivial-minimizer --quick and
    map-vs-mmse --quick."""
    from pathlib import Path
    spec = str(Path(__file__).resolve().parents[1] / "docs" / "guide" / "mydenoiser.py") + ":make"
    assert main(["run", "trivial-minimizer", "--quick", "--priors", spec, "--no-progress",
                 "--out", str(tmp_path / "a.nc")]) == 0
    assert main(["run", "map-vs-mmse", "--quick", "--prior", spec, "--no-progress", "--out", str(tmp_path / "b.nc")]) == 0
    assert io.load(tmp_path / "a.nc").attrs["prior"] == spec
    assert spec in io.load(tmp_path / "b.nc").attrs["prior_description"]


def test_epsilon_adapter_reproduces_the_exact_score_at_a_schedule_level(gauss):
    """The exact Gaussian prior's epsilon-predictor in [-1, 1] units on a DDPM linear schedule, written as a
    user module that knows only integer timesteps: through ``from_epsilon`` at a level of the schedule it gives
    the exact score of p_s; a level outside the schedule is refused naming ``s``."""
    from landscape.priors.adapters import from_epsilon
    betas = torch.linspace(1e-4, 0.02, 1000, dtype=torch.float64)
    ab = torch.cumprod(1 - betas, 0)
    t0 = 20
    s_net = float(torch.sqrt((1 - ab[t0]) / ab[t0]))           # the level of step t0, network units
    P = 4 * gauss.spectrum                                      # the spectrum in [-1, 1] units (scale 2)
    mu = 2 * gauss.mean - 1

    def eps(xt, t):
        k = int(round(float(t[0])))
        assert abs(float(t[0]) - k) < 1e-9                      # only integer steps are known to this network
        a = float(ab[k])
        X = torch.fft.fft2(xt[:, 0] - math.sqrt(a) * mu, norm="ortho")
        E = math.sqrt(1 - a) * X / (a * P + 1 - a)              # E[eps | x_t] for x0 ~ N(mu, P)
        return torch.fft.ifft2(E, norm="ortho").real[:, None]

    img = torch.as_tensor(data.center_crop(data.load("camera"), 16))[None]
    p = from_epsilon(eps, ab, s_net / 2)
    smoothed = GaussianPrior(gauss.spectrum + (s_net / 2) ** 2, mean=gauss.mean)
    np.testing.assert_allclose(p.grad(img).numpy(), smoothed.grad(img).numpy(), rtol=1e-9, atol=1e-7)
    with pytest.raises(InputError, match="s: .*schedule"):
        from_epsilon(eps, ab, 1e-5).grad(img)


def test_user_priors_reach_pnp_vs_unrolled_and_posterior_statistics(tmp_path, capsys):
    """The README's own denoiser as pnp-vs-unrolled's denoiser (stored in the provenance); a missing user file
    as posterior-statistics' sampling prior is one line naming ``prior``, exit 2, nothing written."""
    from pathlib import Path
    spec = str(Path(__file__).resolve().parents[1] / "docs" / "guide" / "mydenoiser.py") + ":make"
    out = tmp_path / "p.nc"
    assert main(["run", "pnp-vs-unrolled", "--quick", "--denoiser", spec, "--no-progress", "--out", str(out)]) == 0
    assert spec in io.load(out).attrs["config"]
    capsys.readouterr()
    assert main(["run", "posterior-statistics", "--prior", str(tmp_path / "none.py") + ":make",
                 "--out", str(tmp_path / "q.nc")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("landscape: error: prior") and not (tmp_path / "q.nc").exists()


def test_a_colour_user_denoiser_in_minus_one_one_units_gives_the_smoothed_colour_gaussian():
    """A user module: the exact MMSE denoiser of a colour Gaussian (random colour basis), written in [-1, 1]
    units on (B, 3, H, W); through from_denoiser(color=True) its score is the smoothed prior's (spectra
    P_k + s^2, toolkit units) and its energy differences over (3, H, W) images are that prior's."""
    g = np.random.default_rng(3)
    q, _ = np.linalg.qr(g.normal(size=(3, 3)))
    spectra = np.stack([power_law((8, 8), a, 2.0, 0.05).numpy() + 1e-3 for a in (2e-2, 5e-3, 1e-3)])
    exact = GaussianPrior(spectra, mean=[0.5, 0.4, 0.3], basis=q)
    s = 0.05

    class ColourWiener(torch.nn.Module):
        def forward(self, u, sigma):            # [-1, 1] units in and out, sigma in those units
            return 2 * exact.denoise((u + 1) / 2, sigma / 2) - 1

    prior = from_denoiser(ColourWiener(), s, data_range=(-1, 1), channels=3, color=True)
    smoothed = GaussianPrior(spectra + s ** 2, mean=[0.5, 0.4, 0.3], basis=q)
    x0, x1 = (torch.as_tensor(g.normal(0.4, 0.1, size=(2, 3, 8, 8))) for _ in range(2))
    torch.testing.assert_close(prior.grad(x1), smoothed.grad(x1), rtol=1e-8, atol=1e-8)
    d, _ = prior.energy_difference(x0, x1)
    torch.testing.assert_close(d, smoothed.energy(x1) - smoothed.energy(x0), rtol=1e-8, atol=1e-6)
    assert prior.describe()["color"] is True
    with pytest.raises(InputError, match="x"):
        prior.grad(x1[:, :2])


def test_real_shakes_pnp_and_diffusion_map_k_take_a_user_denoiser_and_give_the_registrys_numbers(tmp_path):
    """real-shake --pnp-prior user.py:make --diffusion-prior user.py:make --diffusion-from-truth (the shipped network
    as a plain D(x, sigma): a Tweedie prior at --s for PnP, a diffusion model for MAP_k's posterior draws, from delta
    and from the true kernel, which go back through it) equals the same run with tweedie: the same estimated kernels,
    error ratios and PSNRs; PnP's description is stored."""
    import json
    f = tmp_path / "user.py"
    f.write_text(textwrap.dedent(USER_FILE))
    small = ["--quick", "--skip", "map_xk,map_k,map_k_mog,unrolled,map_xk_from_unrolled,map_xk_from_truth",
             "--pnp-iter", "8", "--diffusion-from-truth", "--no-progress"]
    out = {}
    for name in ("tweedie", f"{f}:make"):
        out[name] = tmp_path / f"{len(out)}.nc"
        assert main(["run", "real-shake", *small, "--pnp-prior", name, "--diffusion-prior", name,
                     "--out", str(out[name])]) == 0
    a, b = (io.load(p) for p in out.values())
    for k in ("kernel_error", "error_ratio", "psnr"):
        assert np.isfinite(a[k].sel(estimator=["pnp", "map_k_diffusion", "map_k_diffusion_from_truth"]).values).all()
        np.testing.assert_allclose(a[k].values, b[k].values, rtol=1e-5, err_msg=k)
    assert json.loads(b.attrs["pnp_description"])["spec"] == f"{f}:make"


class TrainableQuadratic(torch.nn.Module):
    """A float32 gradient-step potential with weights that require grad, as a user's network has:
    g(u) = |w * u|^2 / 2 (w a circular 3x3 filter), so q = g / sigma^2 and its gradient are known."""

    def __init__(self):
        super().__init__()
        self.conv = torch.nn.Conv2d(1, 1, 3, padding=1, padding_mode="circular", bias=False)
        with torch.no_grad():
            self.conv.weight.copy_(torch.tensor([[0.0, -1, 0], [-1, 4, -1], [0, -1, 0]]))

    def forward(self, u, sigma):
        return 0.5 * (self.conv(u) ** 2).sum((1, 2, 3))


def test_a_float32_trainable_module_answers_in_the_callers_dtype_without_a_graph():
    img = torch.as_tensor(data.center_crop(data.load("camera"), 16))[None]
    net = TrainableQuadratic()
    pot = from_potential(net, S, device="cpu")
    e = pot.energy(img)
    assert e.dtype == torch.float64 and e.grad_fn is None and not e.requires_grad
    lap = torch.tensor([[0.0, -1, 0], [-1, 4, -1], [0, -1, 0]], dtype=torch.float64)
    conv = torch.nn.functional.conv2d(torch.nn.functional.pad(img[:, None], (1, 1, 1, 1), mode="circular"),
                                      lap[None, None])
    np.testing.assert_allclose(e.numpy(), 0.5 * (conv ** 2).sum((1, 2, 3)).numpy() / S ** 2, rtol=1e-5)
    g = pot.grad(img)                                    # the Laplacian applied twice, / s^2, in float32
    ref = torch.nn.functional.conv2d(torch.nn.functional.pad(conv, (1, 1, 1, 1), mode="circular"),
                                     lap[None, None])[:, 0] / S ** 2
    assert g.dtype == torch.float64
    np.testing.assert_allclose(g.numpy(), ref.numpy(), rtol=1e-4, atol=1e-4 * float(ref.abs().max()))
    den = from_denoiser(lambda u, sigma: u - 0.01 * net.conv(u.float()), S).denoise(img, S)
    assert den.dtype == torch.float64 and den.grad_fn is None


USER_COLOUR_FILE = '''
import torch
from landscape.priors import load_model

def make():
    """The shipped colour denoiser as a user would bring a colour network: D(x, sigma), (B, 3, H, W) in [0, 1]."""
    net = load_model("denoiser-color")
    return lambda x, sigma: net(x.to(torch.float32), sigma)
'''


def test_a_colour_user_prior_gives_the_colour_registrys_numbers_in_morse_bott(tmp_path):
    """morse-bott --color with --priors user.py:make (the shipped colour network as a plain (B, 3, H, W) denoiser)
    equals --priors tweedie (the registry's colour Tweedie prior): the gradient norms, the dense spectrum and its
    near-zero counts at the end of three root-finder calls (further calls, unconverged, drift apart at 1e-4 from
    the float32 rounding of the adapter's path); the spec is stored. (local-recovery --color with the Tweedie
    score takes 13 min even at its quick size, so it is not run here.)"""
    study, args = "morse-bott", ["--crop", "8", "--max-iter", "3"]
    keys = ("grad_norm", "near_zero_count", "spectrum")
    f = tmp_path / "user.py"
    f.write_text(textwrap.dedent(USER_COLOUR_FILE))
    out = {}
    for name in ("tweedie", f"{f}:make"):
        out[name] = tmp_path / f"{len(out)}.nc"
        assert main(["run", study, "--quick", "--color", *args, "--priors", name, "--no-progress",
                     "--out", str(out[name])]) == 0
    a, b = (io.load(p) for p in out.values())
    compared = [k for k in a.data_vars if any(k.startswith(p) for p in keys)]
    assert compared, sorted(a.data_vars)
    for k in compared:
        np.testing.assert_allclose(a[k].values, b[k].values, rtol=1e-5, atol=1e-8, err_msg=k)
    assert f"{f}:make" in b.attrs["config"]
