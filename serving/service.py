"""The BentoML service: POST /recommend, POST /similar and POST /events, plus BentoML's own GET
/healthz, /livez, /readyz and /metrics.

Each worker opens the Feast online store once and follows the registry's `champion` aliases
(serving.hot_reload): the models load at start-up and are swapped, whole, when a promotion moves
an alias; no restart. Without champions (the pipeline has not run) the service still starts,
`/readyz`, `/recommend` and `/similar` answer 503 and the log says what to do (BentoML hides the text of a
5xx from clients), rather than crash-looping; it becomes ready on its own once the pipeline
promotes models. `/readyz` is also 503 while the online store
does not answer (requests are then served degraded, see serving.recommender).

POST /events appends client events to the raw log (serving.events) and does not depend on the
models: it answers before the first pipeline run too, with 503 until the raw log exists. It is an
async API whose appends run on threads of their own (serving.events.route), so a request waiting
for the raw log's write lock never holds the worker's thread that /recommend runs on.

Every /recommend answer is also logged, by the service itself, to the raw log's impressions
(serving.served_log, through the same intake): handed to a background writer, so the request
never waits for disk nor fails because the raw log cannot be written. For a sampled share of
requests, what the ranker was fed for each served item goes, the same way, to the served-feature
log that the pipeline's skew checks compare with the offline store before promoting models.
"""

from __future__ import annotations

import logging
import sqlite3
import warnings

import bentoml

from serving.api_guard import ApiGuard, GuardPolicy, service_media_types
from serving.compute_threads import single_threaded_math
from serving.error_logging import log_client_errors_without_traceback
from serving.events.errors import IntakeRefused
from serving.events.intake import EventIntake, IntakeLimits
from serving.events.route import EventRoute, document_event_responses
from serving.events.schemas import EventList, EventsAccepted
from serving.recommender import Recommender
from serving.runtime import ServingRuntime
from serving.schemas import (
    RecommendationResponse,
    SeedVideoId,
    Shadow,
    SimilarVideos,
    Surface,
    TopK,
    UserId,
    UserProfile,
    VideoId,
)
from serving.served_log import ServedFeatureLog, ServedImpressionLog
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
        single_threaded_math()  # and again on each thread that answers requests (see _recommender)
        self.runtime = ServingRuntime.open(settings)
        self.watcher = self.runtime.champion_watcher()
        self.watcher.poll()  # the first load, before the first request
        self.watcher.start()  # then follow promotions (and retry while there are no champions)
        self.event_route = _open_event_route(settings)
        self.served_log = _open_served_log(settings, self.event_route)
        self.served_features = _open_served_feature_log(settings)

    def __is_ready__(self) -> bool:
        return self.watcher.current is not None and self.runtime.online_store_healthy()

    @bentoml.api(route="/recommend")
    def recommend(
        self,
        user_id: UserId,
        k: TopK = 10,
        surface: Surface = "home",
        seed_video_id: SeedVideoId = None,
        profile: UserProfile | None = None,
        shadow: Shadow = False,
    ) -> RecommendationResponse:
        """Top-k videos for a user on a surface (on watch_next, steered by the seed video being watched),
        each with its score and retrieval source. A user the pipeline has not seen yet gets what
        their `profile`'s demographic segment watches, with exploration. A `shadow` request is
        answered the same way but logged nowhere: nobody is shown it."""
        demographics = None if profile is None else profile.model_dump(exclude_none=True)
        answer = self._recommender().recommend_traced(user_id, k, surface, seed_video_id, demographics)
        if shadow:
            return answer.response
        if self.served_log is not None:
            self.served_log.offer(answer)  # never waits for the raw log
        if self.served_features is not None:
            self.served_features.offer(answer)  # a sampled request's ranker inputs; never waits either
        return answer.response

    @bentoml.api(route="/similar")
    def similar(self, video_id: VideoId, k: TopK = 10) -> SimilarVideos:
        """The k videos most like a video (inner product of their vectors in the video index), itself and
        blocklisted videos left out; 404 for a video the index does not hold."""
        similar = self._recommender().similar(video_id, k)
        if similar is None:
            raise bentoml.exceptions.NotFound(f"video_id {video_id} is not in the video index")
        return similar

    def _recommender(self) -> Recommender:
        """The current recommender, read once so a whole request answers with one model set; 503 before any."""
        single_threaded_math()  # requests run on BentoML's threads, not the one that built the service
        recommender = self.watcher.current
        if recommender is None:
            raise bentoml.exceptions.ServiceUnavailable(f"models not loaded: {self.watcher.not_ready_reason}")
        return recommender

    @bentoml.api(route="/events")
    async def events(self, events: EventList, ctx: bentoml.Context) -> EventsAccepted:
        """Append client events to the raw log: 202 once durable; 409, 429 or 503 (with Retry-After) if not."""
        if self.event_route is None:
            raise bentoml.exceptions.ServiceUnavailable("event intake did not open: see the service log")
        return await self.event_route.answer(events, ctx)

    @bentoml.on_shutdown
    def close_event_intake(self) -> None:
        """Write the served impressions still held, let appends in flight finish, then close the
        intake's database and write lock."""
        if self.served_log is not None:
            self.served_log.close()
        if self.served_features is not None:
            self.served_features.close()
        if self.event_route is not None:
            self.event_route.close()


