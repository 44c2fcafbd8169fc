"""What one service worker holds for its lifetime, and how a loaded model set becomes a recommender.

The online store connection, the video feature cache, the thread pool that bounds online reads,
the users' last-known features and the videos uploaded since the models were trained outlive any
model set: a hot reload builds a new `Recommender` from new models and these same parts
(serving.hot_reload swaps it in), and the uploads are added to its index before it serves.
"""

from __future__ import annotations

import gc
import logging
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import mlflow
from feast import FeatureStore
from mlflow.tracking import MlflowClient

from feature_repo.services import RETRIEVAL_USER_FEATURES
from feature_repo.store import feature_store
from models.retrieval.query import check_service
from serving.hot_reload import ChampionWatcher
from serving.loading import champion_versions, load_models
from serving.online_features import OnlineFeatureReader
from serving.policy import PolicyConfig, PolicyStage
from serving.recommender import LastKnownUsers, Recommender, ServingModels
from serving.request_clock import DataClock, request_clock
from serving.request_trace import StageBudgets
from serving.uploads import NewVideoFiles, UploadedVideos, UploadFollower, with_uploads
from vidrec.schema import VIDEOS
from vidrec.settings import VidrecSettings

logger = logging.getLogger(__name__)

# Online-store reads in flight at once per worker (each request makes at most two).
IO_THREADS = 16
HEALTH_PROBE_SECONDS = 1.0


def settle_heap() -> None:
    """Freeze what serves now out of the garbage collector's reach. A served 100k-video set is
    millions of long-lived objects (video feature cache, vocabularies, source tables); without
    this, each full collection walks them all and stalls every request in the worker for a few
    hundred milliseconds. Freezing is cheap (no collection, which would stall as long); what an
    old set leaves is still freed by reference counting, only its reference cycles stay."""
    gc.freeze()


def stage_budgets(settings: VidrecSettings) -> StageBudgets:
    return StageBudgets(
        user_features=settings.budget_user_features_seconds,
        retrieval=settings.budget_retrieval_seconds,
        candidate_features=settings.budget_candidate_features_seconds,
        ranking=settings.budget_ranking_seconds,
        policy=settings.budget_policy_seconds,
    )


