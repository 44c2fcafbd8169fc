"""A Definitions object runs with the settings it was built from, whole, not the environment's."""

from pathlib import Path

import pytest
from dagster import AssetKey
from pydantic import ValidationError

from orchestration.assets.transform import mart_asset_key
from orchestration.definitions import build_definitions
from orchestration.resources import VidrecResource
from vidrec.marts import Mart
from vidrec.settings import VidrecSettings


def test_every_setting_reaches_the_assets_even_when_the_environment_says_otherwise(tmp_path: Path, monkeypatch):
    given = VidrecSettings(home=tmp_path, sim_users=123, holdout_days=5,
                           policy_item_to_item_sources=("co_watch", "ann"),
                           VIDREC_MLFLOW_TRACKING_URI=f"sqlite:///{tmp_path / 'elsewhere.db'}")
    monkeypatch.setenv("VIDREC_SIM_USERS", "999")
    monkeypatch.setenv("VIDREC_HOLDOUT_DAYS", "1")

    resource = build_definitions(given).resources["vidrec"]
    seen_by_assets = resource.settings()

    assert seen_by_assets.model_dump(exclude={"api_key"}) == given.model_dump(exclude={"api_key"})
    assert seen_by_assets.mlflow_tracking_uri == f"sqlite:///{tmp_path / 'elsewhere.db'}"


def test_secrets_stay_out_of_the_resource_config(tmp_path: Path):
    resource = VidrecResource.from_settings(VidrecSettings(home=tmp_path, api_key="s3cret"))

    assert "s3cret" not in resource.settings_json
    assert "api_key" not in resource.settings_json


def test_a_resource_given_only_a_home_reads_the_rest_from_the_environment(tmp_path: Path, monkeypatch):
    monkeypatch.setenv("VIDREC_SIM_USERS", "77")

    assert VidrecResource(home=str(tmp_path)).settings().sim_users == 77


def test_python_assets_name_their_dbt_upstreams_by_dagster_dbt_s_keys():
    assert mart_asset_key(Mart.VIDEO_CATALOG) == AssetKey("video_catalog")


def test_duckdb_memory_limit_must_be_a_size(tmp_path: Path):
    with pytest.raises(ValidationError, match="duckdb_memory_limit"):
        VidrecSettings(home=tmp_path, duckdb_memory_limit="lots")
    assert VidrecSettings(home=tmp_path, duckdb_memory_limit="512MB").duckdb_memory_limit == "512MB"
