"""The shape shared by the non-personalised sources (trending, fresh): one ranked list fitted
offline, from which each request takes the first `k` videos the user has not watched."""

from __future__ import annotations

from dataclasses import asdict

import numpy as np
import pandas as pd

from models.sources._common import load_arrays, save_arrays, take_top


class GlobalRankingSource:
    name: str
    config_class: type

    def __init__(self, config=None):
        self.config = config or self.config_class()
        self.now: pd.Timestamp | None = None
        self._ranking: list[tuple[int, float]] = []  # (video_id, score), best first

    def __len__(self) -> int:
        return len(self._ranking)

    def recommend(self, exclude: set[int] | frozenset[int], k: int) -> list[tuple[int, float]]:
        return take_top(self._ranking, exclude, k)

    def save(self, directory) -> None:
        if self.now is None:
            raise ValueError(f"{type(self).__name__} is not fitted; call fit() or load() first")
        save_arrays(directory, self.name, asdict(self.config), self.now, {
            "video_ids": np.array([video for video, _ in self._ranking], dtype=np.int64),
            "scores": np.array([score for _, score in self._ranking], dtype=np.float64),
        })

    @classmethod
    def load(cls, directory):
        config, now, arrays = load_arrays(directory, cls.name)
        source = cls(cls.config_class(**config))
        source.now = now
        source._ranking = list(zip(arrays["video_ids"].tolist(), arrays["scores"].tolist()))
        return source

    def _set_ranking(self, video_ids: np.ndarray, scores: np.ndarray) -> None:
        """Rank by score (descending), ties by video id, so fits are deterministic."""
        order = np.lexsort((video_ids, -scores))
        self._ranking = list(zip(video_ids[order].astype(np.int64).tolist(), scores[order].astype(float).tolist()))
