"""A backfill of a range of days through the CLI, as docs/operations.md tells an operator to run it:
`python -m orchestration.refresh` registers the days, then one `dagster asset materialize
--partition-range` run re-validates exactly those days."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from dagster import AssetKey, DagsterInstance

from orchestration.partitions import RAW_DAYS
from tests.orchestration.quarantine_data import write_tiny_raw_log

pytestmark = pytest.mark.e2e  # two CLI processes that load every definition (~30 s each)
PROJECT_ROOT = Path(__file__).resolve().parents[2]
HAND_MADE_DAYS = ["2026-01-01", "2026-01-02", "2026-01-03", "2026-01-04", "2026-01-05", "2026-01-06"]


def _run(command: list[str], environment: dict[str, str]) -> subprocess.CompletedProcess:
    done = subprocess.run(command, env=environment, cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, f"{command} exited {done.returncode}:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
    return done


def test_a_range_of_days_is_backfilled_in_one_cli_run(tmp_path):
    settings = write_tiny_raw_log(tmp_path)
    environment = {**os.environ, "VIDREC_HOME": str(settings.home), "DAGSTER_HOME": str(settings.dagster_home),
                   "VIDREC_QUARANTINE_SEVERITY": "warn"}
    (settings.dagster_home / "dagster.yaml").write_text("{}\n")

    prepared = _run([sys.executable, "-m", "orchestration.refresh"], environment)
    backfill = _run([str(Path(sys.executable).parent / "dagster"), "asset", "materialize",
                     "-m", "orchestration.definitions", "--select", "group:raw,group:validated",
                     "--partition-range", "2026-01-02...2026-01-03"], environment)

    assert json.loads(prepared.stdout.strip().splitlines()[-1]) == {
        "dagster/asset_partition_range_start": HAND_MADE_DAYS[0],
        "dagster/asset_partition_range_end": HAND_MADE_DAYS[-1]}
    assert "RUN_SUCCESS" in backfill.stdout + backfill.stderr
    validated_days = sorted(path.name for path in (settings.validated_dir / "watches").glob("day=*"))
    assert validated_days == ["day=2026-01-02", "day=2026-01-03"]
    instance = DagsterInstance.from_config(str(settings.dagster_home))
    try:
        assert instance.get_dynamic_partitions(RAW_DAYS.name) == HAND_MADE_DAYS
        materialized = instance.get_materialized_partitions(AssetKey(["validated", "watches"]))
        assert materialized == {"2026-01-02", "2026-01-03"}
        assert len(instance.get_runs()) == 1  # one run for the whole range
    finally:
        instance.dispose()
