import numpy as np
import pytest
import torch

from landscape import kernels as K
from landscape._checks import InputError

FAMILIES = [K.Gaussian(11), K.Gaussian(11, aniso=True), K.Defocus(11), K.Airy(11), K.Motion(11),
            K.Zernike(11), K.Zernike(11, noll=(4, 7, 11))]
# interior parameter points away from kinks, for gradcheck and shape checks
POINTS = {
    "gaussian": [[1.3], [0.4]],
    "gaussian-aniso": [[1.5, 0.8, 30.0]],
    "defocus": [[2.3]],
    "airy": [[2.1]],
    "motion": [[4.3, 25.0]],
    "zernike": [[0.3, -0.2, 0.1]],
}


def _key(f):
    return "gaussian-aniso" if getattr(f, "aniso", False) else f.name


@pytest.mark.parametrize("fam", FAMILIES, ids=lambda f: repr(f) + _key(f))
def test_theta_zero_is_exact_dirac(fam):
    h = fam(torch.zeros(1, fam.n_params, dtype=torch.float64))
    assert torch.equal(h[0], K.dirac(fam.size, dtype=torch.float64))


@pytest.mark.parametrize("fam", FAMILIES, ids=lambda f: repr(f) + _key(f))
def test_kernels_nonnegative_normalised_centred(fam):
    pts = POINTS.get(_key(fam), [[0.3, -0.2, 0.1]])
    th = torch.tensor(pts, dtype=torch.float64)
    h = fam(th)
    assert h.shape == (len(pts), fam.size, fam.size) and fam.size % 2 == 1
    assert (h >= 0).all()
    torch.testing.assert_close(h.sum(dim=(1, 2)), torch.ones(len(pts), dtype=torch.float64), rtol=0, atol=1e-12)
    if fam.name in ("gaussian", "defocus", "airy", "motion"):
        r = torch.arange(fam.size, dtype=torch.float64) - fam.size // 2
        torch.testing.assert_close((h.sum(2) * r).sum(1), torch.zeros(len(pts), dtype=torch.float64), atol=1e-12, rtol=0)
        torch.testing.assert_close((h.sum(1) * r).sum(1), torch.zeros(len(pts), dtype=torch.float64), atol=1e-12, rtol=0)


