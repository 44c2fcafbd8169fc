"""Item-to-item co-watch: "people who watched this in the same session also watched".

Fitted on training watches only. Watches of one user are cut into sessions wherever the gap
between consecutive watches exceeds `session_gap_minutes`; each watch is paired with the next
`pair_window` watches of its session (both directions). A pair counts each user once, so one
binge cannot make a neighbour. Raw counts would make every video's top neighbour the most
popular video, so the count is normalised by popularity:

- `pmi`:    log(co_users(a, b) · users / (users(a) · users(b))), kept only where positive
            (co-watched more often than chance);
- `cosine`: co_users(a, b) / sqrt(users(a) · users(b)).

PMI over-rewards pairs of rare videos; cosine recalled about twice as much on the simulated
validation cut, so it is the default.

At request time the last `history_length` history ids (most recent first, weighted by
`history_decay ** position`) each add their neighbours' scores; the sum ranks the candidates.
"""

from __future__ import annotations

import heapq
import logging
from collections.abc import Sequence
from dataclasses import asdict, dataclass

import numpy as np
import pandas as pd

from models.sources._common import (
    as_timestamp,
    group_offsets,
    load_arrays,
    require_columns,
    save_arrays,
    split_by_offsets,
)

logger = logging.getLogger(__name__)

NAME = "co_watch"
MEASURES = ("pmi", "cosine")
_CSR_KEYS = ("video_ids", "offsets", "neighbour_ids", "neighbour_scores")


@dataclass
class CoWatchConfig:
    quota: int = 100
    session_gap_minutes: float = 30.0
    pair_window: int = 10  # pair each watch with at most the next N watches of its session
    measure: str = "cosine"  # beat pmi on the simulated validation cut (bench/sources.py)
    min_pair_users: int = 2  # pairs co-watched by fewer distinct users are dropped as noise
    neighbours_per_video: int = 100
    history_length: int = 20  # the last M history ids a request aggregates over
    history_decay: float = 0.9

    def __post_init__(self) -> None:
        if self.measure not in MEASURES:
            raise ValueError(f"measure must be one of {MEASURES}, got {self.measure!r}")
        if self.pair_window < 1 or self.session_gap_minutes <= 0:
            raise ValueError(
                f"pair_window must be >= 1 and session_gap_minutes > 0, got {self.pair_window}, "
                f"{self.session_gap_minutes}"
            )


