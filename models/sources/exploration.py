"""Exploration: a small seeded-random sample of under-exposed videos, so new and tail videos get
shown and their engagement gets measured.

Exposure is impressions per day of age at `now` (age floored at one day, so a video uploaded an
hour ago is not judged on a fraction of a day). The `pool_size` least-exposed videos form the
pool; a request draws from it without replacement with weight 1 / (1 + impressions_per_day)
(Efraimidis–Spirakis keys), so the least-exposed are the likeliest. The draw is seeded by
(`seed`, user_id, `salt`): the same user gets the same sample until the caller changes the salt
(e.g. to the day number) or the source is refitted with another seed.
"""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass

import numpy as np
import pandas as pd

from models.sources._common import (
    as_timestamp,
    days_before,
    load_arrays,
    require_columns,
    save_arrays,
)

logger = logging.getLogger(__name__)

NAME = "exploration"


@dataclass
class ExplorationConfig:
    quota: int = 10
    pool_size: int = 500
    seed: int = 0


class ExplorationSource:
    name = NAME

    def __init__(self, config: ExplorationConfig | None = None):
        self.config = config or ExplorationConfig()
        self.now: pd.Timestamp | None = None
        self._pool_ids = np.empty(0, dtype=np.int64)
        self._pool_weights = np.empty(0, dtype=np.float64)

    @property
    def pool(self) -> list[int]:
        return self._pool_ids.tolist()

    def fit(self, catalog: pd.DataFrame, impression_counts: pd.DataFrame, now: pd.Timestamp) -> ExplorationSource:
        """`catalog`: video_id, upload_time; `impression_counts`: video_id, impressions (before `now`)."""
        require_columns(catalog, ("video_id", "upload_time"), "catalog")
        require_columns(impression_counts, ("video_id", "impressions"), "impression_counts")
        self.now = as_timestamp(now)
        age_days = days_before(catalog["upload_time"], self.now)
        uploaded = catalog.loc[age_days > 0, ["video_id"]].assign(age_days=np.maximum(age_days[age_days > 0], 1.0))
        counts = impression_counts.groupby("video_id")["impressions"].sum()
        impressions = counts.reindex(uploaded["video_id"], fill_value=0).to_numpy(np.float64)
        per_day = impressions / uploaded["age_days"].to_numpy()
        video_ids = uploaded["video_id"].to_numpy(np.int64)
        order = np.lexsort((video_ids, per_day))[: self.config.pool_size]
        self._pool_ids = video_ids[order]
        self._pool_weights = 1.0 / (1.0 + per_day[order])
        logger.info(
            "exploration fitted: pool of %d videos with at most %.2f impressions per day",
            len(self._pool_ids), float(per_day[order].max()) if len(order) else 0.0,
        )
        return self

    def recommend(
        self, user_id: int, exclude: set[int] | frozenset[int], k: int, salt: int = 0
    ) -> list[tuple[int, float]]:
        """k (video_id, weight) drawn from the pool, deterministic for (seed, user_id, salt)."""
        if k < 1 or len(self._pool_ids) == 0:
            return []
        rng = np.random.default_rng([self.config.seed, int(user_id) & 0x7FFFFFFFFFFFFFFF, salt])
        keys = np.log(rng.random(len(self._pool_ids))) / self._pool_weights  # larger is likelier
        take = min(len(keys), k + len(exclude))
        best = np.argpartition(-keys, take - 1)[:take]
        best = best[np.argsort(-keys[best], kind="stable")]
        picked = []
        for position in best.tolist():
            video = int(self._pool_ids[position])
            if video not in exclude:
                picked.append((video, float(self._pool_weights[position])))
                if len(picked) == k:
                    break
        return picked

    def save(self, directory) -> None:
        if self.now is None:
            raise ValueError("ExplorationSource is not fitted; call fit() or load() first")
        save_arrays(directory, NAME, asdict(self.config), self.now,
                    {"pool_ids": self._pool_ids, "pool_weights": self._pool_weights})

    @classmethod
    def load(cls, directory) -> ExplorationSource:
        config, now, arrays = load_arrays(directory, NAME)
        source = cls(ExplorationConfig(**config))
        source.now = now
        source._pool_ids, source._pool_weights = arrays["pool_ids"], arrays["pool_weights"]
        return source
