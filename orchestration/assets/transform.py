"""Transform layer: every dbt model is an asset and every dbt test an asset check (dagster-dbt).

dbt runs `build` (models and their tests in DAG order), so a failing test stops the models
downstream of it inside dbt, and the failed step stops the Python assets downstream in Dagster.
"""


import json
import os
from collections.abc import Mapping
from typing import Any

from dagster import AssetExecutionContext, AssetKey, Output
from dagster_dbt import DagsterDbtTranslator, DbtCliResource, DbtProject, dbt_assets, get_asset_key_for_model
from dagster_dbt.dbt_project import using_dagster_dev

from orchestration.dbt_manifest import manifest_is_stale, parse_dbt_project, require_fresh_manifest
from orchestration.incremental_dbt import forget_record, plan_build, record_path, write_record
from orchestration.incremental_frames import frame_inputs
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


# dbt's incremental models (orchestration/incremental_dbt.py says which rows a build recomputes)
INCREMENTAL_MODELS = ("int_engagement_states",)


@dbt_assets(manifest=vidrec_dbt_project.manifest_path, dagster_dbt_translator=VidrecDbtTranslator())
def dbt_warehouse(context: AssetExecutionContext, dbt: DbtCliResource, vidrec: VidrecResource):
    """Staging views, intermediate tables and the Parquet marts, built and tested by dbt; the
    incremental models recompute only the days whose validated data changed."""
    settings = vidrec.settings()
    # profiles.yml reads the warehouse path and DuckDB's memory limit from the environment, which
    # the dbt subprocess inherits.
    os.environ["VIDREC_WAREHOUSE_PATH"] = str(settings.warehouse_path)
    os.environ["VIDREC_DUCKDB_MEMORY_LIMIT"] = settings.duckdb_memory_limit
    inputs = frame_inputs(settings, dbt_vars(settings))
    build = plan_build(settings, inputs)
    incremental_keys = {get_asset_key_for_model([dbt_warehouse], model) for model in INCREMENTAL_MODELS}
    whole_project = set(context.selected_asset_keys) == set(context.assets_def.keys)
    if not whole_project and incremental_keys & set(context.selected_asset_keys):
        forget_record(record_path(settings))  # its upstream tables may be older than the validated layer
    context.log.info("dbt incremental models: %s from %s (%s)", build.kind, build.incremental_from or "the start",
                     build.why)
    build_metadata = {"incremental_build": build.kind,
                      "incremental_from": build.incremental_from or "", "incremental_why": build.why}
    incremental_outputs = {context.assets_def.get_output_name_for_asset_key(key) for key in incremental_keys}
    cli = dbt.cli(["build", *build.cli_args(), "--vars", json.dumps({**dbt_vars(settings), **build.dbt_vars()})],
                  context=context)
    for event in cli.stream():
        if isinstance(event, Output) and event.output_name in incremental_outputs:
            event = event.with_metadata({**event.metadata, **build_metadata})
        yield event
    if whole_project and settings.profile != "distributed":
        write_record(record_path(settings), inputs)
    elif settings.profile == "distributed":
        forget_record(record_path(settings))  # Spark built it: the DuckDB warehouse's model is as old as it was


def mart_asset_key(mart: Mart) -> AssetKey:
    """The asset key dagster-dbt gives `mart`'s model: Python assets name their dbt upstreams
    through this, never by a hand-written key."""
    return get_asset_key_for_model([dbt_warehouse], Mart(mart).value)