@pytest.mark.parametrize("fam", FAMILIES, ids=lambda f: repr(f) + _key(f))
def test_gradcheck(fam):
    pts = POINTS.get(_key(fam), [[0.3, -0.2, 0.1]])
    th = torch.tensor(pts, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(fam, (th,), eps=1e-6, atol=1e-7)


def test_batched_equals_loop():
    fam = K.Motion(15)
    th = torch.tensor([[0.0, 0.0], [3.0, 10.0], [7.5, 100.0], [12.0, 170.0]], dtype=torch.float64)
    batch = fam(th)
    for i in range(len(th)):
        torch.testing.assert_close(batch[i], fam(th[i:i + 1])[0], rtol=0, atol=0)


def test_gaussian_matches_continuous_width():
    """The pixel-integrated Gaussian has variance w^2 + 1/12 per axis (Sheppard's correction, exact up to
    terms in exp(-2 pi^2 w^2); truncation at 8 widths is negligible)."""
    fam = K.Gaussian(51)
    for w in (1.0, 2.0, 3.0):
        h = fam(torch.tensor([[w]], dtype=torch.float64))[0]
        r = torch.arange(51, dtype=torch.float64) - 25
        var = float((h.sum(1) * r ** 2).sum())
        assert abs(var - (w ** 2 + 1 / 12)) < 1e-6


def test_motion_length_and_angle():
    h = K.Motion(15)(torch.tensor([[6.0, 0.0]], dtype=torch.float64))[0]
    assert torch.all(h[7, 4:11] > 0) and h[6].sum() == 0 and h[8].sum() == 0   # horizontal segment
    hv = K.Motion(15)(torch.tensor([[6.0, 90.0]], dtype=torch.float64))[0]
    torch.testing.assert_close(hv, h.T, atol=1e-12, rtol=0)


def test_airy_first_zero():
    fam = K.Airy(31)
    h = fam(torch.tensor([[5.0]], dtype=torch.float64))[0]
    assert float(h[15, 20]) < 1e-6 * float(h[15, 15])      # first dark ring at radius 5


def test_zernike_defocus_is_symmetric():
    h = K.Zernike(15, noll=(4,))(torch.tensor([[0.5]], dtype=torch.float64))[0]
    torch.testing.assert_close(h, h.flip(0), atol=1e-12, rtol=0)
    torch.testing.assert_close(h, h.T, atol=1e-12, rtol=0)


def test_project_simplex_is_the_euclidean_projection(rng):
    v = torch.as_tensor(rng.normal(size=(50, 9)), dtype=torch.float64)
    p = K.project_simplex(v)
    assert (p >= 0).all()
    torch.testing.assert_close(p.sum(1), torch.ones(50, dtype=torch.float64))
    # variational inequality <v - p, q - p> <= 0 for every q in the simplex (vertices suffice)
    for e in torch.eye(9, dtype=torch.float64):
        assert (((v - p) * (e - p)).sum(1) <= 1e-12).all()


def test_free_family():
    fam = K.Free(5)
    assert torch.equal(fam(torch.zeros(1, 25, dtype=torch.float64))[0], K.dirac(5, dtype=torch.float64))
    h = torch.rand(5, 5, dtype=torch.float64)
    h /= h.sum()
    th = fam.theta_of(h.numpy()).to(torch.float64)
    torch.testing.assert_close(fam(th)[0], h)
    projected = fam(fam.project(torch.randn(3, 25, dtype=torch.float64)))
    assert (projected >= 0).all()
    torch.testing.assert_close(projected.sum(dim=(1, 2)), torch.ones(3, dtype=torch.float64))


def test_path_family_and_load(tmp_path):
    h = np.zeros((4, 6))
    h[1, 2:5] = [0.25, 0.5, 0.25]
    np.save(tmp_path / "k.npy", h)
    np.savetxt(tmp_path / "k.txt", h)
    for f in ("k.npy", "k.txt"):
        k = K.load(tmp_path / f)
        assert k.shape[0] == k.shape[1] and k.shape[0] % 2 == 1
        assert abs(k.sum() - 1) < 1e-12 and k[k.shape[0] // 2, k.shape[1] // 2] == 0.5
    fam = K.Path(K.load(tmp_path / "k.npy"))
    assert torch.equal(fam(torch.zeros(1, 1, dtype=torch.float64))[0], K.dirac(fam.size, dtype=torch.float64))
    torch.testing.assert_close(fam(torch.ones(1, 1, dtype=torch.float64))[0], fam.target)


def test_bad_inputs(tmp_path):
    with pytest.raises(InputError, match="size"):
        K.Gaussian(10)
    with pytest.raises(InputError, match="family"):
        K.get("boxcar")
    with pytest.raises(InputError, match="theta"):
        K.Gaussian(15).check([-1.0])
    with pytest.raises(InputError, match="theta"):
        K.Motion(15).check([[3.0, 10.0, 1.0]])
    np.save(tmp_path / "bad.npy", np.ones((3, 3)))
    with pytest.raises(InputError, match="sum"):
        K.load(tmp_path / "bad.npy")
    np.save(tmp_path / "neg.npy", np.array([[-0.5, 1.5, 0.0]]))
    with pytest.raises(InputError, match="non-negative"):
        K.load(tmp_path / "neg.npy")


def test_camera_shake_is_a_centred_seeded_kernel():
    h = K.camera_shake(15, rng=3)
    assert h.shape == (15, 15) and (h >= 0).all()
    np.testing.assert_allclose(h.sum(), 1.0, atol=1e-12)
    rows, cols = np.indices(h.shape)
    assert abs((rows * h).sum() - 7) <= 0.5 and abs((cols * h).sum() - 7) <= 0.5
    np.testing.assert_array_equal(h, K.camera_shake(15, rng=3))
    assert not np.array_equal(h, K.camera_shake(15, rng=4))
    assert 5 < (h > 1e-3).sum() < 15 * 15 // 2          # a thin trajectory, not a blob
    fam = K.Free(15)
    np.testing.assert_allclose(fam(fam.theta_of(h))[0].numpy(), h, atol=1e-7)
    with pytest.raises(InputError, match="size"):
        K.camera_shake(14)
    with pytest.raises(InputError, match="spread"):
        K.camera_shake(15, spread=0)


def _xy(size):
    """Cartesian pixel coordinates of a kernel: x to the right (columns), y *up* (against rows)."""
    r = np.arange(size) - size // 2
    rows, cols = np.meshgrid(r, r, indexing="ij")
    return cols.astype(float), -rows.astype(float)


@pytest.mark.parametrize("angle", [30.0, 45.0, 120.0])
def test_anisotropic_gaussian_angle_is_counterclockwise_from_the_column_axis(angle):
    """Against a Gaussian drawn independently in Cartesian coordinates (y up, angle counter-clockwise
    from +x): the long axis w1 points at `angle` on screen (rows grow downward)."""
    w1, w2 = 3.0, 1.0
    x, y = _xy(21)
    a = np.deg2rad(angle)
    u = x * np.cos(a) + y * np.sin(a)
    v = -x * np.sin(a) + y * np.cos(a)
    ref = np.exp(-0.5 * ((u / w1) ** 2 + (v / w2) ** 2))
    ref /= ref.sum()
    h = K.Gaussian(21, aniso=True)(torch.tensor([[w1, w2, angle]], dtype=torch.float64))[0].numpy()
    np.testing.assert_allclose(h, ref, rtol=0, atol=1e-12)


@pytest.mark.parametrize("angle", [30.0, 45.0])
def test_motion_angle_is_counterclockwise_from_the_column_axis(angle):
    """The segment's principal axis (second moments in Cartesian coordinates, y up) points at `angle`,
    and at 45 degrees the mass lies on the anti-diagonal of the array (up and to the right)."""
    h = K.Motion(31)(torch.tensor([[16.0, angle]], dtype=torch.float64))[0].numpy()
    x, y = _xy(31)
    cov = np.cov(np.stack([x.ravel(), y.ravel()]), aweights=h.ravel())
    evals, evecs = np.linalg.eigh(cov)
    vx, vy = evecs[:, -1]
    got = np.rad2deg(np.arctan2(vy, vx)) % 180
    assert abs(got - angle) < 0.5, got
    if angle == 45.0:
        c = 15
        assert all(h[c - k, c + k] > 0.5 * h[c, c] for k in range(1, 5))       # up-right and down-left
        assert all(h[c + k, c + k] == 0 for k in range(2, 8))                 # not the main diagonal


def test_parameter_error_is_box_scaled_and_the_motion_angle_periodic_and_weighted_by_the_true_length():
    """``parameter_error``: zero at the truth; a Gaussian width off by a tenth of its box costs 0.01; a motion
    segment turned by 180 degrees (the same kernel) costs nothing, turned by 90 degrees costs L*/L_max (the largest
    angle error, weighted by the true length: nothing for the Dirac); the box defaults to the family's bounds."""
    motion = K.get("motion", 15)
    th = torch.tensor([[6.5, 40.0], [0.0, 10.0]], dtype=torch.float64)
    box = ([0.0, 0.0], [13.0, 180.0])
    assert motion.parameter_error(th, th, *box).tolist() == [0.0, 0.0]
    turned = th + torch.tensor([0.0, 180.0], dtype=torch.float64)
    torch.testing.assert_close(motion(turned), motion(th))
    assert float(motion.parameter_error(turned, th, *box).max()) < 1e-28
    off = torch.tensor([[6.5, 130.0], [0.0, 100.0]], dtype=torch.float64)
    torch.testing.assert_close(motion.parameter_error(off, th, *box), torch.tensor([6.5 / 13, 0.0], dtype=torch.float64),
                               rtol=1e-12, atol=1e-15)
    torch.testing.assert_close(motion.parameter_error(off, th), torch.tensor([6.5 / 14, 0.0], dtype=torch.float64),
                               rtol=1e-12, atol=1e-15)
    w = torch.tensor([[1.5]], dtype=torch.float64)
    gauss = K.get("gaussian", 15)
    assert float(gauss.parameter_error(w + 0.3, w, [0.0], [3.0])) == pytest.approx(0.01, rel=1e-12)
