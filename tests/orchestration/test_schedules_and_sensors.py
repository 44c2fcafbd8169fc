"""Scheduled retrains and the new-raw-data sensor."""

from __future__ import annotations

import json
import re
from datetime import datetime

import pandas as pd
import pytest
from dagster import (
    DagsterInstance,
    DagsterRunStatus,
    RunRequest,
    SkipReason,
    build_schedule_context,
    build_sensor_context,
    instance_for_test,
)
from pydantic import ValidationError

from orchestration.definitions import build_definitions
from orchestration.resources import VidrecResource
from orchestration.sensors import raw_logs_changed
from serving.events.intake import EventIntake
from tests.serving.events.events_data import parsed, served, session_events
from vidrec.rawlog import RawManifest, write_raw_table
from vidrec.schema import RAW_TABLES
from vidrec.settings import VidrecSettings


def _evaluate(tmp_path, cursor):
    context = build_sensor_context(
        instance=DagsterInstance.ephemeral(), cursor=cursor, resources={"vidrec": VidrecResource(home=str(tmp_path))}
    )
    return raw_logs_changed(context), context.cursor


def _write_manifest(tmp_path, rows: int) -> None:
    """A raw log as an import writes it: a table of `rows` subscriptions on one day, and its manifest."""
    raw_dir = tmp_path / "raw"
    raw_dir.mkdir(exist_ok=True)
    subscriptions = pd.DataFrame({"user_id": range(1, rows + 1), "creator_id": 7,
                                  "subscribed_time": pd.Timestamp("2026-01-02 10:00")})
    write_raw_table(RAW_TABLES["subscriptions"], subscriptions, raw_dir)
    RawManifest(source="simulator", parameters={}, row_counts={"subscriptions": rows}, notes=[]).write(raw_dir)


def test_sensor_skips_until_raw_logs_exist(tmp_path):
    result, cursor = _evaluate(tmp_path, None)
    assert isinstance(result, SkipReason) and cursor is None


def test_sensor_requests_a_refresh_only_when_the_raw_logs_change(tmp_path):
    _write_manifest(tmp_path, 10)
    first, cursor = _evaluate(tmp_path, None)
    assert isinstance(first, SkipReason)  # the pipeline that wrote these already ran

    unchanged, same_cursor = _evaluate(tmp_path, cursor)
    assert isinstance(unchanged, SkipReason) and same_cursor == cursor

    _write_manifest(tmp_path, 11)
    changed, new_cursor = _evaluate(tmp_path, cursor)
    assert isinstance(changed, RunRequest) and new_cursor != cursor
    assert changed.tags["dagster/asset_partition_range_start"] == "2026-01-02"  # the day to re-validate


def _append_events(tmp_path, sessions: range) -> None:
    """Events through the real intake, as POST /events appends them (the manifest is untouched)."""
    intake = EventIntake(tmp_path / "raw")
    try:
        for session in sessions:
            intake.append(parsed(session_events(session)))
    finally:
        intake.close()


def test_appended_events_start_a_refresh_once_enough_have_arrived(tmp_path, monkeypatch):
    monkeypatch.setenv("VIDREC_EVENTS_MIN_FOR_RUN", "30")
    _write_manifest(tmp_path, 10)
    _, cursor = _evaluate(tmp_path, None)

    _append_events(tmp_path, range(1))  # 18 events (a served list of 5 with clicks, watches, likes)
    few, cursor_after_few = _evaluate(tmp_path, cursor)
    assert isinstance(few, SkipReason) and "18 new events" in few.skip_message and cursor_after_few == cursor

    _append_events(tmp_path, range(1, 2))  # 36 since the last run
    enough, cursor_after_enough = _evaluate(tmp_path, cursor)
    assert isinstance(enough, RunRequest) and cursor_after_enough != cursor

    again, _ = _evaluate(tmp_path, cursor_after_enough)
    assert isinstance(again, SkipReason)  # those events are taken


def test_served_impressions_count_toward_a_refresh_like_client_events(tmp_path, monkeypatch):
    """The service's rows of what it served are impressions like a client's (one row per key, the
    same files): a refresh waits for as many new rows whoever logged them."""
    monkeypatch.setenv("VIDREC_EVENTS_MIN_FOR_RUN", "30")
    _write_manifest(tmp_path, 10)
    _, cursor = _evaluate(tmp_path, None)
    _append_events(tmp_path, range(1))  # 18 client events

    intake = EventIntake(tmp_path / "raw")
    try:
        intake.append_served([served("served-1", 2000 + slot, slot) for slot in range(12)])
    finally:
        intake.close()
    enough, _ = _evaluate(tmp_path, cursor)

    assert isinstance(enough, RunRequest)