class CoWatchSource:
    name = NAME

    def __init__(self, config: CoWatchConfig | None = None):
        self.config = config or CoWatchConfig()
        self.now: pd.Timestamp | None = None
        self._neighbours: dict[int, tuple[list[int], list[float]]] = {}  # video → (ids, scores), best first

    def fit(self, watches: pd.DataFrame, now: pd.Timestamp) -> CoWatchSource:
        """`watches`: user_id, video_id, watch_time; rows at or after `now` are ignored."""
        require_columns(watches, ("user_id", "video_id", "watch_time"), "watches")
        self.now = as_timestamp(now)
        frame = watches.loc[pd.to_datetime(watches["watch_time"]) < self.now, ["user_id", "video_id", "watch_time"]]
        frame = frame.sort_values(["user_id", "watch_time"], kind="stable")
        pairs = self._session_pairs(frame)
        video_users = frame.drop_duplicates(["user_id", "video_id"])["video_id"].value_counts()
        scored = self._score(pairs, video_users, frame["user_id"].nunique())
        self._store(*self._top_neighbours(scored))
        logger.info(
            "co-watch fitted: %d watches, %d scored pairs, %d videos with neighbours",
            len(frame), len(scored), len(self._neighbours),
        )
        return self

    @property
    def num_videos(self) -> int:
        return len(self._neighbours)

    def neighbours(self, video_id: int) -> list[tuple[int, float]]:
        ids, scores = self._neighbours.get(int(video_id), ([], []))
        return list(zip(ids, scores))

    def recommend(
        self, history_ids: Sequence[int], exclude: set[int] | frozenset[int], k: int
    ) -> list[tuple[int, float]]:
        """Top-k (video_id, summed neighbour score) for a history given oldest first."""
        recent = [int(video) for video in list(history_ids)[-self.config.history_length:]][::-1]
        skip = set(exclude).union(recent)
        totals: dict[int, float] = {}
        weight = 1.0
        for video in recent:
            ids, scores = self._neighbours.get(video, ((), ()))
            for neighbour, score in zip(ids, scores):
                if neighbour not in skip:
                    totals[neighbour] = totals.get(neighbour, 0.0) + weight * score
            weight *= self.config.history_decay
        return heapq.nlargest(k, totals.items(), key=lambda item: (item[1], -item[0])) if k > 0 else []

    def save(self, directory) -> None:
        now = self._require_fitted()
        save_arrays(directory, NAME, asdict(self.config), now, dict(zip(_CSR_KEYS, self._csr)))

    @classmethod
    def load(cls, directory) -> CoWatchSource:
        config, now, arrays = load_arrays(directory, NAME)
        source = cls(CoWatchConfig(**config))
        source.now = now
        source._store(*(arrays[key] for key in _CSR_KEYS))
        return source

    def _session_pairs(self, frame: pd.DataFrame) -> pd.DataFrame:
        """(user_id, video_id, neighbour_id), both directions, one row per user and ordered pair."""
        users = frame["user_id"].to_numpy(np.int64)
        videos = frame["video_id"].to_numpy(np.int64)
        times = frame["watch_time"].to_numpy("datetime64[ns]").astype(np.int64)
        gap = int(self.config.session_gap_minutes * 60 * 10**9)
        new_session = np.ones(len(frame), dtype=bool)
        new_session[1:] = (users[1:] != users[:-1]) | (np.diff(times) > gap)
        session = np.cumsum(new_session)
        parts = []
        for offset in range(1, min(self.config.pair_window, max(len(frame) - 1, 0)) + 1):
            same = (session[offset:] == session[:-offset]) & (videos[offset:] != videos[:-offset])
            earlier, later, user = videos[:-offset][same], videos[offset:][same], users[offset:][same]
            parts += [np.stack([user, earlier, later], axis=1), np.stack([user, later, earlier], axis=1)]
        stacked = np.concatenate(parts) if parts else np.empty((0, 3), dtype=np.int64)
        return pd.DataFrame(stacked, columns=["user_id", "video_id", "neighbour_id"]).drop_duplicates()

    def _score(self, pairs: pd.DataFrame, video_users: pd.Series, num_users: int) -> pd.DataFrame:
        counts = pairs.groupby(["video_id", "neighbour_id"]).size().rename("co_users").reset_index()
        counts = counts[counts["co_users"] >= self.config.min_pair_users]
        users_a = video_users.reindex(counts["video_id"]).to_numpy(np.float64)
        users_b = video_users.reindex(counts["neighbour_id"]).to_numpy(np.float64)
        co_users = counts["co_users"].to_numpy(np.float64)
        if self.config.measure == "pmi":
            score = np.log(co_users * num_users / (users_a * users_b))
        else:
            score = co_users / np.sqrt(users_a * users_b)
        counts = counts.assign(score=score)
        return counts[counts["score"] > 0]

    def _top_neighbours(self, scored: pd.DataFrame) -> tuple[np.ndarray, ...]:
        ordered = scored.sort_values(["video_id", "score", "neighbour_id"], ascending=[True, False, True])
        ordered = ordered.groupby("video_id", sort=False).head(self.config.neighbours_per_video)
        keys, offsets = group_offsets(ordered["video_id"].to_numpy(np.int64))
        return keys, offsets, ordered["neighbour_id"].to_numpy(np.int64), ordered["score"].to_numpy(np.float64)

    def _store(self, keys, offsets, neighbour_ids, neighbour_scores) -> None:
        self._csr = (keys, offsets, neighbour_ids, neighbour_scores)  # what save() writes
        self._neighbours = split_by_offsets(keys, offsets, neighbour_ids, neighbour_scores)

    def _require_fitted(self) -> pd.Timestamp:
        if self.now is None:
            raise ValueError("CoWatchSource is not fitted; call fit() or load() first")
        return self.now
