"""The MLflow model registry as vidrec uses it: bundles in, champions out.

Each trained artifact (candidate generator, faiss video index, ranker, popularity fallback) is a
self-contained directory written by its own `save`. It is logged as an MLflow pyfunc model whose
only artifact is that directory, so the registry versions it, the UI shows it, and serving
downloads exactly the directory training wrote. A version becomes the `champion` only when its
holdout metric beats the current champion's (the first version wins by default); the
deployment layer makes that call with `is_better_than_champion` and `set_champion`.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from pathlib import Path

import mlflow
from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient

logger = logging.getLogger(__name__)

CHAMPION_ALIAS = "champion"
# The candidates of the last run whose promotion gates held, whether or not they beat the
# champion: what an A/B arm serving the newest models reads (VIDREC_SERVING_MODEL_ALIAS).
CHALLENGER_ALIAS = "challenger"
BUNDLE_ARTIFACT = "bundle"


@dataclass(frozen=True)
class RegisteredArtifact:
    """One registry entry: the name serving asks for and the metric that decides promotion."""

    name: str
    selection_metric: str
    higher_is_better: bool = True


CANDIDATE_GENERATOR = RegisteredArtifact("vidrec-candidate-generator", "holdout_ndcg_at_10")
VIDEO_INDEX = RegisteredArtifact("vidrec-video-index", "holdout_ndcg_at_10")
RANKER = RegisteredArtifact("vidrec-ranker", "holdout_auc_watch_weighted")
POPULARITY = RegisteredArtifact("vidrec-popularity", "holdout_ndcg_at_10")
RETRIEVAL_SOURCES = RegisteredArtifact("vidrec-retrieval-sources", "holdout_union_recall")

# Everything the recommendation service loads, by the role it plays there.
SERVED_ARTIFACTS: dict[str, RegisteredArtifact] = {
    "candidate_generator": CANDIDATE_GENERATOR,
    "video_index": VIDEO_INDEX,
    "retrieval_sources": RETRIEVAL_SOURCES,
    "ranker": RANKER,
    "popularity": POPULARITY,
}


class BundleModel(mlflow.pyfunc.PythonModel):
    """A pyfunc face for a bundle directory.

    `predict` is not the serving path (serving loads the bundle itself, to keep request latency
    free of pyfunc overhead); it returns the bundle's local path so `mlflow.pyfunc.load_model`
    users can find it.
    """

    def load_context(self, context) -> None:
        self.bundle_path = context.artifacts[BUNDLE_ARTIFACT]

    def predict(self, context, model_input, params=None):
        return [self.bundle_path]


@dataclass(frozen=True)
class ModelVersionRef:
    name: str
    version: str
    run_id: str
    metric_value: float


def log_bundle(
    artifact: RegisteredArtifact, bundle_dir: Path, metrics: dict[str, float], tags: dict[str, str] | None = None
) -> ModelVersionRef:
    """Log `bundle_dir` in the active run and register it as a new version (not yet promoted).

    Must be called inside `mlflow.start_run()`; the caller logs params/metrics of the run itself.
    The selection metric is stored as a version tag so promotion can compare versions directly.
    """
    run = mlflow.active_run()
    if run is None:
        raise RuntimeError("log_bundle needs an active MLflow run")
    if artifact.selection_metric not in metrics:
        raise ValueError(
            f"{artifact.name}: selection metric {artifact.selection_metric!r} missing from {sorted(metrics)}"
        )
    info = mlflow.pyfunc.log_model(
        name=artifact.name,
        python_model=BundleModel(),
        artifacts={BUNDLE_ARTIFACT: str(bundle_dir)},
        pip_requirements=["vidrec"],
        registered_model_name=artifact.name,
    )
    version = str(info.registered_model_version)
    client = MlflowClient()
    metric_value = float(metrics[artifact.selection_metric])
    client.set_model_version_tag(artifact.name, version, artifact.selection_metric, str(metric_value))
    for key, value in (tags or {}).items():
        client.set_model_version_tag(artifact.name, version, key, value)
    return ModelVersionRef(artifact.name, version, run.info.run_id, metric_value)


def champion_metric(client: MlflowClient, artifact: RegisteredArtifact) -> float | None:
    """The current champion's selection metric, or None when there is no champion yet."""
    try:
        champion = client.get_model_version_by_alias(artifact.name, CHAMPION_ALIAS)
    except MlflowException:
        return None
    value = champion.tags.get(artifact.selection_metric)
    return float(value) if value is not None else None


