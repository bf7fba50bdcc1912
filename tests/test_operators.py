import numpy as np
import pytest
import scipy.ndimage as ndi
import scipy.signal as sig
import torch

from landscape import kernels as K
from landscape._checks import InputError
from landscape.operators import Blur, otf


def _kernels():
    th = torch.tensor([[0.0, 0.0], [5.0, 30.0], [9.0, 120.0]], dtype=torch.float64)
    return K.Motion(11)(th)


@pytest.mark.parametrize("boundary", ["circular", "valid"])
def test_adjoint_identity(boundary, rng):
    h = _kernels()
    op = Blur(h, (37, 29), boundary=boundary)
    x = torch.as_tensor(rng.normal(size=(3, 37, 29)))
    y = torch.as_tensor(rng.normal(size=(3, *op.output_shape)))
    lhs = (op(x) * y).sum(dim=(-2, -1))
    rhs = (x * op.adjoint(y)).sum(dim=(-2, -1))
    assert torch.allclose(lhs, rhs, rtol=0, atol=1e-10 * float(lhs.abs().max()))
    assert float((lhs - rhs).abs().max()) < 1e-10


def test_matches_scipy_wrap_and_valid(rng):
    h = _kernels()
    x = rng.random((40, 33))
    xt = torch.as_tensor(x)
    circ = Blur(h, x.shape)(xt).numpy()
    valid = Blur(h, x.shape, boundary="valid")(xt).numpy()
    for i in range(3):
        hi = h[i].numpy()
        assert np.abs(circ[i] - ndi.convolve(x, hi, mode="wrap")).max() < 1e-12
        assert np.abs(valid[i] - sig.convolve2d(x, hi, mode="valid")).max() < 1e-12


def test_chunks_and_broadcasting(rng):
    th = torch.linspace(0, 3, 37, dtype=torch.float64)
    h = K.Gaussian(9)(th)
    x = torch.as_tensor(rng.random((24, 24)))
    full = Blur(h, (24, 24), chunk=None)(x)
    chunked = Blur(h, (24, 24), chunk=5)(x)
    torch.testing.assert_close(chunked, full, rtol=0, atol=1e-14)
    xs = torch.as_tensor(rng.random((37, 24, 24)))
    torch.testing.assert_close(Blur(h, (24, 24), chunk=4)(xs), Blur(h, (24, 24), chunk=None)(xs), rtol=0, atol=1e-14)
    torch.testing.assert_close(Blur(h, (24, 24), chunk=4).adjoint(xs),
                               Blur(h, (24, 24), chunk=None).adjoint(xs), rtol=0, atol=1e-14)


def test_dense_matrix_and_gram_spectrum(rng):
    h = K.Gaussian(5)(torch.tensor([[1.0]], dtype=torch.float64))[0]
    op = Blur(h, (6, 7))
    A = op.matrix()
    # column j of the matrix is the wrap-around convolution of the j-th basis image (scipy, independent)
    hn = h.numpy()
    ref = np.stack([ndi.convolve(np.eye(42)[j].reshape(6, 7), hn, mode="wrap").reshape(-1)
                    for j in range(42)], axis=1)
    np.testing.assert_allclose(A.numpy(), ref, rtol=0, atol=1e-14)
    ev = torch.linalg.eigvalsh(A.T @ A)
    full = torch.fft.fft2(torch.fft.irfft2(op.otf, s=(6, 7)))       # OTF on the full grid
    torch.testing.assert_close(ev.sort().values, (full.abs() ** 2).reshape(-1).sort().values, atol=1e-12, rtol=0)
    torch.testing.assert_close(op.gram_spectrum(), (full.abs() ** 2)[:, :4], atol=1e-12, rtol=0)


def test_otf_of_dirac_is_one():
    o = otf(K.dirac(5, dtype=torch.float64), (8, 8))
    torch.testing.assert_close(o, torch.ones_like(o))


def test_bad_shapes():
    h = K.dirac(5, dtype=torch.float64)
    with pytest.raises(InputError, match="boundary"):
        Blur(h, (8, 8), boundary="reflect")
    with pytest.raises(InputError, match="x"):
        Blur(h, (8, 8))(torch.zeros(9, 9, dtype=torch.float64))
    with pytest.raises(InputError, match="kernel"):
        Blur(torch.ones(4, 4), (8, 8))


@pytest.mark.parametrize("boundary", ["circular", "valid"])
@pytest.mark.parametrize("per_channel", [False, True])
def test_colour_blur_is_the_gray_operator_on_every_channel(boundary, per_channel, rng):
    """A colour operator on (B, 3, H, W) equals the gray operator applied channel by channel (one shared
    kernel, or each channel's own), forward and adjoint; and it passes the adjoint identity."""
    fam = K.Gaussian(7)
    th = torch.tensor([[0.8], [1.6], [2.4]], dtype=torch.float64)
    h = fam(th)                                                       # (3, 7, 7): kernels of the batch
    kern = torch.stack([h, h.flip(0), h.roll(1, 0)], 1) if per_channel else h    # (3, 3, 7, 7) or (3, 7, 7)
    col = Blur(kern, (24, 20), boundary=boundary, channels=3, per_channel=per_channel)
    x = torch.as_tensor(rng.standard_normal((3, 3, 24, 20)))
    y = torch.as_tensor(rng.standard_normal((3, 3, *col.output_shape)))
    for c in range(3):
        gray = Blur(kern[:, c] if per_channel else h, (24, 20), boundary=boundary)
        torch.testing.assert_close(col(x)[:, c], gray(x[:, c]), rtol=1e-12, atol=1e-12)
        torch.testing.assert_close(col.adjoint(y)[:, c], gray.adjoint(y[:, c]), rtol=1e-12, atol=1e-12)
    assert abs(float((col(x) * y).sum() - (x * col.adjoint(y)).sum())) < 1e-9
    one = Blur(h[1], (24, 20), boundary=boundary, channels=3)         # one kernel, one colour image
    torch.testing.assert_close(one(x[0]), Blur(h[1], (24, 20), boundary=boundary)(x[0]), rtol=1e-12, atol=1e-12)
    with pytest.raises(InputError, match="x"):
        col(x[:, :2])
    with pytest.raises(InputError, match="kernel"):
        Blur(h[:2], (24, 20), channels=3, per_channel=True)


@pytest.mark.parametrize("boundary", ["circular", "valid"])
@pytest.mark.parametrize("shape,channels", [((24, 20), None), ((23, 19), None), ((16, 18), 3)])
def test_misfit_is_the_squared_residual_and_its_adjoint(boundary, shape, channels, rng):
    """Blur.misfit (two FFTs in Fourier, Parseval on the half-plane) equals ||Hx - y||^2 and H^T(Hx - y)
    computed by the operator and its adjoint, for even and odd widths, gray and colour."""
    h = K.Gaussian(7)(torch.tensor([[0.8], [1.6]], dtype=torch.float64))
    op = Blur(h, shape, boundary=boundary, channels=channels)
    ev = (channels,) if channels else ()
    x = torch.as_tensor(rng.standard_normal((2, *ev, *shape)))
    y = torch.as_tensor(rng.standard_normal((*ev, *op.output_shape)))
    sq, adj = op.misfit(x, y)
    res = op(x) - y
    torch.testing.assert_close(sq, res.flatten(1).pow(2).sum(1), rtol=1e-12, atol=1e-10)
    torch.testing.assert_close(adj, op.adjoint(res), rtol=1e-12, atol=1e-12)
