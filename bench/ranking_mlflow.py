"""The ranking benchmark's MLflow run (experiment `vidrec-benchmarks`): parameters, holdout
touches, tuning trials, per-model metrics and intervals, the report and our reliability
diagrams. MLflow is imported only when a run is logged."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np

from vidrec.settings import VidrecSettings

from ranking_models import OURS
from ranking_results import Outcome, trial_records
from ranking_tables import Summary, selection_of


def log_to_mlflow(mlflow_uri: str | None, settings: VidrecSettings, outcome: Outcome, summaries: dict[str, Summary],
                  report: str) -> None:
    import mlflow

    setup = outcome.setup
    mlflow.set_tracking_uri(mlflow_uri or settings.mlflow_tracking_uri)
    mlflow.set_experiment(experiment_id=_experiment_id("vidrec-benchmarks", _artifact_location(mlflow_uri, settings)))
    with mlflow.start_run(run_name=f"ranking-{setup['dataset']}"):
        mlflow.log_params({"dataset": setup["dataset"], "home": setup["source"][:250], "threads": setup["threads"],
                           "device": setup["device"], "seeds": len(setup["seeds"]), "trials": setup["trials"],
                           "max_widenings": setup["max_widenings"], "resamples": setup["resamples"],
                           "selection_metric": selection_of(setup),
                           "models": ",".join(setup["models"])[:250]})
        mlflow.set_tag("holdout_touches", "; ".join(
            f"{touch['model']} seed {touch['seed']} {json.dumps(touch['params'])}" for touch in outcome.touches)[:5000])
        times = [touch["at"] for touch in outcome.touches if "at" in touch]
        if times:
            mlflow.set_tag("holdout_read_at", f"{min(times)} to {max(times)}")
        mlflow.log_dict(outcome.touches, "holdout_configurations.json")
        mlflow.log_dict([{"model": model, "rounds": tuning.rounds, "widened": tuning.widened,
                          "trials": trial_records(tuning.trials)} for model, tuning in outcome.tunings.items()],
                        "tuning_trials.json")
        for scored in outcome.results:
            slug = metric_slug(scored.model)
            keys = sorted({key for seed_report in scored.reports for key in seed_report})
            means = {key: float(np.nanmean([seed_report.get(key, np.nan) for seed_report in scored.reports]))
                     for key in keys}
            mlflow.log_metrics({f"{slug}.{key}": value for key, value in means.items() if np.isfinite(value)})
            summary = summaries[scored.model]
            intervals = {"gauc": summary.gauc, "pairwise_loss": summary.pairwise_loss,
                         "gauc_ours_minus_model": summary.gauc_advantage,
                         "pairwise_loss_model_minus_ours": summary.loss_advantage}
            mlflow.log_metrics({f"{slug}.{name}_{key}": value for name, interval in intervals.items() if interval
                                for key, value in interval.as_dict().items()})
        mlflow.log_metric("score_500_rows_ms", setup["latency_ms"])
        mlflow.log_text(report + "\n", "ranking_benchmark.md")
        ours = next(scored for scored in outcome.results if scored.model == OURS)
        for head, png in ours.diagrams.items():
            mlflow.log_image(_png_to_array(png), f"reliability_{head}.png")


def _artifact_location(mlflow_uri: str | None, settings: VidrecSettings) -> str | None:
    """The settings' artifact store; beside the database for `--mlflow-uri sqlite:///…/x.db`
    (never MLflow's default ./mlruns in the working directory)."""
    if mlflow_uri is None:
        return settings.mlflow_artifact_location
    if mlflow_uri.startswith("sqlite:///"):
        return (Path(mlflow_uri.removeprefix("sqlite:///")).parent / "artifacts").as_uri()
    return None


def _experiment_id(name: str, artifact_location: str | None) -> str:
    import mlflow

    experiment = mlflow.get_experiment_by_name(name)
    if experiment is not None:
        return experiment.experiment_id
    return mlflow.create_experiment(name, artifact_location=artifact_location)


def _png_to_array(png: bytes) -> np.ndarray:
    import io

    import matplotlib.image

    return matplotlib.image.imread(io.BytesIO(png), format="png")


def metric_slug(model: str) -> str:
    """The prefix of a model's MLflow metric names: its name before any parenthesis, with every run
    of characters MLflow refuses in a name (the ceilings' colon, say) as one underscore."""
    return re.sub(r"[^0-9A-Za-z_.]+", "_", model.split(" (")[0]).strip("_")