@dataclass(frozen=True)
class ChampionRescored:
    """The champion `version` scored on the candidate's own holdout: `metric_value`."""

    version: str
    metric_value: float


def is_better_than_champion(client: MlflowClient, artifact: RegisteredArtifact, metric_value: float,
                            rescored: ChampionRescored | None = None) -> bool:
    """Whether a candidate's selection metric beats the current champion's (or there is none).

    The champion's own tag was measured on the holdout of its run; once the holdout window has
    moved (every daily retrain), the two numbers come from different rows: a holdout of the
    service's own answers is harder to rank, and a retrieval holdout of its own exposures easier.
    `rescored` (the champion scored on the candidate's holdout by the model asset) is compared
    instead, as long as it scored the version that is still champion."""
    if math.isnan(metric_value):
        return False
    current = champion_metric(client, artifact)
    if current is None:
        return True
    if rescored is not None and rescored.version == champion_version(client, artifact) \
            and not math.isnan(rescored.metric_value):
        current = rescored.metric_value
    return metric_value > current if artifact.higher_is_better else metric_value < current


def champion_version(client: MlflowClient, artifact: RegisteredArtifact) -> str | None:
    return alias_version(client, artifact, CHAMPION_ALIAS)


def alias_version(client: MlflowClient, artifact: RegisteredArtifact, alias: str) -> str | None:
    """The version `alias` points at, or None when the model or the alias does not exist."""
    try:
        return str(client.get_model_version_by_alias(artifact.name, alias).version)
    except MlflowException:
        return None


def set_alias(client: MlflowClient, artifact: RegisteredArtifact, alias: str, version: str) -> None:
    client.set_registered_model_alias(artifact.name, alias, version)
    logger.info("%s v%s is now %s", artifact.name, version, alias)


def set_champion(client: MlflowClient, artifact: RegisteredArtifact, version: str) -> None:
    """Alias a version as champion (the deployment layer decides when)."""
    client.set_registered_model_alias(artifact.name, CHAMPION_ALIAS, version)
    logger.info("%s v%s is now %s", artifact.name, version, CHAMPION_ALIAS)


def download_champion(artifact: RegisteredArtifact, destination: Path) -> Path:
    """Download the champion's bundle directory; returns its local path.

    Raises LookupError naming the model when no champion exists yet (run the pipeline first).
    """
    return download_version(artifact, required_champion_version(MlflowClient(), artifact), destination)


def required_champion_version(client: MlflowClient, artifact: RegisteredArtifact) -> str:
    """The champion's version; LookupError naming the model when there is none yet."""
    version = champion_version(client, artifact)
    if version is None:
        raise LookupError(
            f"no '{CHAMPION_ALIAS}' version of registered model {artifact.name!r}; run `vidrec pipeline` first"
        )
    return version


def download_version(artifact: RegisteredArtifact, version: str, destination: Path) -> Path:
    """Download one registered version's bundle directory; returns its local path."""
    local = mlflow.artifacts.download_artifacts(
        artifact_uri=f"models:/{artifact.name}/{version}", dst_path=str(destination)
    )
    # pyfunc stores each artifact under artifacts/<basename of the logged directory>.
    bundles = [path for path in (Path(local) / "artifacts").glob("*") if path.is_dir()]
    if len(bundles) != 1:
        raise LookupError(f"{artifact.name} v{version}: expected one bundle directory, found {bundles}")
    return bundles[0]
