"""Loading the champion artifacts from the MLflow registry at service start-up."""

from __future__ import annotations

import logging
import shutil
from pathlib import Path

import mlflow
from mlflow.tracking import MlflowClient

from models.index import INDEX_FILE, VideoIndex
from models.popularity import PopularityRecommender
from models.ranking.bundle import RankerBundle
from models.registry import SERVED_ARTIFACTS, download_version, required_champion_version
from models.retrieval.bundle import RetrievalBundle
from models.sources import MultiSourceRetriever
from serving.recommender import ServingModels
from vidrec.settings import VidrecSettings

logger = logging.getLogger(__name__)


def load_champion_models(settings: VidrecSettings) -> ServingModels:
    """Download every champion bundle into a fresh cache directory and load it.

    Raises LookupError naming the missing model when the pipeline has not promoted one yet.
    """
    mlflow.set_tracking_uri(settings.mlflow_tracking_uri)
    cache = settings.home / "serving_cache"
    if cache.exists():
        shutil.rmtree(cache)
    client = MlflowClient()
    paths: dict[str, Path] = {}
    versions: dict[str, str] = {}
    for key, artifact in SERVED_ARTIFACTS.items():
        # Resolve the alias once, so the version reported is the one downloaded.
        version = required_champion_version(client, artifact)
        paths[key] = download_version(artifact, version, cache / key)
        versions[artifact.name] = version
    logger.info("loaded champions %s", versions)
    return ServingModels(
        retrieval=RetrievalBundle.load(paths["candidate_generator"]),
        index=VideoIndex.load(paths["video_index"] / INDEX_FILE),
        ranker=RankerBundle.load(paths["ranker"]),
        popularity=PopularityRecommender.load(paths["popularity"] / "popularity.json"),
        sources=MultiSourceRetriever.load(paths["retrieval_sources"]),
        versions=versions,
    )
