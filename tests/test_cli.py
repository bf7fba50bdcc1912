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
    np.testing.assert_allclose(ds.kernel_true.values, k[1:4, 1:4])     # its zero margins trimmed, mass centred


def test_console_script_entry_point(tmp_path):
    r = subprocess.run([sys.executable, "-m", "landscape.cli", "run", "map-vs-marginal", "--noise", "nan",
                        "--out", str(tmp_path / "x.nc")], capture_output=True, text=True)
    assert r.returncode == 2 and "noise" in r.stderr and not (tmp_path / "x.nc").exists()


def _commands():
    """Every command that takes options: (argv prefix, options dataclass)."""
    from landscape.denoisers.train import TrainConfig
    from landscape.estimators.train_unrolled import UnrolledTrainConfig
    from landscape.studies import STUDIES
    out = [(["run", name], mod.Config) for name, mod in STUDIES.items()]
    return out + [(["train-prior", "table-test"], TrainConfig), (["train-unrolled", "table-test"], UnrolledTrainConfig)]


def _bad_cases():
    import dataclasses
    for prefix, cfg in _commands():
        for f in dataclasses.fields(cfg):
            for bad in f.metadata["check"].bad:
                yield pytest.param(prefix, f.name, bad, id=f"{prefix[-1]}--{f.name}={bad}")


def test_every_option_of_every_command_declares_a_check():
    import dataclasses
    missing = [f"{p[-1]} --{f.name}" for p, cfg in _commands() for f in dataclasses.fields(cfg)
               if "check" not in f.metadata]
    assert missing == []


@pytest.mark.parametrize("prefix, name, bad", list(_bad_cases()))
def test_every_bad_option_value_exits_2_naming_it_and_writes_nothing(tmp_path, capsys, prefix, name, bad):
    out = tmp_path / ("w.pt" if prefix[0].startswith("train") else "r.nc")
    rc = main([*prefix, "--" + name.replace("_", "-"), str(bad), "--out", str(out), "--no-progress"])
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 2
    assert len(err) == 1 and err[0].startswith(f"landscape: error: {name}:"), err
    assert list(tmp_path.iterdir()) == []


def test_plot_rejects_files_that_are_not_results(tmp_path, capsys):
    import xarray as xr
    (tmp_path / "text.nc").write_text("not netCDF")
    xr.Dataset({"a": ("t", [1.0])}).to_netcdf(tmp_path / "foreign.nc", engine="h5netcdf")
    for f in ("text.nc", "foreign.nc", "missing.nc"):
        assert main(["plot", str(tmp_path / f)]) == 2
        assert capsys.readouterr().err.startswith("landscape: error: file")
    assert not list(tmp_path.glob("*.png"))


SMALL_RUNS = {
    "trivial-minimizer": ["--quick", "--priors", "sparse", "--crop", "24", "--kernel-size", "7", "--n-theta", "5",
                          "--n-draws", "1", "--noise-levels", "0.01", "--n-outer", "2"],
    "map-vs-marginal": [*FAST[:-1], "--quick"],
    "blurry-is-more-likely": ["--quick", "--crop", "16", "--n-images", "1", "--evaluators", "gaussian,tweedie,pf-ode"],
    "map-vs-mmse": ["--sandbox", "--quick", "--n-theta", "5"],
    "pnp-vs-unrolled": ["--quick", "--n-iter", "3"],
    "posterior-statistics": ["--quick", "--sandbox", "--sweeps", "20", "--burn-in", "5", "--n-draws", "1",
                             "--skip-hard"],        # the hard case: test_studies' device test (natural mode)
    "morse-bott": ["--quick", "--priors", "gmm,gs,tweedie", "--crop", "8", "--max-iter", "20"],
    "local-recovery": ["--quick", "--priors", "sandbox", "--n-outer", "5"],
    "real-shake": ["--quick", "--skip", "pnp", "--n-outer", "2", "--n-em", "2"],
}


def test_small_runs_cover_every_study():
    from landscape.studies import STUDIES
    assert set(SMALL_RUNS) == set(STUDIES)


