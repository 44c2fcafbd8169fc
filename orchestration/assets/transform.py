"""Transform layer: every dbt model is an asset and every dbt test an asset check (dagster-dbt).

dbt runs `build` (models and their tests in DAG order), so a failing test stops the models
downstream of it inside dbt, and the failed step stops the Python assets downstream in Dagster.
"""


import json
import os
from collections.abc import Mapping
from typing import Any

from dagster import AssetExecutionContext, AssetKey
from dagster_dbt import DagsterDbtTranslator, DbtCliResource, DbtProject, dbt_assets, get_asset_key_for_model
from dagster_dbt.dbt_project import using_dagster_dev

from orchestration.dbt_manifest import manifest_is_stale, parse_dbt_project, require_fresh_manifest
from orchestration.resources import DBT_PROJECT_DIR, VidrecResource, dbt_vars
from vidrec.marts import Mart

TRANSFORM_GROUP = "transform"

vidrec_dbt_project = DbtProject(project_dir=DBT_PROJECT_DIR, profiles_dir=DBT_PROJECT_DIR)


if using_dagster_dev():
    # dagster-dbt's convention for `dagster dev`: re-parse on a code reload so SQL edits show up;
    # only when the SQL is newer than the manifest, since every process that loads this code
    # (webserver, daemon, each run and its step processes) passes here. Everywhere else the
    # manifest is prepared before the code loads (orchestration/dbt_manifest.py).
    if manifest_is_stale():
        parse_dbt_project()
else:
    require_fresh_manifest()


class VidrecDbtTranslator(DagsterDbtTranslator):
    def get_group_name(self, dbt_resource_props: Mapping[str, Any]) -> str | None:
        if dbt_resource_props["resource_type"] == "source":
            return None
        return TRANSFORM_GROUP


@dbt_assets(manifest=vidrec_dbt_project.manifest_path, dagster_dbt_translator=VidrecDbtTranslator())
def dbt_warehouse(context: AssetExecutionContext, dbt: DbtCliResource, vidrec: VidrecResource):
    """Staging views, intermediate tables and the Parquet marts, built and tested by dbt."""
    settings = vidrec.settings()
    # profiles.yml reads the warehouse path and DuckDB's memory limit from the environment, which
    # the dbt subprocess inherits.
    os.environ["VIDREC_WAREHOUSE_PATH"] = str(settings.warehouse_path)
    os.environ["VIDREC_DUCKDB_MEMORY_LIMIT"] = settings.duckdb_memory_limit
    yield from dbt.cli(["build", "--vars", json.dumps(dbt_vars(settings))], context=context).stream()


def mart_asset_key(mart: Mart) -> AssetKey:
    """The asset key dagster-dbt gives `mart`'s model: Python assets name their dbt upstreams
    through this, never by a hand-written key."""
    return get_asset_key_for_model([dbt_warehouse], Mart(mart).value)
