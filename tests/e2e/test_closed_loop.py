"""A tiny closed loop end to end, as a user runs it: `vidrec pipeline`, then `vidrec simulate-loop`
for 3 days and 2 arms, with the real services over HTTP and the pipeline retraining in between.

Every request's features are logged (sample share 1), so the second in-loop retrain's served-skew
gate judges every request served right after the first one: a service feeding the ranker features
older than its clock (cached before the retrain) fails the loop."""

from __future__ import annotations

import os
import shutil
import sqlite3
import subprocess
import sys
from contextlib import closing
from pathlib import Path

import duckdb
import numpy as np
import pandas as pd
import pytest
from dagster import AssetKey, DagsterInstance, DagsterRunStatus, RunsFilter
from dagster_dbt import get_asset_key_for_model
from mlflow import MlflowClient

from feature_repo.store import feature_store
from orchestration.assets.features import materialize_online_store, ranking_frame, ranking_frame_path
from orchestration.assets.transform import dbt_warehouse
from orchestration.closed_loop.arms import assign_arms
from orchestration.definitions import build_definitions
from orchestration.model_runs import registration
from tests.e2e.conftest import PROJECT_ROOT, TINY_DATA
from vidrec.marts import Mart, mart_path
from vidrec.settings import VidrecSettings

VIDREC = str(Path(sys.executable).parent / "vidrec")
ARMS = ("more_exploration", "no_exploration")
DAYS = 3


@pytest.fixture(scope="module")
def loop_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[VidrecSettings, Path, subprocess.CompletedProcess]:
    home = tmp_path_factory.mktemp("vidrec_closed_loop_home")
    environment = {**os.environ, **TINY_DATA, "VIDREC_HOME": str(home), "VIDREC_SERVED_FEATURES_SAMPLE_SHARE": "1"}
    pipeline = subprocess.run([VIDREC, "pipeline"], env=environment, cwd=PROJECT_ROOT, capture_output=True, text=True)
    assert pipeline.returncode == 0, pipeline.stderr[-3000:]
    out = home / "experiment"
    loop = subprocess.run(
        [VIDREC, "simulate-loop", "--days", str(DAYS), *(part for arm in ARMS for part in ("--policy", arm)),
         "--out", str(out)], env=environment, cwd=PROJECT_ROOT, capture_output=True, text=True)
    return VidrecSettings(home=home), out, loop


def test_the_loop_runs_both_arms_on_both_days_and_writes_its_report(loop_run):
    _, out, loop = loop_run
    assert loop.returncode == 0, loop.stderr[-3000:]
    served = pd.read_parquet(out / "served.parquet")
    assert set(served.groupby(["arm", "day"]).groups) == {(arm, day) for arm in ARMS for day in range(DAYS)}
    report = (out / "report.md").read_text()
    assert all(arm in report for arm in ARMS)
    assert all((out / path).exists() for path in ("daily_metrics.csv", "offline_vs_online.csv", "shadows.parquet"))


def test_each_user_is_served_by_the_arm_their_hash_assigns(loop_run):
    _, out, _ = loop_run
    served = pd.read_parquet(out / "served.parquet")
    users = served.drop_duplicates("user_id")
    assert (users["arm"].to_numpy() == assign_arms(users["user_id"].to_numpy(), list(ARMS), "closed-loop")).all()
    assert not served.loc[served["arm"] == "no_exploration", "explored"].any()
    assert served.loc[served["arm"] == "more_exploration", "explored"].any()


def test_the_retrain_moves_the_clock_a_day_and_the_log_holds_what_was_served_and_watched(loop_run):
    settings, out, _ = loop_run
    served = pd.read_parquet(out / "served.parquet")
    clocks = served.groupby("day")["request_time"].unique()
    assert [len(times) for times in clocks] == [1] * DAYS
    assert all(clocks[day + 1][0] - clocks[day][0] == np.timedelta64(1, "D") for day in range(DAYS - 1))
    raw = settings.raw_dir
    logged = duckdb.sql(f"select request_id, count(*) as rows from read_parquet('{raw}/impressions/*/*.parquet') "
                        f"where impression_time >= '{clocks[0][0]}' group by request_id").df()
    per_request = served.groupby("request_id").size()
    assert logged.set_index("request_id")["rows"].sort_index().equals(per_request.sort_index())  # no shadow logged
    watched = duckdb.sql(f"select count(*) from read_parquet('{raw}/watches/*/*.parquet') "
                         f"where watch_time >= '{clocks[0][0]}'").fetchall()[0][0]
    assert watched == served["clicked"].sum()


def test_offline_estimates_sit_beside_each_arms_online_value_and_the_run_is_in_mlflow(loop_run):
    settings, out, _ = loop_run
    estimates = pd.read_csv(out / "offline_vs_online.csv")
    assert set(zip(estimates["arm"], estimates["logged_arm"], strict=True)) == {ARMS, ARMS[::-1]}
    assert len(estimates) == 2 * 4  # IPS, SNIPS, DM, DR per direction
    # (DM's interval can be a point: its position-only reward model gives every full list one total)
    assert (estimates["low"] <= estimates["estimate"] + 1e-9).all()
    assert (estimates["estimate"] <= estimates["high"] + 1e-9).all()
    client = MlflowClient(settings.mlflow_tracking_uri)
    runs = client.search_runs([client.get_experiment_by_name("closed_loop").experiment_id],
                              filter_string=f"attributes.run_name = '{out.name}'")
    assert len(runs) == 1
    history = client.get_metric_history(runs[0].info.run_id, "arm.no_exploration.watch_seconds_per_user")
    assert sorted(metric.step for metric in history) == list(range(DAYS))
    assert runs[0].info.artifact_uri.startswith(settings.mlflow_artifact_location)  # in the home, not the cwd


