"""The request path: embed the user, retrieve from every source, fetch features, rank, answer.

Plain Python, no BentoML, so it is tested without a server; the service only wires it up.

Every stage runs through a `RequestTrace` (serving.request_trace): timed, within a budget, and
with a fallback so the request answers when a dependency does not:

| stage | on error or timeout |
|---|---|
| user_features (online store) | the user's last-known features, else default (cold-user) features |
| retrieval:<source> (ann and each fitted source) | the other sources; none left: popular videos |
| candidate_features (online store, cached) | stale cached values; none: retrieval order |
| ranking | retrieval order |
| policy (re-ranking, serving.policy) | ranker order, blocklist applied |

What fell back is listed in the response's `degraded`.
"""

from __future__ import annotations

import logging
import threading
import time
import uuid
from collections import OrderedDict
from collections.abc import Callable
from concurrent.futures import Executor
from dataclasses import dataclass, field

import numpy as np

from feature_repo.features import RECENT_WATCH_VIDEO_IDS
from models.index import VideoIndex
from models.popularity import PopularityRecommender
from models.ranking.bundle import RankerBundle
from models.ranking.preprocessing import constant_column
from models.retrieval.bundle import RetrievalBundle
from models.retrieval.query import query_from_online_row
from models.sources import MultiSourceRetriever
from models.sources.candidate import CandidateColumns, RankedList
from models.sources.multi_source import FITTED_SOURCES
from serving.online_features import OnlineFeatureReader
from serving.policy import PolicyConfig, PolicyStage
from serving.request_trace import RequestTrace, StageBudgets
from serving.schemas import RecommendationResponse, RecommendedVideo, Surface
from serving.served_list import apply_policy, items_from_policy, items_in_order, policy_candidates, user_context
from serving.serving_metrics import serving_metrics

logger = logging.getLogger(__name__)



@dataclass
class ServingModels:
    """The champion artifacts one service instance answers with (one registry version each)."""

    retrieval: RetrievalBundle
    index: VideoIndex
    ranker: RankerBundle
    popularity: PopularityRecommender
    sources: MultiSourceRetriever
    versions: dict[str, str] = field(default_factory=dict)


class LastKnownUsers:
    """The latest successfully read features of recently seen users, for when the store is down.

    Bounded (least recently stored evicted first) and shared by a worker's request threads.
    """

    def __init__(self, capacity: int):
        self._capacity = capacity
        self._rows: OrderedDict[int, dict[str, object]] = OrderedDict()
        self._lock = threading.Lock()

    def remember(self, user_id: int, row: dict[str, object]) -> None:
        if self._capacity <= 0:
            return
        with self._lock:
            self._rows[user_id] = row
            self._rows.move_to_end(user_id)
            while len(self._rows) > self._capacity:
                self._rows.popitem(last=False)

    def get(self, user_id: int) -> dict[str, object] | None:
        with self._lock:
            return self._rows.get(user_id)


