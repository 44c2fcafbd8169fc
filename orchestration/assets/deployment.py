"""Deployment layer: decide which registered versions serve, and build the deployable Bento.

Promotion compares each new version's holdout metric with the current champion's; only a strictly
better version takes the `champion` alias, so a re-run on unchanged data changes nothing. The
faiss index is promoted with the candidate generator whose embeddings it holds, never alone.
"""


import os
import subprocess
import sys
from pathlib import Path

from dagster import AssetExecutionContext, MaterializeResult, MetadataValue, asset
from mlflow.tracking import MlflowClient

from models.registry import (
    CANDIDATE_GENERATOR,
    POPULARITY,
    RANKER,
    RETRIEVAL_SOURCES,
    VIDEO_INDEX,
    champion_version,
    is_better_than_champion,
    set_champion,
)
from orchestration.assets.features import online_feature_store
from orchestration.assets.models import (
    candidate_generator,
    popularity_model,
    ranking_model,
    retrieval_sources,
    video_index,
)
from orchestration.model_runs import latest_metadata
from orchestration.resources import MlflowResource, VidrecResource

DEPLOYMENT_GROUP = "deployment"
PROJECT_ROOT = Path(__file__).resolve().parents[2]
# The Bento's build options and its Python packages live in one file (see `recommendation_bento`).
PYPROJECT = PROJECT_ROOT / "pyproject.toml"


@asset(
    group_name=DEPLOYMENT_GROUP,
    deps=[candidate_generator, video_index, retrieval_sources, ranking_model, popularity_model, online_feature_store],
    kinds={"mlflow"},
)
def champion_models(context: AssetExecutionContext, mlflow_tracking: MlflowResource) -> MaterializeResult:
    """The `champion` alias of each registered model, moved only to strictly better versions."""
    mlflow_tracking.configure()
    client = MlflowClient()
    generator = latest_metadata(context, candidate_generator.key)
    index = latest_metadata(context, video_index.key)
    decisions = []
    if is_better_than_champion(client, CANDIDATE_GENERATOR, float(generator["selection_metric"])):
        set_champion(client, CANDIDATE_GENERATOR, str(generator["mlflow_version"]))
        set_champion(client, VIDEO_INDEX, str(index["mlflow_version"]))
        decisions += [(CANDIDATE_GENERATOR, generator, True), (VIDEO_INDEX, index, True)]
    else:
        decisions += [(CANDIDATE_GENERATOR, generator, False), (VIDEO_INDEX, index, False)]
    # Retrieval sources are lists of what is current (trending, fresh): the newest version serves.
    sources = latest_metadata(context, retrieval_sources.key)
    set_champion(client, RETRIEVAL_SOURCES, str(sources["mlflow_version"]))
    decisions.append((RETRIEVAL_SOURCES, sources, True))
    for artifact, asset_def in ((RANKER, ranking_model), (POPULARITY, popularity_model)):
        metadata = latest_metadata(context, asset_def.key)
        promoted = is_better_than_champion(client, artifact, float(metadata["selection_metric"]))
        if promoted:
            set_champion(client, artifact, str(metadata["mlflow_version"]))
        decisions.append((artifact, metadata, promoted))

    rows = "| model | candidate version | metric | value | promoted | champion now |\n|---|---|---|---|---|---|\n"
    for artifact, metadata, promoted in decisions:
        rows += (
            f"| {artifact.name} | {metadata['mlflow_version']} | {artifact.selection_metric} | "
            f"{float(metadata['selection_metric']):.4f} | {'yes' if promoted else 'no'} | "
            f"{champion_version(client, artifact)} |\n"
        )
    context.log.info("champion decisions:\n%s", rows)
    return MaterializeResult(
        metadata={
            "decisions": MetadataValue.md(rows),
            **{f"{artifact.name}_champion": str(champion_version(client, artifact)) for artifact, _, _ in decisions},
        }
    )


@asset(group_name=DEPLOYMENT_GROUP, deps=[champion_models], kinds={"bentoml"})
def recommendation_bento(context: AssetExecutionContext, vidrec: VidrecResource) -> MaterializeResult:
    """A Bento of the recommendation service, built from `[tool.bentoml.build]` in pyproject.toml.

    Its Python packages are the project's `[project].dependencies` (BentoML reads them from the
    same file), so the production profile's drivers travel with it. The Bento packages the service
    code, not the models: it loads the champions from the MLflow registry at start-up, so a
    promotion never needs a rebuild.
    """
    bentoml_home = vidrec.settings().home / "bentoml"
    bentoml_cli = Path(sys.executable).parent / "bentoml"
    result = subprocess.run(
        [str(bentoml_cli), "build", "-f", str(PYPROJECT), str(PROJECT_ROOT), "--output", "tag"],
        env={**os.environ, "BENTOML_HOME": str(bentoml_home)},
        capture_output=True,
        text=True,
    )
    if result.returncode != 0:
        raise RuntimeError(f"bentoml build failed:\n{result.stdout}\n{result.stderr}")
    tag = result.stdout.strip().splitlines()[-1].removeprefix("__tag__:")
    context.log.info("built bento %s", tag)
    return MaterializeResult(metadata={"bento_tag": tag, "bentoml_home": str(bentoml_home)})
