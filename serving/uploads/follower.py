"""Follow the raw log's videos table in one worker and make new uploads retrievable without a retrain.

Every `uploads_poll_seconds` a daemon thread reads the video files it has not read
(serving.uploads.video_files), keeps the rows whose video the serving index lacks, skips the
invalid ones with their reason in the log (serving.uploads.validation), and accepts the rest
(serving.uploads.uploaded_videos). Then the serving set grows by every accepted upload it lacks:
embedded by its own video tower into a copy of its index, swapped in by the champion watcher
(serving.uploads.live_index, `ChampionWatcher.extend`). Their features reach the video-feature
cache first, so the ranker and the policy see the upload's creator, category, duration and age.

A new champion set loaded by a reload gets the accepted uploads before it serves (the runtime's
load does it), and if one arrived while it was loading, the next poll adds it: the follower
checks the whole serving set again whenever it is not the one it last completed. Nothing here
ever stops serving: a failed poll is logged and the next one starts over.
"""

from __future__ import annotations

import logging
import threading
import time
from datetime import UTC, datetime

import numpy as np

from serving.compute_threads import single_threaded_math
from serving.hot_reload import ChampionWatcher
from serving.recommender import Recommender
from serving.uploads.live_index import with_uploads
from serving.uploads.uploaded_videos import UploadedVideos
from serving.uploads.validation import servable_uploads
from serving.uploads.video_files import NewVideoFiles

logger = logging.getLogger(__name__)

LOGGED_SKIPS = 20  # reasons logged one by one per poll (a bad re-import must not flood the log)


class UploadFollower:
    def __init__(self, files: NewVideoFiles, uploads: UploadedVideos, watcher: ChampionWatcher, poll_seconds: float):
        self.files = files
        self.uploads = uploads
        self.watcher = watcher
        self.poll_seconds = poll_seconds
        self._complete: Recommender | None = None  # the serving set last seen holding every upload
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def poll(self) -> np.ndarray:
        """One look at the raw log; returns the ids of the uploads accepted by it.

        Nothing is read before a set serves: which videos are new is a question to its index."""
        serving = self.watcher.current
        if serving is None:
            return np.empty(0, dtype=np.int64)
        added = self._accept_new_rows(serving)
        if len(added):
            self._cache_features(serving, added)
        if len(added) or self.watcher.current is not self._complete:
            self.watcher.extend(lambda models: with_uploads(models, self.uploads.catalog()))
            self._complete = self.watcher.current
        return added

    def _accept_new_rows(self, serving: Recommender) -> np.ndarray:
        videos = self.files.read_new()
        unindexed = videos[~serving.models.index.holds(videos["video_id"].fillna(-1).to_numpy())]
        if unindexed.empty:  # the common case, kept cheap: validating no rows costs pandas ~20 ms
            return np.empty(0, dtype=np.int64)
        servable, skipped = servable_uploads(unindexed, datetime.now(UTC).replace(tzinfo=None))
        for skip in skipped[:LOGGED_SKIPS]:
            logger.warning("upload not served: %s", skip)
        if len(skipped) > LOGGED_SKIPS:
            logger.warning("%d more uploads not served (reasons of the first %d above)", len(skipped) - LOGGED_SKIPS,
                           LOGGED_SKIPS)
        added = self.uploads.add(servable)
        if len(added):
            logger.info("%d new uploads accepted (video ids %s)", len(added), added[:10].tolist())
        return added

    def _cache_features(self, serving: Recommender, video_ids: np.ndarray) -> None:
        """Put the uploads' features in the cache before they can be retrieved (a request would
        otherwise read them itself, costing its budget an online-store read)."""
        try:
            serving.features.warm_video_cache(video_ids.tolist())
        except Exception as error:  # noqa: BLE001 - the store is down: a request reads them later
            logger.warning("features of %d uploads not cached yet: %r", len(video_ids), error)

    def start(self) -> None:
        """Poll now and then every `poll_seconds` in a daemon thread, until `stop()`; 0 never polls."""
        if self.poll_seconds <= 0 or self._thread is not None:
            return
        self._thread = threading.Thread(target=self._run, name="upload-follower", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10)

    def _run(self) -> None:
        single_threaded_math()  # embedding and index copies share the request threads' cores
        while True:
            started = time.monotonic()
            try:
                self.poll()
            except Exception:  # a bad poll must not end the thread; the next starts over
                logger.exception("upload poll failed; the next one tries again")
            if self._stop.wait(max(0.0, self.poll_seconds - (time.monotonic() - started))):
                return
