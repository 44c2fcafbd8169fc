"""Loading a consistent set of champion artifacts from the MLflow registry.

The set is resolved first (one version per served artifact, read once, so the versions reported
are the ones downloaded), checked for consistency, then downloaded into a directory of its own:
several worker processes and successive hot reloads never share or delete each other's files.
"""

from __future__ import annotations

import itertools
import logging
import os
import shutil
from pathlib import Path

import mlflow
from mlflow.tracking import MlflowClient

from models.index import INDEX_FILE, VideoIndex
from models.popularity import PopularityRecommender
from models.ranking.bundle import RankerBundle
from models.registry import (
    CANDIDATE_GENERATOR,
    CHAMPION_ALIAS,
    SERVED_ARTIFACTS,
    VIDEO_INDEX,
    alias_version,
    download_version,
    required_champion_version,
)
from models.retrieval.bundle import RetrievalBundle
from models.sources import MultiSourceRetriever
from serving.recommender import ServingModels
from vidrec.settings import VidrecSettings

logger = logging.getLogger(__name__)

# the tag the video_index asset writes on each index version: the generator whose embeddings it holds
INDEX_GENERATOR_TAG = "candidate_generator_version"
_load_counter = itertools.count()


class ChampionSetInconsistent(LookupError):
    """The champions do not belong together yet (a promotion is half-way): try again later."""


def champion_versions(client: MlflowClient, alias: str = CHAMPION_ALIAS) -> dict[str, str]:
    """{registered model name: version} of every served artifact: the version `alias` names (the
    champion by default; a model without that alias serves its champion).

    Raises LookupError naming a model without a champion, and ChampionSetInconsistent when the
    index holds another generator's embeddings than the generator served (the deployment asset
    moves the two aliases one after the other).
    """
    versions = {
        artifact.name: (alias_version(client, artifact, alias) if alias != CHAMPION_ALIAS else None)
        or required_champion_version(client, artifact)
        for artifact in SERVED_ARTIFACTS.values()
    }
    index_tags = client.get_model_version(VIDEO_INDEX.name, versions[VIDEO_INDEX.name]).tags
    generator_of_index = index_tags.get(INDEX_GENERATOR_TAG)
    if generator_of_index is not None and generator_of_index != versions[CANDIDATE_GENERATOR.name]:
        raise ChampionSetInconsistent(
            f"{VIDEO_INDEX.name} v{versions[VIDEO_INDEX.name]} holds {CANDIDATE_GENERATOR.name} "
            f"v{generator_of_index}'s embeddings, but the champion is v{versions[CANDIDATE_GENERATOR.name]}"
        )
    return versions


def load_models(settings: VidrecSettings, versions: dict[str, str]) -> ServingModels:
    """Download and load exactly `versions` (from `champion_versions`) into a fresh directory."""
    mlflow.set_tracking_uri(settings.mlflow_tracking_uri)
    cache = serving_cache_dir(settings) / f"{os.getpid()}-{next(_load_counter)}"
    if cache.exists():
        shutil.rmtree(cache)
    paths: dict[str, Path] = {
        key: download_version(artifact, versions[artifact.name], cache / key)
        for key, artifact in SERVED_ARTIFACTS.items()
    }
    models = ServingModels(
        retrieval=RetrievalBundle.load(paths["candidate_generator"]),
        index=VideoIndex.load(paths["video_index"] / INDEX_FILE),
        ranker=_weighted(RankerBundle.load(paths["ranker"]), settings),
        popularity=PopularityRecommender.load(paths["popularity"] / "popularity.json"),
        sources=MultiSourceRetriever.load(paths["retrieval_sources"]),
        versions=dict(versions),
    )
    # Everything is in memory now; the files are not needed again.
    shutil.rmtree(cache, ignore_errors=True)
    logger.info("loaded champions %s", versions)
    return models


def _weighted(ranker: RankerBundle, settings: VidrecSettings) -> RankerBundle:
    """The ranker with the deployment's head weights, when settings give some."""
    if settings.serving_score_weights is None:
        return ranker
    try:
        return ranker.with_score_weights(settings.serving_score_weights)
    except ValueError as error:
        raise ValueError(f"VIDREC_SERVING_SCORE_WEIGHTS={settings.serving_score_weights}: {error}") from None


def load_champion_models(settings: VidrecSettings) -> ServingModels:
    """The current champions, loaded. LookupError names what is missing (run the pipeline)."""
    mlflow.set_tracking_uri(settings.mlflow_tracking_uri)
    return load_models(settings, champion_versions(MlflowClient(), settings.serving_model_alias))


def serving_cache_dir(settings: VidrecSettings) -> Path:
    return settings.home / "serving_cache"
