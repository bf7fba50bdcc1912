"""Learned-prior evaluators checked against exact answers (GMM closed forms, linear maps)."""

import numpy as np
import pytest
import torch

from landscape import priors as P
from landscape.denoisers import GSDenoiser


@pytest.fixture(scope="module")
def gmm():
    data = torch.as_tensor(np.random.default_rng(0).random((4000, 4, 4)) ** 2)   # skewed, correlated below
    data = data + 0.5 * torch.roll(data, 1, -1)
    fit = P.GMMPrior.fit(data, (4, 4), 4, n_iter=40, reg=1e-4, progress=False)
    return fit


def _terminal(g):
    return dict(mean=float(g.means.mean()), data_var=float(g.covariances.diagonal(dim1=1, dim2=2).mean()))


def test_pf_ode_log_density_matches_exact_gmm(gmm):
    x = gmm.sample(6, rng=1)
    dp = P.DiffusionPrior(gmm.denoise, steps=16, divergence="exact", **_terminal(gmm))
    lp, se = dp.log_density(x)
    exact = gmm.log_density(x, dp.s_min)
    assert float(((lp - exact).abs() / 16).max()) < 0.01
    assert torch.equal(se, torch.zeros_like(se))


def test_hutchinson_standard_error_and_common_random_numbers(gmm):
    x0 = gmm.sample(1, rng=2)
    x = torch.cat([x0, x0 + 0.01 * torch.randn(x0.shape, generator=torch.Generator().manual_seed(0), dtype=x0.dtype)])
    dp = P.DiffusionPrior(gmm.denoise, steps=16, divergence="hutchinson", probes=8, **_terminal(gmm))
    exact = gmm.log_density(x, dp.s_min)
    lp, se = dp.log_density(x, rng=0)
    assert (se > 0).all()
    assert float(((lp - exact).abs() - 4 * se).max()) < 0.01 * 16        # within 4 SE + quadrature
    # spread of the *difference* over repeated runs: shared probes vs independent probes
    diffs = {True: [], False: []}
    for crn in (True, False):
        for seed in range(6):
            lp, _ = dp.log_density(x, rng=seed, common_probes=crn)
            diffs[crn].append(float(lp[1] - lp[0]))
    assert np.std(diffs[True]) < 0.5 * np.std(diffs[False])


def test_tweedie_line_integral_equals_exact_difference(gmm):
    s = 0.05
    tp = P.TweediePrior(gmm.denoise, s, nodes=8)
    x0, x1 = gmm.sample(3, rng=3), gmm.sample(3, rng=4)
    diff, err = tp.energy_difference(x0, x1)
    exact = -(gmm.log_density(x1, s) - gmm.log_density(x0, s))
    assert float((diff - exact).abs().max()) < max(1e-6, 10 * float(err.max()))
    fine, fine_err = tp.energy_difference(x0, x1, nodes=32)      # converges with the node count
    assert float(((fine - exact).abs() / exact.abs()).max()) < 1e-6
    assert float(fine_err.max()) < float(err.max())


def test_divergence_exact_and_hutchinson_on_a_linear_map():
    g = torch.Generator().manual_seed(0)
    M = torch.randn(9, 9, generator=g, dtype=torch.float64)
    fn = lambda z: (z.reshape(-1, 9) @ M.T).reshape(z.shape)
    x = torch.randn(2, 3, 3, generator=g, dtype=torch.float64)
    _, tr, _ = P.divergence(fn, x)
    torch.testing.assert_close(tr, torch.full((2,), float(torch.trace(M)), dtype=torch.float64))
    probes = (torch.randint(0, 2, (4000, 2, 3, 3), generator=g) * 2 - 1).to(torch.float64)
    _, est, se = P.divergence(fn, x, probes=probes)
    assert float(((est - torch.trace(M)).abs() / se).max()) < 4


