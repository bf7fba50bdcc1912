import numpy as np
import pytest
import scipy.stats as st
import torch

from landscape import data, priors as P
from landscape._checks import InputError


def _random_gmm(rng, K=3, shape=(3, 3)):
    D = int(np.prod(shape))
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


def test_a_colour_gmm_is_the_dense_mixture_on_channel_major_vectors(rng):
    """A (C, H, W) mixture: its log-density is scipy's on the channel-major flattening (the covariance couples
    channels and pixels), its gradient is autograd's, its Hessian the dense double backward's, one value per
    image of a (B, C, H, W) batch, and its draws and denoiser keep the (C, H, W) shape."""
    gmm = _random_gmm(rng, K=2, shape=(2, 2, 3))
    assert gmm.event_ndim == 3
    z = rng.normal(size=(4, 2, 2, 3))
    dens = sum(w * st.multivariate_normal(m, c).pdf(z.reshape(4, 12))
               for w, m, c in zip(gmm.weights.numpy(), gmm.means.numpy(), gmm.covariances.numpy()))
    np.testing.assert_allclose(gmm.energy(torch.as_tensor(z)).numpy(), -np.log(dens), rtol=1e-10)
    x = torch.tensor(z, requires_grad=True)
    (auto,) = torch.autograd.grad(gmm.energy(x).sum(), x)
    torch.testing.assert_close(gmm.grad(torch.as_tensor(z)), auto, rtol=1e-9, atol=1e-10)
    dense = torch.autograd.functional.hessian(lambda v: gmm.energy(v.reshape(2, 2, 3)), torch.as_tensor(z[0]).reshape(-1))
    torch.testing.assert_close(gmm.hessian_matrix(torch.as_tensor(z))[0], dense, rtol=1e-8, atol=1e-9)
    assert gmm.sample(3, rng=0).shape == (3, 2, 2, 3) and gmm.denoise(torch.as_tensor(z), 0.1).shape == z.shape
    with pytest.raises(InputError, match="x"):
        gmm.energy(torch.as_tensor(z[:, 0]))                     # a gray batch is not (C, H, W) images
    with pytest.raises(InputError, match="shape"):
        P.GMMPrior(gmm.weights, gmm.means, gmm.covariances, (1, 2, 2, 3))


def test_a_separated_colour_mixture_takes_its_covariance_from_colour_training_crops():
    """``GMMPrior.separated`` on (3, h, w) means: the covariance is that of colour crops of COLOR_TRAIN (its
    mean diagonal tau^2 (1 + ridge), channels correlated as natural colour is), and each mean is a mode."""
    means = [data.center_crop(data.load(n, color=True), 4) for n in data.COLOR_TEST]
    gmm = P.GMMPrior.separated(means, (3, 4, 4), scale=0.02, n_patches=2000, rng=0)
    cov = gmm.covariances[0].numpy()
    assert gmm.shape == (3, 4, 4) and cov.shape == (48, 48)
    assert np.diag(cov).mean() == pytest.approx(0.02 ** 2 * (1 + 0.05), rel=1e-10)     # tau^2 (1 + ridge)
    corr = cov[0, 16] / np.sqrt(cov[0, 0] * cov[16, 16])          # red and green of the same pixel
    assert corr > 0.8
    g = gmm.grad(torch.as_tensor(np.stack(means)))
    assert float(g.abs().max()) < 1e-8


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


