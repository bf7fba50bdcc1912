"""Package data: the shipped weights and measured kernels are inside a built wheel, and the package
works installed from it, outside the repository."""

import os
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import pytest

from landscape import kernels, resources
from landscape._checks import InputError

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def wheel(tmp_path_factory):
    """A wheel of this checkout, built offline (no build isolation: setuptools is installed)."""
    out = tmp_path_factory.mktemp("wheel")
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q",
                    "-w", str(out), str(ROOT)], check=True, capture_output=True)
    (whl,) = out.glob("landscape-*.whl")
    return whl


def test_the_wheel_holds_every_shipped_weights_file_and_measured_kernel(wheel):
    names = set(zipfile.ZipFile(wheel).namelist())
    weights = resources.shipped_weights()
    assert len(weights) >= 7                      # 3 priors + 4 unrolled models
    for p in weights:
        assert f"landscape/denoisers/weights/{p.name}" in names, p.name
    for n in resources.MEASURED_KERNELS:
        path = resources.measured_kernel_path(n)
        assert f"landscape/measured_kernels/levin09/{path.name}" in names, n
    assert "landscape/measured_kernels/levin09/README.md" in names          # the attribution
    # every module of the checkout, the study packages' pages, reports and verdicts included
    root = Path(__file__).parent.parent
    for py in (root / "landscape").rglob("*.py"):
        assert py.relative_to(root).as_posix() in names, py


def test_a_quick_study_runs_from_the_installed_wheel_outside_the_repository(wheel, tmp_path):
    """A fresh virtual environment with the wheel installed (its dependencies seen through this
    environment's site-packages, so nothing is downloaded), run from a folder outside the checkout:
    the learned prior's and the unrolled model's weights load from the installed package and the
    study writes its file (10 s here)."""
    import site
    env_dir = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(env_dir)], check=True)
    py = env_dir / "bin" / "python"
    purelib = subprocess.run([py, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                             check=True, capture_output=True, text=True).stdout.strip()
    deps = [p for p in site.getsitepackages() if Path(p).is_dir()]
    (Path(purelib) / "deps.pth").write_text("\n".join(deps) + "\n")
    subprocess.run([sys.executable, "-m", "pip", "install", "--no-deps", "--no-index", "-q", "--target", purelib,
                    str(wheel)], check=True, capture_output=True)
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH",)}
    where = subprocess.run([py, "-c", "import landscape; print(landscape.__file__)"], cwd=tmp_path, env=env,
                           check=True, capture_output=True, text=True).stdout
    assert where.startswith(purelib), where
    run = subprocess.run([py, "-m", "landscape.cli", "run", "map-vs-mmse", "--quick", "--no-progress",
                          "--out", "out.nc"], cwd=tmp_path, env=env, capture_output=True, text=True)
    assert run.returncode == 0, run.stderr[-2000:]
    assert (tmp_path / "out.nc").is_file() and "wrote out.nc" in run.stdout


@pytest.mark.parametrize("name", sorted(resources.MEASURED_KERNELS))
def test_measured_kernels_load_by_name(name):
    """Levin et al.'s kernels: sum 1, non-negative, every non-zero of the file kept, centre of mass on the
    centre pixel (within half a pixel), and no larger than the non-zero block's extent needs once centred."""
    h = kernels.load(name)
    raw = np.loadtxt(resources.measured_kernel_path(name))
    assert abs(h.sum() - 1) < 1e-12 and h.min() >= 0
    assert np.array_equal(np.sort(h[h > 0]), np.sort(raw[raw > 0]))
    rows, cols = np.indices(h.shape)
    c = h.shape[0] // 2
    assert abs((rows * h).sum() - c) <= 0.5 and abs((cols * h).sum() - c) <= 0.5
    nz = np.argwhere(raw > 0)
    assert h.shape[0] <= 2 * (nz.max(0) - nz.min(0)).max() + 1


def test_an_off_centre_kernel_with_zero_margins_keeps_its_support(tmp_path):
    """A 15x15 file whose mass sits in one corner: the zero margins are trimmed before centring, so the
    loaded kernel is the 5x5 block, not a 21x21 padding of the file."""
    raw = np.zeros((15, 15))
    raw[1:6, 1:6] = 1 / 25
    np.save(tmp_path / "corner.npy", raw)
    h = kernels.load(tmp_path / "corner.npy")
    assert h.shape == (5, 5) and np.allclose(h, 1 / 25)


def test_the_dirac_is_refused_as_a_kernel_file(tmp_path):
    for arr in (np.ones((1, 1)), np.pad(np.ones((1, 1)), 2)):
        f = tmp_path / "dirac.npy"
        np.save(f, arr)
        with pytest.raises(InputError, match="kernel_file: .*Dirac"):
            kernels.load(f)
