"""The BentoML service: POST /recommend, plus BentoML's own GET /healthz, /livez and /readyz.

`__init__` loads the champion models from the MLflow registry and opens the Feast online store
once; requests only run the recommender. Without champions (the pipeline has not run) the service
still starts, `/readyz` answers 503 and `/recommend` says what to do, rather than crash-looping.
"""

from __future__ import annotations

import logging

import bentoml
import faiss
import torch

from feature_repo.store import feature_store
from serving.api_guard import ApiGuard, GuardPolicy, service_media_types
from serving.error_logging import log_client_errors_without_traceback
from serving.loading import load_champion_models
from serving.online_features import OnlineFeatureReader
from serving.recommender import Recommender
from serving.request_clock import request_clock
from serving.schemas import RecommendationResponse, Surface, TopK, UserId
from vidrec.settings import VidrecSettings

logger = logging.getLogger(__name__)


@bentoml.service(name="vidrec_recommender", traffic={"timeout": 30}, workers=1)
class RecommendationService:
    def __init__(self) -> None:
        settings = VidrecSettings()
        # One request is one small batch: extra threads only add overhead and fight the server.
        faiss.omp_set_num_threads(1)
        torch.set_num_threads(1)
        self.recommender: Recommender | None = None
        self.not_ready_reason = ""
        try:
            models = load_champion_models(settings)
            store = feature_store(settings)
            features = OnlineFeatureReader(store, settings.video_feature_ttl_seconds)
            features.warm_video_cache(models.retrieval.catalog_video_ids.tolist())
        except LookupError as error:
            self.not_ready_reason = str(error)
            logger.error("service not ready: %s", error)
            return
        self.recommender = Recommender(
            models, features, settings.candidates_per_request, request_clock=request_clock(settings, store)
        )

    def __is_ready__(self) -> bool:
        return self.recommender is not None

    @bentoml.api(route="/recommend")
    def recommend(
        self,
        user_id: UserId,
        k: TopK = 10,
        surface: Surface = "home",
    ) -> RecommendationResponse:
        """Top-k videos for a user on a surface, each with its score and retrieval source."""
        if self.recommender is None:
            raise bentoml.exceptions.ServiceUnavailable(f"models not loaded: {self.not_ready_reason}")
        return self.recommender.recommend(user_id, k, surface)


def _guard_policy(settings: VidrecSettings) -> GuardPolicy:
    api_key = settings.api_key.get_secret_value() if settings.api_key else None
    return GuardPolicy(settings.api_max_body_bytes, api_key, service_media_types(RecommendationService))


# Size limits, media types, the API key on write/admin routes and one error body (serving/api_guard.py).
RecommendationService.add_asgi_middleware(ApiGuard, policy=_guard_policy(VidrecSettings()))
log_client_errors_without_traceback()
