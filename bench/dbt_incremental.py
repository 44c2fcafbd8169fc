"""What the incremental dbt build saves after a new day of logs: a whole `dbt build --full-refresh`
against the build the orchestrator runs after one new day (`incremental_from` = that day), over the
same validated layer, alternating, in one process tree.

    .venv/bin/python bench/dbt_incremental.py --home /tmp/vh_bench --repeats 2

`--home` is a VIDREC_HOME whose validated layer exists (after `vidrec pipeline`). Each repeat:

* whole: a fresh warehouse, `dbt build --full-refresh` over every day;
* incremental: a warehouse built (untimed) over the days before the last day of impressions, then `dbt build` over
  every day with `incremental_from` = the last day, as `dbt_warehouse` runs it after a new day.

Both build every model and run every dbt test. Per build it reports the wall time and the model
times from dbt's run_results.json, and checks that the two builds' user_engagement_history marts
are equal (the bench fails otherwise). Nothing under `--home` is written.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd

PROJECT_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(PROJECT_ROOT))

from orchestration.dbt_manifest import DBT_PROJECT_DIR
from orchestration.partitions import PARTITIONED_TABLES, day_directories
from orchestration.resources import dbt_vars
from vidrec.settings import VidrecSettings

DBT = str(Path(sys.executable).parent / "dbt")
INCREMENTAL_MODEL = "int_engagement_states"
ENGAGEMENT_MART = "user_engagement_history"


def _without_last_day(validated: Path, into: Path) -> str:
    """A copy (hard links) of the validated layer as it stood before its last day of impressions
    (that day and later ones gone from every table: subscriptions may be stamped after the logs);
    that day."""
    last_day = max(day_directories(validated / "impressions"))
    shutil.copytree(validated, into, copy_function=os.link)
    for table in PARTITIONED_TABLES:
        for day, directory in day_directories(into / table).items():
            if day >= last_day:
                shutil.rmtree(directory)
    return last_day


def _dbt_build(work: Path, validated: Path, settings: VidrecSettings, extra: list[str], extra_vars: dict) -> dict:
    (work / "marts").mkdir(parents=True, exist_ok=True)
    variables = {**dbt_vars(settings), "validated_dir": str(validated), "marts_dir": str(work / "marts"),
                 **extra_vars}
    environment = {**os.environ, "VIDREC_WAREHOUSE_PATH": str(work / "warehouse.duckdb"),
                   "VIDREC_DUCKDB_MEMORY_LIMIT": settings.duckdb_memory_limit}
    started = time.perf_counter()
    done = subprocess.run([DBT, "build", *extra, "--project-dir", str(DBT_PROJECT_DIR), "--profiles-dir",
                           str(DBT_PROJECT_DIR), "--target-path", str(work / "target"), "--log-path",
                           str(work / "logs"), "--vars", json.dumps(variables)],
                          env=environment, capture_output=True, text=True)
    wall = time.perf_counter() - started
    if done.returncode != 0:
        raise SystemExit(f"dbt build failed in {work}:\n{done.stdout[-3000:]}")
    results = json.loads((work / "target" / "run_results.json").read_text())["results"]
    times = {result["unique_id"].split(".")[-1]: result["execution_time"] for result in results
             if result["unique_id"].startswith("model.")}
    return {"wall_s": wall, "model_s": sum(times.values()), "tests_s": sum(
        result["execution_time"] for result in results if result["unique_id"].startswith("test.")),
        INCREMENTAL_MODEL: times[INCREMENTAL_MODEL], ENGAGEMENT_MART: times[ENGAGEMENT_MART]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--home", type=Path, required=True, help="a VIDREC_HOME with a validated layer")
    parser.add_argument("--work", type=Path, default=Path("/tmp/vidrec_dbt_incremental"),
                        help="scratch directory (emptied first)")
    parser.add_argument("--repeats", type=int, default=2)
    args = parser.parse_args()
    settings = VidrecSettings(home=args.home.resolve())
    if not settings.validated_dir.is_dir():
        raise SystemExit(f"{settings.validated_dir} is missing: run `vidrec pipeline` with VIDREC_HOME={args.home}")
    shutil.rmtree(args.work, ignore_errors=True)
    args.work.mkdir(parents=True)
    last_day = _without_last_day(settings.validated_dir, args.work / "validated_before_last_day")
    print(f"validated layer {settings.validated_dir}; the new day: {last_day}; load average "
          f"{os.getloadavg()[0]:.2f}", flush=True)
    rows = []
    for repeat in range(args.repeats):
        order = ("whole", "incremental") if repeat % 2 == 0 else ("incremental", "whole")
        for mode in order:
            work = args.work / f"{mode}-{repeat}"
            if mode == "whole":
                measured = _dbt_build(work, settings.validated_dir, settings, ["--full-refresh"], {})
            else:
                _dbt_build(work, args.work / "validated_before_last_day", settings, ["--full-refresh"], {})
                measured = _dbt_build(work, settings.validated_dir, settings, [], {"incremental_from": last_day})
            rows.append({"repeat": repeat, "build": mode, **measured})
            print(json.dumps(rows[-1]), flush=True)
        whole = pd.read_parquet(args.work / f"whole-{repeat}" / "marts" / f"{ENGAGEMENT_MART}.parquet")
        incremental = pd.read_parquet(args.work / f"incremental-{repeat}" / "marts" / f"{ENGAGEMENT_MART}.parquet")
        pd.testing.assert_frame_equal(whole, incremental)
    table = pd.DataFrame(rows).groupby("build")[["wall_s", "model_s", "tests_s", INCREMENTAL_MODEL,
                                                   ENGAGEMENT_MART]].mean().round(2)
    print(f"\nmeans over {args.repeats} repeats (the marts of both builds equal):")
    print(table.to_markdown())
    print(f"\nincremental / whole wall: {table.at['incremental', 'wall_s'] / table.at['whole', 'wall_s']:.2f}")


if __name__ == "__main__":
    main()
