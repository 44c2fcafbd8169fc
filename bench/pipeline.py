"""Wall time and peak memory of `vidrec pipeline` on the default data, in a fresh VIDREC_HOME, with
each Dagster step's time and peak memory (bench/pipeline_profile.py says how they are read).

    .venv/bin/python bench/pipeline.py [--home DIR] [--keep] [--job refresh_everything_parallel]

Peak memory is the largest resident set of the whole process tree (the pipeline runs dbt and
other tools as child processes), sampled every 0.2 s. The run's log is kept as
<home>/bench-pipeline.log while the home is.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
from pathlib import Path

from pipeline_profile import run_pipeline, step_table


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--home", type=Path, help="VIDREC_HOME to use (default: a new temporary directory)")
    parser.add_argument("--keep", action="store_true", help="keep the temporary home afterwards")
    parser.add_argument("--job", help="the Dagster job to run (default: refresh_everything; "
                        "refresh_everything_parallel uses the multiprocess executor)")
    args = parser.parse_args()
    home = args.home or Path(tempfile.mkdtemp(prefix="vidrec-bench-"))
    home.mkdir(parents=True, exist_ok=True)
    profile = run_pipeline(home, home / "bench-pipeline.log", job=args.job)
    print("| measure | value |")
    print("|---|---|")
    print(f"| exit code | {profile.returncode} |")
    print(f"| wall time | {profile.wall_seconds:.1f} s |")
    print(f"| peak RSS (process tree) | {profile.peak_rss_bytes / 2**20:.0f} MiB |")
    print(f"| VIDREC_HOME | {home} |")
    print()
    print(step_table(profile))
    if profile.returncode != 0:
        print(f"\nthe pipeline failed; its log: {profile.log_path}", file=sys.stderr)
    if args.home is None and not args.keep:
        shutil.rmtree(home, ignore_errors=True)
    sys.exit(profile.returncode)


if __name__ == "__main__":
    main()