def _open_event_route(settings: VidrecSettings) -> EventRoute | None:
    """The worker's event intake over the raw log, or None (logged) when it cannot be opened.

    A raw log that does not exist yet is fine (the intake answers 503 until the pipeline creates
    it). An unwritable raw directory, a broken intake database or another worker holding the write
    lock through the whole start-up wait are not, but they must not keep /recommend from starting
    (a worker that raises here is restarted, and fails again, forever): /events answers 503 instead.
    """
    limits = IntakeLimits(
        max_pending_events=settings.events_max_pending,
        lock_wait_seconds=settings.events_lock_wait_seconds,
        retry_after_seconds=settings.events_retry_after_seconds,
    )
    try:
        return EventRoute(EventIntake(settings.raw_dir, limits))
    except (OSError, sqlite3.Error, IntakeRefused) as error:
        logger.error("POST /events will answer 503: the event intake over %s did not open: %s: %s",
                     settings.raw_dir, type(error).__name__, error)
        return None


def _open_served_log(settings: VidrecSettings, event_route: EventRoute | None) -> ServedImpressionLog | None:
    """The worker's served-impression log, over the event route's intake; None when switched off
    (VIDREC_SERVED_LOG_ENABLED=false) or when the intake did not open (already logged)."""
    if not settings.served_log_enabled or event_route is None:
        return None
    return ServedImpressionLog(event_route.intake, settings.served_log_max_pending, settings.served_log_flush_seconds)


def _open_served_feature_log(settings: VidrecSettings) -> ServedFeatureLog | None:
    """The worker's served-feature log (the skew checks' input), within the served log's bound
    and flush interval; None when no request is sampled (VIDREC_SERVED_FEATURES_SAMPLE_SHARE=0)."""
    if settings.served_features_sample_share <= 0:
        return None
    return ServedFeatureLog(settings.served_features_dir, settings.served_log_max_pending,
                            settings.served_log_flush_seconds)


def _guard_policy(settings: VidrecSettings) -> GuardPolicy:
    api_key = settings.api_key.get_secret_value() if settings.api_key else None
    return GuardPolicy(
        settings.api_max_body_bytes,
        api_key,
        service_media_types(RecommendationService),
        spec_documenters=(document_event_responses,),
    )


# Size limits, media types, the API key on write/admin routes and one error body (serving/api_guard.py).
RecommendationService.add_asgi_middleware(ApiGuard, policy=_guard_policy(VidrecSettings()))
log_client_errors_without_traceback()
