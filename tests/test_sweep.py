"""Study definitions (studies/*.toml) and the sweep engine: parsing and bad input, streaming and
resume, and real process faults (a killed dask worker, a killed sweep process)."""

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest
import torch
import xarray as xr

from landscape import io, sweep
from landscape.cli import main

ROOT = Path(__file__).resolve().parents[1]
DEFINITIONS = sorted((ROOT / "studies").glob("*.toml"))

#: a small trivial-minimizer case (about 1 s): exact Gaussian prior, 12x12 crop, 5 theta
SMALL = """study = "trivial-minimizer"
[options]
priors = "gaussian"
crop = 12
kernel_size = 5
n_theta = 5
n_draws = 1
noise_levels = "0.01"
n_outer = 2
max_iter = 30
weights = [0.5, 1, 2, 4, 8, 16]
"""


def write(tmp_path, text=SMALL, name="def.toml"):
    p = tmp_path / name
    p.write_text(text)
    return p


def comparable(path):
    """A results file without what legitimately differs between runs: creation time, wall-clock variables."""
    ds = io.load(path)
    ds.attrs.pop("created")
    return ds.drop_vars([v for v in ds.data_vars if ds[v].attrs.get("kind") == "timing"])


def test_the_readme_runs_are_definitions():
    names = {p.stem for p in DEFINITIONS}
    assert {"main", "main-tweedie", "epll", "product", "sparse-weight-sweep", "map-vs-marginal",
            "blurry-is-more-likely"} <= names


#: size variants of another definition of the same study: their --quick runs clamp to nearly the same small run,
#: so they run with `slow` only (the default run stays under 15 min); they still parse in the default run below.
#: The second group are the definitions whose --quick run takes 13-75 s and whose study's --quick the default
#: run already runs from the command line (``test_cli``), and the colour sandbox's two (fitting its (3, 16, 16) GMM
#: takes about 2 min); they too parse in the default run, and test_quick_runs_resolve_colour_files checks their
#: smoke run's configuration.
VARIANTS = ("local-recovery-64", "morse-bott-32", "morse-bott-64",
            "main-tweedie", "main", "local-recovery", "posterior-statistics", "posterior-statistics-sandbox",
            "morse-bott", "epll", "blurry-is-more-likely", "local-recovery-color", "morse-bott-color",
            "map-vs-mmse-color", "pnp-vs-unrolled-color", "posterior-statistics-color",
            "map-vs-mmse-sandbox-color", "posterior-statistics-sandbox-color", "real-shake-256")


def test_every_definition_parses_into_valid_cases():
    for path in DEFINITIONS:
        defn = sweep.Definition.from_file(path)
        runs = defn.configs()
        assert runs and all(sweep.split(defn.module, cfg) for _, cfg in runs), path.stem


@pytest.mark.parametrize("path", [pytest.param(p, marks=pytest.mark.slow) if p.stem in VARIANTS else p
                                  for p in DEFINITIONS], ids=[p.stem for p in DEFINITIONS])
def test_every_definition_parses_and_runs_quick(tmp_path, path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)                         # relative outputs of a definition (samples=) land here
    defn = sweep.Definition.from_file(path)            # every case of the full run is a valid configuration
    runs = defn.configs()
    assert runs and all(sweep.split(defn.module, cfg) for _, cfg in runs)
    out = tmp_path / "r.nc"
    assert main(["run", str(path), "--quick", "--no-progress", "--out", str(out)]) == 0
    ds = io.load(out)
    assert ds.attrs["study"] == defn.study
    assert '"source": "' + str(path) in ds.attrs["definition"]          # the file records the definition it ran
    assert "wrote" in capsys.readouterr().out
    assert main(["plot", str(out)]) == 0 and out.with_suffix(".png").stat().st_size > 0


def test_quick_runs_resolve_colour_files_before_the_quick_rules():
    """A --color definition's smoke run takes the colour defaults first: the colour sandbox files' quick run is one
    colour photograph (the gray default's first image, ascent, was refused by name), a --set option is kept, and
    the sandbox stays on."""
    for name in ("map-vs-mmse-sandbox-color", "posterior-statistics-sandbox-color", "map-vs-mmse-color"):
        defn = sweep.Definition.from_file(ROOT / "studies" / f"{name}.toml", ["seed=3"])
        ((_, cfg),) = sweep.quick_runs(defn)
        assert cfg.quick and cfg.color and cfg.images == ("chelsea",) and cfg.seed == 3, name
        assert cfg.resolved() == cfg, name                    # the study resolves it to itself
        assert sweep.split(defn.module, cfg)
    assert sweep.quick_runs(sweep.Definition.from_file(ROOT / "studies" / "map-vs-mmse-sandbox-color.toml")
                            )[0][1].sandbox


