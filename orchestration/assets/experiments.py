"""Experiments layer: a closed-loop A/B experiment launched from the Dagster UI.

The job `run_closed_loop_experiment` runs what `vidrec simulate-loop` runs
(orchestration/closed_loop/) with the launchpad's config, and records the asset
`closed_loop_experiment` with the report, its plots and the primary metric's interval as
metadata: the results sit in the UI beside the models they tested, as well as in MLflow. Its
in-loop retrains are runs of `refresh_everything` on the same instance, so they show in the UI too.

The asset is external (an AssetSpec that only this job reports), not a materializable asset: an
experiment takes minutes to hours and writes to the home's raw log, so neither "Materialize all",
`refresh_everything`, its schedule nor its sensor may start one.
"""

import base64
import os
import re
from pathlib import Path

from dagster import (
    AssetMaterialization,
    AssetSpec,
    Config,
    MetadataValue,
    OpExecutionContext,
    in_process_executor,
    job,
    op,
)
from pydantic import Field

from orchestration.assets.deployment import champion_models
from orchestration.closed_loop.experiment import default_out_dir, run_experiment, write_experiment
from orchestration.closed_loop.loop import LoopConfig
from orchestration.resources import VidrecResource

EXPERIMENTS_GROUP = "experiments"
_IMAGE = re.compile(r"!\[(?P<label>[^\]]*)\]\((?P<path>plots/[^)]+\.png)\)")


class ClosedLoopExperimentConfig(Config):
    """The launchpad's form: `vidrec simulate-loop`'s options."""

    days: int = Field(14, description="Simulated days to run.")
    policies: list[str] = Field(["full_funnel", "no_exploration"],
                                description="One arm per policy (orchestration/closed_loop/policies.py).")
    retrain_every: int = Field(1, description="Days between the pipeline's runs inside the loop.")
    seed: int = Field(0, description="The users' arrivals and responses.")
    salt: str = Field("closed-loop", description="Arm assignment hashes user ids with this.")
    list_length: int = Field(10, description="Videos each home request asks for.")
    warm_start: bool = Field(True, description="In-loop retrains start from the champions (incremental mode).")


closed_loop_experiment = AssetSpec(
    "closed_loop_experiment", group_name=EXPERIMENTS_GROUP, deps=[champion_models], kinds={"bentoml", "mlflow"},
    description="The last closed-loop A/B experiment run by the job run_closed_loop_experiment: its report, "
    "plots and the primary metric's interval.",
)


@op
def run_closed_loop(context: OpExecutionContext, config: ClosedLoopExperimentConfig, vidrec: VidrecResource) -> None:
    """A closed-loop A/B experiment on the simulated home: real services per arm, the simulator's
    users, daily retrains; recorded as `closed_loop_experiment` with the report as metadata."""
    settings = vidrec.settings()
    try:
        loop = LoopConfig(days=config.days, policies=tuple(config.policies), salt=config.salt, seed=config.seed,
                          retrain_every=config.retrain_every, list_length=config.list_length,
                          warm_start=config.warm_start)
    except ValueError as error:
        raise ValueError(f"run_closed_loop's config: {error}") from None
    environment = {**os.environ, "VIDREC_HOME": str(settings.home), "DAGSTER_HOME": str(settings.dagster_home),
                   "BENTOML_HOME": str(settings.home / "bentoml")}
    experiment = run_experiment(settings, loop, environment, instance=context.instance)
    written = write_experiment(settings, experiment, default_out_dir(settings))
    difference = written.difference
    compared = " − ".join(loop.policies[:2])
    context.log_event(AssetMaterialization(asset_key=closed_loop_experiment.key, metadata={
        "report": MetadataValue.md(report_with_inline_plots(written.report)),
        "report_path": MetadataValue.path(str(written.report)),
        "mlflow_run_id": written.run_id,
        f"watch_seconds_per_user_day ({compared})": difference.estimate,
        "difference_95_interval": f"[{difference.low:.4g}, {difference.high:.4g}]",
        "difference_excludes_zero": difference.excludes_zero,
        "days": loop.days,
        "wall_seconds": round(experiment.wall_seconds, 1),
        "retrain_seconds": round(sum(day.retrain_seconds for day in experiment.result.timings), 1),
    }))


@job(executor_def=in_process_executor,
     description="A closed-loop A/B experiment (vidrec simulate-loop) with the launchpad's config; records the "
     "asset closed_loop_experiment with the report, plots and the primary metric's interval as metadata.")
def run_closed_loop_experiment() -> None:
    run_closed_loop()


def report_with_inline_plots(report: Path) -> str:
    """The report's Markdown with each plot embedded as a data URI: the UI shows metadata text,
    not files beside it."""
    def inline(match: re.Match) -> str:
        png = (report.parent / match["path"]).read_bytes()
        return f"![{match['label']}](data:image/png;base64,{base64.b64encode(png).decode()})"

    return _IMAGE.sub(inline, report.read_text(encoding="utf-8"))
