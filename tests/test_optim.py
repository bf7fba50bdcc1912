import pytest
import torch

from landscape.optim import lbfgs


def _quadratic(a, b):
    """f_b(x) = sum(a x^2 / 2 - b x) per item: minimiser b / a, f* = -sum(b^2 / (2 a))."""
    def fg(x, idx):
        ai, bi = (a, b) if idx is None else (a[idx], b[idx])
        return (0.5 * ai * x ** 2 - bi * x).sum(1), ai * x - bi
    return fg, -(b ** 2 / (2 * a)).sum(1)


@pytest.fixture
def quad():
    g = torch.Generator().manual_seed(0)
    a = torch.logspace(0, 2, 50, dtype=torch.float64).expand(3, 50)
    b = torch.randn(3, 50, generator=g, dtype=torch.float64)
    x0 = b / a + 0.05 * torch.randn(3, 50, generator=g, dtype=torch.float64)
    return a, b, x0


def test_etol_is_the_newton_decrement(quad):
    """With M the exact inverse Hessian, g^T M g / 2 = f - f*: an item whose gap is below etol
    stops before its first step, one above it does not; without M, the stop still bounds the gap
    (here by etol / min(a) = etol)."""
    a, b, x0 = quad
    fg, fstar = _quadratic(a, b)
    gap = fg(x0, None)[0] - fstar
    exact = lambda v, idx: v / a[idx]
    etol = float(gap[1])
    x, info = lbfgs(fg, x0, etol=etol, precond=exact, ftol=0, gtol=0)
    assert info.n_iter.tolist() == [int(gap[0] > etol), 0, int(gap[2] > etol)]
    x, info = lbfgs(fg, x0, etol=1e-6, ftol=0, gtol=0)
    assert info.converged.all()
    assert float((fg(x, None)[0] - fstar).max()) <= 1e-6
    _, tight = lbfgs(fg, x0, etol=1e-12, ftol=0, gtol=0)
    assert (info.n_iter < tight.n_iter).all()


def test_blocks_of_items_give_each_item_the_one_batch_iterates(quad):
    """``block``: the items run in blocks one after the other; each item's answer, iteration count and
    energy equal the one-batch solve's (the items are independent; no FFT here, so bit for bit), and ``fg``
    and ``precond`` see indices into the whole batch."""
    a, b, x0 = quad
    a, b, x0 = (torch.cat([t, 1.5 * t]) for t in (a, b, x0))           # 6 items, different problems
    fg, fstar = _quadratic(a, b)
    seen = []
    M = lambda v, idx: seen.append(idx.tolist()) or v / (2 * a[idx])      # a (scaled) inverse Hessian
    whole, info = lbfgs(fg, x0, precond=M, ftol=0, gtol=1e-10)
    assert seen[0] == list(range(6))
    seen.clear()
    blocks, binfo = lbfgs(fg, x0, precond=M, ftol=0, gtol=1e-10, block=4)
    assert seen[0] == [0, 1, 2, 3] and [4, 5] in seen and all(max(i) < 6 for i in seen)
    assert torch.equal(blocks, whole) and torch.equal(binfo.n_iter, info.n_iter)
    assert torch.equal(binfo.f, info.f) and torch.equal(binfo.converged, info.converged)
    assert binfo.n_item_evals == info.n_item_evals
    torch.testing.assert_close(binfo.f, fstar, rtol=1e-12, atol=1e-12)
