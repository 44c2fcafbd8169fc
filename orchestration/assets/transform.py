"""Transform layer: every dbt model is an asset and every dbt test an asset check (dagster-dbt).

dbt runs `build` (models and their tests in DAG order), so a failing test stops the models
downstream of it inside dbt, and the failed step stops the Python assets downstream in Dagster.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from dagster import AssetExecutionContext
from dagster_dbt import DagsterDbtTranslator, DbtCliResource, DbtProject, dbt_assets

from orchestration.resources import DBT_PROJECT_DIR, VidrecResource

TRANSFORM_GROUP = "transform"

vidrec_dbt_project = DbtProject(project_dir=DBT_PROJECT_DIR, profiles_dir=DBT_PROJECT_DIR)
if not vidrec_dbt_project.manifest_path.exists():
    # `dagster dev` prepares the manifest itself; headless runs and tests parse once here.
    vidrec_dbt_project.preparer.prepare(vidrec_dbt_project)


class VidrecDbtTranslator(DagsterDbtTranslator):
    def get_group_name(self, dbt_resource_props: Mapping[str, Any]) -> str | None:
        if dbt_resource_props["resource_type"] == "source":
            return None
        return TRANSFORM_GROUP


@dbt_assets(manifest=vidrec_dbt_project.manifest_path, dagster_dbt_translator=VidrecDbtTranslator())
def dbt_warehouse(context: AssetExecutionContext, dbt: DbtCliResource, vidrec: VidrecResource):
    """Staging views, intermediate tables and the Parquet marts, built and tested by dbt."""
    settings = vidrec.settings()
    dbt_vars = {
        "raw_dir": str(settings.raw_dir),
        "marts_dir": str(settings.marts_dir),
        "holdout_days": settings.holdout_days,
        "history_length": settings.history_length,
        "max_examples_per_user": settings.max_examples_per_user,
    }
    yield from dbt.cli(["build", "--vars", json.dumps(dbt_vars)], context=context).stream()
