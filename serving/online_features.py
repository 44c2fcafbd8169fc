"""Reading features at request time through the same Feast feature services training used.

A request needs the user's features once and every candidate's video features. User features
(history, activity) change with every watch, so they are read from the online store on every
request and never cached. Video features are daily aggregates shared by all users, so they are
kept in-process for `video_ttl_seconds`: a warm request then costs one online-store read for one
entity instead of one per candidate.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence

import pandas as pd
from feast import FeatureStore

from feature_repo.entities import next_request_id
from feature_repo.engagement import REQUEST_TIME, RETRIEVAL_SOURCE, RETRIEVAL_SOURCE_SCORE
from feature_repo.feature_columns import feature_refs_by_join_keys
from feature_repo.on_demand import on_demand_requests

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
    ):
        self._store = store
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
        self._user_log_names = [
            reference.split(":", 1)[1] for key in ((USER_KEY,), (REQUEST_KEY,)) for reference in inputs.get(key, [])
        ]
        self.video_feature_names = [reference.split(":", 1)[1] for reference in self._video_refs]
        self._video_ttl_seconds = video_ttl_seconds
        self._clock = clock
        self._video_cache: dict[int, tuple[float, tuple]] = {}

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

    def video_features(self, video_ids: Sequence[int]) -> pd.DataFrame:
        """One row per id (in order) of video features, from the cache where still fresh."""
        now = self._clock()
        stale = [
            video for video in dict.fromkeys(int(video) for video in video_ids)
            if video not in self._video_cache or self._video_cache[video][0] <= now
        ]
        if stale:
            self._fetch_videos(stale, now)
        rows = [self._video_cache[int(video)][1] for video in video_ids]
        return pd.DataFrame(rows, columns=self.video_feature_names).assign(**{VIDEO_KEY: list(video_ids)})

    def warm_video_cache(self, video_ids: Sequence[int], batch_size: int = 1000) -> None:
        """Load every given video's features at start-up so the first requests are fast too."""
        now = self._clock()
        for start in range(0, len(video_ids), batch_size):
            self._fetch_videos([int(video) for video in video_ids[start:start + batch_size]], now)

    def ranking_features(
        self,
        user: dict[str, object],
        user_id: int,
        video_ids: Sequence[int],
        request_unix_seconds: float,
        retrieval_sources: Sequence[str | None] | None = None,
        retrieval_source_scores: Sequence[float] | None = None,
    ) -> pd.DataFrame:
        """One row per candidate: its video features, the user's features and the on-demand ones.

        The on-demand views (cross features) run their own Feast transformation on the user's
        stored log and the request data: the request time and what retrieval said of each
        candidate (unknown where not given).
        """
        frame = self.video_features(video_ids)
        size = len(frame)
        # Scalars only: list-valued user features (histories, logs) feed retrieval and the
        # on-demand views, not the ranker directly.
        user_columns = {
            name: value
            for name, value in user.items()
            if name not in frame.columns and name not in self._user_log_names and not isinstance(value, list)
        }
        user_columns[USER_KEY] = user_id
        frame = frame.assign(**{name: [value] * size for name, value in user_columns.items()})
        if not self._on_demand:
            return frame
        request_data = {
            REQUEST_TIME: float(request_unix_seconds),
            RETRIEVAL_SOURCE: list(retrieval_sources) if retrieval_sources is not None else [None] * size,
            RETRIEVAL_SOURCE_SCORE: (
                list(retrieval_source_scores) if retrieval_source_scores is not None else [float("nan")] * size
            ),
        }
        # the user's logs (None: nothing logged yet), one value for every candidate row
        logs = {name: user.get(name) for name in self._user_log_names}
        inputs = frame.assign(**request_data, **{name: [value] * size for name, value in logs.items()})
        for request in self._on_demand:
            inputs = request.apply(inputs)
        return inputs.drop(columns=list(logs))

    def _fetch_videos(self, video_ids: list[int], now: float) -> None:
        values = self._store.get_online_features(
            features=self._video_refs, entity_rows=[{VIDEO_KEY: video} for video in video_ids]
        ).to_dict()
        columns = [values[name] for name in self.video_feature_names]
        expires = now + self._video_ttl_seconds
        for position, video in enumerate(video_ids):
            self._video_cache[video] = (expires, tuple(column[position] for column in columns))
