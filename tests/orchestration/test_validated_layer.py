"""The validated layer: a corrupted raw partition is quarantined with counts and reasons while its
clean rows are validated; a re-run changes nothing; severity block stops what is downstream, warn
does not; the sensor asks for the days that changed."""

from __future__ import annotations

import pyarrow.parquet as pq
import pytest
from dagster import AssetKey, DagsterInstance, RunRequest, build_sensor_context

from orchestration.assets.validated import QUARANTINE_CHECK
from orchestration.partitions import RAW_DAYS
from orchestration.resources import VidrecResource
from orchestration.sensors import raw_logs_changed
from serving.events.intake import EventIntake
from tests.orchestration.quarantine_data import (
    CORRUPTED_DAY,
    EXPECTED_WATCH_REASONS,
    corrupt_users,
    corrupt_watches,
    materialize_layers,
    partition_metadata,
    snapshot,
    write_tiny_raw_log,
)
from tests.serving.events.events_data import parsed, session_events


@pytest.fixture
def warn_severity(monkeypatch):
    # the hand-made log's two logged duplicates alone are more than the default 1% of its rows
    monkeypatch.setenv("VIDREC_QUARANTINE_SEVERITY", "warn")


def _check(result, table_name: str):
    (evaluation,) = [evaluation for evaluation in result.get_asset_check_evaluations()
                     if evaluation.asset_key == AssetKey(["validated", table_name])
                     and evaluation.check_name == QUARANTINE_CHECK]
    return evaluation


def test_a_corrupted_partition_is_quarantined_with_every_reason_and_its_clean_rows_validated(
        tmp_path, warn_severity):
    settings = write_tiny_raw_log(tmp_path)
    corrupt_watches(settings)
    raw_before = snapshot(settings.raw_dir)

    result = materialize_layers(settings)

    assert result.success
    quarantined = pq.read_table(settings.quarantine_dir / "watches" / f"day={CORRUPTED_DAY}" / "part-0.parquet")
    assert {(row["source_file"].rsplit("/", 1)[1], row["source_row"]): row["reasons"]
            for row in quarantined.to_pylist()} == EXPECTED_WATCH_REASONS
    assert quarantined.column("quarantined_at").null_count == 0
    clean = pq.read_table(settings.validated_dir / "watches" / f"day={CORRUPTED_DAY}" / "part-0.parquet")
    assert sorted(zip(clean.column("user_id").to_pylist(), clean.column("video_id").to_pylist(), strict=True)) == [
        (1, 11), (2, 10), (2, 12), (2, 13), (3, 11)]
    assert clean.column("watch_seconds").to_pylist()[-1] == 45.0  # "45", cast to the schema's double

    metadata = partition_metadata(result, "watches", CORRUPTED_DAY)
    assert (metadata["rows_in"], metadata["clean_rows"], metadata["quarantined_rows"]) == (10, 5, 5)
    assert {key: value for key, value in metadata.items() if key.startswith("reason ")} == {
        "reason duplicate_key": 1, "reason future:watch_time": 1, "reason outside_day:watch_time": 1,
        "reason type:watch_seconds": 1, "reason unknown:user_id": 1, "reason unknown:video_id": 1}
    assert "type:watch_seconds" in metadata["examples"] and "forty" in metadata["examples"]
    assert not _check(result, "watches").passed  # 6 of 19 watches quarantined: over 1%, a warning
    assert snapshot(settings.raw_dir) == raw_before  # raw stays the untouched system of record


def test_re_running_on_unchanged_raw_data_changes_no_file_and_no_count(tmp_path, warn_severity):
    settings = write_tiny_raw_log(tmp_path)
    corrupt_watches(settings)
    instance = DagsterInstance.ephemeral()
    first = materialize_layers(settings, instance)
    files = snapshot(settings.validated_dir, settings.quarantine_dir)

    second = materialize_layers(settings, instance)

    assert first.success and second.success
    assert snapshot(settings.validated_dir, settings.quarantine_dir) == files
    before, after = (partition_metadata(run, "watches", CORRUPTED_DAY) for run in (first, second))
    assert before["rewritten_days"] == 1 and after["rewritten_days"] == 0
    assert {key: value for key, value in after.items() if key != "rewritten_days"} == {
        key: value for key, value in before.items() if key != "rewritten_days"}


def test_block_severity_stops_what_is_downstream_when_too_many_rows_are_quarantined(tmp_path, monkeypatch):
    monkeypatch.setenv("VIDREC_QUARANTINE_SEVERITY", "block")
    monkeypatch.setenv("VIDREC_QUARANTINE_TOLERATED_SHARE", "0.1")
    settings = write_tiny_raw_log(tmp_path)
    corrupt_users(settings)

    result = materialize_layers(settings)

    users_check = _check(result, "users")
    assert not result.success
    assert (users_check.passed, users_check.severity.value) == (False, "ERROR")
    assert users_check.metadata["quarantined_share"].value == pytest.approx(0.2)
    # the validated users were written (four clean rows); the events after them never ran
    assert pq.read_table(settings.validated_dir / "users").num_rows == 4
    assert not any(event.asset_key == AssetKey(["validated", "watches"])
                   for event in result.get_asset_materialization_events())


def test_warn_severity_lets_the_clean_rows_flow_on(tmp_path, monkeypatch):
    monkeypatch.setenv("VIDREC_QUARANTINE_SEVERITY", "warn")
    monkeypatch.setenv("VIDREC_QUARANTINE_TOLERATED_SHARE", "0.1")
    settings = write_tiny_raw_log(tmp_path)
    corrupt_users(settings)

    result = materialize_layers(settings)

    users_check = _check(result, "users")
    assert result.success
    assert (users_check.passed, users_check.severity.value) == (False, "WARN")
    assert pq.read_table(settings.validated_dir / "watches").num_rows == 12  # 13 hand-made, one a repeat


def test_a_share_within_the_tolerance_passes_under_block(tmp_path, monkeypatch):
    monkeypatch.setenv("VIDREC_QUARANTINE_TOLERATED_SHARE", "0.5")
    settings = write_tiny_raw_log(tmp_path)
    corrupt_watches(settings)

    result = materialize_layers(settings)

    assert result.success and _check(result, "watches").passed


def test_the_sensor_asks_to_re_validate_only_the_days_that_changed(tmp_path, warn_severity, monkeypatch):
    monkeypatch.setenv("VIDREC_EVENTS_MIN_FOR_RUN", "10")
    settings = write_tiny_raw_log(tmp_path)
    instance = DagsterInstance.ephemeral()
    assert materialize_layers(settings, instance).success
    resources = {"vidrec": VidrecResource(home=str(tmp_path))}
    first = build_sensor_context(instance=instance, resources=resources)
    raw_logs_changed(first)  # records what the run above validated

    intake = EventIntake(settings.raw_dir)
    try:  # 18 events of one session, all on one of the log's days
        receipt = intake.append(parsed(session_events(0, day="2026-01-03")))
    finally:
        intake.close()
    request = raw_logs_changed(build_sensor_context(instance=instance, cursor=first.cursor, resources=resources))

    assert receipt.accepted == 18
    assert isinstance(request, RunRequest)
    assert (request.tags["dagster/asset_partition_range_start"],
            request.tags["dagster/asset_partition_range_end"]) == ("2026-01-03", "2026-01-03")
    assert "2026-01-03" in instance.get_dynamic_partitions(RAW_DAYS.name)