def test_changes_wait_while_a_refresh_is_running(tmp_path):
    _write_manifest(tmp_path, 10)
    _, cursor = _evaluate(tmp_path, None)
    _write_manifest(tmp_path, 11)
    instance = DagsterInstance.ephemeral()
    definitions = build_definitions(VidrecSettings(home=tmp_path))
    job = definitions.resolve_job_def("refresh_everything")
    instance.create_run_for_job(job, status=DagsterRunStatus.STARTED)

    context = build_sensor_context(instance=instance, cursor=cursor,
                                   resources={"vidrec": VidrecResource(home=str(tmp_path))})
    waiting = raw_logs_changed(context)

    assert isinstance(waiting, SkipReason) and "a refresh is running" in waiting.skip_message
    assert context.cursor == cursor  # so the next evaluation after the run still sees the change


def test_a_cursor_from_before_events_were_tracked_still_reads(tmp_path):
    _write_manifest(tmp_path, 10)
    _, cursor = _evaluate(tmp_path, None)
    bare_fingerprint = json.loads(cursor)["manifest"]  # what the sensor stored before

    unchanged, _ = _evaluate(tmp_path, bare_fingerprint)

    assert isinstance(unchanged, SkipReason)


def test_definitions_schedule_a_daily_retrain_of_everything(tmp_path):
    definitions = build_definitions(VidrecSettings(home=tmp_path))
    schedule = definitions.resolve_schedule_def("daily_retrain")
    assert schedule.cron_schedule == "0 3 * * *"
    assert schedule.job_name == "refresh_everything"
    job = definitions.resolve_job_def("refresh_everything")
    keys = {key.to_user_string() for key in job.asset_layer.executable_asset_keys}
    assert {"raw/watches", "validated/watches", "ranking_training_examples", "online_feature_store",
            "candidate_generator", "champion_models", "recommendation_bento"} <= keys


def test_the_daily_retrain_re_validates_the_changed_days(tmp_path):
    _write_manifest(tmp_path, 3)
    definitions = build_definitions(VidrecSettings(home=tmp_path))
    resources = {"vidrec": VidrecResource(home=str(tmp_path))}
    # a schedule's context reopens its instance (closed with the context): one with a reference
    with instance_for_test() as instance, build_schedule_context(instance=instance, resources=resources) as context:
        request = definitions.resolve_schedule_def("daily_retrain").evaluate_tick(context).run_requests[0]

    assert (request.tags["dagster/asset_partition_range_start"],
            request.tags["dagster/asset_partition_range_end"]) == ("2026-01-02", "2026-01-02")


def test_the_daily_retrain_waits_for_a_first_pipeline_run(tmp_path):
    definitions = build_definitions(VidrecSettings(home=tmp_path))
    resources = {"vidrec": VidrecResource(home=str(tmp_path))}
    with instance_for_test() as instance, build_schedule_context(instance=instance, resources=resources) as context:
        result = definitions.resolve_schedule_def("daily_retrain").evaluate_tick(context)

    assert not result.run_requests and "vidrec pipeline" in result.skip_message


def test_a_retention_shorter_than_the_skew_window_is_refused_naming_both(tmp_path):
    with pytest.raises(ValidationError, match=re.escape("VIDREC_SERVED_FEATURES_RETENTION_DAYS (6) is shorter than "
                                                        "VIDREC_SERVED_SKEW_WINDOW_DAYS (6.5)")):
        VidrecSettings(home=tmp_path, served_features_retention_days=6, served_skew_window_days=6.5)
    assert VidrecSettings(home=tmp_path, served_features_retention_days=7,
                          served_skew_window_days=6.5).served_features_retention_days == 7


def test_the_daily_pruning_keeps_the_served_feature_log_to_the_settings_retention(tmp_path):
    from serving.served_log.feature_files import write_day_file

    settings = VidrecSettings(home=tmp_path, served_features_retention_days=10)
    for day in ("2026-03-01", "2026-03-05", "2026-03-20"):
        when = datetime.fromisoformat(day)
        write_day_file(settings.served_features_dir, when,
                       [{"request_id": day, "user_id": 1, "video_id": 2, "position": 0, "request_time": when,
                         "ranker_version": "1", "degraded": "", "watch_seconds_28d": 1.0}],
                       {"watch_seconds_28d": "numeric"})
    definitions = build_definitions(settings)
    schedule = definitions.resolve_schedule_def("daily_served_feature_pruning")
    assert (schedule.cron_schedule, schedule.job_name) == ("0 4 * * *", "prune_served_feature_log")

    with instance_for_test() as instance:
        result = definitions.resolve_job_def("prune_served_feature_log").execute_in_process(instance=instance)

    assert result.success
    assert sorted(path.name for path in settings.served_features_dir.iterdir()) == ["day=2026-03-20"]
    [output] = [event for event in result.all_node_events if event.event_type_value == "STEP_OUTPUT"]
    metadata = output.event_specific_data.metadata
    assert metadata["removed_days"].value == 2 and metadata["first_kept_day"].value == "2026-03-10"