def test_product_definition_is_32_cases_each_one_task():
    defn = sweep.Definition.from_file(ROOT / "studies" / "product.toml")
    ((_, cfg),) = defn.configs()
    cases = sweep.split(defn.module, cfg)
    assert len(cases) == 32
    assert len({sweep.Case.of(defn.study, c, 0).key for c in cases}) == 32


BAD = {
    "unknown study": ('study = "no-such-study"\n', "study"),
    "no study": ('[options]\ncrop = 16\n', "study"),
    "unknown option": ('study = "trivial-minimizer"\n[options]\ncropp = 16\n', "options.cropp"),
    "wrong type": ('study = "trivial-minimizer"\n[options]\ncrop = "big"\n', "options.crop"),
    "float for an int": ('study = "trivial-minimizer"\n[options]\ncrop = 16.5\n', "options.crop"),
    "value out of range": ('study = "trivial-minimizer"\n[options]\ncrop = 2\n', "options.crop"),
    "empty grid": ('study = "trivial-minimizer"\n[grid]\n', "grid"),
    "empty grid list": ('study = "trivial-minimizer"\n[grid]\nseed = []\n', "grid.seed"),
    "unknown grid option": ('study = "trivial-minimizer"\n[grid]\nsead = [1, 2]\n', "grid.sead"),
    "unknown top-level key": ('study = "trivial-minimizer"\nworkers = 2\n', "workers"),
    "not TOML": ('study = \n', ""),
}