def test_the_gaussian_fits_sizes_some_or_no_training_image_holds():
    """Crops come from the images that hold them (a 320x320 crop: not coins, 303 rows, nor chelsea, 300; it crashed
    before); a size larger than every image gets the power law fitted on the largest crop some image holds and
    evaluated on its own grid (the same parameters as that crop's own fit, and exactly ``power_law`` of them), the
    empirical spectrum and ``random_crops`` refuse it by name."""
    crops = data.random_crops([np.zeros((10, 10)), np.ones((40, 40))], (20, 20), 30, rng=0)
    assert crops.shape == (30, 20, 20) and (crops == 1).all()          # only the image that holds the crop
    imgs = [data.load(n) for n in data.TRAIN]
    assert P.make_prior("gaussian", (320, 320)).spectrum.shape == (320, 320)
    big = P.GaussianPrior.fit(imgs, (600, 800), n_crops=20)
    crop = tuple(big.info["crop"])
    assert crop == (500, 741)                         # motorcycle_left's whole frame: the largest within 600x800
    same = P.GaussianPrior.fit(imgs, crop, n_crops=20)
    for k in ("amplitude", "exponent", "f0"):
        assert big.info[k] == same.info[k]
    want = P.power_law((600, 800), big.info["amplitude"], big.info["exponent"], big.info["f0"]).double()
    torch.testing.assert_close(big.spectrum, want, rtol=0, atol=0)
    with pytest.raises(InputError, match="^shape: "):
        P.GaussianPrior.fit(imgs, (600, 800), model="empirical", n_crops=20)
    with pytest.raises(InputError, match="^size: "):
        data.random_crops(imgs, (600, 800), 5)


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


def test_a_colour_patch_energy_is_the_sum_over_wrapped_colour_patches(rng):
    """A (3, 2, 2) patch GMM on (3, 3, 4) images: the energy is the colour GMM's summed over every wrapped
    patch holding all three channels of its pixels (brute force), the gradient autograd's, the Hessian the
    dense double backward's, the denoiser a (3, H, W) image; a gray image is refused naming ``x``."""
    gmm = _random_gmm(rng, K=2, shape=(3, 2, 2))
    prior = P.PatchGMMPrior(gmm)
    x = torch.as_tensor(rng.normal(size=(2, 3, 3, 4)))
    ref = torch.zeros(2, dtype=torch.float64)
    for i in range(3):
        for j in range(4):
            ref += gmm.energy(x[:, :, [i, (i + 1) % 3]][:, :, :, [j, (j + 1) % 4]])
    torch.testing.assert_close(prior.energy(x), ref, rtol=1e-12, atol=1e-10)
    xg = x.clone().requires_grad_(True)
    (auto,) = torch.autograd.grad(prior.energy(xg).sum(), xg)
    e, g = prior.energy_and_grad(x)
    torch.testing.assert_close(g, auto, rtol=1e-9, atol=1e-10)
    dense = torch.autograd.functional.hessian(lambda v: prior.energy(v.reshape(3, 3, 4)), x[0].reshape(-1))
    torch.testing.assert_close(prior.hessian_matrix(x)[0], dense, rtol=1e-8, atol=1e-9)
    assert prior.denoise(x, 0.1).shape == x.shape
    with pytest.raises(InputError, match="^x:"):
        prior.energy(x[:, 0])


def test_sparse_prior_is_shift_invariant_and_checks(rng):
    sp = P.SparseGradientPrior(alpha=0.8)
    x = torch.as_tensor(rng.random((6, 6)))
    torch.testing.assert_close(sp.energy(x + 0.3), sp.energy(x))
    with pytest.raises(InputError, match="alpha"):
        P.SparseGradientPrior(alpha=1.5)
    with pytest.raises(NotImplementedError, match="unavailable"):
        sp.denoise(x, 0.1)
    assert sp.capabilities["energy"] == P.UP_TO_CONSTANT


