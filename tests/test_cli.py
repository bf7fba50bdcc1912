import subprocess
import sys

import numpy as np
import pytest

from landscape import io
from landscape.cli import main

FAST = ["--crop", "32", "--kernel-size", "9", "--n-theta", "7", "--no-progress"]


def test_list(capsys):
    assert main(["list"]) == 0
    out = capsys.readouterr().out
    assert "map-vs-marginal" in out and "--theta-true" in out


def test_run_and_plot(tmp_path, capsys):
    out = tmp_path / "r.nc"
    assert main(["run", "map-vs-marginal", *FAST, "--out", str(out)]) == 0
    ds = io.load(out)
    assert ds.attrs["study"] == "map-vs-marginal"
    assert io.config_of(ds)["crop"] == 32
    assert main(["plot", str(out)]) == 0
    png = out.with_suffix(".png")
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


@pytest.mark.parametrize("args, argument", [
    (["--family", "boxcar"], "family"),
    (["--theta-true", "40"], "theta"),
    (["--noise", "0"], "noise"),
    (["--noise", "-0.1"], "noise"),
    (["--prior", "flat"], "prior"),
])
def test_bad_options_exit_2_and_write_nothing(tmp_path, capsys, args, argument):
    out = tmp_path / "r.nc"
    assert main(["run", "map-vs-marginal", *FAST, *args, "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith(f"landscape: error: {argument}")
    assert list(tmp_path.iterdir()) == []


def test_bad_files_exit_2(tmp_path, capsys):
    out = tmp_path / "out" / "r.nc"
    np.save(tmp_path / "img3d.npy", np.zeros((4, 32, 32)))
    nan = np.random.default_rng(0).random((40, 40))
    nan[5, 5] = np.nan
    np.save(tmp_path / "nan.npy", nan)
    np.save(tmp_path / "k.npy", np.ones((3, 3)))
    cases = [(["--image-file", str(tmp_path / "img3d.npy")], "image_file"),
             (["--image-file", str(tmp_path / "nan.npy")], "image_file"),
             (["--image-file", str(tmp_path / "missing.png")], "image_file"),
             (["--kernel-file", str(tmp_path / "k.npy")], "kernel_file")]
    for args, argument in cases:
        assert main(["run", "map-vs-marginal", *FAST, *args, "--out", str(out)]) == 2
        assert capsys.readouterr().err.startswith(f"landscape: error: {argument}")
        assert not out.exists()
    assert main(["run", "no-such-study"]) == 2
    assert "study" in capsys.readouterr().err


def test_user_image_and_kernel_files(tmp_path):
    from landscape import data
    np.save(tmp_path / "img.npy", data.center_crop(data.load("ascent"), 40))
    k = np.zeros((5, 5))
    k[2, 1:4] = [0.2, 0.5, 0.3]
    np.savetxt(tmp_path / "k.txt", k)
    out = tmp_path / "r.nc"
    assert main(["run", "map-vs-marginal", *FAST, "--image-file", str(tmp_path / "img.npy"),
                 "--kernel-file", str(tmp_path / "k.txt"), "--out", str(out)]) == 0
    ds = io.load(out)
    assert ds.attrs["kernel_family"] == "path" and float(ds.theta.max()) == 1.0
    np.testing.assert_allclose(ds.kernel_true.values, k)


def test_console_script_entry_point(tmp_path):
    r = subprocess.run([sys.executable, "-m", "landscape.cli", "run", "map-vs-marginal", "--noise", "nan",
                        "--out", str(tmp_path / "x.nc")], capture_output=True, text=True)
    assert r.returncode == 2 and "noise" in r.stderr and not (tmp_path / "x.nc").exists()