@pytest.fixture(scope="module")
def small_run(tmp_path_factory):
    """The results file of a study's small run, computed once per test module."""
    done = {}

    def get(study):
        if study not in done:
            out = tmp_path_factory.mktemp("small") / f"{study}.nc"
            assert main(["run", study, *SMALL_RUNS[study], "--no-progress", "--out", str(out)]) == 0
            done[study] = out
        return done[study]
    return get


@pytest.mark.parametrize("study", [pytest.param(s, marks=pytest.mark.slow) if s in ("map-vs-mmse", "morse-bott")
                                   else s for s in sorted(SMALL_RUNS)])   # map-vs-mmse: 49 s, morse-bott: 17 s
def test_same_seed_gives_an_identical_results_file(tmp_path, study, small_run):
    """Values and attributes equal, except the creation time and wall-clock measurements (attrs kind=timing)."""
    import xarray as xr
    files = []
    for k in range(2):
        out = tmp_path / f"r{k}.nc"
        if k == 0:
            out = small_run(study)
        else:
            assert main(["run", study, *SMALL_RUNS[study], "--no-progress", "--out", str(out)]) == 0
        ds = io.load(out)
        assert ds.attrs.pop("created")
        files.append(ds.drop_vars([v for v in ds.data_vars if ds[v].attrs.get("kind") == "timing"]))
    xr.testing.assert_identical(files[0], files[1])


def _bad_outputs(tmp_path, suffix):
    """(label, --out value) pairs that no command can write: each must be refused before any work."""
    (tmp_path / f"adir{suffix}").mkdir()
    (tmp_path / "afile").write_text("")
    return [("empty", ""), ("existing folder", str(tmp_path / f"adir{suffix}")),
            ("unwritable folder", f"/proc/landscape-test/r{suffix}"),
            ("a file in the way", str(tmp_path / "afile" / f"r{suffix}")), ("wrong extension", str(tmp_path / "r.txt"))]


@pytest.mark.parametrize("command", ["study", "definition", "plot", "train-prior"])
def test_every_bad_output_path_exits_2_before_any_work_and_writes_nothing(tmp_path, capsys, command):
    """Output paths are checked before the work: an empty path, an existing folder, a folder that cannot
    be written, a file where a folder should be, and a wrong extension (the format is the extension's)."""
    results = tmp_path / "keep" / "r.nc"
    results.parent.mkdir()
    if command == "plot":
        assert main(["run", "map-vs-marginal", *FAST, "--out", str(results)]) == 0
    (tmp_path / "def.toml").write_text('study = "map-vs-marginal"\n[options]\ncrop = 32\nn_theta = 7\n')
    capsys.readouterr()
    argv = {"study": ["run", "map-vs-marginal", *FAST, "--out"],
            "definition": ["run", str(tmp_path / "def.toml"), "--no-progress", "--out"],
            "plot": ["plot", str(results), "--out"],
            "train-prior": ["train-prior", "x", "--steps", "1", "--no-progress", "--out"]}[command]
    suffix = {"plot": ".png", "train-prior": ".pt"}.get(command, ".nc")
    bad = _bad_outputs(tmp_path, suffix)
    before = sorted(p.name for p in tmp_path.rglob("*"))
    for label, out in bad:
        assert main([*argv, out]) == 2, label
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and err[0].startswith("landscape: error: out"), (label, err)
        assert sorted(p.name for p in tmp_path.rglob("*")) == before, label


def test_plot_writes_the_format_of_its_extension(tmp_path):
    out = tmp_path / "r.nc"
    assert main(["run", "map-vs-marginal", *FAST, "--out", str(out)]) == 0
    assert main(["plot", str(out), "--out", str(tmp_path / "f.pdf")]) == 0
    assert (tmp_path / "f.pdf").read_bytes()[:5] == b"%PDF-"


def test_plot_of_a_foreign_file_naming_a_study_is_one_line(tmp_path, capsys):
    """A netCDF whose attrs['study'] names a study but whose variables are not that study's."""
    import xarray as xr
    for study in ("trivial-minimizer", "map-vs-mmse", "morse-bott"):
        f = tmp_path / f"{study}.nc"
        xr.Dataset({"a": ("t", [1.0])}, attrs={"study": study}).to_netcdf(f, engine="h5netcdf")
        assert main(["plot", str(f)]) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and err[0].startswith("landscape: error: file"), err
    assert not list(tmp_path.glob("*.png"))


