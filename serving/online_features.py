"""Reading features at request time through the same Feast feature services training used.

A request needs the user's features once and every candidate's video features. User features
(history, activity) change with every watch, so they are read from the online store on every
request and never cached. Video features are daily aggregates shared by all users, so they are
kept in-process for `video_ttl_seconds`: a warm request then costs one online-store read for one
entity instead of one per candidate. A video the store knows nothing of yet (uploaded since the
last materialization, serving.uploads) takes what `unknown_video_features` knows of it instead.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Sequence

import numpy as np
import pandas as pd
from feast import FeatureStore
from feast.types import PrimitiveFeastType

from feature_repo.engagement import REQUEST_TIME, RETRIEVAL_SOURCE, RETRIEVAL_SOURCE_SCORE
from feature_repo.entities import next_request_id
from feature_repo.feature_columns import feature_refs_by_join_keys, service_feature_columns
from feature_repo.on_demand import on_demand_requests
from models.ranking.preprocessing import constant_column
from serving.video_slots import NO_SLOT, VideoSlots

logger = logging.getLogger(__name__)

RETRIEVAL_USER_SERVICE = "retrieval_user_features"
RANKER_SERVICE = "ranker_features"
USER_KEY = "user_id"
VIDEO_KEY = "video_id"
REQUEST_KEY = "request_id"


class OnlineFeatureReader:
    def __init__(
        self,
        store: FeatureStore,
        video_ttl_seconds: float = 300.0,
        clock: Callable[[], float] = time.monotonic,
        unknown_video_features: Callable[[list[int]], dict[str, list]] | None = None,
    ):
        """`unknown_video_features(ids)`: {feature name: a value or None per id} for videos the
        store answers nothing for (every feature missing); None: they stay missing."""
        self._store = store
        self._unknown_video_features = unknown_video_features
        ranker = feature_refs_by_join_keys(store, store.get_feature_service(RANKER_SERVICE))
        retrieval = feature_refs_by_join_keys(store, store.get_feature_service(RETRIEVAL_USER_SERVICE))
        # On-demand views of the ranker service are computed here, from stored inputs read below.
        self._on_demand = on_demand_requests(store, store.get_feature_service(RANKER_SERVICE))
        inputs = feature_refs_by_join_keys(store, [ref for request in self._on_demand for ref in request.input_refs])
        known = {(USER_KEY,), (VIDEO_KEY,), (REQUEST_KEY,)}
        unexpected = (set(ranker) | set(retrieval) | set(inputs)) - known
        if unexpected:
            raise ValueError(
                f"feature views keyed on {sorted(unexpected)}: serving joins only user_id, video_id and request_id"
            )
        # Read together, once per request: the user's features and their next request's state.
        self._user_refs = list(
            dict.fromkeys(
                retrieval.get((USER_KEY,), []) + ranker.get((USER_KEY,), []) + inputs.get((USER_KEY,), [])
                + ranker.get((REQUEST_KEY,), []) + inputs.get((REQUEST_KEY,), [])
            )
        )
        self._video_refs = list(dict.fromkeys(ranker.get((VIDEO_KEY,), []) + inputs.get((VIDEO_KEY,), [])))
        # list-valued ranker inputs (bags of ids, e.g. the recent watches)
        self._ranker_list_names = set(service_feature_columns(store, RANKER_SERVICE).lists)
        self._user_log_names = [
            reference.split(":", 1)[1] for key in ((USER_KEY,), (REQUEST_KEY,)) for reference in inputs.get(key, [])
        ]
        self.video_feature_names = [reference.split(":", 1)[1] for reference in self._video_refs]
        self._video_ttl_seconds = video_ttl_seconds
        self._clock = clock
        # Video features column-wise: a slot per video in one float matrix (numbers, NaN when
        # missing) and one object matrix (strings), so a request gathers its rows in one take.
        string_features = {
            feature.name
            for reference in self._video_refs
            for feature in store.get_feature_view(reference.split(":", 1)[0]).features
            if feature.dtype == PrimitiveFeastType.STRING
        }
        self._string_names = [name for name in self.video_feature_names if name in string_features]
        self._number_names = [name for name in self.video_feature_names if name not in string_features]
        self._video_slots = VideoSlots()
        # (numbers, strings, expiry per slot): swapped whole when new videos grow it, so a
        # reader always holds rows for every slot it looked up
        self._table: tuple[np.ndarray, np.ndarray, np.ndarray] = (
            np.empty((0, len(self._number_names))),
            np.empty((0, len(self._string_names)), dtype=object),
            np.empty(0),
        )
        # request threads share the cache: one of them refreshes it at a time
        self._cache_lock = threading.Lock()
        self._refresher: threading.Thread | None = None
        self._stop_refresher = threading.Event()

    def user_features(self, user_id: int) -> dict[str, object] | None:
        """Every user-keyed feature either service needs, plus the state the user's next request
        sees (the engagement log), or None when the store has nothing on the user."""
        values = self._store.get_online_features(
            features=self._user_refs, entity_rows=[{USER_KEY: user_id, REQUEST_KEY: next_request_id(user_id)}]
        ).to_dict()
        row = {name: column[0] for name, column in values.items() if name != REQUEST_KEY}
        if all(value is None for name, value in row.items() if name != USER_KEY):
            return None
        return row

    def default_user_features(self) -> dict[str, object]:
        """A user the store cannot tell about (it is down): every user feature, missing, as the
        store answers for a user without history; the ranker treats them as missing values."""
        return {reference.split(":", 1)[1]: None for reference in self._user_refs}

    def video_features(self, video_ids: Sequence[int]) -> pd.DataFrame:
        """One row per id (in order) of video features, from the cache where still fresh."""
        return pd.DataFrame(self._video_columns(video_ids), copy=False)

    def _video_columns(self, video_ids: Sequence[int], degraded: list[str] | None = None) -> dict[str, np.ndarray]:
        """The video features of `video_ids` column by column (a DataFrame built once, later).

        When refreshing expired entries fails (the online store is down) and every video has
        cached values, the stale values serve and "candidate_features:stale" is added to
        `degraded`; a video never read before makes the failure the caller's.
        """
        now = self._clock()
        ids = np.asarray(video_ids, dtype=np.int64)
        numbers, strings, expiry = self._table
        slots = self._video_slots.lookup(ids)
        cached = slots != NO_SLOT
        expired = np.zeros(len(ids), dtype=bool)
        expired[cached] = expiry[slots[cached]] <= now
        if self._refresher is not None:
            # the refresher keeps cached videos fresh off the request path: fetch only unseen ones,
            # and serve expired ones (the refresher is failing) flagged as stale
            if expired.any() and degraded is not None:
                degraded.append("candidate_features:stale")
            to_fetch = ids[~cached]
        else:
            to_fetch = ids[~cached | expired]
        if len(to_fetch):
            try:
                self._fetch_videos(list(dict.fromkeys(to_fetch.tolist())), now)
            except Exception as error:
                if not cached.all() or degraded is None:
                    raise
                logger.warning("video features not refreshed, serving stale ones: %r", error)
                degraded.append("candidate_features:stale")
            numbers, strings, _ = self._table
            slots = self._video_slots.lookup(ids)
        numbers = numbers[slots]
        strings = strings[slots]
        data = {name: numbers[:, column] for column, name in enumerate(self._number_names)}
        data.update({name: strings[:, column] for column, name in enumerate(self._string_names)})
        data[VIDEO_KEY] = ids
        return data

    def warm_video_cache(self, video_ids: Sequence[int], batch_size: int = 1000, only_missing: bool = False) -> None:
        """Load every given video's features (`only_missing`: those not cached yet) ahead of the
        requests that will ask for them."""
        if only_missing:
            ids = np.asarray(video_ids, dtype=np.int64)
            video_ids = ids[self._video_slots.lookup(ids) == NO_SLOT].tolist()
        for start in range(0, len(video_ids), batch_size):
            self._fetch_videos([int(video) for video in video_ids[start:start + batch_size]], self._clock())

    def refresh_video_cache(self, batch_size: int = 1000) -> None:
        """Re-read every cached video's features now (the data clock moved to a new
        materialization: the refresher would take up to a round to catch up)."""
        videos = self._video_slots.video_ids()
        for start in range(0, len(videos), batch_size):
            self._fetch_videos(videos[start:start + batch_size], self._clock())

    def start_video_refresher(self, batch_size: int = 250) -> None:
        """Re-read every cached video's features in a daemon thread, so requests never wait on a
        refresh (at 100k videos an inline refresh of 500 candidates costs more than the rest of
        the request). Each round re-reads every cached video once, in small batches spread evenly
        over half a TTL: reading 100k videos costs ~10 s of CPU, which in one burst would stall
        every request for as long. A failed batch leaves its values in place; once they pass
        their TTL, requests serving them are flagged `candidate_features:stale`."""
        if self._refresher is not None or self._video_ttl_seconds <= 0:
            return

        def refresh_forever() -> None:
            round_seconds = self._video_ttl_seconds / 2
            while not self._stop_refresher.is_set():
                videos = self._video_slots.video_ids()
                batches = max(1, -(-len(videos) // batch_size))
                for start in range(0, max(len(videos), 1), batch_size):
                    if self._stop_refresher.wait(round_seconds / batches):
                        return
                    try:
                        self._fetch_videos(videos[start:start + batch_size], self._clock())
                    except Exception as error:  # noqa: BLE001 - the store is down: the next round retries
                        logger.warning("video feature refresh failed: %r", error)

        self._refresher = threading.Thread(target=refresh_forever, name="video-feature-refresher", daemon=True)
        self._refresher.start()

    def stop_video_refresher(self) -> None:
        self._stop_refresher.set()

    def ranking_columns(
        self,
        user: dict[str, object],
        user_id: int,
        video_ids: Sequence[int],
        request_unix_seconds: float,
        retrieval_sources: Sequence[str | None] | None = None,
        retrieval_source_scores: Sequence[float] | None = None,
        degraded: list[str] | None = None,
    ) -> dict[str, np.ndarray]:
        """One row per candidate, column by column: its video features, the user's features and
        the on-demand ones. Numpy columns, not a DataFrame: at 500 candidates building a frame
        of some 60 columns costs more than the ranker's forward pass.

        The on-demand views (cross features) run their own Feast transformation on the user's
        stored log and the request data: the request time and what retrieval said of each
        candidate (unknown where not given). Stale video features may serve when the store is
        down (see `_video_columns`); that is added to `degraded`.
        """
        data = self._video_columns(video_ids, degraded)
        size = len(video_ids)
        # The logs feed the on-demand views, not the ranker directly; of the list-valued user
        # features (histories) only those the ranker service names (bags) are ranker inputs.
        for name, value in user.items():
            if name in data or name in self._user_log_names:
                continue
            if isinstance(value, list) and name not in self._ranker_list_names:
                continue
            data[name] = _repeated(value, size)
        data[USER_KEY] = np.full(size, user_id, dtype=np.int64)
        if not self._on_demand:
            return data
        data[REQUEST_TIME] = np.full(size, float(request_unix_seconds))
        data[RETRIEVAL_SOURCE] = (
            np.asarray(retrieval_sources, dtype=object) if retrieval_sources is not None
            else constant_column(None, size)
        )
        data[RETRIEVAL_SOURCE_SCORE] = (
            np.asarray(retrieval_source_scores, dtype=np.float64)
            if retrieval_source_scores is not None else np.full(size, np.nan)
        )
        # the user's logs (None: nothing logged yet), the same object on every candidate row
        logs = {name: constant_column(user.get(name), size) for name in self._user_log_names}
        for request in self._on_demand:
            # the transformation sees only what it reads
            inputs = {name: data[name] for name in (USER_KEY, VIDEO_KEY, *request.input_columns) if name in data}
            data.update(request.outputs_for_one_user({**inputs, **logs}))
        return data

    def _fetch_videos(self, video_ids: list[int], now: float) -> None:
        values = self._store.get_online_features(
            features=self._video_refs, entity_rows=[{VIDEO_KEY: video} for video in video_ids]
        ).to_dict()
        self._fill_unknown_videos(video_ids, values)
        with self._cache_lock:
            self._store_videos(video_ids, values, now)

    def _fill_unknown_videos(self, video_ids: list[int], values: dict[str, list]) -> None:
        """Where the store answered nothing for a video, the values `unknown_video_features` has
        (in place). Re-read on every refresh, so the store's own values win once it has any."""
        if self._unknown_video_features is None:
            return
        unknown = [
            row for row in range(len(video_ids))
            if all(values[name][row] is None for name in self.video_feature_names)
        ]
        if not unknown:
            return
        known = self._unknown_video_features([video_ids[row] for row in unknown])
        for name in self.video_feature_names:
            if name in known:
                for row, value in zip(unknown, known[name], strict=True):
                    values[name][row] = value

    def _store_videos(self, video_ids: list[int], values: dict[str, list], now: float) -> None:
        """Write read values into the cache: new videos get slots in grown copies of the matrices
        (swapped in whole, so a concurrent reader sees the old pair or the new one)."""
        ids = np.asarray(video_ids, dtype=np.int64)
        numbers, strings, expiry = self._table
        new = np.unique(ids[self._video_slots.lookup(ids) == NO_SLOT])
        if len(new):
            first = len(numbers)
            numbers = np.vstack([numbers, np.full((len(new), len(self._number_names)), np.nan)])
            strings = np.vstack([strings, np.full((len(new), len(self._string_names)), None, dtype=object)])
            expiry = np.concatenate([expiry, np.full(len(new), -np.inf)])
            self._table = (numbers, strings, expiry)
            self._video_slots.assign(new, first)
        slots = self._video_slots.lookup(ids)
        for column, name in enumerate(self._number_names):
            numbers[slots, column] = [np.nan if value is None else value for value in values[name]]
        for column, name in enumerate(self._string_names):
            strings[slots, column] = values[name]
        expiry[slots] = now + self._video_ttl_seconds


def _repeated(value: object, size: int) -> np.ndarray:
    """A user feature on every candidate row, as a stride-0 view (the preprocessor transforms
    it once); numbers as float64, missing as NaN."""
    if value is None:
        return np.broadcast_to(np.array([np.nan]), (size,))
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return np.broadcast_to(np.array([float(value)]), (size,))
    return constant_column(value, size)  # (np.full would copy a string per row)
