"""Hessians against exact answers: the GMM prior's closed form, a dense autograd Hessian of the joint
energy, Lanczos against the dense spectrum; certificates on a convex problem; bad input."""

import numpy as np
import pytest
import torch

import landscape as ls
from landscape import certify as Cf, data, eigen as Eg, hessian as Hs, kernels as K, marginal, priors as P
from landscape._checks import InputError


def _gmm(rng, d=16, shape=(4, 4)):
    A = rng.normal(size=(3, d, d)) * 0.2
    cov = A @ A.transpose(0, 2, 1) + 0.05 * np.eye(d)
    return P.GMMPrior([0.2, 0.3, 0.5], rng.random((3, d)), cov, shape)


def test_gmm_prior_hessian_matches_the_closed_form(rng):
    gmm = _gmm(rng)
    x = torch.as_tensor(rng.random((4, 4)))
    hvp = Hs.prior_hvp(gmm, x)
    H = np.stack([hvp(torch.as_tensor(e.reshape(4, 4))).reshape(-1).numpy() for e in np.eye(16)], 1)
    xf = x.reshape(-1).numpy()
    prec = np.linalg.inv(gmm.covariances.numpy())
    g = np.einsum("kij,kj->ki", prec, xf - gmm.means.numpy())
    logw = np.log(gmm.weights.numpy()) - 0.5 * np.einsum("ki,ki->k", xf - gmm.means.numpy(), g) \
        - 0.5 * np.linalg.slogdet(gmm.covariances.numpy())[1]
    gam = np.exp(logw - logw.max())
    gam /= gam.sum()
    gbar = gam @ g
    exact = np.einsum("k,kij->ij", gam, prec) - (np.einsum("k,ki,kj->ij", gam, g, g) - np.outer(gbar, gbar))
    np.testing.assert_allclose(H, exact, rtol=1e-6, atol=1e-8 * np.abs(exact).max())
    # the prior's own assembled matrix (no products) is the same closed form
    np.testing.assert_allclose(gmm.hessian_matrix(x[None])[0].numpy(), exact, rtol=1e-10, atol=1e-12 * np.abs(exact).max())


@pytest.fixture
def gauss_post():
    img = data.center_crop(data.load("camera"), 8)
    prob = ls.BlindDeblur.synthetic(img, K.Gaussian(5), 1.0, 0.05, rng=0)
    return ls.Posterior(prob, P.GaussianPrior(P.power_law((8, 8), 2e-3, 2.0, 0.1).numpy(), mean=0.5))


def test_joint_hessian_matches_dense_autograd_and_lanczos_matches_dense(gauss_post):
    post = gauss_post
    th = torch.tensor([1.1], dtype=torch.float64)
    x = marginal.argmin_closed_form(post, [[1.1]])[0]
    op = Hs.joint_hvp(post, th[None], x)

    def E(z):
        return post.energy(z[:1][None], z[1:].reshape(8, 8)[None])[0]
    ref = torch.autograd.functional.hessian(E, torch.cat([th, x.reshape(-1)])).numpy()
    np.testing.assert_allclose(Eg.dense_matrix(op), ref, rtol=1e-6, atol=1e-9 * np.abs(ref).max())
    dense = Eg.spectrum(op, k=4, method="dense")
    np.testing.assert_allclose(dense["eigenvalues"], np.linalg.eigvalsh(ref)[:4], rtol=1e-6)
    # a stationary prior's eigenvalues come in pairs: the block method finds both copies,
    # single-vector Lanczos the distinct values
    blk = Eg.spectrum(op, k=4, method="lobpcg")
    np.testing.assert_allclose(blk["eigenvalues"], dense["eigenvalues"], rtol=1e-6)
    lan = Eg.spectrum(op, k=2, method="lanczos")
    np.testing.assert_allclose(lan["eigenvalues"], dense["eigenvalues"][:2], rtol=1e-6)
    for r in (blk, lan):
        assert (r["residuals"] < 1e-6 * np.abs(r["eigenvalues"]).max()).all()


def _profile_maximum(post):
    """The profile's interior maximum (theta ~ 1.8 for ``gauss_post``) with its argmin_x: a critical
    point of E (d/dtheta of the profile vanishes, x minimises) whose theta direction curves down."""
    from scipy.optimize import minimize_scalar
    prof = lambda t: float(post.energy([[t]], marginal.argmin_closed_form(post, [[t]]))[0])
    t = minimize_scalar(lambda t: -prof(t), bounds=(1.3, 2.4), method="bounded", options={"xatol": 1e-10}).x
    return [[t]], marginal.argmin_closed_form(post, [[t]])[0]


def _saddle_setup(post):
    th, x = _profile_maximum(post)
    return th, x, float(Hs.joint_gradient(post, torch.tensor(th, dtype=torch.float64), x)[0].abs().max())


