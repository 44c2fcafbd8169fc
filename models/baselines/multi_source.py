"""The multi-source union (ANN from the candidate generator + co-watch, subscriptions, trending,
fresh, exploration) behind the baselines' interface, so the harness scores it under the same
protocol as every single method: fitted on the train split only, full catalog, train items
excluded.

What each source may see:

- co-watch is fitted once on the whole train split (as EASE and item-kNN are);
- subscriptions, trending, fresh and exploration depend on when you ask. Given the protocol's
  query time (`fit(train, query_time)`, the global split's cut-off, as the candidate generator is
  asked) they are fitted once as of that time, on what happened strictly before it. Without one
  (the per-user split, where users' "now"s differ) they are fitted as of the end of the day of each
  user's last train interaction, once per distinct day, on train watches before then, and
  subscriptions and impressions (exploration's exposure counts) are also cut per user at that
  user's last train interaction, so nothing from a user's test period reaches any source;
- a source the data cannot feed is empty, never faked: no subscriptions table (MovieLens) → no
  subscription candidates; no impressions → no exploration candidates.

Ordering (what Recall@K < union size and NDCG@10 measure): **quota interleaving**. Source s's
i-th candidate (0-based, after exclusions) sits at virtual position (i + ½) / quota_s; the union is
all candidates sorted by that position, ties by source priority, each video kept at its first
occurrence. So any prefix of the union holds each source's best candidates in proportion to its
quota: with the default quotas (ANN 200 of 400) the top 50 are about half ANN, a quarter
co-watch and the rest the small sources. It is the order the union itself implies, with no
learned re-scoring; the ranker reorders in the product.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

import numpy as np
import pandas as pd

from models.baselines.base import Recommender, check_query_time
from models.sources import MultiSourceConfig
from models.sources._common import take_top
from models.sources.candidate import SOURCE_PRIORITY
from models.sources.co_watch import CoWatchSource
from models.sources.exploration import ExplorationSource
from models.sources.fresh import FreshSource
from models.sources.subscriptions import SubscriptionsSource
from models.sources.trending import TrendingSource

HISTORY_LENGTH = 50  # the co-watch query: the user's most recent train items, as serving sends


def interleave_by_quota(
    ranked_by_source: Mapping[str, Sequence[tuple[int, float]]],
    quotas: Mapping[str, int],
    exclude: set[int] | frozenset[int] = frozenset(),
    priority: Sequence[str] = SOURCE_PRIORITY,
) -> list[int]:
    """The deduplicated union of each source's top `quotas[source]`, in quota-interleaved order."""
    slots = []
    for rank_of_source, source in enumerate(priority):
        quota = quotas.get(source, 0)
        for position, (video, _) in enumerate(take_top(ranked_by_source.get(source, ()), exclude, quota)):
            slots.append(((position + 0.5) / quota, rank_of_source, int(video)))
    slots.sort(key=lambda slot: slot[:2])
    return list(dict.fromkeys(video for _, _, video in slots))


