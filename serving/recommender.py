"""The request path: embed the user, retrieve from every source, fetch features, rank, answer.

Plain Python, no BentoML, so it is tested without a server; the service only wires it up.

Every stage runs through a `RequestTrace` (serving.request_trace): timed, within a budget, and
with a fallback so the request answers when a dependency does not:

| stage | on error or timeout |
|---|---|
| user_features (online store) | the user's last-known features, else default (cold-user) features |
| retrieval:<source> (ann and each fitted source) | the other sources; none left: popular videos |
| retrieval:seed_co_watch, retrieval:seed_ann (watch_next's seed) | the other sources |
| candidate_features (online store, cached) | stale cached values; none: retrieval order |
| ranking | retrieval order |
| policy (re-ranking, serving.policy) | ranker order, blocklist applied |

What fell back is listed in the response's `degraded`.

Surfaces: on `watch_next` with a seed video the index holds, the seed's co-watch neighbours and
the videos nearest its vector take `seed_share` of the candidates, tagged co_watch and ann (the
sources the ranker learned; a new name would reach it as an unknown category). The policy names
the seed as their "because you watched" for the sources it counts as item-to-item (co_watch by
default; adding ann covers the embedding neighbours too, and no other ann row names a video).
The user's own sources fill the rest, and the seed itself is never served. A seed the index
lacks is answered as home (`seed:unknown` in `degraded`); on another surface a seed is ignored
(`seed:ignored`).
"""

from __future__ import annotations

import logging
import threading
import time
import uuid
from collections import OrderedDict
from collections.abc import Callable, Mapping
from concurrent.futures import Executor
from dataclasses import dataclass, field

import numpy as np

from feature_repo.engagement import REQUEST_TIME, RETRIEVAL_SOURCE, RETRIEVAL_SOURCE_SCORE
from feature_repo.features import RECENT_WATCH_VIDEO_IDS
from models.index import VideoIndex
from models.popularity import PopularityRecommender
from models.ranking.bundle import RankerBundle
from models.ranking.preprocessing import constant_column
from models.retrieval.bundle import RetrievalBundle
from models.retrieval.query import query_from_online_row
from models.segment_popularity import DEMOGRAPHIC_COLUMNS
from models.sources import MultiSourceRetriever
from models.sources.candidate import CandidateColumns, RankedList, union_columns
from models.sources.multi_source import FITTED_SOURCES
from serving.online_features import OnlineFeatureReader
from serving.policy import UNKNOWN_VIDEO, PolicyConfig, PolicyStage
from serving.request_trace import RequestTrace, StageBudgets
from serving.schemas import RecommendationResponse, SimilarVideo, SimilarVideos, Surface
from serving.served_list import (
    ServedAnswer,
    ServedItems,
    apply_policy,
    items_from_policy,
    items_in_order,
    policy_candidates,
    served_items,
    user_context,
)
from serving.served_log.sampling import sampled
from serving.serving_metrics import serving_metrics

logger = logging.getLogger(__name__)

SEED_SURFACE = "watch_next"  # the one surface a seed video steers
# The sources whose videos a new user's list explores with (under-exposed and new videos).
NEWCOMER_POOL_SOURCES = ("fresh", "exploration")


