"""The distributed profile end to end, in Spark local mode: VIDREC_PROFILE=distributed alone makes
dbt-spark build the marts and Feast's Spark offline store join the training frames, and the same
models train and register as in the default profile.

Opt-in: set VIDREC_SPARK_TESTS=1 (and install the `distributed` extra). Two Spark JVMs start (dbt's
in its subprocess, Feast's in this one), so the run takes minutes; marked `spark`, outside the fast
tier. Spark stays on loopback (SPARK_LOCAL_IP, spark.driver.host).
"""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
from collections.abc import Iterator

import numpy as np
import pandas as pd
import pytest
from dagster import AssetSelection, DagsterInstance, materialize
from mlflow.tracking import MlflowClient

from feature_repo.store import build_repo_config, feature_store
from models.registry import SERVED_ARTIFACTS, champion_version
from orchestration.assets import deployment, features, models, raw, transform, validated
from orchestration.assets.features import FEATURES_GROUP, ranking_frame_path, retrieval_frame_path
from orchestration.assets.raw import RAW_GROUP
from orchestration.assets.transform import TRANSFORM_GROUP
from orchestration.assets.validated import VALIDATED_GROUP
from orchestration.definitions import build_definitions
from orchestration.refresh import prepare_refresh
from orchestration.resources import build_resources
from tests.e2e.conftest import TINY_DATA
from vidrec.settings import VidrecSettings

pytestmark = [
    pytest.mark.spark,
    pytest.mark.skipif(
        os.environ.get("VIDREC_SPARK_TESTS") != "1",
        reason="opt-in: set VIDREC_SPARK_TESTS=1 to run the distributed profile on Spark (minutes)",
    ),
    pytest.mark.skipif(
        importlib.util.find_spec("pyspark") is None,
        reason="the distributed profile needs the `distributed` extra: pip install -e '.[distributed]'",
    ),
]

# Every mart, with the columns that identify its rows.
MART_KEYS = {
    "video_catalog": ["video_id"],
    "user_features_daily": ["user_id", "event_timestamp"],
    "video_features_daily": ["video_id", "event_timestamp"],
    "user_watch_history": ["user_id", "event_timestamp"],
    "user_engagement_history": ["request_id"],
    "retrieval_training_examples": ["user_id", "label_video_id", "label_time"],
    "ranking_training_examples": ["request_id", "video_id"],
    "watch_interactions": ["user_id", "video_id"],
}
# JSON text whose spelling differs between engines (Spark writes 1.7672256015E9 for DuckDB's
# 1767225601.5): compared parsed.
JSON_COLUMNS = {"watch_log", "impression_log"}
# Each frame's rows, identified (the order of a frame is not part of its contract).
FRAME_KEYS = {"ranking": ["request_id", "video_id"], "retrieval": ["user_id", "label_time", "label_video_id"]}


@pytest.fixture(scope="module")
def distributed_run(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[VidrecSettings, object]]:
    """Every asset and check of `refresh_everything`, run with VIDREC_PROFILE=distributed."""
    home = tmp_path_factory.mktemp("vidrec_distributed")
    environment = {**TINY_DATA, "VIDREC_HOME": str(home), "VIDREC_PROFILE": "distributed",
                   "SPARK_LOCAL_IP": "127.0.0.1"}
    with pytest.MonkeyPatch.context() as patch:  # the environment is restored afterwards
        for key, value in environment.items():
            patch.setenv(key, value)
        settings = VidrecSettings()
        instance = DagsterInstance.ephemeral()
        result = build_definitions(settings).resolve_job_def("refresh_everything").execute_in_process(
            instance=instance, tags=prepare_refresh(settings, instance), raise_on_error=False
        )
        yield settings, result
    _stop_spark()


@pytest.fixture(scope="module")
def default_run(distributed_run, tmp_path_factory: pytest.TempPathFactory) -> VidrecSettings:
    """The default profile's marts and training frames (dbt-duckdb, Feast's default offline
    store), built from a copy of the same raw logs."""
    home = tmp_path_factory.mktemp("vidrec_default")
    shutil.copytree(distributed_run[0].raw_dir, home / "raw")
    with pytest.MonkeyPatch.context() as patch:
        for key, value in {**TINY_DATA, "VIDREC_HOME": str(home), "VIDREC_PROFILE": "default"}.items():
            patch.setenv(key, value)
        settings = VidrecSettings()
        settings.ensure_dirs()
        # every dbt model (their tests span marts) and the Feast assets, over the kept raw logs
        instance = DagsterInstance.ephemeral()
        result = materialize(
            [*_asset_definitions()],
            selection=AssetSelection.groups(RAW_GROUP, VALIDATED_GROUP, TRANSFORM_GROUP, FEATURES_GROUP),
            resources=build_resources(settings),
            instance=instance,
            tags=prepare_refresh(settings, instance),
        )
    assert result.success
    return settings


def test_the_whole_pipeline_succeeds_on_spark(distributed_run) -> None:
    settings, result = distributed_run
    failures = [event.step_key for event in result.all_events if event.is_step_failure]
    assert result.success, f"failed steps: {failures}"
    checks = result.get_asset_check_evaluations()
    assert checks
    assert [evaluation.check_name for evaluation in checks if not evaluation.passed] == []
    assert settings.profile == "distributed"