def test_colour_sparse_prior_sums_independent_channels_and_equal_channels_give_three_times_gray(rng):
    """The colour sparse prior on (B, 3, H, W): one energy per image, the sum of the gray prior's energies of its
    channels (each a direct sum of smoothed |differences|^alpha); equal channels give exactly three times the gray
    energy and the gray gradient on every channel; its gradient is autograd's; the registry builds it for
    (3, H, W) and it describes itself as colour."""
    gray, colour = P.SparseGradientPrior(alpha=0.7, eps=0.05), P.SparseGradientPrior(alpha=0.7, eps=0.05, color=True)
    x = torch.tensor(rng.normal(size=(4, 3, 9, 8)), requires_grad=True)
    e = colour.energy(x)
    direct = sum(((d ** 2 + 0.05 ** 2) ** 0.35).sum(dim=(-3, -2, -1))
                 for d in (x.roll(-1, -1) - x, x.roll(-1, -2) - x))
    torch.testing.assert_close(e, direct.detach(), rtol=1e-13, atol=0)
    torch.testing.assert_close(e, gray.energy(x.detach()).sum(-1), rtol=1e-13, atol=0)
    (auto,) = torch.autograd.grad(e.sum(), x)
    torch.testing.assert_close(colour.grad(x.detach()), auto, rtol=1e-9, atol=1e-10)
    g1 = torch.as_tensor(rng.normal(size=(2, 9, 8)))
    same = g1[:, None].expand(2, 3, 9, 8)
    torch.testing.assert_close(colour.energy(same), 3 * gray.energy(g1), rtol=1e-13, atol=0)
    torch.testing.assert_close(colour.grad(same), gray.grad(g1)[:, None].expand(2, 3, 9, 8))
    built = P.make_prior("sparse", (3, 16, 16))
    assert built.event_ndim == 3 and built.describe()["color"] is True
    assert P.make_prior("sparse", (16, 16)).event_ndim == 2


def test_shape_and_parameter_errors(gaussian8):
    with pytest.raises(InputError, match="x"):
        gaussian8.energy(torch.zeros(7, 8, dtype=torch.float64))
    with pytest.raises(InputError, match="spectrum"):
        P.GaussianPrior(-np.ones((4, 4)))
    with pytest.raises(InputError, match="weights"):
        P.GMMPrior([0.5, 0.6], np.zeros((2, 1)), np.ones((2, 1, 1)), (1, 1))


# -- the protocol's promises, for every registered prior and every adapter ---------------------------------

def _wiener_net(gauss):
    """A user's denoiser module (deepinv's convention, [0, 1]): the exact MMSE denoiser of ``gauss``."""
    class Net(torch.nn.Module):
        def forward(self, u, sigma):
            return gauss.denoise(u[:, 0], sigma)[:, None]
    return Net()


def _protocol_priors():
    from landscape.priors.adapters import from_denoiser, from_epsilon, from_potential
    gauss = P.GaussianPrior(P.power_law((16, 16), 2e-3, 2.0, 0.1).numpy(), mean=0.5)
    ab = torch.cumprod(1 - torch.linspace(1e-4, 0.02, 1000, dtype=torch.float64), 0)

    def eps(xt, t):                        # the Gaussian's exact epsilon-predictor in [-1, 1] units
        a = float(ab[int(round(float(t[0])))])
        X = torch.fft.fft2(xt[:, 0] - a ** 0.5 * (2 * gauss.mean - 1), norm="ortho")
        return torch.fft.ifft2((1 - a) ** 0.5 * X / (a * 4 * gauss.spectrum + 1 - a), norm="ortho").real[:, None]
    s20 = float(torch.sqrt((1 - ab[20]) / ab[20]))
    built = {name: (lambda n=name: P.make_prior(n, (16, 16), P.PriorSettings(s=0.05, dtype=torch.float64)))
             for name in ("sparse", "gaussian", "gs", "tweedie", "patch-gmm")}
    built.update({
        "adapter:denoiser": lambda: from_denoiser(_wiener_net(gauss), 0.05),
        "adapter:epsilon": lambda: from_epsilon(eps, ab, s20 / 2),
        "adapter:potential": lambda: from_potential(lambda u, sigma: 0.5 * (u ** 2).sum((1, 2, 3)) / (1 + sigma),
                                                    0.05),
    })
    return built


