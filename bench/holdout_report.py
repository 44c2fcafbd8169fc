"""Print the latest pipeline run's temporal-holdout retrieval metrics from MLflow.

    .venv/bin/vidrec pipeline && .venv/bin/python bench/holdout_report.py

The candidate generator and the popularity baseline are evaluated by the `candidate_generator`
asset under one protocol (docs/benchmarks.md): queries from data before the holdout cut, the
whole corpus ranked, already-watched videos excluded.
"""

from __future__ import annotations

import mlflow
from mlflow.tracking import MlflowClient

from vidrec.settings import VidrecSettings

METRICS = ("recall_at_10", "recall_at_50", "recall_at_100", "ndcg_at_10", "mrr", "num_users")


def main() -> None:
    settings = VidrecSettings()
    mlflow.set_tracking_uri(settings.mlflow_tracking_uri)
    client = MlflowClient()
    experiment = client.get_experiment_by_name("vidrec")
    if experiment is None:
        raise SystemExit(f"no 'vidrec' experiment at {settings.mlflow_tracking_uri}; run `vidrec pipeline` first")
    runs = client.search_runs(
        [experiment.experiment_id], "attributes.run_name = 'candidate_generator'",
        order_by=["attributes.start_time DESC"], max_results=1,
    )
    if not runs:
        raise SystemExit("no candidate_generator run yet; run `vidrec pipeline` first")
    metrics = runs[0].data.metrics
    print(f"run {runs[0].info.run_id} (data snapshot {runs[0].data.tags.get('data_snapshot')}, "
          f"holdout from {runs[0].data.tags.get('holdout_start')})")
    print("| method | " + " | ".join(METRICS) + " |")
    print("|---|" + "---|" * len(METRICS))
    for method, prefix in (("candidate generator", "holdout_"), ("popularity", "popularity_holdout_")):
        values = [metrics.get(prefix + name, float("nan")) for name in METRICS]
        print(f"| {method} | " + " | ".join(f"{value:.4f}" if name != "num_users" else f"{value:.0f}"
                                           for name, value in zip(METRICS, values)) + " |")


if __name__ == "__main__":
    main()
