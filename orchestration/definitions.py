"""The composition root: one Definitions object with every asset, check, job, schedule, sensor.

Resources come from `VidrecSettings` (environment variables with embedded defaults), so
`dagster dev -m orchestration.definitions` and `vidrec pipeline` act on the same state.
"""

from dagster import Definitions, load_assets_from_modules

from orchestration.assets import deployment, features, models, raw, served_skew, transform, validated
from orchestration.assets.experiments import closed_loop_experiment, run_closed_loop_experiment
from orchestration.checks import all_checks
from orchestration.housekeeping import daily_served_feature_pruning, prune_served_feature_log
from orchestration.jobs import refresh_everything, refresh_everything_parallel
from orchestration.resources import build_resources
from orchestration.schedules import daily_retrain
from orchestration.sensors import raw_logs_changed
from vidrec.settings import VidrecSettings


def build_definitions(settings: VidrecSettings | None = None) -> Definitions:
    return Definitions(
        assets=[*load_assets_from_modules([raw, validated, transform, features, models, served_skew, deployment]),
                closed_loop_experiment],
        asset_checks=all_checks,
        jobs=[refresh_everything, refresh_everything_parallel, run_closed_loop_experiment, prune_served_feature_log],
        schedules=[daily_retrain, daily_served_feature_pruning],
        sensors=[raw_logs_changed],
        resources=build_resources(settings or VidrecSettings()),
    )


defs = build_definitions()