def test_quick_keeps_a_typed_option_and_says_so(tmp_path, capsys):
    """``--n-theta 40 --quick``: the typed 40 wins over the quick run's 31, and stderr says so."""
    out = tmp_path / "r.nc"
    assert main(["run", "map-vs-marginal", "--quick", "--crop", "32", "--n-theta", "40", "--no-progress",
                 "--out", str(out)]) == 0
    assert io.config_of(io.load(out))["n_theta"] == 40
    assert "--quick keeps n_theta=40 (the quick run uses 31)" in capsys.readouterr().err
    # a typed value equal to the default cannot be told from one left alone: the quick value, said aloud
    out2 = tmp_path / "r2.nc"
    assert main(["run", "map-vs-marginal", "--quick", "--crop", "32", "--n-theta", "61", "--no-progress",
                 "--out", str(out2)]) == 0
    assert io.config_of(io.load(out2))["n_theta"] == 31
    assert "--quick sets n_theta=31 (you typed its default 61" in capsys.readouterr().err


def test_quick_on_a_definition_clamps_the_files_options_but_not_set_ones(tmp_path):
    p = tmp_path / "d.toml"
    p.write_text('study = "map-vs-marginal"\n[options]\ncrop = 32\nn_theta = 61\n')
    out = tmp_path / "r.nc"
    assert main(["run", str(p), "--quick", "--no-progress", "--out", str(out)]) == 0
    assert io.config_of(io.load(out))["n_theta"] == 31
    assert main(["run", str(p), "--quick", "--set", "n_theta=41", "--no-progress", "--out", str(out)]) == 0
    assert io.config_of(io.load(out))["n_theta"] == 41


def test_every_study_declares_its_quick_rules_on_its_own_options():
    import dataclasses

    from landscape.studies import STUDIES
    for name, mod in STUDIES.items():
        fields = {f.name for f in dataclasses.fields(mod.Config)}
        assert mod.QUICK and set(mod.QUICK) <= fields, name


def test_run_help_version_and_a_typed_parameter_named_in_errors(capsys):
    assert main(["run", "--help"]) == 0
    out = capsys.readouterr().out
    assert "trivial-minimizer" in out and "definition file" in out
    with pytest.raises(SystemExit) as exc:
        main(["--version"])
    assert exc.value.code == 0 and capsys.readouterr().out.startswith("landscape ")
    assert main(["run", "trivial-minimizer", "--theta-true=-1", "--out", "x.nc"]) == 2
    assert capsys.readouterr().err.startswith("landscape: error: theta_true:")
    assert main(["run", "map-vs-marginal", "--n-theta", "100000", "--out", "x.nc"]) == 2
    assert "n_theta: expected an integer in [3, 1001]" in capsys.readouterr().err


def test_a_grid_of_a_million_runs_is_refused_before_it_is_validated(tmp_path, capsys):
    p = tmp_path / "d.toml"
    p.write_text('study = "map-vs-marginal"\n[grid]\nseed = [' + ", ".join(map(str, range(1000))) + ']\n'
                 'crop = [' + ", ".join(str(32 + i) for i in range(1000)) + ']\n')
    assert main(["run", str(p), "--out", str(tmp_path / "r.nc")]) == 2
    assert "at most 10000 runs" in capsys.readouterr().err and not (tmp_path / "r.nc").exists()


@pytest.mark.parametrize("study", ["map-vs-mmse", "posterior-statistics"])
def test_every_coloured_map_has_a_colour_bar_and_no_map_is_blank(study, small_run):
    """A map without a scale cannot be read: every non-gray image in the study's figure is the mappable
    of a colour bar, and no image panel is constant (map-vs-mmse's x_true |error| panel was all zero)."""
    import matplotlib.pyplot as plt

    from landscape.studies import get
    fig = get(study).plot(io.load(small_run(study))).figure
    images = [im for a in fig.axes for im in a.get_images()]
    coloured = [im for im in images if im.get_cmap().name != "gray"]
    bars = [a._colorbar.mappable for a in fig.axes if getattr(a, "_colorbar", None) is not None]
    assert coloured and all(any(b is im or b.norm is im.norm for b in bars) for im in coloured)
    assert all(np.ptp(np.asarray(im.get_array())) > 0 for im in images)
    plt.close(fig)