@dataclass(frozen=True)
class Seed:
    """watch_next's seed video, known to the index, and the vector the index holds for it."""

    video_id: int
    vector: np.ndarray  # (dim,)


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
        seed_share: float = 0.5,
        feature_sample_share: float = 0.0,
        popularity_only: bool = False,
    ):
        """`request_clock` gives a request's time in Unix seconds (see `serving.request_clock`).

        `io_executor` runs the online-store reads so their budgets can be enforced (None: inline,
        only errors fall back); `last_known_users` may outlive this instance across model reloads.
        `seed_share`: on watch_next with a known seed, the share of the candidates its neighbours take.
        `feature_sample_share`: the share of ranked requests whose served items keep what the
        ranker was fed (`ServedItems.fed_features`, for the served-feature log).
        `popularity_only`: known users too get their segment's popular videos (the new-user answer,
        with their own demographics) instead of retrieval and ranking.
        """
        if not 0.0 <= seed_share <= 1.0:
            raise ValueError(f"seed_share must be in [0, 1], got {seed_share!r}")
        if not 0.0 <= feature_sample_share <= 1.0:
            raise ValueError(f"feature_sample_share must be in [0, 1], got {feature_sample_share!r}")
        self.models = models
        self.features = features
        self.candidates_per_request = candidates_per_request
        self.request_clock = request_clock
        self.budgets = budgets or StageBudgets()
        self.io_executor = io_executor
        self.last_known_users = last_known_users or LastKnownUsers(10_000)
        self.policy = policy or PolicyStage(PolicyConfig())
        self.seed_share = seed_share
        self.feature_sample_share = feature_sample_share
        self.popularity_only = popularity_only
        self._fed_kinds = fed_feature_kinds(models.ranker)
        self._blocked = frozenset(self.policy.blocklist.video_ids.tolist())

    def recommend(
        self, user_id: int, k: int, surface: Surface, seed_video_id: int | None = None,
        profile: Mapping[str, object] | None = None,
    ) -> RecommendationResponse:
        return self.recommend_traced(user_id, k, surface, seed_video_id, profile).response

    def recommend_traced(
        self, user_id: int, k: int, surface: Surface, seed_video_id: int | None = None,
        profile: Mapping[str, object] | None = None,
    ) -> ServedAnswer:
        """The response, its trace (stage timings, fallbacks, for benchmarks and tests) and what the
        service's served-impression log records beside it (the request's time, per-item values).

        `profile`: demographics the caller knows of a user the store may not (serving.schemas.UserProfile);
        used only when the store does not know the user."""
        trace = RequestTrace()
        started = time.perf_counter()
        request_id = uuid.uuid4().hex
        request_time = self.request_clock()
        seed = self._seed(seed_video_id, surface, trace)
        if seed_video_id is not None and seed is None and surface == SEED_SURFACE:
            surface = "home"  # an unknown seed: home's answer, ranked as home
        user, known_user = self._user_features(user_id, trace)
        if user is None and seed is not None:  # unknown user, known seed: the seed still steers
            user = self.features.default_user_features()
        segment = None
        if user is None:  # the store has nothing on this user: popular in their segment, and exploration
            served, segment = self._newcomer(user_id, profile or {}, surface, k, trace, request_id, request_time)
        elif self.popularity_only:
            demographics = {name: user[name] for name in DEMOGRAPHIC_COLUMNS if user.get(name) is not None}
            served, segment = self._newcomer(user_id, demographics, surface, k, trace, request_id, request_time,
                                             user)
        else:
            candidates, because = self._candidates(user_id, user, k, trace, seed)
            served = self._rank(user, user_id, surface, candidates, k, trace, request_id, request_time, because)
        trace.observe("total", time.perf_counter() - started)
        response = RecommendationResponse(
            request_id=request_id, user_id=user_id, surface=surface, known_user=known_user, items=served.items,
            segment=segment or "", model_versions=self.models.versions, degraded=trace.degraded,
        )
        return ServedAnswer(response, trace, request_time, served)

    def _newcomer(
        self, user_id: int, profile: Mapping[str, object], surface: Surface, k: int, trace: RequestTrace,
        request_id: str, request_time: float, known_user: dict[str, object] | None = None,
    ) -> tuple[ServedItems, str | None]:
        """A user the store does not know: what their demographic segment watches (global popularity
        without a profile the segments match), in that order, through the policy stage with the
        fresh and exploration sources' videos as its exploration pool, so a new user also sees some
        of what nobody has judged yet (each such slot with its propensity). The ranker does not run:
        it knows nothing of this user that popularity does not. Also the segment that answered.
        `known_user`: the store's features of a user served popularity by choice (popularity_only),
        which the policy stage then sees instead of defaults."""
        count = max(k, self.candidates_per_request)
        popular, segment = self.models.popularity.recommend_for(dict(profile), count, self._blocked)
        candidates = CandidateColumns.from_ranked("popular", popular)
        taken = set(candidates.video_ids.tolist()) | self._blocked
        for name in NEWCOMER_POOL_SOURCES:
            nominated = trace.run(
                f"retrieval:{name}",
                lambda name=name, taken=taken: self.models.sources.source_list(name, user_id, [], taken),
                lambda: None, "skipped", self.budgets.retrieval,
            )
            if nominated:
                candidates = candidates.concat(CandidateColumns.from_ranked(name, nominated))
                taken |= {video for video, _ in nominated}
        # popularity order for the popular rows; the pool's rows rank below them and reach the
        # list through exploration draws (the policy min-max scales whatever scores it gets)
        scores = np.where(candidates.sources == "popular", 1.0 / (1.0 + candidates.source_ranks), 0.0)
        user = known_user if known_user is not None else {**self.features.default_user_features(), **profile}
        return self._rank(user, user_id, surface, candidates, k, trace, request_id, request_time,
                          preset_scores=scores), segment

    def _candidates(
        self, user_id: int, user: dict[str, object], k: int, trace: RequestTrace, seed: Seed | None
    ) -> tuple[CandidateColumns, np.ndarray | None]:
        """At least k candidates, and the video that nominated each (-1: none; None without a seed)."""
        history = [int(video) for video in (user.get(RECENT_WATCH_VIDEO_IDS) or [])]
        count = max(k, self.candidates_per_request)
        seeded = self._seed_candidates(seed, set(history), round(self.seed_share * count), trace)
        candidates = self._retrieve(user_id, user, history, count, trace, seed, seeded)
        if len(candidates) < k:  # a tiny or exhausted corpus: top up with popular videos
            taken = set(history) | set(candidates.video_ids.tolist()) | _seed_ids(seed)
            candidates = candidates.concat(self._popular_candidates(k - len(candidates), taken))
        if seed is None:
            return candidates, None
        because = np.full(len(candidates), UNKNOWN_VIDEO, dtype=np.int64)
        because[: len(seeded)] = seed.video_id  # the seed's neighbours lead the candidates
        return candidates, because

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

    def _seed(self, seed_video_id: int | None, surface: Surface, trace: RequestTrace) -> Seed | None:
        """The seed when it steers this request (surface watch_next, a video the index holds);
        otherwise None, flagged seed:ignored (another surface) or seed:unknown (answered as home)."""
        if seed_video_id is None:
            return None
        if surface != SEED_SURFACE:
            trace.fell_back("seed", "ignored", f"surface {surface!r} takes no seed video; only {SEED_SURFACE} does")
            return None
        vector = self.models.index.vector(seed_video_id)
        if vector is None:
            trace.fell_back("seed", "unknown", f"seed video {seed_video_id} is not in the video index")
            return None
        return Seed(seed_video_id, vector)

    def _retrieve(
        self, user_id: int, user: dict[str, object], history: list[int], count: int, trace: RequestTrace,
        seed: Seed | None = None, seeded: CandidateColumns | None = None,
    ) -> CandidateColumns:
        """`count` candidates: the seed's (`seeded`, from `_seed_candidates`) first, then every
        fitted source's own quota (with a seed, all shrunk alike to fit the room it left), each on
        its own budget, and ANN over the user embedding filling the rest; deduplicated and tagged.
        Popular videos when every source failed. The seed itself is never among them."""
        watched = set(history)
        seeded = _NO_CANDIDATES if seeded is None else seeded
        excluded = watched | _seed_ids(seed) | set(seeded.video_ids.tolist())
        source_quotas = self.models.sources.config.quotas()
        shrink = 1.0 if not len(seeded) else min(1.0, (count - len(seeded)) / sum(
            source_quotas[name] for name in FITTED_SOURCES))
        lists: dict[str, RankedList] = {}
        for name in FITTED_SOURCES:
            result = trace.run(
                f"retrieval:{name}",
                lambda name=name: self.models.sources.source_list(name, user_id, history, excluded),
                lambda: None, "skipped", self.budgets.retrieval,
            )
            if result is not None:
                lists[name] = result[: round(source_quotas[name] * shrink)]
        taken = np.unique(np.concatenate([seeded.video_ids, np.fromiter(
            (video for ranked in lists.values() for video, _ in ranked), dtype=np.int64)]))
        excluded_ids = np.fromiter(excluded, dtype=np.int64, count=len(excluded))

        def ann() -> tuple[np.ndarray, np.ndarray]:
            vector = self.models.retrieval.user_embeddings(query_from_online_row(user))
            # enough for `count` even when every excluded video and every other source's video is
            # among the neighbours: room for new ones + those sets = count + excluded
            ids, scores = self.models.index.search(vector, count + len(excluded))
            ids, scores = ids[0], scores[0].astype(np.float64)
            allowed = (ids >= 0) & ~np.isin(ids, excluded_ids)
            return _fill(ids[allowed], scores[allowed], taken, count)

        ranked_by_ann = trace.run("retrieval:ann", ann, lambda: None, "skipped", self.budgets.retrieval)
        quotas = {}
        if ranked_by_ann is not None:
            lists = {"ann": ranked_by_ann, **lists}
            quotas["ann"] = len(ranked_by_ann[0])
        candidates = seeded.concat(self.models.sources.union_columns(lists, history, excluded, quotas=quotas))
        if not candidates:
            trace.fell_back("retrieval", "popular", "no retrieval source answered")
            candidates = self._popular_candidates(count, watched | _seed_ids(seed))
        return candidates

    def _seed_candidates(
        self, seed: Seed | None, watched: set[int], count: int, trace: RequestTrace
    ) -> CandidateColumns:
        """Up to `count` videos like the seed, best first: its co-watch neighbours (what people
        watched beside it), then the videos nearest its vector filling the rest. Tagged co_watch
        and ann, the names the ranker learned for these two kinds of evidence."""
        if seed is None or count <= 0:
            return _NO_CANDIDATES
        excluded = watched | {seed.video_id}
        co_watch = trace.run(
            "retrieval:seed_co_watch",
            lambda: [(video, score) for video, score in self.models.sources.co_watch.neighbours(seed.video_id)
                     if video not in excluded][:count],
            list, "skipped", self.budgets.retrieval,
        )
        co_watch_ids = np.array([video for video, _ in co_watch], dtype=np.int64)

        def ann() -> tuple[np.ndarray, np.ndarray]:
            excluded_ids = np.fromiter(excluded, dtype=np.int64, count=len(excluded))
            ids, scores = _nearest(self.models.index, seed.vector, count + len(co_watch_ids), excluded_ids)
            return _fill(ids, scores, co_watch_ids, count)

        ranked_by_ann = trace.run("retrieval:seed_ann", ann, lambda: None, "skipped", self.budgets.retrieval)
        lists: dict[str, RankedList] = {"co_watch": co_watch}
        if ranked_by_ann is not None:
            lists["ann"] = ranked_by_ann
        return union_columns(lists, {"co_watch": count, "ann": count}, priority=("co_watch", "ann"))

    def similar(self, video_id: int, k: int) -> SimilarVideos | None:
        """The k videos whose index vectors have the largest inner product with `video_id`'s,
        best first, itself and blocklisted videos left out; None when the index lacks the video."""
        vector = self.models.index.vector(video_id)
        if vector is None:
            return None
        ids, scores = _nearest(self.models.index, vector, k, np.append(self.policy.blocklist.video_ids, video_id))
        return SimilarVideos(
            video_id=video_id,
            items=[SimilarVideo(video_id=video, score=score)
                   for video, score in zip(ids.tolist(), scores.tolist(), strict=True)],
            model_versions=self.models.versions,
        )

    def _rank(
        self, user: dict[str, object], user_id: int, surface: Surface, candidates: CandidateColumns, k: int,
        trace: RequestTrace, request_id: str, request_time: float, because_video_ids: np.ndarray | None = None,
        preset_scores: np.ndarray | None = None,
    ) -> ServedItems:
        """The policy's k from the ranked candidates (retrieval order when the ranker fails);
        without candidate features, retrieval order; without the policy, ranker order. The
        blocklist holds on every path. `because_video_ids`: the video that nominated each
        candidate (-1: none), for the reason "because you watched". Each item comes with its
        rank score and the ranker's head values, for the served-impression log. `preset_scores`:
        the candidates' order when it is not the ranker's to decide (a new user's popularity)."""
        sources, counts = np.unique(candidates.sources.astype(str), return_counts=True)
        for source, count in zip(sources.tolist(), counts.tolist(), strict=True):
            serving_metrics().candidates.labels(source=source).inc(count)
        data, scores, head_values = self._score(user, user_id, surface, candidates, trace, request_time, preset_scores)
        if data is None:
            return served_items(
                items_in_order(candidates, np.arange(len(candidates)), scores, self.policy, k), candidates, None)
        # what the ranker scored on, for a sampled request it did score (not a fallback's order)
        fed_kinds = self._fed_kinds if head_values is not None and sampled(
            request_id, self.feature_sample_share) else None
        served = trace.run(
            "policy",
            lambda: apply_policy(
                self.policy, policy_candidates(candidates, scores, data, request_time, because_video_ids),
                user_context(user, self.models.sources.subscriptions.creators_of(user_id), request_time),
                k, request_id,
            ),
            lambda: None, "ranker_order", self.budgets.policy,
        )
        if served is None:
            order = np.argsort(-scores, kind="stable")
            return served_items(items_in_order(candidates, order, scores[order], self.policy, k), candidates,
                                head_values, data, fed_kinds)
        return served_items(items_from_policy(served), candidates, head_values, data, fed_kinds)

    def _score(
        self, user: dict[str, object], user_id: int, surface: Surface, candidates: CandidateColumns,
        trace: RequestTrace, request_time: float, preset_scores: np.ndarray | None,
    ) -> tuple[dict[str, np.ndarray] | None, np.ndarray, dict[str, np.ndarray] | None]:
        """(the candidates' ranker feature columns or None when they fell back, their scores, the
        ranker's head values or None): ranker scores, else `preset_scores`, else retrieval order."""
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
        scores, head_values = preset_scores, None
        if data is not None and scores is None:
            scores, head_values = trace.run(
                "ranking", lambda: self.models.ranker.score_with_head_values(data), lambda: (None, None),
                "retrieval_order", self.budgets.ranking,
            )
        if scores is None:  # retrieval order (sources in priority order, each best first), scored 1/(1 + position)
            scores = 1.0 / (1.0 + np.arange(len(candidates)))
        return data, scores, head_values

    def _popular_candidates(self, count: int, exclude: set[int]) -> CandidateColumns:
        return CandidateColumns.from_ranked("popular", self.models.popularity.recommend(count, exclude | self._blocked))