@dataclass
class ServingRuntime:
    settings: VidrecSettings
    store: FeatureStore
    io_executor: ThreadPoolExecutor
    last_known_users: LastKnownUsers
    # Opened with the first model set: before the pipeline has run, the store has no feature
    # services to read, and the service must still start (not ready) rather than crash.
    features: OnlineFeatureReader | None = None
    # The re-ranking policy (its blocklist read once: a bad file fails start-up, naming the line).
    policy: PolicyStage = field(default_factory=lambda: PolicyStage(PolicyConfig()))
    # Videos uploaded since training that this worker serves (serving.uploads), kept across reloads.
    uploads: UploadedVideos = field(default_factory=UploadedVideos)
    _healthy: tuple[float, bool] = (-float("inf"), False)
    # The request clock of the newest recommender: uploads' ages are measured on it.
    _request_clock: Callable[[], float] = time.time

    @classmethod
    def open(cls, settings: VidrecSettings, store: FeatureStore | None = None) -> ServingRuntime:
        return cls(
            settings=settings,
            store=store if store is not None else feature_store(settings),
            io_executor=ThreadPoolExecutor(max_workers=IO_THREADS, thread_name_prefix="online-store"),
            last_known_users=LastKnownUsers(settings.last_known_users),
            policy=PolicyStage.from_settings(settings),
        )

    def feature_reader(self) -> OnlineFeatureReader:
        """The online feature reader, opened on first use (with the video refresher started)."""
        if self.features is None:
            # the retrieval query maps every feature of its service, or serving refuses to serve
            check_service(self.store.get_feature_service(RETRIEVAL_USER_FEATURES))
            self.features = OnlineFeatureReader(
                self.store, self.settings.video_feature_ttl_seconds,
                unknown_video_features=lambda video_ids: self.uploads.video_features(video_ids, self._request_clock()),
            )
            self.features.start_video_refresher()
        return self.features

    def recommender(self, models: ServingModels) -> Recommender:
        """A recommender answering with `models`; their catalog's videos not cached yet are read
        first, so the first requests after a (re)load do not wait on the store (the cached ones
        are kept fresh by the refresher: re-reading 100k at each reload would stall the worker)."""
        features = self.feature_reader()
        features.warm_video_cache(models.retrieval.catalog_video_ids.tolist(), only_missing=True)
        previous = self._request_clock
        self._request_clock = request_clock(self.settings, self.store, on_advance=features.refresh_video_cache)
        if (isinstance(previous, DataClock) and isinstance(self._request_clock, DataClock)
                and self._request_clock.until > previous.until):
            # a reload after a refresh: the new clock starts at the new materialization, so it never
            # sees the move its advance hook re-reads on; the cached videos are re-read here instead
            features.refresh_video_cache()
        return Recommender(
            models,
            features,
            self.settings.candidates_per_request,
            request_clock=self._request_clock,
            budgets=stage_budgets(self.settings),
            io_executor=self.io_executor,
            last_known_users=self.last_known_users,
            policy=self.policy,
            seed_share=self.settings.watch_next_seed_share,
            feature_sample_share=self.settings.served_features_sample_share,
            popularity_only=self.settings.serving_funnel == "popularity",
        )

    def champion_watcher(self) -> ChampionWatcher:
        """Follows the registry's champions (see serving.hot_reload) every `model_poll_seconds`,
        and, started with it, the raw log's new uploads every `uploads_poll_seconds`."""
        mlflow.set_tracking_uri(self.settings.mlflow_tracking_uri)
        watcher = ChampionWatcher(
            resolve=lambda: champion_versions(MlflowClient(), self.settings.serving_model_alias),
            load=lambda versions: self._with_uploads(load_models(self.settings, versions)),
            build=self.recommender,
            poll_seconds=self.settings.model_poll_seconds,
            on_swap=settle_heap,
        )
        watcher.run_beside(self.upload_follower(watcher))
        return watcher

    def upload_follower(self, watcher: ChampionWatcher) -> UploadFollower:
        """Makes the raw log's new videos retrievable in what `watcher` serves (see serving.uploads)."""
        files = NewVideoFiles(self.settings.raw_dir / VIDEOS.name)
        return UploadFollower(files, self.uploads, watcher, self.settings.uploads_poll_seconds)

    def _with_uploads(self, models: ServingModels) -> ServingModels:
        """A newly loaded set with the uploads this worker serves that its index lacks. A failure
        here must not keep the new champions out: they load without them, and the follower's
        next poll adds them."""
        try:
            return with_uploads(models, self.uploads.catalog())
        except Exception:
            logger.exception("uploads not added to the champions %s yet; the upload follower retries", models.versions)
            return models

    def online_store_healthy(self) -> bool:
        """Whether the online store answers a read within the user-features budget (probed at
        most once a second: `/readyz` may be polled often)."""
        if self.features is None:
            return False
        probed_at, healthy = self._healthy
        now = time.monotonic()
        if now - probed_at < HEALTH_PROBE_SECONDS:
            return healthy
        future = self.io_executor.submit(self.features.user_features, -1)
        try:
            future.result(timeout=self.settings.budget_user_features_seconds * 4)
            healthy = True
        except Exception as error:  # noqa: BLE001 - any failure means not healthy
            logger.warning("online store unhealthy: %r", error)
            healthy = False
        self._healthy = (now, healthy)
        return healthy

    def close(self) -> None:
        if self.features is not None:
            self.features.stop_video_refresher()
        self.io_executor.shutdown(wait=False, cancel_futures=True)