def test_jacobian_asymmetry():
    g = torch.Generator().manual_seed(1)
    M = torch.randn(16, 16, generator=g, dtype=torch.float64)
    lin = lambda z, s: (z.reshape(-1, 16) @ M.T).reshape(z.shape)
    x = torch.zeros(1, 4, 4, dtype=torch.float64)
    truth = float(torch.linalg.norm(M - M.T) / torch.linalg.norm(M))
    est, se = P.jacobian_asymmetry(lin, x, 0.1, probes=200)
    assert abs(est - truth) < 4 * se + 0.02
    sym = lambda z, s: (z.reshape(-1, 16) @ (M + M.T).T).reshape(z.shape)
    assert P.jacobian_asymmetry(sym, x, 0.1)[0] < 1e-12


def test_exact_gmm_denoiser_is_conservative(gmm):
    x = gmm.sample(1, rng=5)
    assert P.jacobian_asymmetry(gmm.denoise, x, 0.1, probes=4)[0] < 1e-10


def test_gradient_step_identity_and_prior():
    torch.manual_seed(0)
    model = GSDenoiser(channels=4, emb=8).double().eval()
    for p in model.N.net.parameters():                       # make the potential non-trivial
        p.data.normal_(0, 0.1)
    x = torch.rand(2, 8, 8, dtype=torch.float64, requires_grad=True)
    s = 0.1
    assert torch.autograd.gradcheck(lambda z: model.potential(z, s), (x,), eps=1e-6, atol=1e-6)
    g = model.potential(x, s)
    (grad,) = torch.autograd.grad(g.sum(), x)
    torch.testing.assert_close(model(x.detach(), s), x.detach() - grad)
    # the prior's gradient is the gradient of its energy (central differences) and its denoiser is
    # x - s^2 grad q (the gradient-step identity seen through the Prior protocol)
    prior = P.GradientStepPrior(model, s)
    xd = x.detach()
    v = torch.randn(xd.shape, generator=torch.Generator().manual_seed(1), dtype=xd.dtype)
    eps = 1e-6
    fd = (prior.energy(xd + eps * v) - prior.energy(xd - eps * v)) / (2 * eps)
    torch.testing.assert_close((prior.grad(xd) * v).flatten(1).sum(1), fd, rtol=1e-6, atol=1e-6)
    torch.testing.assert_close(prior.denoise(xd, s), xd - s ** 2 * prior.grad(xd), rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize("color", [False, True], ids=["gray", "colour"])
def test_a_batch_split_to_the_pixel_budget_gives_the_unsplit_answers(color, monkeypatch):
    """``nets.PIXELS_PER_CALL``: a batch larger than the budget goes through the network in several calls
    (the denoiser without gradients, the gradient-step potential and its gradient without an outer graph);
    the answers equal one call's, per-image noise levels included, and a graph is never split."""
    from landscape.denoisers import nets
    C = 3 if color else 1
    torch.manual_seed(0)
    edm, gs = nets.EDMDenoiser(4, 8, C).double().eval(), nets.GSDenoiser(4, 8, C).double().eval()
    x = torch.rand(5, *((3,) if color else ()), 16, 16, dtype=torch.float64)
    s = torch.tensor([0.02, 0.05, 0.1, 0.2, 0.4], dtype=torch.float64)
    with torch.no_grad():
        whole = edm(x, s)
    g_whole, d_whole = gs.potential_and_grad(x, s)
    calls = []
    monkeypatch.setattr(nets, "PIXELS_PER_CALL", 2 * C * 16 * 16)          # two images per call
    monkeypatch.setattr(edm, "_denoise", lambda z, sig, f=edm._denoise: calls.append(len(z)) or f(z, sig))
    with torch.no_grad():
        split = edm(x, s)
    assert calls == [2, 2, 1]
    torch.testing.assert_close(split, whole, rtol=0, atol=1e-12)
    gs_calls = []
    monkeypatch.setattr(gs.N, "_denoise", lambda z, sig, f=gs.N._denoise: gs_calls.append(len(z)) or f(z, sig))
    g, d = gs.potential_and_grad(x, s)
    assert gs_calls == [2, 2, 1]
    torch.testing.assert_close(g, g_whole, rtol=0, atol=1e-12)
    torch.testing.assert_close(d, d_whole, rtol=0, atol=1e-12)
    calls.clear()
    edm(x.requires_grad_(True), s)                                           # a graph: one call
    assert calls == [5]