_NO_CANDIDATES = CandidateColumns.from_ranked("ann", [])
# Request data the ranker's on-demand features are computed from: logged with what it was fed,
# so the offline side recomputes those features from the same request.
FED_REQUEST_COLUMNS = {REQUEST_TIME: "request_numeric", RETRIEVAL_SOURCE: "request_categorical",
                       RETRIEVAL_SOURCE_SCORE: "request_numeric"}


def fed_feature_kinds(ranker: RankerBundle) -> dict[str, str]:
    """The ranker's input columns (what its preprocessor reads) by kind ("numeric",
    "categorical", "list" for bags), and the request data ("request_numeric", "request_categorical")."""
    preprocessor = ranker.preprocessor
    kinds = dict.fromkeys(preprocessor.categorical, "categorical")
    kinds.update(dict.fromkeys(preprocessor.numeric, "numeric"))
    kinds.update(dict.fromkeys(preprocessor.bags, "list"))
    kinds.update({name: kind for name, kind in FED_REQUEST_COLUMNS.items() if name not in kinds})
    return kinds


def _seed_ids(seed: Seed | None) -> set[int]:
    return set() if seed is None else {seed.video_id}


def _nearest(index: VideoIndex, vector: np.ndarray, k: int, excluded: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The (at most) k videos with the largest inner product with `vector`, `excluded` left out,
    best first. Asks the index for enough to survive every exclusion (up to 4k of them: a long
    blocklist rarely meets one video's neighbours), then four times as many while fewer are left."""
    fetch = k + min(len(excluded), 4 * k)
    while True:
        ids, scores = index.search(vector[None, :], min(fetch, len(index)))
        ids, scores = ids[0], scores[0].astype(np.float64)
        allowed = (ids >= 0) & ~np.isin(ids, excluded)
        if allowed.sum() >= k or fetch >= len(index):
            return ids[allowed][:k], scores[allowed][:k]
        fetch *= 4


def _fill(ids: np.ndarray, scores: np.ndarray, taken: np.ndarray, total: int) -> tuple[np.ndarray, np.ndarray]:
    """The head of the ranked (ids, scores) that brings the union with `taken` (unique ids) to
    `total` videos."""
    room = total - len(taken)
    if room <= 0:
        return ids[:0], scores[:0]
    new = np.cumsum(~np.isin(ids, taken))
    end = int(np.searchsorted(new, room)) + 1  # just past the room-th new video (or everything)
    return ids[:end], scores[:end]