@pytest.mark.parametrize("case", sorted(BAD))
def test_bad_definition_is_one_line_naming_file_and_key(tmp_path, capsys, case):
    text, key = BAD[case]
    p = write(tmp_path, text)
    out = tmp_path / "r.nc"
    assert main(["run", str(p), "--no-progress", "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and err.startswith(f"landscape: error: {p}")
    assert f"{p}: {key}" in err
    assert not out.exists() and not sweep.case_folder(out).exists()


def test_bad_overrides_and_engine_options(tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(sweep, "SCHEDULER_TIMEOUT", 1)          # the unreachable scheduler: refused after 1 s, not 10
    p = write(tmp_path)
    out = tmp_path / "r.nc"
    for args, name in ((["--set", "crop=tiny"], "options.crop"), (["--set", "nokey"], "--set"),
                       (["--set", "table.crop=3"], "--set"), (["--workers", "-1"], "workers"),
                       (["--threads", "-1"], "threads"), (["--scheduler", "tcp://127.0.0.1:9"], "scheduler")):
        assert main(["run", str(p), *args, "--no-progress", "--out", str(out)]) == 2
        err = capsys.readouterr().err.strip()
        assert len(err.splitlines()) == 1 and name in err, (args, err)
    assert not out.exists() and not sweep.case_folder(out).exists()


def test_set_overrides_and_grid_sweep(tmp_path, capsys):
    p = write(tmp_path)
    out = tmp_path / "r.nc"
    assert main(["run", str(p), "--set", "weights=1", "--set", "grid.seed=[0, 3]", "--no-progress",
                 "--out", str(out)]) == 0
    ds = io.load(out)
    assert ds.sizes["sweep"] == 2 and list(ds.sweep_seed.values) == [0, 3]
    # each point is the study's own run with that seed
    from landscape.studies import trivial_minimizer as TM
    cfg = sweep.Definition.from_file(p, ["weights=1", "seed=3"]).configs()[0][1]
    ref = TM.run(cfg, progress=False)
    np.testing.assert_array_equal(ds.profile_energy.isel(sweep=1).values, ref.profile_energy.values)
    assert sweep.point(ds, 1).attrs["config"] == ref.attrs["config"]
    assert "[sweep 1: seed=3]" in capsys.readouterr().out
    assert main(["plot", str(out), "--point", "1"]) == 0
    assert main(["plot", str(out), "--point", "2"]) == 2


def test_threads_caps_torch_and_the_blas_libraries_inside_each_case_and_restores_them(tmp_path, monkeypatch):
    """``--threads 1`` in this process: every case runs with one torch thread and one thread in each BLAS / OpenMP
    pool numpy and scipy loaded (two processes given --threads 1 on two cores used to run four busy threads);
    the process's counts come back after the run; without --threads the case sees the process's own."""
    from threadpoolctl import threadpool_info
    from landscape.studies import trivial_minimizer as tm
    real, seen = tm.run_part, []

    def recording(cfg, progress=False):
        seen.append((torch.get_num_threads(), [p["num_threads"] for p in threadpool_info()]))
        return real(cfg, progress=progress)

    monkeypatch.setattr(tm, "run_part", recording)
    before = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        p = write(tmp_path, SMALL.replace("weights = [0.5, 1, 2, 4, 8, 16]", "weights = [1]"))
        assert main(["run", str(p), "--threads", "1", "--no-progress", "--out", str(tmp_path / "a.nc")]) == 0
        assert len(seen) == 1 and all(t == 1 and pools and set(pools) == {1} for t, pools in seen)
        assert torch.get_num_threads() == 2
        seen.clear()
        assert main(["run", str(p), "--no-progress", "--out", str(tmp_path / "b.nc")]) == 0
        assert [t for t, _ in seen] == [2]
    finally:
        torch.set_num_threads(before)


#: four cases: enough to interrupt a run after two and resume the rest
SMALL4 = SMALL.replace("weights = [0.5, 1, 2, 4, 8, 16]", "weights = [0.5, 1, 2, 4]")


def test_a_rerun_computes_only_the_missing_cases_and_equals_an_uninterrupted_run(tmp_path, monkeypatch):
    p = write(tmp_path, SMALL4)
    ref = tmp_path / "ref.nc"
    assert main(["run", str(p), "--no-progress", "--out", str(ref)]) == 0
    out = tmp_path / "r.nc"
    real, calls = sweep.run_case, []

    def dies_on_the_third(*a, **k):
        if len(calls) == 2:
            raise KeyboardInterrupt                         # Ctrl-C in the middle of the sweep
        calls.append(a[1]["weights"])
        return real(*a, **k)

    monkeypatch.setattr(sweep, "run_case", dies_on_the_third)
    assert main(["run", str(p), "--no-progress", "--out", str(out)]) == 130
    assert not out.exists() and len(list(sweep.case_folder(out).glob("*.nc"))) == 2
    assert not list(sweep.case_folder(out).glob("*.part"))

    calls.clear()
    monkeypatch.setattr(sweep, "run_case", lambda *a, **k: calls.append(a[1]["weights"]) or real(*a, **k))
    assert main(["run", str(p), "--no-progress", "--out", str(out)]) == 0
    assert calls == [(2.0,), (4.0,)]                        # the list option, one weight per case
    xr.testing.assert_identical(comparable(out), comparable(ref))
    # a changed option recomputes only the cases it changes
    calls.clear()
    assert main(["run", str(p), "--set", "weights=[0.5, 1, 3]", "--no-progress", "--out", str(out)]) == 0
    assert calls == [(3.0,)]


def _worker_killed_mid_sweep(tmp_path, p, out):
    from distributed import Client, LocalCluster
    cluster = LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None)
    client = Client(cluster)
    pids = list(client.run(os.getpid).values())
    folder = sweep.case_folder(out)
    killed = []

    def killer():
        while not list(folder.glob("*.nc")):                # once the first case is on disk
            time.sleep(0.05)
        os.kill(pids[0], signal.SIGKILL)
        killed.append(pids[0])

    t = threading.Thread(target=killer, daemon=True)
    t.start()
    try:
        ds = sweep.run(sweep.Definition.from_file(p), out, scheduler=cluster.scheduler_address, progress=False)
    finally:
        client.close()
        cluster.close()
    t.join(5)
    return ds, killed


@pytest.mark.slow          # 35 s: a dask cluster and two full runs; the killed-process resume stays in the default run
def test_a_killed_dask_worker_still_gives_every_case_exactly_once(tmp_path):
    p = write(tmp_path)
    ref = tmp_path / "ref.nc"
    # BLAS and torch round differently with another thread count (the eigensolver's last bits
    # show it), so the reference runs in a process with a dask worker's one-thread environment
    one = dict(os.environ, OMP_NUM_THREADS="1", MKL_NUM_THREADS="1", OPENBLAS_NUM_THREADS="1")
    cmd = [sys.executable, "-m", "landscape.cli", "run", str(p), "--no-progress", "--out", str(ref)]
    assert subprocess.run(cmd, stdout=subprocess.DEVNULL, env=one).returncode == 0
    out = tmp_path / "r.nc"
    ds, killed = _worker_killed_mid_sweep(tmp_path, p, out)
    assert killed                                          # a worker process really died mid-sweep
    assert len(list(sweep.case_folder(out).glob("*.nc"))) == 6
    assert list(ds.case_weight.values) == [0.5, 1, 2, 4, 8, 16]
    xr.testing.assert_identical(comparable(out), comparable(ref))


def test_a_killed_sweep_process_resumes_to_the_identical_file(tmp_path):
    p = write(tmp_path, SMALL4)
    ref = tmp_path / "ref.nc"
    out = tmp_path / "r.nc"
    cmd = [sys.executable, "-m", "landscape.cli", "run", str(p), "--no-progress", "--out", str(out)]
    # the reference runs uninterrupted in a process like the one killed (same torch thread count)
    assert subprocess.run(cmd[:-1] + [str(ref)], stdout=subprocess.DEVNULL).returncode == 0
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    folder = sweep.case_folder(out)
    while len(list(folder.glob("*.nc"))) < 2 and proc.poll() is None:
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)                       # the process dies, no exception handler runs
    proc.wait()
    done = len(list(folder.glob("*.nc")))
    assert proc.returncode == -signal.SIGKILL and 2 <= done < 4 and not out.exists()
    assert subprocess.run(cmd, stdout=subprocess.DEVNULL).returncode == 0
    assert len(list(folder.glob("*.nc"))) == 4
    xr.testing.assert_identical(comparable(out), comparable(ref))


SMALL_ARGS = ["--priors", "gaussian", "--crop", "16", "--kernel-size", "5", "--n-theta", "5", "--n-draws", "1",
              "--noise-levels", "0.01", "--n-outer", "2", "--max-iter", "30", "--no-progress"]


def test_an_input_file_overwritten_between_runs_is_never_served_from_the_stale_case(tmp_path):
    """The issue's scenario: the same command twice, the image file overwritten in between; the second
    run must store the new image (a case is keyed on the contents of what it reads), and the same for a
    kernel file."""
    from landscape import data
    img, out = tmp_path / "img.npy", tmp_path / "X.nc"
    first, second = data.center_crop(data.load("camera"), 16), data.center_crop(data.load("ascent"), 16)
    np.save(img, first)
    argv = ["run", "trivial-minimizer", *SMALL_ARGS, "--image-file", str(img), "--out", str(out)]
    assert main(argv) == 0
    np.testing.assert_allclose(io.load(out).x_true.values.squeeze(), first)
    np.save(img, second)
    assert main(argv) == 0
    np.testing.assert_allclose(io.load(out).x_true.values.squeeze(), second)
    # a kernel file, in a study run as a single case
    k, out2 = tmp_path / "k.txt", tmp_path / "m.nc"
    for row in ([0.2, 0.5, 0.3], [0.5, 0.3, 0.2]):
        h = np.zeros((5, 5))
        h[2, 1:4] = row
        np.savetxt(k, h)
        assert main(["run", "map-vs-marginal", "--crop", "32", "--kernel-size", "9", "--n-theta", "7",
                     "--no-progress", "--kernel-file", str(k), "--out", str(out2)]) == 0
        np.testing.assert_allclose(io.load(out2).kernel_true.values, h[1:4, 1:4])   # zero margins trimmed


def test_a_worker_killed_for_memory_ends_in_one_line_not_a_traceback(tmp_path):
    """Workers with less memory than a case needs (the --workers 64 on 24 GB scenario, made here with a
    200 MB limit): dask kills and retries them, then the run fails with RunFailed, which the command
    line prints as one line (exit 1), and no results file."""
    import logging

    from distributed import Client, LocalCluster

    from landscape._checks import RunFailed
    defn = sweep.Definition.from_file(write(tmp_path))
    cases = [sweep.Case.of(defn.study, c, 0) for _, cfg in defn.configs() for c in sweep.split(defn.module, cfg)][:1]
    with LocalCluster(n_workers=1, threads_per_worker=1, processes=True, dashboard_address=None,
                      silence_logs=logging.CRITICAL, memory_limit="200MB") as cluster, Client(cluster) as client:
        with pytest.raises(RunFailed, match="killed the worker processes .* fewer --workers"):
            sweep.execute(cases, sweep.CaseStore(tmp_path / "cases"), client=client, progress=False)
    assert not list(tmp_path.rglob("*.nc"))


def test_more_workers_than_the_machine_holds_are_refused_before_any_work(tmp_path, capsys):
    import os
    n = (os.cpu_count() or 1) + 1
    out = tmp_path / "r.nc"
    assert main(["run", str(write(tmp_path)), "--workers", str(n), "--no-progress", "--out", str(out)]) == 2
    assert capsys.readouterr().err.startswith("landscape: error: workers: expected at most")
    assert not out.exists()


def test_every_study_module_implements_the_study_protocol():
    from landscape import studies
    for name, mod in studies.STUDIES.items():
        assert studies.missing(mod) == [], name
        assert mod.NAME == name


#: small definitions of every parted study (several cases each)
PARTED_RUNS = {
    "trivial-minimizer": 'study = "trivial-minimizer"\n[options]\npriors = "sparse"\ncrop = 24\nkernel_size = 7\n'
                         'n_theta = 5\nn_draws = 1\nnoise_levels = "0.01"\nn_outer = 2\ncertify_k = 0\n'
                         'weights = [1.0, 2.0]\n',
    "pnp-vs-unrolled": 'study = "pnp-vs-unrolled"\n[options]\nimages = "camera"\ncrop = 32\nn_iter = 3\n'
                       'theta_true = [1.0, 2.0]\nnoise = "0.01"\n',
    "map-vs-mmse": 'study = "map-vs-mmse"\n[options]\nsandbox = true\nn_draws = 2\nn_theta = 5\ntheta_true = "1.0"\n'
                   'noise = "0.01"\n',
    "posterior-statistics": 'study = "posterior-statistics"\n[options]\nsandbox = true\nn_draws = 2\nsweeps = 20\n'
                            'burn_in = 5\nn_theta = 7\nchains = 2\n',
    "blurry-is-more-likely": 'study = "blurry-is-more-likely"\n[options]\ncrop = 16\nn_images = 2\nwidth_step = 1.0\n'
                             'evaluators = ["gaussian", "gs"]\n',
    "morse-bott": 'study = "morse-bott"\n[options]\nimages = "camera,ascent"\ncrop = 8\npriors = "gmm,gs"\nmax_iter = 20\n',
    "local-recovery": 'study = "local-recovery"\n[options]\npriors = "sandbox"\nimages = ["camera", "ascent"]\n'
                      'x_star = "critical"\nnoise_levels = "0,0.003"\nn_draws = 1\nradii = "0.3"\n'
                      'n_directions = 1\nn_outer = 5\n',
    "real-shake": 'study = "real-shake"\n[options]\nkernels = "levin5"\nimages = "camera,ascent"\ncrop = 64\n'
                  'n_outer = 3\nn_em = 2\npnp_iter = 3\nn_em_diffusion = 1\ndps_levels = 5\ndps_chains = 1\n',
}


#: variables that are round-off by construction (the gradient norm where a descent stopped on it: 1e-7 of
#: its start), compared against their tolerance instead
ROUNDOFF = {"local-recovery": {"q_grad_norm": 1e-4}}
#: pnp-vs-unrolled runs in float32: 60 iterations of a network round differently on one thread
RTOL = {"pnp-vs-unrolled": 1e-4}


def test_every_parted_study_has_a_small_run_here():
    from landscape.studies import STUDIES
    assert set(PARTED_RUNS) == {n for n, m in STUDIES.items() if sweep.parted(m)}


#: those whose small runs cost most (point estimates, Gibbs, the kernel estimators, 10-12 s for local-recovery's and
#: morse-bott's): `slow`, to keep the default run under 15 min; trivial-minimizer's stays in the default run
SLOW_TWO_WORKER = ("map-vs-mmse", "posterior-statistics", "real-shake", "local-recovery", "morse-bott")


@pytest.mark.parametrize("study", [pytest.param(s, marks=pytest.mark.slow) if s in SLOW_TWO_WORKER else s
                                   for s in sorted(PARTED_RUNS)])
def test_a_two_worker_run_equals_the_in_process_run(tmp_path, study):
    """Each parted study: its cases farmed out to 2 dask worker processes give the file the study's own
    in-process ``run`` gives (values to round-off: a worker has one BLAS thread)."""
    import xarray as xr
    from distributed import LocalCluster

    from landscape.studies import get
    p = write(tmp_path, PARTED_RUNS[study])
    defn = sweep.Definition.from_file(p)
    (_, cfg), = defn.configs()
    assert len(get(study).cases(cfg)) >= 2
    import torch
    threads = torch.get_num_threads()
    torch.set_num_threads(1)                   # as on a worker: reductions round alike
    try:
        ref = get(study).run(cfg, progress=False)
    finally:
        torch.set_num_threads(threads)
    ref.attrs.pop("created")
    ref = ref.drop_vars([v for v in ref.data_vars if ref[v].attrs.get("kind") == "timing"])
    out = tmp_path / "r.nc"
    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None) as cluster:
        sweep.run(defn, out, scheduler=cluster.scheduler_address, progress=False)
    got = comparable(out)
    assert len(list(sweep.case_folder(out).glob("*.nc"))) == len(get(study).cases(cfg))
    assert set(got.data_vars) == set(ref.data_vars)
    for v, tol in ROUNDOFF.get(study, {}).items():
        assert (got[v] <= tol).all() and (ref[v] <= tol).all()
        got, ref = got.drop_vars(v), ref.drop_vars(v)
    xr.testing.assert_allclose(got, ref, rtol=RTOL.get(study, 1e-7), atol=1e-9)
    for k, v in ref.attrs.items():              # the run's attrs (the sweep adds its own); numbers to round-off
        a, b = got.attrs[k], v
        a, b = (json.loads(a), json.loads(b)) if isinstance(b, str) and b[:1] in "[{" else (a, b)
        assert _numbers_close(a, b), k