class MultiSourceUnion:
    def __init__(
        self,
        ann: Recommender,
        catalog: pd.DataFrame,  # video_id, creator_id, upload_time
        subscriptions: pd.DataFrame | None = None,  # user_id, creator_id, subscribed_time
        impressions: pd.DataFrame | None = None,  # user_id, video_id, impression_time
        config: MultiSourceConfig | None = None,
    ):
        self.ann = ann
        self.catalog = catalog
        self.subscriptions = subscriptions
        self.impressions = impressions
        self.config = config or MultiSourceConfig()
        if impressions is None:  # no exposure data: exploration would be a blind draw, so it stays empty
            self.config = replace(self.config, exploration=replace(self.config.exploration, quota=0))

    def fit(self, train: pd.DataFrame, query_time: Any = None) -> MultiSourceUnion:
        check_query_time(train, query_time)
        self.ann.fit(train, query_time)
        self.query_time = None if query_time is None else pd.Timestamp(query_time)
        train = train.sort_values(["user_id", "time", "video_id"], kind="stable")
        self.watches = train.rename(columns={"time": "watch_time"})
        # What each user's sources may know: up to the last train interaction, or (with a query
        # time) everything strictly before it, shifted by a microsecond so `<=` below means `<`.
        self.user_cut = train.groupby("user_id")["time"].max()
        if self.query_time is not None:
            self.user_cut[:] = self.query_time - pd.Timedelta(microseconds=1)
        now = train["time"].max() + pd.Timedelta(microseconds=1)  # sources use rows strictly before now
        self.co_watch = CoWatchSource(self.config.co_watch).fit(self.watches, now)
        self.history = {
            int(user): items.tolist()[-HISTORY_LENGTH:] for user, items in train.groupby("user_id")["video_id"]
        }
        self._sources_by_day: dict[pd.Timestamp, DaySources] = {}
        return self

    def recommend(self, user_ids: Sequence[int], k: int, exclude: Mapping[int, set[int]]) -> list[list[int]]:
        quotas = self.config.quotas()
        ann_lists = self.ann.recommend(user_ids, quotas["ann"], exclude)
        ranked = []
        for user, ann in zip(user_ids, ann_lists):
            user = int(user)
            history = self.history.get(user, [])
            excluded = set(exclude.get(user, set())) | set(history)
            lists = {
                "ann": [(video, 1.0 / (1.0 + rank)) for rank, video in enumerate(ann)],
                "co_watch": self.co_watch.recommend(history, excluded, quotas["co_watch"]),
            }
            if user in self.user_cut.index:
                lists.update(self._day_sources(self.user_cut[user]).recommend(user, excluded, quotas))
            ranked.append(interleave_by_quota(lists, quotas, excluded, self.config.priority)[:k])
        return ranked

    def _day_sources(self, reference_time: pd.Timestamp) -> DaySources:
        """The time-dependent sources as of the query time if there is one, else as of the end of
        the reference day (fitted once per day)."""
        day_end = self.query_time if self.query_time is not None else reference_time.floor("D") + pd.Timedelta(days=1)
        if day_end not in self._sources_by_day:
            config = self.config
            self._sources_by_day[day_end] = DaySources(
                SubscriptionsSource(config.subscriptions).fit(self._subscriptions_before_cut(), self.catalog, day_end),
                TrendingSource(config.trending).fit(self.watches, day_end),
                FreshSource(config.fresh).fit(self.catalog, self.watches, day_end),
                ExplorationSource(config.exploration).fit(self.catalog, self._impression_counts(day_end), day_end),
            )
        return self._sources_by_day[day_end]

    def _subscriptions_before_cut(self) -> pd.DataFrame:
        if self.subscriptions is None:
            return pd.DataFrame({"user_id": pd.Series(dtype=np.int64), "creator_id": pd.Series(dtype=np.int64),
                                 "subscribed_time": pd.Series(dtype="datetime64[ns]")})
        frame = self.subscriptions[["user_id", "creator_id", "subscribed_time"]]
        return frame[frame["subscribed_time"] <= frame["user_id"].map(self.user_cut)]

    def _impression_counts(self, now: pd.Timestamp) -> pd.DataFrame:
        """Impressions per video before `now`, each user's cut at their last train interaction."""
        if self.impressions is None:
            return pd.DataFrame({"video_id": pd.Series(dtype=np.int64), "impressions": pd.Series(dtype=np.int64)})
        frame = self.impressions
        times = frame["impression_time"]
        kept = frame[(times < now) & (times <= frame["user_id"].map(self.user_cut))]
        return kept["video_id"].value_counts().rename("impressions").rename_axis("video_id").reset_index()


@dataclass
class DaySources:
    subscriptions: SubscriptionsSource
    trending: TrendingSource
    fresh: FreshSource
    exploration: ExplorationSource

    def recommend(
        self, user_id: int, exclude: set[int], quotas: Mapping[str, int]
    ) -> dict[str, list[tuple[int, float]]]:
        return {
            "subscriptions": self.subscriptions.recommend(user_id, exclude, quotas["subscriptions"]),
            "trending": self.trending.recommend(exclude, quotas["trending"]),
            "fresh": self.fresh.recommend(exclude, quotas["fresh"]),
            "exploration": self.exploration.recommend(user_id, exclude, quotas["exploration"]),
        }
