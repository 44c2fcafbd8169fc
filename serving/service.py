"""The BentoML service: POST /recommend, plus BentoML's own GET /healthz, /livez, /readyz and /metrics.

Each worker opens the Feast online store once and follows the registry's `champion` aliases
(serving.hot_reload): the models load at start-up and are swapped, whole, when a promotion moves
an alias; no restart. Without champions (the pipeline has not run) the service still starts,
`/readyz` and `/recommend` answer 503 and the log says what to do (BentoML hides the text of a
5xx from clients), rather than crash-looping; it becomes ready on its own once the pipeline
promotes models. `/readyz` is also 503 while the online store
does not answer (requests are then served degraded, see serving.recommender).
"""

from __future__ import annotations

import logging
import warnings

import bentoml
import faiss
import torch

from serving.api_guard import ApiGuard, GuardPolicy, service_media_types
from serving.error_logging import log_client_errors_without_traceback
from serving.runtime import ServingRuntime
from serving.schemas import RecommendationResponse, Surface, TopK, UserId
from vidrec.settings import VidrecSettings

logger = logging.getLogger(__name__)

# BentoML 1.4 reads `model_fields` off each request's input model, which pydantic >= 2.11 flags
# with a warning that gets printed on every request: BentoML's to fix, and costlier than the parse.
warnings.filterwarnings("ignore", message="Accessing the 'model_fields' attribute on the instance")

# Read at import: BentoML takes the worker count from the decorator.
SERVICE_SETTINGS = VidrecSettings()


@bentoml.service(
    name="vidrec_recommender",
    traffic={"timeout": 30},
    workers=SERVICE_SETTINGS.serve_workers,
    logging={"access": {"enabled": SERVICE_SETTINGS.serve_access_log}},
)
class RecommendationService:
    def __init__(self) -> None:
        settings = VidrecSettings()
        # One request is one small batch: extra threads only add overhead and fight the server.
        faiss.omp_set_num_threads(1)
        torch.set_num_threads(1)
        self.runtime = ServingRuntime.open(settings)
        self.watcher = self.runtime.champion_watcher()
        self.watcher.poll()  # the first load, before the first request
        self.watcher.start()  # then follow promotions (and retry while there are no champions)

    def __is_ready__(self) -> bool:
        return self.watcher.current is not None and self.runtime.online_store_healthy()

    @bentoml.api(route="/recommend")
    def recommend(
        self,
        user_id: UserId,
        k: TopK = 10,
        surface: Surface = "home",
    ) -> RecommendationResponse:
        """Top-k videos for a user on a surface, each with its score and retrieval source."""
        recommender = self.watcher.current  # read once: the whole request answers with one model set
        if recommender is None:
            raise bentoml.exceptions.ServiceUnavailable(f"models not loaded: {self.watcher.not_ready_reason}")
        return recommender.recommend(user_id, k, surface)


def _guard_policy(settings: VidrecSettings) -> GuardPolicy:
    api_key = settings.api_key.get_secret_value() if settings.api_key else None
    return GuardPolicy(settings.api_max_body_bytes, api_key, service_media_types(RecommendationService))


# Size limits, media types, the API key on write/admin routes and one error body (serving/api_guard.py).
RecommendationService.add_asgi_middleware(ApiGuard, policy=_guard_policy(VidrecSettings()))
log_client_errors_without_traceback()