def test_marts_are_written_by_spark_where_the_feature_sources_read(distributed_run) -> None:
    settings, _ = distributed_run
    for mart in MART_KEYS:
        location = settings.marts_dir / f"{mart}.parquet"
        # dbt-spark writes a table's directory of part files; dbt-duckdb would write one file
        assert location.is_dir(), location
        assert (location / "_SUCCESS").exists(), location
        assert len(pd.read_parquet(location)) > 0, mart
    # the staging and intermediate tables live in Spark's warehouse, and no DuckDB file was made
    assert (settings.warehouse_path / "vidrec.db" / "int_event_window").is_dir()
    assert not (settings.home / "warehouse.duckdb").exists()


def test_training_frames_come_from_feasts_spark_offline_store(distributed_run) -> None:
    from feast.infra.offline_stores.contrib.spark_offline_store.spark_source import SparkSource
    from pyspark.sql import SparkSession

    settings, _ = distributed_run
    assert build_repo_config(settings).offline_store.type == "spark"
    batch_sources = {view.batch_source.name: view.batch_source for view in feature_store(settings).list_feature_views()}
    assert sorted(batch_sources) == ["user_engagement_history", "user_features_daily", "user_watch_history",
                                     "video_features_daily"]
    assert all(isinstance(source, SparkSource) for source in batch_sources.values()), batch_sources
    # the Spark session Feast started in this process for the joins, on loopback in local mode
    spark = SparkSession.getActiveSession()
    assert spark is not None
    assert spark.conf.get("spark.master") == settings.spark_master == "local[2]"
    assert spark.conf.get("spark.driver.host") == "127.0.0.1"
    assert len(pd.read_parquet(ranking_frame_path(settings))) > 0
    assert len(pd.read_parquet(retrieval_frame_path(settings))) > 0


def test_models_are_registered_with_champions(distributed_run) -> None:
    import mlflow

    settings, result = distributed_run
    mlflow.set_tracking_uri(settings.mlflow_tracking_uri)
    client = MlflowClient()
    for artifact in SERVED_ARTIFACTS.values():
        version = champion_version(client, artifact)
        assert version is not None, artifact.name
        run = client.get_run(client.get_model_version(artifact.name, version).run_id)
        assert run.data.tags["dagster_run_id"] == result.run_id


@pytest.mark.parametrize("mart", list(MART_KEYS))
def test_marts_equal_the_default_profiles(distributed_run, default_run, mart: str) -> None:
    on_spark = _comparable(pd.read_parquet(distributed_run[0].marts_dir / f"{mart}.parquet"), MART_KEYS[mart])
    by_default = _comparable(pd.read_parquet(default_run.marts_dir / f"{mart}.parquet"), MART_KEYS[mart])

    assert list(on_spark.columns) == list(by_default.columns)
    assert dict(on_spark.dtypes) == dict(by_default.dtypes)
    assert len(on_spark) == len(by_default)
    for column in by_default.columns:
        if column in JSON_COLUMNS:
            assert list(on_spark[column].map(json.loads)) == list(by_default[column].map(json.loads)), column
        else:
            _assert_same_values(on_spark[column], by_default[column], column)


@pytest.mark.parametrize("frame", ["ranking", "retrieval"])
def test_training_frames_equal_the_default_profiles(distributed_run, default_run, frame: str) -> None:
    path_of = {"ranking": ranking_frame_path, "retrieval": retrieval_frame_path}[frame]
    on_spark = _comparable(pd.read_parquet(path_of(distributed_run[0])), FRAME_KEYS[frame])
    by_default = _comparable(pd.read_parquet(path_of(default_run)), FRAME_KEYS[frame])

    assert list(on_spark.columns) == list(by_default.columns)
    assert len(on_spark) == len(by_default)
    for column in by_default.columns:
        _assert_same_values(on_spark[column], by_default[column], column)


def _asset_definitions():
    from dagster import load_assets_from_modules

    return load_assets_from_modules([raw, validated, transform, features, models, deployment])


def _comparable(frame: pd.DataFrame, keys: list[str]) -> pd.DataFrame:
    return frame.sort_values(keys, kind="stable").reset_index(drop=True)


def _assert_same_values(left: pd.Series, right: pd.Series, column: str) -> None:
    if pd.api.types.is_datetime64_any_dtype(right):
        assert pd.to_datetime(left, utc=True).equals(pd.to_datetime(right, utc=True)), column
    elif pd.api.types.is_float_dtype(right):
        np.testing.assert_allclose(left.to_numpy(float), right.to_numpy(float), rtol=1e-9, equal_nan=True,
                                   err_msg=column)
    else:
        assert [_plain(value) for value in left] == [_plain(value) for value in right], column


def _plain(value: object) -> object:
    """Lists and arrays as lists, missing values as None: how a value prints, not how it is held."""
    if isinstance(value, np.ndarray | list | tuple):
        return [_plain(item) for item in value]
    if value is None or (isinstance(value, float) and np.isnan(value)) or value is pd.NA:
        return None
    return value.item() if isinstance(value, np.generic) else value


def _stop_spark() -> None:
    from pyspark.sql import SparkSession

    spark = SparkSession.getActiveSession()
    if spark is not None:
        spark.stop()


def test_default_profile_home_is_untouched_by_spark(default_run) -> None:
    assert (default_run.home / "warehouse.duckdb").is_file()
    assert (default_run.marts_dir / "video_catalog.parquet").is_file()
    assert not (default_run.home / "spark_warehouse").exists()
