"""Command line: ``landscape list | run STUDY [options] | plot FILE``.

Bad input prints one line naming the argument and what was expected, and exits with code 2;
results are written atomically, so a failed run leaves no results file.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
from pathlib import Path
from typing import Sequence

from ._checks import InputError, RunFailed, is_list_option, output_file, shown


def _study_parser(name: str) -> argparse.ArgumentParser:
    from .studies import get
    mod = get(name)
    p = argparse.ArgumentParser(prog=f"landscape run {name}", description=mod.SUMMARY, allow_abbrev=False)
    p.add_argument("--out", default=f"runs/{name}.nc", help="results file (netCDF; default: %(default)s)")
    p.add_argument("--no-progress", action="store_true", help="hide progress bars")
    for f in dataclasses.fields(mod.Config):
        flag = "--" + f.name.replace("_", "-")
        help_ = f.metadata.get("help", "") + " (default: %(default)s)"
        if f.type in (bool, "bool"):
            p.add_argument(flag, action="store_true", help=f.metadata.get("help", ""))
        elif is_list_option(f):              # a comma-separated string, parsed into its tuple by validate()
            p.add_argument(flag, type=str, default=shown(f.default), help=help_)
        else:
            typ = {"int": int, "float": float, "str": str}.get(f.type if isinstance(f.type, str) else f.type.__name__, str)
            p.add_argument(flag, type=typ, default=f.default, help=help_)
    return p


def cmd_list(_: argparse.Namespace) -> int:
    from .plugins import PRIOR_ENTRY_POINTS, entry_points
    from .priors import PRIORS
    from .resources import MEASURED_KERNELS
    from .studies import STUDIES
    for name, mod in STUDIES.items():
        print(f"{name}: {mod.SUMMARY}")
        for f in dataclasses.fields(mod.Config):
            print(f"    --{f.name.replace('_', '-'):<16} {f.metadata.get('help', '')} [default: {shown(f.default)!r}]")
    registered = ", ".join(entry_points()) or "none installed"
    print(f"\npriors: {', '.join(PRIORS)}; user priors: file.py:factory, package.module:factory, or a name "
          f"registered in the entry-point group {PRIOR_ENTRY_POINTS} ({registered})")
    print(f"measured kernels (--kernel-file NAME): {', '.join(MEASURED_KERNELS)}")
    return 0


def _engine_options(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("engine (cases stream to .<out>.cases beside --out; a rerun computes only what is missing)")
    g.add_argument("--workers", type=int, default=0,
                   help="run the cases on a dask LocalCluster of N worker processes (default: in this process)")
    g.add_argument("--scheduler", default=None, help="send the cases to a running dask scheduler at this address")
    g.add_argument("--threads", type=int, default=0,
                   help="threads per case, torch's and numpy's / scipy's BLAS (default: in this process, as the process "
                        "has them, torch's default every core; on dask workers 1)")


def _quick_notes(mod, cfg, argv: Sequence[str]) -> None:
    """Print, once, where ``--quick`` and the options typed disagree: a typed value wins (its note says
    what the quick run would use); a typed value equal to the default cannot be told from one left
    alone, so it takes the quick value, and its note says so."""
    from .studies.common import apply_quick
    typed = {a[2:].split("=")[0].replace("-", "_") for a in argv if a.startswith("--")}
    quick, kept = apply_quick(cfg, mod.QUICK)
    for note in kept:
        print(f"landscape: --quick keeps {note}", file=sys.stderr)
    for f in dataclasses.fields(cfg):
        if f.name in typed and f.name in mod.QUICK and getattr(quick, f.name) != getattr(cfg, f.name):
            print(f"landscape: --quick sets {f.name}={getattr(quick, f.name)!r} (you typed its default "
                  f"{getattr(cfg, f.name)!r}; drop --quick to keep it)", file=sys.stderr)


def cmd_run(args: argparse.Namespace) -> int:
    from . import sweep
    from .studies import STUDIES, get
    if args.help:
        args.run_parser.print_help()
        print("\nstudies (landscape run STUDY --help for each one's options):")
        for name, mod in STUDIES.items():
            print(f"  {name:<22} {mod.SUMMARY}")
        return 0
    if args.study is None:
        raise InputError("study", "a study name (landscape list) or a definition file (landscape run --help)", "none")
    if args.study.endswith(".toml") or Path(args.study).is_file():
        p = argparse.ArgumentParser(prog=f"landscape run {args.study}",
                                    description="run a study definition file (see landscape.sweep)")
        p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                       help="override an option (k=v or options.k=v) or a grid axis (grid.k=[v1, v2])")
        p.add_argument("--out", default=None, help="results file (default: the file's out, or runs/<stem>.nc)")
        p.add_argument("--quick", action="store_true", help="the study's --quick, and only the grid's first point")
        p.add_argument("--no-progress", action="store_true", help="hide progress bars")
        _engine_options(p)
        opts = p.parse_args(args.options)
        defn = sweep.Definition.from_file(args.study, opts.set)
        out = opts.out if opts.out is not None else (defn.out or f"runs/{Path(args.study).stem}.nc")
        quick = opts.quick
    else:
        mod = get(args.study)
        p = _study_parser(args.study)
        _engine_options(p)
        opts = p.parse_args(args.options)
        defn = sweep.Definition(args.study, {f.name: getattr(opts, f.name) for f in dataclasses.fields(mod.Config)})
        defn.check()
        out, quick = opts.out, False
        if opts.quick:
            _quick_notes(mod, defn.configs()[0][1], args.options)
    if opts.workers < 0:
        raise InputError("workers", "a number of worker processes >= 0", opts.workers)
    if opts.threads < 0:
        raise InputError("threads", "threads per case >= 1 (or 0: as the process has them)", opts.threads)
    if opts.workers and opts.scheduler:
        raise InputError("scheduler", "either --workers or --scheduler, not both", opts.scheduler)
    ds = sweep.run(defn, out, workers=opts.workers, scheduler=opts.scheduler, threads=opts.threads, quick=quick,
                   progress=not opts.no_progress)
    mod = defn.module
    if sweep.SWEEP_DIM in ds.dims:
        for i in range(ds.sizes[sweep.SWEEP_DIM]):
            point = {k[len(sweep.SWEEP_DIM) + 1:]: ds[k].values[i].item() for k in ds.coords
                     if k.startswith(sweep.SWEEP_DIM + "_")}
            print(f"[{sweep.SWEEP_DIM} {i}: " + ", ".join(f"{k}={v}" for k, v in point.items()) + "]")
            print(mod.summary(sweep.point(ds, i)))
    else:
        print(mod.summary(ds))
    print(f"wrote {out}")
    return 0


def cmd_plot(args: argparse.Namespace) -> int:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from . import io
    from .studies import get
    path = Path(args.file)
    if not path.exists():
        raise InputError("file", "an existing results file", str(path))
    try:
        ds = io.load(path)
    except Exception as exc:  # noqa: BLE001 - any unreadable file is a bad argument
        raise InputError("file", "a landscape results file (netCDF)", f"{path} ({type(exc).__name__})") from None
    study = ds.attrs.get("study")
    from .studies import STUDIES
    if study not in STUDIES:
        raise InputError("file", "a landscape results file (attrs['study'] naming a study)", str(path))
    from .sweep import SWEEP_DIM, point
    if SWEEP_DIM in ds.dims:                # a sweep: the figure of one grid point
        if not 0 <= args.point < ds.sizes[SWEEP_DIM]:
            raise InputError("point", f"a grid point index in [0, {ds.sizes[SWEEP_DIM]})", args.point)
        ds = point(ds, args.point)
    fig_out = path.with_suffix(".png") if args.out is None else args.out
    from matplotlib.backend_bases import FigureCanvasBase
    formats = tuple("." + f for f in FigureCanvasBase.get_supported_filetypes())
    fig_out = output_file("out", fig_out, formats)
    try:
        ax = get(study).plot(ds)
    except (AttributeError, KeyError, ValueError, IndexError, TypeError) as exc:
        plt.close("all")
        raise InputError("file", f"a results file of study {study} (the variables its figure draws)",
                         f"{path} ({type(exc).__name__}: {exc})") from None
    fig = (ax if hasattr(ax, "figure") else ax.flat[0]).figure     # one axes, or an array of panels
    if fig.get_layout_engine() is None:                              # a figure that lays itself out keeps its engine
        fig.tight_layout()
    from .io import atomic_path
    with atomic_path(fig_out) as tmp:
        fig.savefig(tmp, dpi=130, format=fig_out.suffix[1:].lower())
    plt.close(fig)
    print(f"wrote {fig_out}")
    return 0


def training_sampler(cfg) -> object | None:
    """The training data of ``--data``: ``None`` for natural patches (the trainer's own), exact
    samples of the GMM fitted to 16x16 natural crops for ``gmm`` (colour crops ``(3, 16, 16)`` with ``color``; built
    here, in the interface layer, so the networks' layer never imports the priors)."""
    if cfg.data != "gmm":
        return None
    import torch

    from .estimators.train_unrolled import gmm_shape
    from .priors import fit_natural_gmm
    gmm = fit_natural_gmm(gmm_shape(getattr(cfg, "color", False)), 10, 10000, progress=False)
    return lambda batch, rng: gmm.sample(batch, rng=rng, dtype=torch.float32)


def cmd_train(args: argparse.Namespace) -> int:
    from .denoisers.train import TrainConfig, train
    from .resources import weights_path
    fields = {f.name for f in dataclasses.fields(TrainConfig)}
    cfg = TrainConfig(**{k: v for k, v in vars(args).items() if k in fields}).validate()
    out = output_file("out", weights_path(args.name) if args.out is None else args.out, (".pt",))
    path = train(cfg, out, sampler=training_sampler(cfg), progress=not args.no_progress)
    print(f"wrote {path}")
    return 0


def cmd_train_unrolled(args: argparse.Namespace) -> int:
    from .estimators.train_unrolled import RECIPES, UnrolledTrainConfig, train_unrolled
    from .resources import weights_path
    fields = {f.name for f in dataclasses.fields(UnrolledTrainConfig)}
    given = {k: v for k, v in vars(args).items() if k in fields}          # only the options typed
    cfg = UnrolledTrainConfig(**{**RECIPES.get(args.name, {}), **given}).validate()
    out = output_file("out", weights_path(args.name) if args.out is None else args.out, (".pt",))
    path = train_unrolled(cfg, out, sampler=training_sampler(cfg), progress=not args.no_progress)
    print(f"wrote {path}")
    return 0


def _version() -> str:
    import torch

    from .io import _version as package_version
    return f"landscape {package_version()} (torch {torch.__version__}, python {sys.version.split()[0]})"


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="landscape", description=__doc__.splitlines()[0])
    parser.add_argument("--version", action="version", version=_version())
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("list", help="the studies and their options").set_defaults(func=cmd_list)
    p = sub.add_parser("run", help="run a study: landscape run STUDY [--option value ...] --out FILE, or a "
                       "definition: landscape run studies/NAME.toml [--set k=v] [--workers N]",
                       add_help=False)
    p.add_argument("study", nargs="?", help="a study name (landscape list) or a definition file (studies/*.toml)")
    p.add_argument("options", nargs=argparse.REMAINDER, help="the study's options (landscape run STUDY --help)")
    p.add_argument("-h", "--help", action="store_true", help="show this help (and the studies) and exit")
    p.set_defaults(func=cmd_run, run_parser=p)
    p = sub.add_parser("plot", help="draw a results file's figure (PNG by default)")
    p.add_argument("file")
    p.add_argument("--out", default=None, help="figure path; the format is its extension: .png, .pdf, .svg, ... "
                   "(default: FILE with .png)")
    p.add_argument("--point", type=int, default=0, help="for a sweep: the grid point to draw (default: 0)")
    p.set_defaults(func=cmd_plot)
    from .denoisers.train import TrainConfig
    p = sub.add_parser("train-prior", help="train a denoiser prior (seeded; resumes from its checkpoint)")
    p.add_argument("name", help="weights name, e.g. denoiser-gray (written to landscape/denoisers/weights/)")
    p.add_argument("--out", default=None, help="weights path (default: the package's weights folder)")
    p.add_argument("--no-progress", action="store_true")
    for f in dataclasses.fields(TrainConfig):
        if isinstance(f.default, bool):
            p.add_argument("--" + f.name.replace("_", "-"), action="store_true", help=f.metadata.get("help", ""))
            continue
        p.add_argument("--" + f.name.replace("_", "-"), type=type(f.default), default=f.default,
                       help=f.metadata.get("help", "") + " (default: %(default)s)")
    p.set_defaults(func=cmd_train)
    from .estimators.train_unrolled import RECIPES, UnrolledTrainConfig
    p = sub.add_parser("train-unrolled", help="train a blind unrolled network (seeded; resumes from its checkpoint)",
                       description="A shipped name (" + ", ".join(RECIPES) + ") starts from its recipe; "
                       "options given here override it.")
    p.add_argument("name", help="weights name, e.g. unrolled-gaussian (written to landscape/denoisers/weights/)")
    p.add_argument("--out", default=None, help="weights path (default: the package's weights folder)")
    p.add_argument("--no-progress", action="store_true")
    for f in dataclasses.fields(UnrolledTrainConfig):
        if isinstance(f.default, bool):
            p.add_argument("--" + f.name.replace("_", "-"), action="store_true", default=argparse.SUPPRESS,
                           help=f.metadata.get("help", ""))
            continue
        p.add_argument("--" + f.name.replace("_", "-"), type=type(f.default), default=argparse.SUPPRESS,
                       help=f.metadata.get("help", "") + f" (default: {f.default})")
    p.set_defaults(func=cmd_train_unrolled)
    args = parser.parse_args(argv)
    try:
        return args.func(args)
    except InputError as exc:
        print(f"landscape: error: {exc}", file=sys.stderr)
        return 2
    except RunFailed as exc:
        print(f"landscape: failed: {exc}", file=sys.stderr)
        return 1
    except BrokenPipeError:               # output piped into e.g. `head`
        sys.stderr.close()
        return 0
    except KeyboardInterrupt:
        print("landscape: interrupted; no results file written (finished cases are kept beside it: "
              "a rerun resumes)", file=sys.stderr)
        return 130


if __name__ == "__main__":
    raise SystemExit(main())
