"""Scheduled retrains and the new-raw-data sensor."""

from __future__ import annotations

from dagster import DagsterInstance, RunRequest, SkipReason, build_sensor_context

from orchestration.definitions import build_definitions
from orchestration.resources import VidrecResource
from orchestration.sensors import raw_logs_changed
from vidrec.rawlog import RawManifest
from vidrec.settings import VidrecSettings


def _evaluate(tmp_path, cursor):
    context = build_sensor_context(
        instance=DagsterInstance.ephemeral(), cursor=cursor, resources={"vidrec": VidrecResource(home=str(tmp_path))}
    )
    return raw_logs_changed(context), context.cursor


def _write_manifest(tmp_path, rows: int) -> None:
    raw_dir = tmp_path / "raw"
    raw_dir.mkdir(exist_ok=True)
    RawManifest(source="simulator", parameters={}, row_counts={"watches": rows}, notes=[]).write(raw_dir)


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


def test_definitions_schedule_a_daily_retrain_of_everything(tmp_path):
    definitions = build_definitions(VidrecSettings(home=tmp_path))
    schedule = definitions.resolve_schedule_def("daily_retrain")
    assert schedule.cron_schedule == "0 3 * * *"
    assert schedule.job_name == "refresh_everything"
    job = definitions.resolve_job_def("refresh_everything")
    keys = {key.to_user_string() for key in job.asset_layer.executable_asset_keys}
    assert {"raw/watches", "ranking_training_examples", "online_feature_store", "candidate_generator",
            "champion_models", "recommendation_bento"} <= keys