def test_certificates(gauss_post):
    """At (1.1, argmin_x) the profile slopes (|dE/dtheta| = 2.5): not a critical point, so neither a
    minimiser nor a saddle, whatever the curvature (which is negative there). At the profile's interior
    maximum the gradient vanishes and the joint Hessian has a negative eigenvalue: a saddle. At the Dirac
    (theta = 0) the Gaussian family is flat in theta (the pixel-integrated Gaussian is the Dirac for widths
    below ~0.2): the x-Hessian decides, and the Gaussian prior's is positive definite: a certified (flat)
    minimiser."""
    post = gauss_post
    x1 = marginal.argmin_closed_form(post, [[1.1]])[0]
    c1 = Cf.certificate(post, [[1.1]], x1)
    assert c1["grad_norm"] > 1.0 and c1["verdict"].startswith("not stationary")
    assert c1["eigenvalues"][0] < -c1["residuals"][0]          # curvature still reported
    th, xs, gs = _saddle_setup(post)
    assert gs < 1e-6
    cs = Cf.certificate(post, th, xs, gtol=1e-5)
    assert not cs["boundary"] and cs["verdict"] == "saddle" and cs["eigenvalues"][0] < -cs["residuals"][0]
    x0 = marginal.argmin_closed_form(post, [[0.0]])[0]
    c0 = Cf.certificate(post, [[0.0]], x0, gtol=1e-6, k=1)
    assert c0["boundary"] and abs(float(c0["dtheta"][0])) < 1e-6 and c0["flat_in_theta"]
    # the kernel is the Dirac for small widths, so E(theta, x) = E(0, x) there and the x-Hessian decides:
    # its smallest eigenvalue against a dense autograd Hessian of x -> E(0, x)
    f = lambda z: post.energy([[0.0]], z.reshape(x0.shape)[None])[0]
    lam = np.linalg.eigvalsh(torch.autograd.functional.hessian(f, x0.reshape(-1)).numpy())[0]
    assert lam > 0 and abs(c0["eigenvalues"][0] - lam) <= 1e-6 * abs(lam) + c0["residuals"][0]
    assert c0["verdict"] == "certified local minimiser"
    # a width well above a pixel is not flat
    assert not Cf.kernel_flat_at(post.problem.family, torch.tensor([1.0]))


def test_bad_input(gauss_post):
    post = gauss_post
    op = Hs.joint_hvp(post, [[1.0]], post.problem.y)
    with pytest.raises(InputError, match="k"):
        Eg.spectrum(op, k=op.shape[0] + 1)
    bad = post.problem.y.clone()
    bad[0, 0] = float("nan")
    with pytest.raises(InputError, match="energy gradient|x"):
        Cf.certificate(post, [[1.0]], bad)


