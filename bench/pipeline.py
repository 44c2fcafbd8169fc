"""Wall time and peak memory of `vidrec pipeline` on the default data, in a fresh VIDREC_HOME.

    .venv/bin/python bench/pipeline.py [--home DIR] [--keep]

Peak memory is the largest resident set of the whole process tree (the pipeline runs dbt and
other tools as child processes), sampled every 0.2 s.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import psutil


def tree_rss_bytes(process: psutil.Process) -> int:
    total = 0
    for member in [process, *process.children(recursive=True)]:
        try:
            total += member.memory_info().rss
        except psutil.Error:
            pass
    return total


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--home", type=Path, help="VIDREC_HOME to use (default: a new temporary directory)")
    parser.add_argument("--keep", action="store_true", help="keep the temporary home afterwards")
    args = parser.parse_args()
    home = args.home or Path(tempfile.mkdtemp(prefix="vidrec-bench-"))
    environment = {**os.environ, "VIDREC_HOME": str(home)}
    command = [str(Path(sys.executable).parent / "vidrec"), "pipeline"]
    started = time.perf_counter()
    process = subprocess.Popen(command, env=environment, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    watcher = psutil.Process(process.pid)
    peak = 0
    while process.poll() is None:
        peak = max(peak, tree_rss_bytes(watcher))
        time.sleep(0.2)
    elapsed = time.perf_counter() - started
    print("| measure | value |")
    print("|---|---|")
    print(f"| exit code | {process.returncode} |")
    print(f"| wall time | {elapsed:.1f} s |")
    print(f"| peak RSS (process tree) | {peak / 2**20:.0f} MiB |")
    print(f"| VIDREC_HOME | {home} |")
    if args.home is None and not args.keep:
        shutil.rmtree(home, ignore_errors=True)
    sys.exit(process.returncode)


if __name__ == "__main__":
    main()