@pytest.mark.parametrize("study, args", [
    ("map-vs-mmse", ["--quick", "--n-theta", "5", "--crop", "32"]),
    ("pnp-vs-unrolled", ["--quick", "--n-iter", "3", "--crop", "32"]),
    ("posterior-statistics", ["--quick", "--sweeps", "20", "--burn-in", "5", "--crop", "16"]),
    ("morse-bott", ["--quick", "--priors", "gs", "--crop", "8", "--max-iter", "5"]),
    ("local-recovery", ["--quick", "--priors", "gs", "--x-star", "natural", "--crop", "12", "--n-outer", "3",
                        "--noise-levels", "0.01", "--radii", "0.1", "--certify-k", "1"]),
])
def test_every_natural_image_study_runs_on_the_users_image_file(tmp_path, study, args):
    """--image-file: the study runs on the file's central crop (found among the stored arrays)."""
    from landscape import data
    img = data.center_crop(data.load("coins"), 48)          # a training image, named by no held-out list
    np.save(tmp_path / "mine.npy", img)
    out = tmp_path / "r.nc"
    assert main(["run", study, *args, "--image-file", str(tmp_path / "mine.npy"), "--no-progress", "--out", str(out)]) == 0
    ds = io.load(out)
    crop = int(io.config_of(ds)["crop"])
    want = data.center_crop(img, crop)
    found = [k for k in ds.data_vars for a in [np.asarray(ds[k].values)] if a.shape[-2:] == want.shape
             and any(np.allclose(s, want) for s in a.reshape(-1, *want.shape))]
    assert found, "the file's image is not among the results' arrays"


def test_trivial_minimizer_on_a_colour_photograph(tmp_path):
    """--color keeps chelsea's three channels end to end: the results hold (channel, row, col) inputs and
    images, the colour Gaussian prior's description (its colour basis), and the profile's energies equal
    the closed form of that prior; the shipped colour denoiser runs the same study (score prior: HQS and
    the fixed-point rates)."""
    from landscape import marginal, scan
    from landscape.studies import trivial_minimizer as TM
    out = tmp_path / "c.nc"
    assert main(["run", "trivial-minimizer", "--quick", "--color", "--image", "chelsea", "--priors", "gaussian",
                 "--crop", "16", "--out", str(out)]) == 0
    ds = io.load(out)
    assert ds.y.dims == ("channel", "row", "col") and ds.x_true.shape == (3, 16, 16)
    assert len(ds.attrs["verdicts"]) > 0 and '"basis"' in ds.attrs["verdicts"]
    cfg = TM.Config(quick=True, color=True, image="chelsea", priors="gaussian", crop=16).resolved()
    fam, theta_true, image, grid, _ = TM.setup(cfg.problems()[0], cfg)
    import landscape as ls
    from landscape.priors import make_prior
    prob = ls.BlindDeblur.synthetic(image, fam, theta_true, cfg.problems()[0].noise, rng=cfg.seed)
    post = ls.Posterior(prob, make_prior("gaussian", prob.event_shape))
    prof = scan.profile(post, grid, solver=ls.solvers.SolverOptions(xtol=1e-10, max_iter=3000), progress=False)
    np.testing.assert_allclose(prof.profile_energy, marginal.profile_closed_form(post, grid), rtol=1e-7)
    assert main(["run", "trivial-minimizer", "--quick", "--color", "--image", "chelsea", "--priors", "tweedie",
                 "--crop", "16", "--out", str(tmp_path / "t.nc")]) == 0            # the shipped colour denoiser
    tw = io.load(tmp_path / "t.nc")
    assert tw.x_true.dims == ("channel", "row", "col") and np.isfinite(tw.fixed_point_rate.values).any()
