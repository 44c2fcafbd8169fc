"""A backfill of a range of days launched the way the Dagster UI launches it: `vidrec ui` (the
webserver and the daemon, as docs/operations.md tells an operator to start them), then the UI's
own GraphQL mutation, `launchPartitionBackfill`, over the day-partitioned assets (the raw and
validated event tables) and two days. The daemon must turn the request into one run over the
whole range (the assets' single-run backfill policy) that re-validates exactly those days.

The catalogue (users, videos) is materialized first, as a deployment has it: an
event is judged against it. A UI backfill whose selection also holds the unpartitioned catalogue
assets runs in waves instead (the catalogue, then each layer of days: three runs here, seen while
writing this test), which docs/operations.md says. The CLI's path is
tests/orchestration/test_backfills.py."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import psutil
import pytest
from dagster import AssetKey, DagsterInstance, load_assets_from_modules, materialize

from orchestration.assets import raw, validated
from orchestration.definitions import build_definitions
from orchestration.partitions import PARTITIONED_TAG
from orchestration.refresh import prepare_refresh
from orchestration.resources import build_resources
from tests.orchestration.quarantine_data import write_tiny_raw_log
from tests.served_service import free_port
from vidrec.settings import VidrecSettings

PROJECT_ROOT = Path(__file__).resolve().parents[2]
VIDREC = str(Path(sys.executable).parent / "vidrec")
BACKFILLED_DAYS = ["2026-01-02", "2026-01-03"]
CATALOG_ASSETS = ("raw/users", "raw/videos", "validated/users", "validated/videos")
STARTUP_SECONDS = 180
BACKFILL_SECONDS = 300

LAUNCH = """
mutation Launch($params: LaunchBackfillParams!) {
  launchPartitionBackfill(backfillParams: $params) {
    __typename
    ... on LaunchBackfillSuccess { backfillId }
    ... on PythonError { message }
    ... on PartitionKeysNotFoundError { message }
  }
}"""
STATUS = """
query Status($id: String!) {
  partitionBackfillOrError(backfillId: $id) {
    __typename
    ... on PartitionBackfill { status }
    ... on PythonError { message }
  }
}"""


def _graphql(url: str, query: str, variables: dict) -> dict:
    answer = httpx.post(url, json={"query": query, "variables": variables}, timeout=60)
    answer.raise_for_status()
    body = answer.json()
    assert "errors" not in body, body["errors"]
    return body["data"]


def _day_partitioned_keys(settings: VidrecSettings) -> list[list[str]]:
    """What the UI's asset list filtered by the tag `partitions=raw_days` shows."""
    specs = build_definitions(settings).resolve_all_asset_specs()
    return [spec.key.path for spec in specs if PARTITIONED_TAG.items() <= spec.tags.items()]


@pytest.fixture
def ui(tmp_path: Path):
    """`vidrec ui` on a hand-made raw log whose days are registered (as the sensor registers them)
    and whose catalogue is validated."""
    settings = write_tiny_raw_log(tmp_path).model_copy(update={"quarantine_severity": "warn"})
    port = free_port()
    environment = {**os.environ, "VIDREC_HOME": str(settings.home), "DAGSTER_HOME": str(settings.dagster_home),
                   "VIDREC_QUARANTINE_SEVERITY": "warn", "VIDREC_UI_PORT": str(port)}
    (settings.dagster_home / "dagster.yaml").write_text("{}\n")
    instance = DagsterInstance.from_config(str(settings.dagster_home))
    try:  # what `vidrec pipeline` leaves: the days registered, the catalogue validated
        catalogue = materialize(load_assets_from_modules([raw, validated]), selection=list(CATALOG_ASSETS),
                                instance=instance, resources=build_resources(settings),
                                tags=prepare_refresh(settings, instance))
    finally:
        instance.dispose()
    assert catalogue.success
    log = (tmp_path / "ui.log").open("w")
    process = subprocess.Popen([VIDREC, "ui"], env=environment, cwd=PROJECT_ROOT, stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}/graphql"
    try:
        deadline = time.monotonic() + STARTUP_SECONDS
        while True:
            assert process.poll() is None, (tmp_path / "ui.log").read_text()[-3000:]
            try:
                if httpx.post(url, json={"query": "{ version }"}, timeout=5).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert time.monotonic() < deadline, f"the UI did not answer in {STARTUP_SECONDS} s"
            time.sleep(1)
        yield settings, url, tmp_path / "ui.log"
    finally:
        started = psutil.Process(process.pid).children(recursive=True) if process.poll() is None else []
        process.send_signal(signal.SIGTERM)  # `kill`, as a service manager stops it
        try:
            process.wait(timeout=60)
        finally:
            _, alive = psutil.wait_procs(started, timeout=30)
            for survivor in alive:
                with contextlib.suppress(psutil.NoSuchProcess):
                    survivor.kill()
            log.close()
        assert not alive, f"`vidrec ui` left {len(alive)} of its {len(started)} processes running after SIGTERM"


def test_a_backfill_launched_as_the_ui_launches_it_revalidates_exactly_its_days_in_one_run(ui):
    settings, url, log = ui
    params = {"assetSelection": [{"path": path} for path in _day_partitioned_keys(settings)],
              "partitionNames": BACKFILLED_DAYS}

    launched = _graphql(url, LAUNCH, {"params": params})["launchPartitionBackfill"]

    assert launched["__typename"] == "LaunchBackfillSuccess", launched
    deadline, status = time.monotonic() + BACKFILL_SECONDS, None
    while time.monotonic() < deadline:
        backfill = _graphql(url, STATUS, {"id": launched["backfillId"]})["partitionBackfillOrError"]
        status = backfill.get("status")
        if status not in {"REQUESTED", None}:
            break
        time.sleep(2)
    assert status in {"COMPLETED", "COMPLETED_SUCCESS"}, f"backfill {status}:\n{log.read_text()[-3000:]}"
    validated_days = sorted(path.name for path in (settings.validated_dir / "watches").glob("day=*"))
    assert validated_days == [f"day={day}" for day in BACKFILLED_DAYS]
    instance = DagsterInstance.from_config(str(settings.dagster_home))
    try:
        assert instance.get_materialized_partitions(AssetKey(["validated", "watches"])) == set(BACKFILLED_DAYS)
        backfill_runs = [run for run in instance.get_runs() if "dagster/backfill" in run.tags]
        assert len(backfill_runs) == 1  # one run for the whole range
        assert (backfill_runs[0].tags["dagster/asset_partition_range_start"],
                backfill_runs[0].tags["dagster/asset_partition_range_end"]) == tuple(BACKFILLED_DAYS)
    finally:
        instance.dispose()
