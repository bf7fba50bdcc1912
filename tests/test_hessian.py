"""Hessians against exact answers: the GMM prior's closed form, a dense autograd Hessian of the joint
energy, Lanczos against the dense spectrum; certificates on a convex problem; bad input."""

import numpy as np
import pytest
import torch

import landscape as ls
from landscape import data, hessian as Hs, kernels as K, marginal, priors as P
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
    np.testing.assert_allclose(Hs.dense_matrix(op), ref, rtol=1e-6, atol=1e-9 * np.abs(ref).max())
    dense = Hs.spectrum(op, k=4, method="dense")
    np.testing.assert_allclose(dense["eigenvalues"], np.linalg.eigvalsh(ref)[:4], rtol=1e-6)
    # a stationary prior's eigenvalues come in pairs: the block method finds both copies,
    # single-vector Lanczos the distinct values
    blk = Hs.spectrum(op, k=4, method="lobpcg")
    np.testing.assert_allclose(blk["eigenvalues"], dense["eigenvalues"], rtol=1e-6)
    lan = Hs.spectrum(op, k=2, method="lanczos")
    np.testing.assert_allclose(lan["eigenvalues"], dense["eigenvalues"][:2], rtol=1e-6)
    for r in (blk, lan):
        assert (r["residuals"] < 1e-6 * np.abs(r["eigenvalues"]).max()).all()


def test_certificates(gauss_post):
    """Inside the domain at (1.1, argmin_x): the joint Hessian has a negative eigenvalue (the profile is
    not minimal in theta there): a saddle, whatever the gradient. At the Dirac (theta = 0) the Gaussian
    family is flat in theta (the pixel-integrated Gaussian is the Dirac for widths below ~0.2): the
    x-Hessian decides, and the Gaussian prior's is positive definite: a certified (flat) minimiser."""
    post = gauss_post
    x1 = marginal.argmin_closed_form(post, [[1.1]])[0]
    c1 = Hs.certificate(post, [[1.1]], x1)
    assert not c1["boundary"] and c1["verdict"] == "saddle" and c1["eigenvalues"][0] < -c1["residuals"][0]
    x0 = marginal.argmin_closed_form(post, [[0.0]])[0]
    c0 = Hs.certificate(post, [[0.0]], x0, gtol=1e-6, k=1)
    assert c0["boundary"] and abs(float(c0["dtheta"][0])) < 1e-6 and c0["flat_in_theta"]
    # the kernel is the Dirac for small widths, so E(theta, x) = E(0, x) there and the x-Hessian decides:
    # its smallest eigenvalue against a dense autograd Hessian of x -> E(0, x)
    f = lambda z: post.energy([[0.0]], z.reshape(x0.shape)[None])[0]
    lam = np.linalg.eigvalsh(torch.autograd.functional.hessian(f, x0.reshape(-1)).numpy())[0]
    assert lam > 0 and abs(c0["eigenvalues"][0] - lam) <= 1e-6 * abs(lam) + c0["residuals"][0]
    assert c0["verdict"] == "certified local minimiser"
    # a width well above a pixel is not flat
    assert not Hs.kernel_flat_at(post.problem.family, torch.tensor([1.0]))


def test_bad_input(gauss_post):
    post = gauss_post
    op = Hs.joint_hvp(post, [[1.0]], post.problem.y)
    with pytest.raises(InputError, match="k"):
        Hs.spectrum(op, k=op.shape[0] + 1)
    bad = post.problem.y.clone()
    bad[0, 0] = float("nan")
    with pytest.raises(InputError, match="energy gradient|x"):
        Hs.certificate(post, [[1.0]], bad)


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
    """LOBPCG stopped after one iteration at a saddle (whose converged certificate is 'saddle', above):
    the spectrum raises NotConverged carrying its Ritz values and residuals; the certificate records
    them and says 'undecided', since an unconverged smallest Ritz value need not be the smallest eigenvalue."""
    post = gauss_post
    x1 = marginal.argmin_closed_form(post, [[1.1]])[0]
    op = Hs.joint_hvp(post, [[1.1]], x1)
    with pytest.raises(Hs.NotConverged, match="eigensolver: expected convergence") as exc:
        Hs.spectrum(op, k=2, method="lobpcg", maxiter=1)
    assert len(exc.value.eigenvalues) >= 2 and np.all(np.isfinite(exc.value.residuals))
    assert exc.value.residuals.max() > 1e-6 * np.abs(exc.value.eigenvalues).max()
    c = Hs.certificate(post, [[1.1]], x1, k=2, method="lobpcg", maxiter=1)
    assert c["verdict"].startswith("undecided (LOBPCG did not converge: residual")
    assert c["eigenvalues"][0] == exc.value.eigenvalues.min() and c["products"] == exc.value.products
    assert Hs.certificate(post, [[1.1]], x1, method="lobpcg")["verdict"] == "saddle"