PROTOCOL_PRIORS = _protocol_priors()
#: the priors that evaluate a network (or a user's module): one count per gradient
COUNTED = ("gs", "tweedie", "adapter:denoiser", "adapter:epsilon", "adapter:potential")


@pytest.mark.parametrize("name", sorted(PROTOCOL_PRIORS))
def test_every_registered_prior_and_adapter_keeps_the_protocols_promises(name):
    """Gradient against central differences of the energy (explicit energies), Hessian-vector products against
    central differences of the gradient, the assembled Hessian against the products, a score prior's denoiser
    against x - s^2 grad q; capabilities are ``Capability`` members; the call counter is read-only."""
    prior = PROTOCOL_PRIORS[name]()
    g = np.random.default_rng(0)
    x = torch.as_tensor(data.center_crop(data.load("camera"), 16)) * 0.8 + 0.1
    v = torch.as_tensor(g.standard_normal((16, 16)))
    assert all(isinstance(c, P.Capability) or c in set(P.Capability) for c in prior.capabilities.values())
    eps = 1e-5                                          # the truncation error of stiff energies is O(eps^2)
    if prior.capability("energy") in (P.EXACT, P.UP_TO_CONSTANT):
        f = lambda t: float(prior.energy((x + t * v)[None])[0])
        fd = (f(1e-6) - f(-1e-6)) / 2e-6
        assert abs(float((prior.grad(x[None])[0] * v).sum()) - fd) <= 1e-5 * max(abs(fd), 1.0)
    hv = prior.hvp_operator(x, symmetric=False)(v[None])[0]
    fd = (prior.grad((x + eps * v)[None])[0] - prior.grad((x - eps * v)[None])[0]) / (2 * eps)
    assert float((hv - fd).norm()) <= 1e-4 * max(float(fd.norm()), 1.0)
    if prior.capability("hessian") == P.EXACT:
        H = prior.hessian_matrix(x[None])[0]
        assert float((H @ v.reshape(-1) - hv.reshape(-1)).norm()) <= 1e-8 * float(hv.norm())
    if prior.s is not None and prior.capability("denoise") != P.UNAVAILABLE and \
            prior.capability("energy") not in (P.EXACT, P.UP_TO_CONSTANT):
        d = prior.denoise(x[None], prior.s)[0]
        assert float((d - (x - prior.s ** 2 * prior.grad(x[None])[0])).abs().max()) <= 1e-10
    before = prior.calls
    prior.grad(x[None])
    assert prior.calls == before + (1 if name in COUNTED else 0)     # a network call is counted; closed forms cost none
    with pytest.raises(AttributeError):
        prior.calls = 0


def _random_basis(rng, C=3):
    q, r = np.linalg.qr(rng.normal(size=(C, C)))
    return q * np.sign(np.diag(r))


