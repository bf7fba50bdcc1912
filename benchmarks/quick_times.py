"""Wall time of every study's ``--quick`` run and of the README's Python example, from one run on this
machine, so that every time the README and ``--help`` promise is measured by a command.

``python benchmarks/quick_times.py`` (run it on an idle machine; it prints the machine it ran on).
Each run is a fresh process (``landscape run STUDY --quick``: imports, fitted-prior cache as a user
has it, the study, the results file), one after the other. The floor a quick run cannot go below is
the process start and the imports (``landscape --version``), printed first.
"""

from __future__ import annotations

import argparse
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def timed(cmd: list[str], cwd: str) -> float:
    t = time.perf_counter()
    subprocess.run(cmd, cwd=cwd, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return time.perf_counter() - t


def main() -> None:
    from landscape.studies import STUDIES
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--studies", default=",".join(STUDIES), help="comma-separated (default: all)")
    p.add_argument("--example", action="store_true", help="also time docs/guide/example.py (the README's)")
    args = p.parse_args()
    print(f"machine: {platform.machine()}, {os.cpu_count()} cores, python {platform.python_version()}")
    with tempfile.TemporaryDirectory() as tmp:
        floor = timed([sys.executable, "-m", "landscape.cli", "--version"], tmp)
        print(f"{'floor (process start + imports)':<34} {floor:7.1f} s")
        for name in args.studies.split(","):
            t = timed([sys.executable, "-m", "landscape.cli", "run", name, "--quick", "--no-progress",
                       "--out", f"{name}.nc"], tmp)
            print(f"{'landscape run ' + name + ' --quick':<48} {t:7.1f} s")
        if args.example:
            t = timed([sys.executable, str(ROOT / "docs" / "guide" / "example.py")], tmp)
            print(f"{'python docs/guide/example.py':<48} {t:7.1f} s")


if __name__ == "__main__":
    main()
