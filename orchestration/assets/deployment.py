"""Deployment layer: decide which registered versions serve, and build the deployable Bento.

Promotion compares each new version's holdout metric with the current champion's; only a strictly
better version takes the `champion` alias, so a re-run on unchanged data changes nothing. The
faiss index is promoted with the candidate generator whose embeddings it holds, never alone.

Promotion is gated on skew measured on what was served (orchestration/assets/served_skew.py):
`champion_models` depends on `served_feature_comparison`, whose two blocking checks run first and,
failing, stop it in the same run. Materialized without them (another selection, a later run), it
reads their latest results itself and moves no alias while either failed, naming the failed gate
and its worst features in its decision table.
"""


import os
import subprocess
import sys
from pathlib import Path

from dagster import AssetCheckKey, AssetExecutionContext, MaterializeResult, MetadataValue, asset
from dagster._core.storage.asset_check_execution_record import AssetCheckExecutionRecordStatus  # not at top level
from mlflow.tracking import MlflowClient

from models.registry import (
    CANDIDATE_GENERATOR,
    CHALLENGER_ALIAS,
    POPULARITY,
    RANKER,
    RETRIEVAL_SOURCES,
    VIDEO_INDEX,
    alias_version,
    champion_version,
    is_better_than_champion,
    set_alias,
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
from orchestration.assets.served_skew import DRIFT_CHECK, MATCH_CHECK, served_feature_comparison
from orchestration.bento_builds import build_inputs_digest, record_bento, stored_bento
from orchestration.champions import rescored_from
from orchestration.model_runs import registration
from orchestration.resources import MlflowResource, VidrecResource
from vidrec.settings import VidrecSettings

DEPLOYMENT_GROUP = "deployment"
PROJECT_ROOT = Path(__file__).resolve().parents[2]
# The Bento's build options and its Python packages live in one file (see `recommendation_bento`).
PYPROJECT = PROJECT_ROOT / "pyproject.toml"


@asset(
    group_name=DEPLOYMENT_GROUP,
    deps=[candidate_generator, video_index, retrieval_sources, ranking_model, popularity_model, online_feature_store,
          served_feature_comparison],
    kinds={"mlflow"},
)
def champion_models(context: AssetExecutionContext, vidrec: VidrecResource,
                    mlflow_tracking: MlflowResource) -> MaterializeResult:
    """The `champion` alias of each registered model, moved only to strictly better versions, and
    only while the served-skew gate holds; the `challenger` alias, moved to every candidate of a
    run whose gate holds (what an A/B arm with VIDREC_SERVING_MODEL_ALIAS=challenger serves)."""
    settings = vidrec.settings()
    mlflow_tracking.configure()
    client = MlflowClient()
    failed_gates = failed_promotion_gates(context)
    if failed_gates:
        gate = "blocked: " + "; ".join(failed_gates)
        context.log.error("promotion blocked by the served-skew gate: %s", gate)
        decisions = [(artifact, registration(settings, asset_def.key), False) for artifact, asset_def in (
            (CANDIDATE_GENERATOR, candidate_generator), (VIDEO_INDEX, video_index),
            (RETRIEVAL_SOURCES, retrieval_sources), (RANKER, ranking_model), (POPULARITY, popularity_model))]
    else:
        gate, decisions = "passed", _promote(settings, client)
        for artifact, metadata, _ in decisions:  # a challenger arm serves this run's candidates
            set_alias(client, artifact, CHALLENGER_ALIAS, str(metadata["mlflow_version"]))

    rows = "| model | candidate version | metric | value | promoted | champion now |\n|---|---|---|---|---|---|\n"
    for artifact, metadata, promoted in decisions:
        verdict = "yes" if promoted else "no (gate)" if failed_gates else "no"
        rows += (
            f"| {artifact.name} | {metadata['mlflow_version']} | {artifact.selection_metric} | "
            f"{float(metadata['selection_metric']):.4f} | {verdict} | {champion_version(client, artifact)} |\n"
        )
    rows += f"\n**served-skew gate**: {gate}\n"
    context.log.info("champion decisions:\n%s", rows)
    return MaterializeResult(
        metadata={
            "decisions": MetadataValue.md(rows),
            "promotion_gate": gate,
            **{f"{artifact.name}_champion": str(champion_version(client, artifact)) for artifact, _, _ in decisions},
            **{f"{artifact.name}_challenger": str(alias_version(client, artifact, CHALLENGER_ALIAS))
               for artifact, _, _ in decisions},
        }
    )


def failed_promotion_gates(context: AssetExecutionContext) -> list[str]:
    """The served-skew checks whose latest result failed, each with its worst features. A check
    never run (a deployment that skips it) does not block; one that failed does, until it passes."""
    keys = [AssetCheckKey(served_feature_comparison.key, name) for name in (MATCH_CHECK, DRIFT_CHECK)]
    latest = context.instance.event_log_storage.get_latest_asset_check_execution_by_key(keys)
    failed = []
    for key in keys:
        record = latest.get(key)
        if record is None or record.status != AssetCheckExecutionRecordStatus.FAILED:
            continue
        evaluation = record.event.dagster_event.event_specific_data if record.event else None
        worst = evaluation.metadata.get("worst") if evaluation is not None else None
        failed.append(f"{key.name} failed" + (f" (worst: {worst.value})" if worst is not None else ""))
    return failed


def _promote(settings: VidrecSettings, client: MlflowClient) -> list[tuple]:
    """Move each alias that a strictly better version earned; (artifact, registration, promoted)
    each. What each model asset registered is read from its registration record."""
    generator = registration(settings, candidate_generator.key)
    index = registration(settings, video_index.key)
    decisions = []
    if is_better_than_champion(client, CANDIDATE_GENERATOR, float(generator["selection_metric"]),
                               rescored_from(generator)):
        set_champion(client, CANDIDATE_GENERATOR, str(generator["mlflow_version"]))
        set_champion(client, VIDEO_INDEX, str(index["mlflow_version"]))
        decisions += [(CANDIDATE_GENERATOR, generator, True), (VIDEO_INDEX, index, True)]
    else:
        decisions += [(CANDIDATE_GENERATOR, generator, False), (VIDEO_INDEX, index, False)]
    # Retrieval sources are lists of what is current (trending, fresh): the newest version serves.
    sources = registration(settings, retrieval_sources.key)
    set_champion(client, RETRIEVAL_SOURCES, str(sources["mlflow_version"]))
    decisions.append((RETRIEVAL_SOURCES, sources, True))
    for artifact, asset_def in ((RANKER, ranking_model), (POPULARITY, popularity_model)):
        metadata = registration(settings, asset_def.key)
        promoted = is_better_than_champion(client, artifact, float(metadata["selection_metric"]),
                                           rescored_from(metadata))
        if promoted:
            set_champion(client, artifact, str(metadata["mlflow_version"]))
        decisions.append((artifact, metadata, promoted))
    return decisions


@asset(group_name=DEPLOYMENT_GROUP, deps=[champion_models], kinds={"bentoml"})
def recommendation_bento(context: AssetExecutionContext, vidrec: VidrecResource) -> MaterializeResult:
    """A Bento of the recommendation service, built from `[tool.bentoml.build]` in pyproject.toml.

    Its Python packages are the project's `[project].dependencies` (BentoML reads them from the
    same file), so the production profile's drivers travel with it. The Bento packages the service
    code, not the models: it loads the champions from the MLflow registry at start-up, so a
    promotion never needs a rebuild: a run whose build inputs are unchanged reuses the Bento
    already built from them (orchestration/bento_builds.py).
    """
    bentoml_home = vidrec.settings().home / "bentoml"
    digest = build_inputs_digest(PROJECT_ROOT, PYPROJECT)
    reused = stored_bento(bentoml_home, digest)
    if reused is not None:
        context.log.info("bento %s already holds this code (inputs %s): not rebuilt", reused, digest[:12])
        return MaterializeResult(metadata={"bento_tag": reused, "bentoml_home": str(bentoml_home),
                                           "build_inputs_sha256": digest, "rebuilt": False})
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
    record_bento(bentoml_home, digest, tag)
    context.log.info("built bento %s", tag)
    return MaterializeResult(metadata={"bento_tag": tag, "bentoml_home": str(bentoml_home),
                                       "build_inputs_sha256": digest, "rebuilt": True})