def test_colour_gaussian_is_the_dense_normal_with_its_inter_channel_covariance(rng):
    """q, grad q and the denoiser of a colour GaussianPrior (6x5x3, a random colour basis A, one spectrum
    per component) against the dense 90-dimensional Gaussian N(mu, (A x I) blockdiag(C_k) (A x I)^T),
    C_k = F* diag(P_k) F."""
    shape, C = (6, 5), 3
    spectra = np.stack([P.power_law(shape, a, g, 0.05).numpy() + 1e-3 for a, g in ((2e-2, 2.0), (5e-3, 2.5), (1e-3, 1.5))])
    A, mu = _random_basis(rng), np.array([0.45, 0.4, 0.35])
    prior = P.GaussianPrior(spectra, mean=mu, basis=A)
    n = shape[0] * shape[1]
    F2 = np.kron(np.fft.fft(np.eye(shape[0]), norm="ortho"), np.fft.fft(np.eye(shape[1]), norm="ortho"))
    Ck = [(F2.conj().T @ np.diag(p.reshape(-1)) @ F2).real for p in spectra]
    T = np.kron(A, np.eye(n))                                   # channel-major vec: x = mu + T u
    Sigma = T @ np.block([[Ck[i] if i == j else np.zeros((n, n)) for j in range(C)] for i in range(C)]) @ T.T
    x = rng.normal(0.4, 0.1, size=(4, C, *shape))
    m = np.repeat(mu, n)
    ref = -st.multivariate_normal(m, Sigma).logpdf(x.reshape(4, -1))
    xt = torch.as_tensor(x)
    np.testing.assert_allclose(prior.energy(xt).numpy(), ref, rtol=1e-10)
    Si = np.linalg.inv(Sigma)
    np.testing.assert_allclose(prior.grad(xt).numpy().reshape(4, -1), (x.reshape(4, -1) - m) @ Si, rtol=1e-8, atol=1e-8)
    s = 0.1
    wiener = m + (x.reshape(4, -1) - m) @ np.linalg.solve(Sigma + s ** 2 * np.eye(C * n), Sigma)
    np.testing.assert_allclose(prior.denoise(xt, s).numpy().reshape(4, -1), wiener, rtol=1e-9, atol=1e-10)
    assert prior.lipschitz() == pytest.approx(np.linalg.eigvalsh(Si).max(), rel=1e-8)
    draws = prior.sample(4000, rng=1).numpy().reshape(4000, -1)
    np.testing.assert_allclose(np.cov(draws.T)[:n, n:2 * n].sum(), Sigma[:n, n:2 * n].sum(), rtol=0.1)
    with pytest.raises(InputError, match="basis"):
        P.GaussianPrior(spectra, mean=mu, basis=np.ones((3, 3)))


def test_fit_color_on_colour_photographs_gives_an_orthonormal_luminance_first_basis():
    """fit_color on the colour photographs: an orthonormal basis whose first component mixes all three
    channels (luminance-like) and carries most of the variance; each empirical component spectrum's mean
    is that component's pixel variance (Parseval, to the ring smoothing's error)."""
    prior = P.GaussianPrior.fit_color(data.COLOR_TRAIN, (32, 32), model="empirical", n_crops=60, rng=0)
    A = prior.basis.numpy()
    np.testing.assert_allclose(A.T @ A, np.eye(3), atol=1e-12)
    assert (A[:, 0] > 0.4).all()
    var = np.array(prior.info["component_variance"])
    assert var[0] > 5 * var[1] > 0 and prior.shape == (3, 32, 32)
    np.testing.assert_allclose(prior.spectrum.mean(dim=(-2, -1)).numpy(), var, rtol=0.1)


def test_colour_tweedie_prior_of_the_exact_colour_wiener_denoiser_is_the_smoothed_colour_gaussian(rng):
    """A Tweedie prior (color=True) on the exact MMSE denoiser of a colour Gaussian: its score and its energy
    differences (line integrals over (C, H, W) images) are those of the smoothed prior, spectra P_k + s^2."""
    shape, s = (8, 8), 0.05
    spectra = np.stack([P.power_law(shape, a, 2.0, 0.05).numpy() + 1e-3 for a in (2e-2, 5e-3, 1e-3)])
    A, mu = _random_basis(rng), np.array([0.5, 0.4, 0.3])
    exact = P.GaussianPrior(spectra, mean=mu, basis=A)
    smoothed = P.GaussianPrior(spectra + s ** 2, mean=mu, basis=A)
    tw = P.TweediePrior(exact.denoise, s, color=True)
    x0, x1 = (torch.as_tensor(rng.normal(0.4, 0.1, size=(2, 3, *shape))) for _ in range(2))
    torch.testing.assert_close(tw.grad(x1), smoothed.grad(x1), rtol=1e-9, atol=1e-9)
    d, err = tw.energy_difference(x0, x1)
    torch.testing.assert_close(d, smoothed.energy(x1) - smoothed.energy(x0), rtol=1e-9, atol=1e-7)
    assert d.shape == (2,) and float(err.max()) < 1e-6
