"""One closed-loop experiment end to end: arm services up, the loop run, its measures and report.

`run_experiment` (through `main`, `python -m orchestration.closed_loop`) is what `vidrec
simulate-loop` runs. It lives with the orchestration because it drives every layer: the services,
the pipeline's runs on the home's Dagster instance, and the registry. The home must hold a
simulated raw log and champions (`vidrec pipeline` first): the loop continues that world's days.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import time
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path

import httpx
import mlflow
from dagster import DagsterInstance
from mlflow import MlflowClient

from feature_repo.store import feature_store
from models.evaluation.bootstrap import Interval
from models.evaluation.loop_metrics import arm_difference, daily_arm_metrics, per_user_primary
from orchestration.closed_loop.arm_services import arm_services
from orchestration.closed_loop.loop import ClosedLoop, LoopConfig, LoopResult
from orchestration.closed_loop.offline_vs_online import offline_vs_online
from orchestration.closed_loop.policies import policy_environment, served_alias
from orchestration.closed_loop.report import log_report, write_report
from serving.loading import champion_versions
from serving.request_clock import materialized_until
from vidrec.settings import VidrecSettings

logger = logging.getLogger(__name__)

# The services' settings for a loop: the data clock (the loop continues the simulated log), a
# 1-second champion poll and served-log flush, so a day's answers are in the raw log and a
# promotion is served within seconds rather than the production defaults' 5-10.
LOOP_SERVICE_SETTINGS = {
    "VIDREC_SERVING_CLOCK": "data",
    "VIDREC_MODEL_POLL_SECONDS": "1",
    "VIDREC_SERVED_LOG_FLUSH_SECONDS": "1",
}
RELOAD_WITHIN_SECONDS = 120
# the served-skew gate's checks (orchestration/assets/served_skew.py): a failure there blocks the
# promotion, and the loop goes on with the models it serves
GATE_STEP_PREFIX = "served_feature_comparison_"


@dataclass(frozen=True)
class Experiment:
    config: LoopConfig
    result: LoopResult
    wall_seconds: float


@dataclass(frozen=True)
class WrittenExperiment:
    report: Path  # report.md, its plots beside it under plots/
    run_id: str  # the MLflow run the report was logged to
    difference: Interval  # the primary metric, first arm − second arm


def run_experiment(settings: VidrecSettings, config: LoopConfig, environment: dict[str, str],
                   instance: DagsterInstance | None = None) -> Experiment:
    """Run `config` on the home of `settings`; `environment` is the processes' base environment
    (VIDREC_HOME, DAGSTER_HOME, BENTOML_HOME set, as `vidrec` commands make it). The in-loop
    pipeline runs go to `instance` (default: DAGSTER_HOME's)."""
    mlflow.set_tracking_uri(settings.mlflow_tracking_uri)
    try:
        champion_versions(MlflowClient())
    except LookupError as missing:
        raise ValueError(f"the home {settings.home} has no complete set of champions ({missing}): run "
                         "`vidrec pipeline` before a closed loop") from None
    started = time.perf_counter()
    store = feature_store(settings)
    environments = {name: {**environment, **LOOP_SERVICE_SETTINGS, **policy_environment(name)}
                    for name in config.policies}
    with arm_services(environments, settings.home / "closed_loop" / "service_logs") as urls:
        aliases = {name: served_alias(name, settings.serving_model_alias) for name in config.policies}
        retrain = _Retrain(settings.model_copy(update={"warm_start": config.warm_start}), urls, aliases,
                           instance or DagsterInstance.get())
        loop = ClosedLoop(settings, config, urls, clock=lambda: _clock(store), retrain=retrain)
        result = loop.run()
    return Experiment(config, result, time.perf_counter() - started)


def _clock(store) -> float:
    store.refresh_registry()
    until = materialized_until(store)
    if until is None:
        raise ValueError("the online store was never materialized: run `vidrec pipeline` before a closed loop")
    return until


class _Retrain:
    """The raw-log sensor's run, in process: the days whose logs changed, re-validated, and
    everything downstream rebuilt; then wait until every arm serves the champions it left."""

    def __init__(self, settings: VidrecSettings, urls: dict[str, str], aliases: dict[str, str],
                 instance: DagsterInstance):
        from orchestration.definitions import build_definitions  # Dagster's graph: only when a loop runs

        self.settings = settings
        self.urls = urls
        self.aliases = aliases  # arm → the registry alias its service follows
        self.definitions = build_definitions(settings)
        self.instance = instance

    def __call__(self) -> str:
        """Run the pipeline; what it did: "gate held" (the champion aliases moved where a model was
        better), or "blocked: <why>" when only the served-skew gate failed (as in
        production, the services keep their models and the loop goes on). Any other failure stops
        the loop."""
        from orchestration.refresh import changed_days_tags

        time.sleep(2 * float(LOOP_SERVICE_SETTINGS["VIDREC_SERVED_LOG_FLUSH_SECONDS"]))  # the answers' rows land
        days, tags = changed_days_tags(self.settings, self.instance)
        if not days:
            logger.warning("closed loop: no day of the raw log changed since the last run; nothing to retrain")
            return "nothing changed"
        job = self.definitions.resolve_job_def("refresh_everything")
        result = job.execute_in_process(instance=self.instance, tags=tags, raise_on_error=False)
        outcome = "gate held"
        if not result.success:
            failed = sorted({event.step_key for event in result.get_step_failure_events()})
            if not failed or not all(step.startswith(GATE_STEP_PREFIX) for step in failed):
                raise RuntimeError(f"the pipeline run inside the closed loop failed at {failed}; its run "
                                   f"{result.run_id} is in the Dagster UI "
                                   f"(DAGSTER_HOME={os.environ.get('DAGSTER_HOME')})")
            outcome = f"blocked: {', '.join(step.removeprefix(GATE_STEP_PREFIX) for step in failed)} failed"
            logger.warning("closed loop: the served-skew gate blocked promotion (%s); run %s", outcome, result.run_id)
        self._wait_for_reload()
        return outcome

    def _wait_for_reload(self) -> None:
        client = MlflowClient()
        expected = {arm: champion_versions(client, self.aliases[arm]) for arm in self.urls}
        deadline = time.monotonic() + RELOAD_WITHIN_SECONDS
        pending = dict(self.urls)
        while pending and time.monotonic() < deadline:
            for arm, url in list(pending.items()):
                # /similar reports the versions too, and is not logged as served: no probe in the raw log
                answer = httpx.post(f"{url}/similar", json={"video_id": 1, "k": 1}, timeout=30)
                if answer.status_code == 200 and answer.json()["model_versions"] == expected[arm]:
                    del pending[arm]
            time.sleep(0.5)
        if pending:
            still = {arm: expected[arm] for arm in pending}
            raise RuntimeError(f"arms {sorted(pending)} still serve other models than {still} "
                               f"{RELOAD_WITHIN_SECONDS} s after the retrain")


def config_summary(experiment: Experiment) -> dict:
    return {**asdict(experiment.config), "wall_seconds": round(experiment.wall_seconds, 1)}


def main(argv: list[str] | None = None) -> int:
    """`vidrec simulate-loop`'s work, in a process of its own (the CLI imports no layer above vidrec/)."""
    parser = argparse.ArgumentParser(prog="python -m orchestration.closed_loop", description=__doc__.splitlines()[0])
    parser.add_argument("--days", type=int, required=True)
    parser.add_argument("--policy", dest="policies", action="append", required=True)
    parser.add_argument("--retrain-every", type=int, default=1)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--salt", default="closed-loop")
    parser.add_argument("--list-length", type=int, default=10)
    parser.add_argument("--out", type=Path, default=None)
    parser.add_argument("--cold-retrains", action="store_true",
                        help="train the in-loop retrains' models from scratch instead of from their champions")
    arguments = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    settings = VidrecSettings()
    try:
        config = LoopConfig(days=arguments.days, policies=tuple(arguments.policies), salt=arguments.salt,
                            seed=arguments.seed, retrain_every=arguments.retrain_every,
                            list_length=arguments.list_length, warm_start=not arguments.cold_retrains)
        experiment = run_experiment(settings, config, dict(os.environ))
    except ValueError as error:
        sys.stderr.write(f"error: {error}\n")
        return 2
    out_dir = arguments.out or default_out_dir(settings)
    written = write_experiment(settings, experiment, out_dir)
    sys.stdout.write(f"report: {written.report}\nMLflow run: {written.run_id}\n")
    return 0


def default_out_dir(settings: VidrecSettings) -> Path:
    """Where an experiment's report goes unless told: VIDREC_HOME/closed_loop/<UTC time>."""
    return settings.home / "closed_loop" / datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")


def write_experiment(settings: VidrecSettings, experiment: Experiment, out_dir: Path) -> WrittenExperiment:
    """The served log, the per-arm daily measures, the primary metric's difference and the report,
    under `out_dir`, and the report logged to MLflow."""
    result, arms = experiment.result, list(experiment.config.policies)
    out_dir.mkdir(parents=True, exist_ok=True)
    result.served.to_parquet(out_dir / "served.parquet", index=False)
    daily = daily_arm_metrics(result.served, result.catalog_sizes, result.n_creators, result.prior_impressions)
    daily.to_csv(out_dir / "daily_metrics.csv", index=False)
    result.shadows.to_parquet(out_dir / "shadows.parquet", index=False)
    difference = arm_difference(per_user_primary(result.served), arms[0], arms[1])
    estimates = offline_vs_online(result.served, result.shadows, arms, seed=experiment.config.seed)
    estimates.to_csv(out_dir / "offline_vs_online.csv", index=False)
    meta = {**config_summary(experiment), "users": int(result.arms.size),
            "users per arm": result.arms.value_counts().to_dict(), "home": str(settings.home),
            "retrain seconds (all days)": round(sum(timing.retrain_seconds for timing in result.timings), 1),
            "retrains blocked by the served-skew gate": ", ".join(
                f"day {timing.day} ({timing.retrain_outcome.removeprefix('blocked: ')})"
                for timing in result.timings if timing.retrain_outcome.startswith("blocked")) or "none"}
    report = write_report(out_dir, daily, difference, estimates, meta)
    run_id = log_report(report, daily, difference, run_name=out_dir.name, tracking_uri=settings.mlflow_tracking_uri,
                        artifact_location=settings.mlflow_artifact_location)
    return WrittenExperiment(report, run_id, difference)


