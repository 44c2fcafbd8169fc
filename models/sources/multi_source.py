"""Every retrieval source behind one object: fitted together offline, saved to one directory,
asked once per request.

`now` is the data's end time (the training cut-off offline, the latest event in production), never
wall-clock. ANN is not fitted here: it needs the candidate generator and the faiss index, so the
caller passes its (video_id, score) list in `precomputed["ann"]`, as it can any other list
computed elsewhere (e.g. a popularity stand-in).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

import pandas as pd

from models.sources._common import as_timestamp
from models.sources.candidate import (
    SOURCE_PRIORITY,
    Candidate,
    CandidateColumns,
    RankedList,
    union_candidates,
    union_columns,
)
from models.sources.co_watch import CoWatchConfig, CoWatchSource
from models.sources.exploration import ExplorationConfig, ExplorationSource
from models.sources.fresh import FreshConfig, FreshSource
from models.sources.subscriptions import SubscriptionsConfig, SubscriptionsSource
from models.sources.trending import TrendingConfig, TrendingSource

logger = logging.getLogger(__name__)

CONFIG_FILE = "multi_source.json"
# The sources fitted here (ANN comes from the candidate generator and the faiss index).
FITTED_SOURCES = ("co_watch", "subscriptions", "trending", "fresh", "exploration")


@dataclass
class MultiSourceConfig:
    ann_quota: int = 200
    co_watch: CoWatchConfig = field(default_factory=CoWatchConfig)
    subscriptions: SubscriptionsConfig = field(default_factory=SubscriptionsConfig)
    trending: TrendingConfig = field(default_factory=TrendingConfig)
    fresh: FreshConfig = field(default_factory=FreshConfig)
    exploration: ExplorationConfig = field(default_factory=ExplorationConfig)
    priority: tuple[str, ...] = SOURCE_PRIORITY

    def quotas(self) -> dict[str, int]:
        return {
            "ann": self.ann_quota,
            "co_watch": self.co_watch.quota,
            "subscriptions": self.subscriptions.quota,
            "trending": self.trending.quota,
            "fresh": self.fresh.quota,
            "exploration": self.exploration.quota,
        }

    @classmethod
    def from_dict(cls, values: dict) -> MultiSourceConfig:
        return cls(
            ann_quota=values["ann_quota"],
            co_watch=CoWatchConfig(**values["co_watch"]),
            subscriptions=SubscriptionsConfig(**values["subscriptions"]),
            trending=TrendingConfig(**values["trending"]),
            fresh=FreshConfig(**values["fresh"]),
            exploration=ExplorationConfig(**values["exploration"]),
            priority=tuple(values["priority"]),
        )


class MultiSourceRetriever:
    def __init__(self, config: MultiSourceConfig | None = None):
        self.config = config or MultiSourceConfig()
        self.now: pd.Timestamp | None = None
        self.co_watch = CoWatchSource(self.config.co_watch)
        self.subscriptions = SubscriptionsSource(self.config.subscriptions)
        self.trending = TrendingSource(self.config.trending)
        self.fresh = FreshSource(self.config.fresh)
        self.exploration = ExplorationSource(self.config.exploration)

    def fit(
        self,
        watches: pd.DataFrame,
        catalog: pd.DataFrame,
        subscriptions: pd.DataFrame,
        impression_counts: pd.DataFrame,
        now: pd.Timestamp,
    ) -> MultiSourceRetriever:
        """Fit every source on what happened strictly before `now` (later rows are ignored).

        watches: user_id, video_id, watch_time; catalog: video_id, creator_id, upload_time;
        subscriptions: user_id, creator_id, subscribed_time; impression_counts: video_id, impressions.
        """
        self.now = as_timestamp(now)
        self.co_watch.fit(watches, self.now)
        self.subscriptions.fit(subscriptions, catalog, self.now)
        self.trending.fit(watches, self.now)
        self.fresh.fit(catalog, watches, self.now)
        self.exploration.fit(catalog, impression_counts, self.now)
        return self

    def source_lists(
        self, user_id: int, history_ids: Sequence[int], exclude: set[int] | frozenset[int], salt: int = 0
    ) -> dict[str, list[tuple[int, float]]]:
        """Each fitted source's top `quota` (video_id, score), excluded videos skipped."""
        return {name: self.source_list(name, user_id, history_ids, exclude, salt) for name in FITTED_SOURCES}

    def source_list(
        self,
        name: str,
        user_id: int,
        history_ids: Sequence[int],
        exclude: set[int] | frozenset[int],
        salt: int = 0,
    ) -> list[tuple[int, float]]:
        """One fitted source's top `quota` (serving asks each on its own, so one failing source
        costs only its own candidates)."""
        config = self.config
        if name == "co_watch":
            return self.co_watch.recommend(history_ids, exclude, config.co_watch.quota)
        if name == "subscriptions":
            return self.subscriptions.recommend(user_id, exclude, config.subscriptions.quota)
        if name == "trending":
            return self.trending.recommend(exclude, config.trending.quota)
        if name == "fresh":
            return self.fresh.recommend(exclude, config.fresh.quota)
        if name == "exploration":
            return self.exploration.recommend(user_id, exclude, config.exploration.quota, salt)
        raise ValueError(f"unknown retrieval source {name!r}; fitted sources are {list(FITTED_SOURCES)}")

    def union(
        self,
        lists: Mapping[str, Sequence[tuple[int, float]]],
        history_ids: Sequence[int],
        exclude: set[int] | frozenset[int] = frozenset(),
        quotas: Mapping[str, int] | None = None,
    ) -> list[Candidate]:
        """The deduplicated union of ranked lists already computed (e.g. per source by serving);
        a name outside the priority ranks after every configured source and keeps its whole list.
        `quotas` overrides the configured ones (serving sizes ANN to fill its candidate count)."""
        return union_candidates(lists, *self._union_terms(lists, history_ids, exclude, quotas))

    def union_columns(
        self,
        lists: Mapping[str, RankedList],
        history_ids: Sequence[int],
        exclude: set[int] | frozenset[int] = frozenset(),
        quotas: Mapping[str, int] | None = None,
    ) -> CandidateColumns:
        """`union` column by column (the request path's form; lists may be arrays)."""
        return union_columns(lists, *self._union_terms(lists, history_ids, exclude, quotas))

    def _union_terms(
        self, lists: Mapping[str, RankedList], history_ids: Sequence[int], exclude: set[int] | frozenset[int],
        quotas: Mapping[str, int] | None,
    ) -> tuple[dict[str, int], set[int], list[str]]:
        """(quotas, excluded videos, priority) of a union of `lists`."""
        excluded = set(exclude).union(int(video) for video in history_ids)
        quotas = {**self.config.quotas(), **(quotas or {})}
        priority = list(self.config.priority)
        for name, ranked in lists.items():
            if name not in quotas:
                quotas[name] = len(ranked[0]) if isinstance(ranked, tuple) else len(ranked)
            if name not in priority:
                priority.append(name)
        return quotas, excluded, priority

    def retrieve(
        self,
        user_id: int,
        history_ids: Sequence[int],
        exclude: set[int] | frozenset[int] = frozenset(),
        precomputed: Mapping[str, Sequence[tuple[int, float]]] | None = None,
        salt: int = 0,
    ) -> list[Candidate]:
        """The deduplicated union for one request; history ids (oldest first) are always excluded.

        `precomputed` maps a source name to its ranked (video_id, score) list: "ann" takes
        `ann_quota`; a name outside the priority (e.g. "popular") ranks after every configured
        source and keeps its whole list.
        """
        excluded = set(exclude).union(int(video) for video in history_ids)
        lists: dict[str, Sequence[tuple[int, float]]] = dict(precomputed or {})
        lists.update(self.source_lists(user_id, history_ids, excluded, salt))
        return self.union(lists, history_ids, excluded)

    def summary(self) -> dict[str, int | str]:
        """Sizes worth logging after a fit (e.g. as Dagster asset metadata)."""
        return {
            "now": self.now.isoformat() if self.now is not None else "",
            "co_watch_videos_with_neighbours": self.co_watch.num_videos,
            "subscribers": self.subscriptions.num_subscribers,
            "trending_videos": len(self.trending),
            "fresh_videos": len(self.fresh),
            "exploration_pool": len(self.exploration.pool),
        }

    def save(self, directory: str | Path) -> None:
        if self.now is None:
            raise ValueError("MultiSourceRetriever is not fitted; call fit() or load() first")
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        for source in (self.co_watch, self.subscriptions, self.trending, self.fresh, self.exploration):
            source.save(directory)
        payload = {"config": asdict(self.config), "now": self.now.isoformat()}
        (directory / CONFIG_FILE).write_text(json.dumps(payload, indent=2))

    @classmethod
    def load(cls, directory: str | Path) -> MultiSourceRetriever:
        directory = Path(directory)
        if not (directory / CONFIG_FILE).exists():
            raise FileNotFoundError(f"{directory} holds no saved multi-source retriever ({CONFIG_FILE} missing)")
        payload = json.loads((directory / CONFIG_FILE).read_text())
        retriever = cls(MultiSourceConfig.from_dict(payload["config"]))
        retriever.now = pd.Timestamp(payload["now"])
        retriever.co_watch = CoWatchSource.load(directory)
        retriever.subscriptions = SubscriptionsSource.load(directory)
        retriever.trending = TrendingSource.load(directory)
        retriever.fresh = FreshSource.load(directory)
        retriever.exploration = ExplorationSource.load(directory)
        return retriever