def _numbers_close(a, b) -> bool:
    """Equal structures, numbers within 1e-6 relative (and NaN equal to NaN)."""
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(_numbers_close(a[k], b[k]) for k in a)
    if isinstance(a, (list, tuple)) and isinstance(b, (list, tuple)):
        return len(a) == len(b) and all(_numbers_close(x, y) for x, y in zip(a, b))
    if isinstance(a, (int, float)) and isinstance(b, (int, float)) and not isinstance(a, bool):
        return bool(np.isclose(a, b, rtol=1e-6, atol=1e-6, equal_nan=True))
    return a == b


def _list_options():
    import dataclasses
    from landscape._checks import is_list_option
    from landscape.studies import STUDIES
    return [(name, f) for name, mod in STUDIES.items() for f in dataclasses.fields(mod.Config) if is_list_option(f)]


def test_every_list_option_is_a_typed_tuple_that_the_command_line_toml_and_python_spell_alike():
    """A list option holds a tuple (its default, and after validation whatever the edge gave): a
    comma-separated string (command line, ``--set``), a TOML list and a Python sequence parse to the
    same tuple, once, in ``validate``."""
    import dataclasses
    from landscape._checks import validate
    from landscape.studies import STUDIES
    opts = _list_options()
    assert len(opts) >= 30                          # images, priors, noise levels, ... of the nine studies
    for name, f in opts:
        assert isinstance(f.default, tuple), (name, f.name, f.default)
        cfg = validate(STUDIES[name].Config())
        assert getattr(cfg, f.name) == f.default
        if not f.default:
            continue
        text = ",".join(map(str, f.default))
        typed = [validate(STUDIES[name].Config(**{f.name: v})) for v in (text, list(f.default), f.default)]
        assert all(getattr(c, f.name) == f.default and isinstance(getattr(c, f.name), tuple) for c in typed)
        d = sweep.Definition(study=name, options={f.name: list(f.default)})
        (_, from_toml), = d.configs()
        d.set(f"{f.name}={text}")
        (_, from_set), = d.configs()
        assert dataclasses.asdict(from_toml) == dataclasses.asdict(from_set) == dataclasses.asdict(cfg)


def test_a_list_option_cut_into_cases_holds_one_entry_each():
    from landscape.studies import map_vs_mmse
    cfg = map_vs_mmse.Config(images="camera", theta_true="1,2", noise=[0.01, 0.03])
    cases = map_vs_mmse.cases(cfg)
    assert [(c.images, c.theta_true, c.noise) for c in cases] == [
        (("camera",), (1.0,), (0.01,)), (("camera",), (1.0,), (0.03,)),
        (("camera",), (2.0,), (0.01,)), (("camera",), (2.0,), (0.03,))]