class Recommender:
    def __init__(
        self,
        models: ServingModels,
        features: OnlineFeatureReader,
        candidates_per_request: int = 200,
        request_clock: Callable[[], float] = time.time,
        budgets: StageBudgets | None = None,
        io_executor: Executor | None = None,
        last_known_users: LastKnownUsers | None = None,
        policy: PolicyStage | None = None,
    ):
        """`request_clock` gives a request's time in Unix seconds (see `serving.request_clock`).

        `io_executor` runs the online-store reads so their budgets can be enforced (None: inline,
        only errors fall back); `last_known_users` may outlive this instance across model reloads.
        """
        self.models = models
        self.features = features
        self.candidates_per_request = candidates_per_request
        self.request_clock = request_clock
        self.budgets = budgets or StageBudgets()
        self.io_executor = io_executor
        self.last_known_users = last_known_users or LastKnownUsers(10_000)
        self.policy = policy or PolicyStage(PolicyConfig())
        self._blocked = frozenset(self.policy.blocklist.video_ids.tolist())

    def recommend(self, user_id: int, k: int, surface: Surface) -> RecommendationResponse:
        return self.recommend_traced(user_id, k, surface)[0]

    def recommend_traced(self, user_id: int, k: int, surface: Surface) -> tuple[RecommendationResponse, RequestTrace]:
        """The response and its trace (stage timings, fallbacks), for benchmarks and tests."""
        trace = RequestTrace()
        started = time.perf_counter()
        request_id = uuid.uuid4().hex
        user, known_user = self._user_features(user_id, trace)
        if user is None:  # the store has nothing on this user: popular videos
            items = self._popular(k, exclude=self._blocked)
        else:
            history = [int(video) for video in (user.get(RECENT_WATCH_VIDEO_IDS) or [])]
            candidates = self._retrieve(user_id, user, history, max(k, self.candidates_per_request), trace)
            if len(candidates) < k:  # a tiny or exhausted corpus: top up with popular videos
                taken = set(history) | set(candidates.video_ids.tolist())
                candidates = candidates.concat(self._popular_candidates(k - len(candidates), taken))
            items = self._rank(user, user_id, surface, candidates, k, trace, request_id)
        trace.observe("total", time.perf_counter() - started)
        response = RecommendationResponse(
            request_id=request_id, user_id=user_id, surface=surface, known_user=known_user, items=items,
            model_versions=self.models.versions, degraded=trace.degraded,
        )
        return response, trace

    def _user_features(self, user_id: int, trace: RequestTrace) -> tuple[dict[str, object] | None, bool]:
        """(features, known_user); features None means a user the store does not know.

        When the store fails: the user's last-known features, else default features (no history,
        no profile: the candidate generator's cold-user query), and the user counts as unknown.
        """
        remembered = self.last_known_users.get(user_id)
        unavailable = object()
        row = trace.run(
            "user_features",
            lambda: self.features.user_features(user_id),
            lambda: unavailable,
            "last_known" if remembered is not None else "default",
            self.budgets.user_features,
            self.io_executor,
        )
        if row is unavailable:
            return (remembered, True) if remembered is not None else (self.features.default_user_features(), False)
        if row is None:
            return None, False
        self.last_known_users.remember(user_id, row)
        return row, True

    def _retrieve(
        self, user_id: int, user: dict[str, object], history: list[int], count: int, trace: RequestTrace
    ) -> CandidateColumns:
        """`count` candidates: every fitted source's own quota, each on its own budget, and ANN over
        the user embedding filling the rest; deduplicated and tagged. Popular videos when every
        source failed."""
        watched = set(history)
        lists: dict[str, RankedList] = {}
        for name in FITTED_SOURCES:
            result = trace.run(
                f"retrieval:{name}",
                lambda name=name: self.models.sources.source_list(name, user_id, history, watched),
                lambda: None, "skipped", self.budgets.retrieval,
            )
            if result is not None:
                lists[name] = result
        from_sources = np.unique(np.fromiter(
            (video for ranked in lists.values() for video, _ in ranked), dtype=np.int64))
        watched_ids = np.fromiter(watched, dtype=np.int64, count=len(watched))

        def ann() -> tuple[np.ndarray, np.ndarray]:
            vector = self.models.retrieval.user_embeddings(query_from_online_row(user))
            # enough for `count` even when every watched video and every other source's video is
            # among the neighbours: room for new ones + those two sets = count + watched
            ids, scores = self.models.index.search(vector, count + len(watched))
            ids, scores = ids[0], scores[0].astype(np.float64)
            unwatched = (ids >= 0) & ~np.isin(ids, watched_ids)
            return _fill(ids[unwatched], scores[unwatched], from_sources, count)

        ranked_by_ann = trace.run("retrieval:ann", ann, lambda: None, "skipped", self.budgets.retrieval)
        quotas = {}
        if ranked_by_ann is not None:
            lists = {"ann": ranked_by_ann, **lists}
            quotas["ann"] = len(ranked_by_ann[0])
        candidates = self.models.sources.union_columns(lists, history, watched, quotas=quotas)
        if not candidates:
            trace.fell_back("retrieval", "popular", "no retrieval source answered")
            candidates = self._popular_candidates(count, watched)
        return candidates

    def _rank(
        self, user: dict[str, object], user_id: int, surface: Surface, candidates: CandidateColumns, k: int,
        trace: RequestTrace, request_id: str,
    ) -> list[RecommendedVideo]:
        """The policy's k from the ranked candidates (retrieval order when the ranker fails);
        without candidate features, retrieval order; without the policy, ranker order. The
        blocklist holds on every path."""
        sources, counts = np.unique(candidates.sources.astype(str), return_counts=True)
        for source, count in zip(sources.tolist(), counts.tolist(), strict=True):
            serving_metrics().candidates.labels(source=source).inc(count)
        request_time = self.request_clock()
        video_ids = candidates.video_ids

        def columns() -> dict[str, np.ndarray]:
            data = self.features.ranking_columns(
                user,
                user_id,
                video_ids,
                request_unix_seconds=request_time,
                retrieval_sources=candidates.sources,
                retrieval_source_scores=candidates.rank_scores,
                degraded=trace.degraded,
            )
            data["surface"] = constant_column(surface, len(candidates))  # one object: encoded once
            return data

        # Inline, not on the I/O pool: video features come from the in-process cache (kept fresh
        # off the request path), so this stage computes; only never-seen videos are read here.
        data = trace.run(
            "candidate_features", columns, lambda: None, "retrieval_order", self.budgets.candidate_features,
        )
        scores = None
        if data is not None:
            scores = trace.run(
                "ranking", lambda: self.models.ranker.score(data), lambda: None, "retrieval_order",
                self.budgets.ranking,
            )
        if scores is None:  # retrieval order (sources in priority order, each best first), scored 1/(1 + position)
            scores = 1.0 / (1.0 + np.arange(len(candidates)))
        if data is None:
            return items_in_order(candidates, np.arange(len(candidates)), scores, self.policy, k)
        served = trace.run(
            "policy",
            lambda: apply_policy(
                self.policy, policy_candidates(candidates, scores, data, request_time),
                user_context(user, self.models.sources.subscriptions.creators_of(user_id), request_time),
                k, request_id,
            ),
            lambda: None, "ranker_order", self.budgets.policy,
        )
        if served is None:
            order = np.argsort(-scores, kind="stable")
            return items_in_order(candidates, order, scores[order], self.policy, k)
        return items_from_policy(served)

    def _popular_candidates(self, count: int, exclude: set[int]) -> CandidateColumns:
        return CandidateColumns.from_ranked("popular", self.models.popularity.recommend(count, exclude | self._blocked))

    def _popular(self, k: int, exclude: set[int]) -> list[RecommendedVideo]:
        return [
            RecommendedVideo(video_id=video, score=score, source="popular", retrieval_score=score)
            for video, score in self.models.popularity.recommend(k, exclude=exclude)
        ]


def _fill(ids: np.ndarray, scores: np.ndarray, taken: np.ndarray, total: int) -> tuple[np.ndarray, np.ndarray]:
    """The head of the ranked (ids, scores) that brings the union with `taken` (unique ids) to
    `total` videos."""
    room = total - len(taken)
    if room <= 0:
        return ids[:0], scores[:0]
    new = np.cumsum(~np.isin(ids, taken))
    end = int(np.searchsorted(new, room)) + 1  # just past the room-th new video (or everything)
    return ids[:end], scores[:end]