def test_in_loop_retrains_start_from_the_champions_and_judge_them_on_the_same_holdout(loop_run):
    settings, _, loop = loop_run
    assert loop.returncode == 0, loop.stderr[-3000:]
    for asset in ("ranking_model", "candidate_generator"):
        record = registration(settings, AssetKey(asset))
        assert record["warm_start"].startswith("champion v"), record["warm_start"]
        assert record["champion_rescored_version"] == record["warm_start"].removeprefix("champion v")
        assert 0 < record["champion_rescored_metric"] <= 1


def test_in_loop_retrains_join_only_the_new_days_rows_and_the_frame_equals_a_whole_join(loop_run, tmp_path):
    settings, _, loop = loop_run
    assert loop.returncode == 0, loop.stderr[-3000:]
    instance = DagsterInstance.from_config(str(settings.dagster_home))
    try:
        last = instance.get_latest_materialization_event(AssetKey("ranking_training_frame")).asset_materialization
    finally:
        instance.dispose()
    assert last.metadata["rows_reused"].value > 0 and last.metadata["rows_joined"].value > 0
    examples = pd.read_parquet(mart_path(settings.marts_dir, Mart.RANKING_TRAINING_EXAMPLES))

    whole, _ = ranking_frame(feature_store(settings), examples, settings.ranking_negative_sample_rate)

    whole.to_parquet(tmp_path / "whole.parquet", index=False)  # list features come back as arrays, as stored
    pd.testing.assert_frame_equal(pd.read_parquet(ranking_frame_path(settings)),
                                  pd.read_parquet(tmp_path / "whole.parquet"), check_dtype=False)


def test_in_loop_retrains_build_the_new_days_incrementally_and_the_online_store_equals_a_whole_load(
        loop_run, tmp_path):
    settings, _, loop = loop_run
    assert loop.returncode == 0, loop.stderr[-3000:]
    instance = DagsterInstance.from_config(str(settings.dagster_home))
    try:
        online = instance.get_latest_materialization_event(AssetKey("online_feature_store")).asset_materialization
        states = instance.get_latest_materialization_event(
            get_asset_key_for_model([dbt_warehouse], "int_engagement_states")).asset_materialization
    finally:
        instance.dispose()
    assert online.metadata["load"].value == "new days only", online.metadata["load_why"].value
    assert states.metadata["incremental_build"].value == "incremental", states.metadata["incremental_why"].value
    (tmp_path / "feast").mkdir()
    for name in ("registry.db", "online_store.db"):  # the same views, and their tables emptied below
        shutil.copy(settings.feast_dir / name, tmp_path / "feast" / name)
    with closing(sqlite3.connect(tmp_path / "feast" / "online_store.db")) as connection, connection:
        for table in _online_rows(tmp_path / "feast" / "online_store.db"):
            connection.execute(f"delete from {table}")
    whole_store = feature_store(VidrecSettings(home=tmp_path))

    materialize_online_store(settings, whole_store)

    loaded_in_the_loop = _online_rows(settings.feast_dir / "online_store.db")
    assert _online_rows(tmp_path / "feast" / "online_store.db") == loaded_in_the_loop
    materialize_online_store(settings, whole_store, since=pd.Timestamp(online.metadata["event_time_start"].value))
    assert _online_rows(tmp_path / "feast" / "online_store.db") == loaded_in_the_loop  # a re-run changes nothing


def _online_rows(database: Path) -> dict[str, list[tuple]]:
    """Every feature value of a SQLite online store, per table (write times left out)."""
    with closing(sqlite3.connect(database)) as connection:
        tables = [name for (name,) in connection.execute("select name from sqlite_master where type = 'table'")]
        return {table: connection.execute(f"select entity_key, feature_name, value, event_ts from {table} "
                                          "order by entity_key, feature_name").fetchall() for table in tables}


def test_an_experiment_launched_through_dagster_shows_its_report_and_plots_as_metadata(loop_run):
    """The UI's way in: the `run_closed_loop_experiment` job with launchpad config, on the home the
    loop left: two days, so its retrain runs `refresh_everything` inside the experiment's own run."""
    settings, _, loop = loop_run
    assert loop.returncode == 0, loop.stderr[-3000:]
    config = {"days": 2, "policies": ["popularity_only", "full_funnel"]}
    with pytest.MonkeyPatch.context() as patch, DagsterInstance.ephemeral() as instance:
        for key, value in {**TINY_DATA, "VIDREC_HOME": str(settings.home)}.items():
            patch.setenv(key, value)
        job = build_definitions(VidrecSettings()).resolve_job_def("run_closed_loop_experiment")
        result = job.execute_in_process(
            instance=instance, run_config={"ops": {"run_closed_loop": {"config": config}}})
        retrains = instance.get_runs(filters=RunsFilter(job_name="refresh_everything"))
    assert result.success
    assert [run.status for run in retrains] == [DagsterRunStatus.SUCCESS]
    metadata = result.asset_materializations_for_node("run_closed_loop")[0].metadata
    report = metadata["report"].value
    assert "# Closed-loop experiment: popularity_only vs full_funnel" in report
    assert report.count("](data:image/png;base64,") >= 5 and "](plots/" not in report
    client = MlflowClient(settings.mlflow_tracking_uri)
    assert client.get_run(metadata["mlflow_run_id"].value).info.status == "FINISHED"
    low, high = (float(bound) for bound in metadata["difference_95_interval"].value.strip("[]").split(","))
    estimate = metadata["watch_seconds_per_user_day (popularity_only − full_funnel)"].value
    assert low <= estimate <= high