def test_gradient_step_prior_energy_is_differentiable_and_its_hessian_matches_finite_differences():
    """The GS potential under autograd (a joint gradient or a double-backward HVP through E) must carry
    the prior: its autograd gradient equals the prior's own gradient, and H v equals the central
    difference of that gradient (float64)."""
    gs = P.make_prior("gs", (16, 16), P.PriorSettings(s=0.05, dtype=torch.float64))
    x = torch.as_tensor(data.center_crop(data.load("camera"), 16), dtype=torch.float64)
    xx = x.clone().requires_grad_(True)
    (g,) = torch.autograd.grad(gs.energy(xx[None]).sum(), xx)
    np.testing.assert_allclose(g.numpy(), gs.grad(x[None])[0].numpy(), rtol=1e-10, atol=1e-8)
    v = torch.randn(16, 16, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    eps = 1e-5
    fd = (gs.grad((x + eps * v)[None])[0] - gs.grad((x - eps * v)[None])[0]) / (2 * eps)
    hv = Hs.prior_hvp(gs, x)(v)
    assert float((hv - fd).norm() / fd.norm()) < 1e-6
    # and through the joint Hessian's x block
    prob = ls.BlindDeblur.synthetic(x.numpy(), K.Gaussian(5), 1.0, 0.05, rng=0)
    post = ls.Posterior(prob, gs)
    op = Hs.joint_hvp(post, [[1.0]], x)
    w = np.concatenate([[0.0], v.numpy().ravel()])
    data_only = Hs.joint_hvp(ls.Posterior(prob, gs, prior_weight=1e-12), [[1.0]], x).matvec(w)[1:]
    np.testing.assert_allclose(op.matvec(w)[1:] - data_only, hv.numpy().ravel(), rtol=1e-6, atol=1e-6 * float(hv.norm()))


def test_an_unconverged_eigensolver_leaves_the_certificate_undecided_with_what_it_reached(gauss_post):
    """LOBPCG stopped after one iteration at a saddle (whose converged certificate is 'saddle'): the
    spectrum raises NotConverged carrying its Ritz values and residuals; the certificate records them and
    says 'undecided', since an unconverged smallest Ritz value need not be the smallest eigenvalue."""
    post = gauss_post
    th, xs, _ = _saddle_setup(post)
    op = Hs.joint_hvp(post, th, xs)
    with pytest.raises(Eg.NotConverged, match="eigensolver: expected convergence") as exc:
        Eg.spectrum(op, k=2, method="lobpcg", maxiter=1)
    assert len(exc.value.eigenvalues) >= 2 and np.all(np.isfinite(exc.value.residuals))
    assert exc.value.residuals.max() > 1e-6 * np.abs(exc.value.eigenvalues).max()
    c = Cf.certificate(post, th, xs, k=2, gtol=1e-5, method="lobpcg", maxiter=1)
    assert c["verdict"].startswith("undecided (LOBPCG did not converge: residual")
    assert c["eigenvalues"][0] == exc.value.eigenvalues.min() and c["products"] == exc.value.products
    assert Cf.certificate(post, th, xs, gtol=1e-5, method="lobpcg")["verdict"] == "saddle"


def test_a_point_with_a_large_gradient_is_not_stationary_not_a_saddle():
    """The issue's case: the exact Gaussian prior on a 24x24 crop, theta* = 1.5, the image perturbed
    (|grad E| ~ 1e3): the certificate says 'not stationary', never 'saddle' or 'certified'."""
    img = data.center_crop(data.load("camera"), 24)
    prob = ls.BlindDeblur.synthetic(img, K.Gaussian(9), 1.5, 0.01, rng=0)
    post = ls.Posterior(prob, P.GaussianPrior(P.power_law((24, 24), 2e-3, 2.0, 0.1).numpy(), mean=0.5))
    x = prob.x_true + 0.05 * torch.randn(24, 24, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    c = Cf.certificate(post, [[1.5]], x)
    assert c["grad_norm"] > 100 and c["verdict"].startswith("not stationary")


def _planted(rng, eigenvalues):
    """A dense symmetric matrix with the given spectrum (a random orthogonal basis), as an operator."""
    from scipy.sparse.linalg import aslinearoperator
    Q, _ = np.linalg.qr(rng.normal(size=(len(eigenvalues),) * 2))
    return aslinearoperator((Q * np.asarray(eigenvalues)) @ Q.T)


def test_near_zero_count_equals_the_exact_count_on_a_planted_spectrum_with_fewer_products(rng):
    """d = 400, lambda_max = 1: eigenvalues planted inside [-t, t] (both signs), just outside it on both
    sides (1.5 t and -1.5 t, so the negative side must be resolved too), and the bulk in [0.02, 1]. The
    counts at t = 1e-3 and 1e-2 equal the planted ones, from fewer products than d, and lambda_max is
    the largest eigenvalue to within its reported bound."""
    lam = np.concatenate([[-5e-4, -1e-4, 2e-5, 3e-4, 8e-4],          # inside 1e-3
                          [-1.5e-3, 1.5e-3, 4e-3, -6e-3, 9e-3],        # inside 1e-2 only
                          [-0.05], rng.uniform(0.02, 1.0, 388), [1.0]])
    op = _planted(rng, lam)
    out = Eg.near_zero_count(op, [1e-3, 1e-2])
    assert list(out["counts"]) == [int((np.abs(lam) <= t).sum()) for t in (1e-3, 1e-2)] == [5, 10]
    assert out["products"] < op.shape[0]
    assert abs(out["lambda_max"] - 1.0) <= out["lambda_max_residual"] + 1e-12
    # every Ritz interval holds an eigenvalue
    for th, r in zip(out["ritz"], out["residuals"]):
        assert np.abs(lam - th).min() <= r + 1e-10


def test_near_zero_count_equals_the_dense_count_of_a_learned_prior_hessian():
    """The gradient-step prior's Hessian of q at a 16x16 camera crop (d = 256): Lanczos counts at
    1e-3 and 1e-2 lambda_max equal those of the dense spectrum from d products, from fewer products."""
    gs = P.make_prior("gs", (16, 16), P.PriorSettings(dtype=torch.float64))
    x = torch.as_tensor(data.center_crop(data.load("camera"), 16), dtype=torch.float64)
    op = Hs.prior_operator(gs, x)
    dense = Eg.spectrum(op, k=256, method="dense")["eigenvalues"]
    top = np.abs(dense).max()
    out = Eg.near_zero_count(op, [1e-3, 1e-2])
    assert list(out["counts"]) == [int((np.abs(dense) <= t * top).sum()) for t in (1e-3, 1e-2)]
    assert out["products"] < 256 and abs(out["lambda_max"] - top) <= 1e-6 * top


def test_near_zero_count_on_an_invariant_subspace_and_bad_input(rng):
    """A spectrum of three distinct values repeated (the Krylov space breaks down after three products):
    Lanczos restarts from fresh directions and the count includes every copy. A cap too small to decide
    raises NotConverged with what it reached; bad thresholds and caps name the argument."""
    lam = np.repeat([0.0, 0.5, 1.0], [3, 30, 7])
    out = Eg.near_zero_count(_planted(rng, lam), [1e-3])
    assert out["counts"][0] == 3
    op = _planted(rng, np.concatenate([[1e-4, 1.1e-3], np.linspace(2e-3, 1, 298)]))
    with pytest.raises(Eg.NotConverged, match="counts not decided after 20 products") as exc:
        Eg.near_zero_count(op, [1e-3], maxiter=20)
    assert exc.value.products == 20 and exc.value.eigenvalues.size == 20
    for bad in (0.0, 1.5, []):
        with pytest.raises(InputError, match="thresholds"):
            Eg.near_zero_count(op, bad)
    with pytest.raises(InputError, match="maxiter"):
        Eg.near_zero_count(op, [1e-3], maxiter=1)


@pytest.fixture
def patch_post(rng):
    """A blurred 10x10 camera crop under an EPLL-style prior: a random 3-component GMM on 4x4 patches."""
    img = data.center_crop(data.load("camera"), 10)
    prob = ls.BlindDeblur.synthetic(img, K.Gaussian(5), 1.0, 0.02, rng=0, dtype=torch.float64)
    return ls.Posterior(prob, P.PatchGMMPrior(_gmm(rng)))


def test_assembled_joint_hessian_equals_the_hessian_vector_products(patch_post):
    """joint_hessian_matrix (the data term by batched forward-over-reverse products, the patch prior's
    closed-form blocks summed into their pixels) against d double-backward products through E."""
    post = patch_post
    x = post.problem.y
    M = Hs.joint_hessian_matrix(post, [[1.2]], x)
    ref = Eg.dense_matrix(Hs.joint_hvp(post, [[1.2]], x))
    np.testing.assert_allclose(M, ref, rtol=1e-8, atol=1e-10 * np.abs(ref).max())
    # the certificate then decomposes the matrix itself: no product
    c = Cf.certificate(post, [[1.2]], x, k=2)
    assert c["method"] == "assembled" and c["products"] == 0
    np.testing.assert_allclose(c["eigenvalues"], np.linalg.eigvalsh(ref)[:2], rtol=1e-8)
    with pytest.raises(InputError, match="prior"):
        Hs.joint_hessian_matrix(ls.Posterior(post.problem, P.make_prior("gs", (10, 10))), [[1.2]], x)


def test_newton_refine_reaches_the_stationary_point_a_tight_first_order_polish_reaches(patch_post):
    """At the Dirac (theta = 0, where the Gaussian family is flat in theta: Newton in x alone), from a
    loosely polished point (gtol 1e-1), Newton steps with the assembled Hessian bring the gradient below
    1e-9, to the point a first-order polish reaches at gtol 1e-10 (to 1e-8), with the same energy; the
    certificate there is decided: a certified (flat) minimiser."""
    post = patch_post
    loose = Cf.polish(post, [[0.0]], post.problem.y, gtol=1e-1)
    ref = Cf.polish(post, [[0.0]], post.problem.y, gtol=1e-10, max_iter=20000)
    assert loose["grad_norm"] > 1e-3
    r = Cf.newton_refine(post, loose["theta"][None], loose["x"], gtol=1e-9)
    assert r["grad_norm"] <= 1e-9 and 1 <= r["steps"] <= 3 and r["theta"][0] == 0.0
    assert abs(r["energy"] - ref["energy"]) <= 1e-8 * abs(ref["energy"])
    np.testing.assert_allclose(r["x"].numpy(), ref["x"].numpy(), atol=1e-8)
    c = Cf.certificate(post, r["theta"][None], r["x"], gtol=1e-6)
    assert c["verdict"] == "certified local minimiser" and c["flat_in_theta"]


@pytest.mark.parametrize("name", ["gs", "tweedie"])
def test_batched_products_equal_one_at_a_time(name):
    """A batch of v through prior_hvp (B copies of x in one call) gives the products of single calls,
    for an explicit potential (double backward) and a Tweedie score (batched JVP and VJP)."""
    prior = P.make_prior(name, (16, 16), P.PriorSettings(dtype=torch.float64))
    x = torch.as_tensor(data.center_crop(data.load("ascent"), 16), dtype=torch.float64)
    V = torch.randn(5, 16, 16, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    hv = Hs.prior_hvp(prior, x)
    one = torch.stack([hv(v) for v in V])
    np.testing.assert_allclose(hv(V).numpy(), one.numpy(), rtol=1e-9, atol=1e-9 * float(one.abs().max()))
