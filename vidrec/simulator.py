"""A seeded simulator of a video platform's raw logs, with its ground truth kept.

No public dataset here may be redistributed, so the embedded default data comes from here. The
simulator aims to reproduce the structure that makes recommendation hard, not to be realistic in
every number:

* users have latent tastes (a distribution over categories plus a small "style" vector), partly
  predictable from demographics, so cold-start priors carry signal;
* creators and videos have power-law popularity; new videos are uploaded every day;
* a logging policy (the "current production system", `LoggingPolicy`) chooses what is shown; clicks
  depend on position (position bias) and true affinity; watch time depends on affinity and video
  length; likes/shares/dislikes follow affinity;
* searches reflect taste (query tokens come from the vocabulary of a preferred category);
* some watches are organic (no impression), as on any real platform.

The logging policy sees only what a real production system knows at request time: the catalog
(each video's category, creator and upload time), the watches logged before the request's day
(refreshed once a day, as a batch feature pipeline would) and the request itself (surface, query
category, the video just watched). It ranks with observed popularity (log of the videos' logged
watch counts), a content-based "model score" (the shares of the user's own logged watches in the
candidate's category and by its creator) and the surface's term (freshness on home, query match
on search, same category on watch-next), plus Gumbel noise. It never reads the World's latents
(tastes, styles, quality, popularity prior) or the true affinity: those generate user behaviour
(clicks, watch time, likes, searches, organic watches) and serve evaluation only. The logged
`source` and `source_score` are functions of the policy's inputs, so they carry no more
information about true relevance than the logged history they were computed from; a policy that
ranked by true affinity would hand any model that reads them a label leak. On day 0 the policy
has no history: slates are chosen by the surface's term and noise (a cold start).

Each request scores at most `SimulationConfig.candidate_pool_size` of the uploaded videos, a random
pool as a retrieval stage would hand its ranker (organic watches choose from such a pool too), so a
day costs requests × pool size rather than users × catalogue. The default world's catalogue fits in
the default pool: there every request scores every uploaded video, as before pools existed.

The ground truth (user tastes, video latents) is written under `ground_truth_dir`, never under
`raw_dir`, so later evaluation can measure true relevance without training ever seeing it.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from vidrec.rawlog import RawManifest, write_raw_table
from vidrec.schema import AGE_BUCKETS, CATEGORIES, COUNTRIES, DEVICES, GENDERS, RAW_TABLES, SEARCHES, WATCHES
from vidrec.settings import VidrecSettings

logger = logging.getLogger(__name__)

STYLE_DIM = 4
WORDS_PER_CATEGORY = 24
HOME_SLATE_SIZE = 10
WATCH_NEXT_SLATE_SIZE = 5
SEARCH_SLATE_SIZE = 8
BACKLOG_DAYS = 60


@dataclass(frozen=True)
class SimulationConfig:
    users: int = 2000
    videos: int = 3000
    days: int = 28
    seed: int = 7
    start_date: str = "2026-01-01"
    backlog_fraction: float = 0.5  # share of videos uploaded before the simulated window
    mean_sessions_per_active_day: float = 1.6
    search_session_rate: float = 0.25
    organic_watch_rate: float = 0.3
    watch_next_rate: float = 0.5
    # The most candidates one request's logging policy (or organic choice) scores: a retrieval
    # stage's output. Scoring every uploaded video per request made a day cost users × videos; with
    # a cap it costs users × this. It is at least the default world's catalogue, so the default
    # world is never capped and its logs (every benchmark in docs/) stay what they were.
    candidate_pool_size: int = 3000

    @classmethod
    def from_settings(cls, settings: VidrecSettings) -> SimulationConfig:
        return cls(
            users=settings.sim_users,
            videos=settings.sim_videos,
            days=settings.sim_days,
            seed=settings.sim_seed,
            start_date=settings.sim_start_date,
        )


@dataclass
class World:
    """The hidden state of the simulated platform."""

    user_taste: np.ndarray  # (users, categories), rows sum to 1
    user_style: np.ndarray  # (users, STYLE_DIM)
    user_activity: np.ndarray  # (users,) probability of being active on a day
    video_category: np.ndarray  # (videos,) category index
    video_style: np.ndarray  # (videos, STYLE_DIM)
    video_quality: np.ndarray  # (videos,)
    video_popularity: np.ndarray  # (videos,) power-law prior
    video_duration: np.ndarray  # (videos,) seconds
    video_upload_time: np.ndarray  # (videos,) datetime64[us]
    creator_of_video: np.ndarray  # (videos,)
    category_words: list[list[str]]

    def affinity(self, user_index: np.ndarray, video_index: np.ndarray) -> np.ndarray:
        """True affinity for aligned or broadcastable user/video index arrays.

        Larger is better; roughly standard-normal across random pairs, 2-3 for a great match.
        """
        taste = np.log(self.user_taste[user_index, self.video_category[video_index]] * len(CATEGORIES) + 1e-3)
        style = np.sum(self.user_style[user_index] * self.video_style[video_index], axis=-1)
        return 0.9 * taste + 0.6 * style + self.video_quality[video_index]

    def affinity_rows(self, user_index: np.ndarray, video_index: np.ndarray) -> np.ndarray:
        """(users, k) affinity of each user for their own row of `video_index` (users, k): as
        `affinity`, with the style term as one einsum (broadcasting the product cost 2.5× as much)."""
        taste = np.log(self.user_taste[user_index[:, None], self.video_category[video_index]] * len(CATEGORIES) + 1e-3)
        style = np.einsum("uk,uvk->uv", self.user_style[user_index], self.video_style[video_index])
        return 0.9 * taste + 0.6 * style + self.video_quality[video_index]

    def affinity_matrix(self, user_index: np.ndarray, video_index: np.ndarray) -> np.ndarray:
        """(len(user_index), len(video_index)) affinity without materialising index grids."""
        taste = self.user_taste[user_index][:, self.video_category[video_index]]
        style = self.user_style[user_index] @ self.video_style[video_index].T
        return (
            0.9 * np.log(taste * len(CATEGORIES) + 1e-3)
            + 0.6 * style
            + self.video_quality[video_index][None, :]
        )


def _build_world(config: SimulationConfig, rng: np.random.Generator) -> tuple[World, dict[str, pd.DataFrame]]:
    """Users, creators, videos and subscriptions, drawn in that order (the draws' order is what a
    seed reproduces, so the helpers below are called in it)."""
    users, user_taste, user_style, user_activity, signup_time = _draw_users(config, rng)
    catalog = _draw_catalog(config, rng)
    title_tokens = [_draw_title(rng, catalog.category_words[category]) for category in catalog.video_category]
    videos = pd.DataFrame(
        {
            "video_id": np.arange(1, config.videos + 1, dtype=np.int64),
            "creator_id": (catalog.creator_of_video + 1).astype(np.int64),
            "category": np.asarray(CATEGORIES)[catalog.video_category],
            "duration_seconds": catalog.video_duration,
            "upload_time": catalog.video_upload_time,
            "title_tokens": title_tokens,
        }
    )
    subscriptions = _draw_subscriptions(config, rng, user_taste, signup_time, catalog)
    world = World(
        user_taste=user_taste,
        user_style=user_style,
        user_activity=user_activity,
        video_category=catalog.video_category,
        video_style=catalog.video_style,
        video_quality=catalog.video_quality,
        video_popularity=catalog.video_popularity,
        video_duration=catalog.video_duration,
        video_upload_time=catalog.video_upload_time,
        creator_of_video=catalog.creator_of_video,
        category_words=catalog.category_words,
    )
    return world, {"users": users, "videos": videos, "subscriptions": subscriptions}


def _draw_users(
    config: SimulationConfig, rng: np.random.Generator
) -> tuple[pd.DataFrame, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Demographics first, then a taste that leans on an age-bucket prior (the cold-start signal)."""
    n_users, n_categories = config.users, len(CATEGORIES)
    start = np.datetime64(config.start_date, "us")
    age_index = rng.integers(0, len(AGE_BUCKETS), n_users)
    age_priors = rng.dirichlet(np.full(n_categories, 0.5), size=len(AGE_BUCKETS))
    personal = rng.dirichlet(np.full(n_categories, 0.25), size=n_users)
    user_taste = 0.35 * age_priors[age_index] + 0.65 * personal
    user_style = rng.normal(0, 0.8, size=(n_users, STYLE_DIM))
    user_activity = np.clip(rng.lognormal(np.log(0.45), 0.6, n_users), 0.03, 0.95)
    signup_offset_days = np.where(
        rng.random(n_users) < 0.8,
        -rng.uniform(1, 365, n_users),
        rng.uniform(0, config.days - 1, n_users),
    )
    signup_time = start + (signup_offset_days * 86_400e6).astype("timedelta64[us]")
    users = pd.DataFrame(
        {
            "user_id": np.arange(1, n_users + 1, dtype=np.int64),
            "signup_time": signup_time,
            "country": rng.choice(COUNTRIES, n_users, p=_zipf_weights(len(COUNTRIES), 0.8)),
            "device": rng.choice(DEVICES, n_users, p=[0.55, 0.3, 0.1, 0.05]),
            "age_bucket": np.asarray(AGE_BUCKETS)[age_index],
            "gender": rng.choice(GENDERS, n_users, p=[0.47, 0.47, 0.06]),
        }
    )
    return users, user_taste, user_style, user_activity, signup_time


@dataclass
class _Catalog:
    """What the world knows of its creators and videos (index = id − 1)."""

    creator_category: np.ndarray
    creator_popularity: np.ndarray
    creator_of_video: np.ndarray
    video_category: np.ndarray
    video_style: np.ndarray
    video_quality: np.ndarray
    video_popularity: np.ndarray
    video_duration: np.ndarray
    video_upload_time: np.ndarray
    category_words: list[list[str]]


def _draw_catalog(config: SimulationConfig, rng: np.random.Generator) -> _Catalog:
    """Creators own a primary category and a power-law audience; their videos mostly share it."""
    n_videos, n_categories = config.videos, len(CATEGORIES)
    start = np.datetime64(config.start_date, "us")
    n_creators = max(5, n_videos // 12)
    creator_category = rng.integers(0, n_categories, n_creators)
    creator_popularity = rng.pareto(1.3, n_creators) + 1.0
    creator_of_video = rng.choice(n_creators, n_videos, p=creator_popularity / creator_popularity.sum())
    video_category = np.where(
        rng.random(n_videos) < 0.85, creator_category[creator_of_video], rng.integers(0, n_categories, n_videos)
    )
    video_style = rng.normal(0, 0.8, size=(n_videos, STYLE_DIM))
    video_quality = rng.normal(0, 0.5, n_videos)
    video_popularity = (rng.pareto(1.2, n_videos) + 1.0) * np.sqrt(creator_popularity[creator_of_video])
    video_duration = np.clip(rng.lognormal(np.log(300), 0.8, n_videos), 20, 3600).round(1)
    backlog = rng.random(n_videos) < config.backlog_fraction
    upload_offset_days = np.where(
        backlog, -rng.uniform(0.5, BACKLOG_DAYS, n_videos), rng.uniform(0, config.days, n_videos)
    )
    category_words = [
        [f"{name}"] + [f"{name[:4]}{index:02d}" for index in range(WORDS_PER_CATEGORY - 1)] for name in CATEGORIES
    ]
    return _Catalog(
        creator_category=creator_category,
        creator_popularity=creator_popularity,
        creator_of_video=creator_of_video,
        video_category=video_category,
        video_style=video_style,
        video_quality=video_quality,
        video_popularity=video_popularity,
        video_duration=video_duration,
        video_upload_time=start + (upload_offset_days * 86_400e6).astype("timedelta64[us]"),
        category_words=category_words,
    )


_COMMON_TITLE_WORDS = ["best", "new", "top", "how", "live", "full", "vlog", "guide"]


def _draw_title(rng: np.random.Generator, words: list[str]) -> list[str]:
    """Two to five of the video's category words, and half the time a common word."""
    chosen = list(rng.choice(words, int(rng.integers(2, 6)), replace=False))
    if rng.random() < 0.5:
        chosen.append(str(rng.choice(_COMMON_TITLE_WORDS)))
    return [str(word) for word in chosen]


def _draw_subscriptions(config: SimulationConfig, rng: np.random.Generator, user_taste: np.ndarray,
                        signup_time: np.ndarray, catalog: _Catalog) -> pd.DataFrame:
    """A few creators per user, favouring popular creators in the user's preferred categories."""
    start = np.datetime64(config.start_date, "us")
    day = np.timedelta64(1, "D").astype("timedelta64[us]")
    n_creators = len(catalog.creator_category)
    rows = []
    for user in range(config.users):
        n_subscriptions = int(rng.poisson(1.5))
        if n_subscriptions == 0:
            continue
        weights = catalog.creator_popularity * user_taste[user, catalog.creator_category]
        chosen = rng.choice(n_creators, min(n_subscriptions, n_creators), replace=False, p=weights / weights.sum())
        for creator in chosen:
            when = max(signup_time[user], start - 30 * day) + np.timedelta64(int(rng.uniform(0, 20) * 86_400e6), "us")
            rows.append((user + 1, int(creator) + 1, when))
    subscriptions = pd.DataFrame(rows, columns=["user_id", "creator_id", "subscribed_time"])
    subscriptions["subscribed_time"] = pd.to_datetime(subscriptions["subscribed_time"]).astype("datetime64[us]")
    return subscriptions


def _zipf_weights(n: int, exponent: float) -> np.ndarray:
    weights = 1.0 / np.arange(1, n + 1) ** exponent
    return weights / weights.sum()


POSITION_BIAS = 1.0 / (1.0 + 0.35 * np.arange(20))


class _EventLog:
    """Column buffers for the event tables, appended to in vectorised chunks."""

    def __init__(self) -> None:
        self.impressions: list[pd.DataFrame] = []
        self.watches: list[pd.DataFrame] = []
        self.searches: list[pd.DataFrame] = []
        self._open_watches: list[pd.DataFrame] = []

    def add_watches(self, watches: pd.DataFrame) -> None:
        self._open_watches.append(watches)

    def close_day(self, video_upload_time: np.ndarray) -> pd.DataFrame:
        """The day's watches as they are logged (none before its video's upload, no duplicates).

        Returned so the logging policy learns from exactly the rows the raw logs will hold.
        """
        if not self._open_watches:
            return pd.DataFrame({column: [] for column in WATCHES.schema.names})
        watches = pd.concat(self._open_watches, ignore_index=True)
        self._open_watches = []
        watches = watches[watches["watch_time"].to_numpy() >= video_upload_time[watches["video_id"] - 1]]
        watches = watches.drop_duplicates(["user_id", "video_id", "watch_time"])
        self.watches.append(watches)
        return watches


# The logging policy's weights: observed popularity, then its content-based model score.
POPULARITY_WEIGHT = 0.6
CATEGORY_SHARE_WEIGHT = 4.0
CREATOR_SHARE_WEIGHT = 3.0


@dataclass
class LoggingPolicy:
    """The simulated production ranker and everything it may read: observable data only.

    It holds the catalog's observable columns and counts of the watches logged so far, updated
    once a day by `record`; it has no reference to the World. Its logit for a candidate is
    `popularity_logit + model_score + the surface's term`.
    """

    video_category: np.ndarray  # (videos,) category index, as in the videos table
    video_creator: np.ndarray  # (videos,) 0-based creator index, as in the videos table
    video_watch_count: np.ndarray  # (videos,) logged watches so far, all users
    user_category_count: np.ndarray  # (users, categories) the user's logged watches per category
    user_creator_count: np.ndarray  # (users, creators) the user's logged watches per creator

    @classmethod
    def without_history(cls, n_users: int, video_category: np.ndarray, video_creator: np.ndarray) -> LoggingPolicy:
        n_creators = int(video_creator.max()) + 1 if len(video_creator) else 0
        return cls(
            video_category=np.asarray(video_category),
            video_creator=np.asarray(video_creator),
            video_watch_count=np.zeros(len(video_category)),
            user_category_count=np.zeros((n_users, len(CATEGORIES))),
            user_creator_count=np.zeros((n_users, n_creators)),
        )

    def record(self, watches: pd.DataFrame) -> None:
        """Learn from logged watches (raw-log rows: 1-based `user_id` and `video_id`)."""
        users = watches["user_id"].to_numpy(np.int64) - 1
        videos = watches["video_id"].to_numpy(np.int64) - 1
        self.video_watch_count += np.bincount(videos, minlength=len(self.video_watch_count))
        np.add.at(self.user_category_count, (users, self.video_category[videos]), 1.0)
        np.add.at(self.user_creator_count, (users, self.video_creator[videos]), 1.0)

    def popularity_logit(self, candidate_videos: np.ndarray) -> np.ndarray:
        """(1, candidates), or (requests, candidates) for per-request candidates: log of 1 + the
        candidate's logged watch count."""
        return POPULARITY_WEIGHT * np.atleast_2d(np.log1p(self.video_watch_count[candidate_videos]))

    def model_score(self, users: np.ndarray, candidate_videos: np.ndarray) -> np.ndarray:
        """(requests, candidates): a content-based score from the user's own logged watches.

        The share of those watches in the candidate's category and by its creator, each shrunk
        towards 0 by one pseudo-watch, so one watch is weaker evidence than fifty. The candidates
        are shared (1-D) or per request (2-D, a row each); either way only the (request, candidate)
        cells are gathered, never a user's whole row of creators.
        """
        rows = users[:, None]
        candidates = np.atleast_2d(candidate_videos)
        shrunk_total = self.user_category_count[users].sum(axis=1, keepdims=True) + 1.0  # (requests, 1)
        category_share = self.user_category_count[rows, self.video_category[candidates]] / shrunk_total
        creator_share = self.user_creator_count[rows, self.video_creator[candidates]] / shrunk_total
        return CATEGORY_SHARE_WEIGHT * category_share + CREATOR_SHARE_WEIGHT * creator_share


@dataclass(frozen=True)
class CandidatePools:
    """Each request's candidate pool, as a retrieval stage would hand the ranker: `size` columns
    of the day's candidates, the consecutive entries (wrapping round) of one random order of them
    from the request's own random offset.

    So each pool is a uniformly random subset (requests with nearby offsets share much of theirs),
    drawn with one integer per request and read in O(size) however large the catalogue: the cost
    grows with the requests, not requests × videos. The rule reads nothing: neither the World's
    latents nor the policy's features.
    """

    order: np.ndarray  # a permutation of the candidates' columns, its first `size` repeated at the end
    offsets: np.ndarray  # (requests,) where each request's window starts in `order`
    size: int

    def columns(self, rows: slice) -> np.ndarray:
        """(rows, size) candidate columns of those requests (the repeated head wraps the windows
        round without a modulo per cell)."""
        return self.order[self.offsets[rows, None] + np.arange(self.size)]


def candidate_pools(
    rng: np.random.Generator, n_candidates: int, n_requests: int, pool_size: int
) -> CandidatePools | None:
    """Per-request pools when the candidates outnumber `pool_size`; None (every request scores
    every candidate) otherwise, drawing nothing, so an uncapped run's random stream is untouched."""
    if n_candidates <= pool_size:
        return None
    order = rng.permutation(n_candidates)
    return CandidatePools(np.concatenate([order, order[:pool_size]]), rng.integers(0, n_candidates, n_requests),
                          pool_size)


# A surface's term of the policy logit for some requests' candidates: (rows, candidate columns of
# shape (1, candidates) or (rows, pool)) -> an array broadcastable to (rows' requests, columns).
SurfaceTerm = Callable[[slice, np.ndarray], np.ndarray]


def _as_surface_term(extra_logit: np.ndarray | SurfaceTerm | None, n_requests: int) -> SurfaceTerm | None:
    """A surface term as given, or read from a (1 or requests, candidates) array."""
    if extra_logit is None or callable(extra_logit):
        return extra_logit
    per_request = extra_logit.shape[0] == n_requests and n_requests > 1

    def term(rows: slice, columns: np.ndarray) -> np.ndarray:
        values = extra_logit[rows] if per_request else extra_logit
        if columns.shape[1] == values.shape[1]:  # every candidate: the array as it is
            return values
        return np.take_along_axis(np.broadcast_to(values, (len(columns), values.shape[1])), columns, axis=1)

    return term


def _show_slate(
    world: World,
    policy: LoggingPolicy,
    rng: np.random.Generator,
    log: _EventLog,
    users: np.ndarray,
    times: np.ndarray,
    candidate_videos: np.ndarray,
    slate_size: int,
    surface: str,
    request_prefix: str,
    extra_logit: np.ndarray | SurfaceTerm | None = None,
    pools: CandidatePools | None = None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Show a slate per request, simulate clicks and watches; return clicked (user, video, time).

    Requests score every candidate, or only their pool's when `pools` is given.
    """
    n_requests = len(users)
    if n_requests == 0 or len(candidate_videos) == 0:
        empty = np.array([], dtype=np.int64)
        return empty, empty, np.array([], dtype="datetime64[us]")
    slate_size = min(slate_size, len(candidate_videos), pools.size if pools else len(candidate_videos))
    slate_columns, sources, source_scores = _policy_slates(
        policy, rng, users, candidate_videos, slate_size, surface, _as_surface_term(extra_logit, n_requests), pools
    )
    slate_videos = candidate_videos[slate_columns]  # (requests, slate)
    positions = np.broadcast_to(np.arange(slate_size), slate_videos.shape)
    request_ids = np.char.add(request_prefix, np.arange(n_requests).astype(str))
    shown_times = times[:, None] + (positions * 400_000).astype("timedelta64[us]")
    log.impressions.append(
        pd.DataFrame(
            {
                "request_id": np.repeat(request_ids, slate_size),
                "user_id": np.repeat(users + 1, slate_size).astype(np.int64),
                "video_id": (slate_videos.ravel() + 1).astype(np.int64),
                "surface": surface,
                "position": positions.ravel().astype(np.int32),
                "impression_time": shown_times.ravel(),
                "source": sources.ravel(),
                "source_score": source_scores.ravel(),
            }
        )
    )

    # Users respond to the true affinity, which the policy never saw.
    slate_affinity = world.affinity(users[:, None], slate_videos)  # (requests, slate)
    clicked = rng.random(slate_videos.shape) < click_probability(slate_affinity, positions)
    click_users = np.repeat(users, slate_size).reshape(slate_videos.shape)[clicked]
    click_videos = slate_videos[clicked]
    click_times = shown_times[clicked] + (rng.uniform(2, 30, clicked.sum()) * 1e6).astype("timedelta64[us]")
    _record_watches(world, rng, log, click_users, click_videos, click_times, slate_affinity[clicked])
    return click_users, click_videos, click_times


# Requests scored at once by the logging policy: its matrices are (requests, candidates), so at
# 100k videos a day's home requests in one block took ~9 GB and as much kernel time (page faults)
# as arithmetic; blocks of this many rows bound that at ~0.2 GB per matrix.
POLICY_BLOCK_ROWS = 256


def _policy_slates(
    policy: LoggingPolicy,
    rng: np.random.Generator,
    users: np.ndarray,
    candidate_videos: np.ndarray,
    slate_size: int,
    surface: str,
    surface_term: SurfaceTerm | None,
    pools: CandidatePools | None = None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The logging policy's slates (candidate columns, best first), sources and source scores.

    Gumbel top-k sampling over `popularity_logit + model_score + the surface's term`, in blocks of
    requests, each over every candidate or over its requests' pools. Every step is row-wise and the
    noise is drawn block after block from the same stream, so the result is identical to scoring
    all requests at once.
    """
    shared_columns = np.arange(len(candidate_videos))[None, :]
    popularity_logit = policy.popularity_logit(candidate_videos)  # (1, candidates)
    columns, sources, scores = [], [], []
    for start in range(0, len(users), POLICY_BLOCK_ROWS):
        block = slice(start, start + POLICY_BLOCK_ROWS)
        block_columns = shared_columns if pools is None else pools.columns(block)  # (1 or block, scored)
        if pools is not None:
            popularity_logit = policy.popularity_logit(candidate_videos[block_columns])  # (block, pool)
        scored_videos = candidate_videos if pools is None else candidate_videos[block_columns]
        model_score = policy.model_score(users[block], scored_videos)  # (block, scored)
        extra = None if surface_term is None else surface_term(block, block_columns)
        policy_logit = popularity_logit + model_score
        if extra is not None:
            policy_logit = policy_logit + extra
        noisy_logit = policy_logit + rng.gumbel(size=policy_logit.shape)
        slate_columns = np.argpartition(-noisy_logit, slate_size - 1, axis=1)[:, :slate_size]
        slate_keys = np.take_along_axis(noisy_logit, slate_columns, axis=1)
        slate_columns = np.take_along_axis(slate_columns, np.argsort(-slate_keys, axis=1), axis=1)
        block_sources, block_scores = _logged_sources(
            slate_columns, policy_logit, [popularity_logit, model_score, extra], surface
        )
        if pools is not None:  # from positions in the block's pools to the day's candidate columns
            slate_columns = np.take_along_axis(block_columns, slate_columns, axis=1)
        columns.append(slate_columns)
        sources.append(block_sources)
        scores.append(block_scores)
    return np.concatenate(columns), np.concatenate(sources), np.concatenate(scores)


# The source the logging policy names for a shown video: the term of its logit that stood out most.
POPULARITY_SOURCE = "trending"
MODEL_SOURCE = "ann"
EXTRA_LOGIT_SOURCES = {"home": "fresh", "watch_next": "co_watch", "search": "search"}


def _logged_sources(
    slate_columns: np.ndarray,
    policy_logit: np.ndarray,
    terms: list[np.ndarray | None],
    surface: str,
) -> tuple[np.ndarray, np.ndarray]:
    """What the production system logs with each shown video: its source and source score.

    The source is the policy term (observed popularity -> trending, model score -> ann, the
    surface's extra term -> fresh / co_watch / search) in which the video stands furthest above
    the candidates' mean, in standard deviations: the reason it was shown. The score is the rank
    score serving logs too, 1 / (1 + the video's 0-based rank by the noise-free policy logit), so
    logged and served scores mean the same thing. Both are functions of the policy's terms alone.
    """
    names = [POPULARITY_SOURCE, MODEL_SOURCE, EXTRA_LOGIT_SOURCES[surface]]
    standardised = []
    for term in terms:
        if term is None:
            standardised.append(np.full(slate_columns.shape, -np.inf))
            continue
        term = np.broadcast_to(term, policy_logit.shape)
        spread = term.std(axis=1, keepdims=True)
        z = (term - term.mean(axis=1, keepdims=True)) / np.where(spread > 0, spread, 1.0)
        standardised.append(np.where(spread > 0, np.take_along_axis(z, slate_columns, axis=1), -np.inf))
    sources = np.array(names, dtype=object)[np.argmax(np.stack(standardised), axis=0)]
    shown_logit = np.take_along_axis(policy_logit, slate_columns, axis=1)
    return sources, 1.0 / (1.0 + _rank_among(policy_logit, shown_logit))


def _rank_among(logits: np.ndarray, shown: np.ndarray) -> np.ndarray:
    """Per row, how many of `logits` are strictly above each of `shown`: one sort per row and a
    binary search per shown video (comparing every pair cost minutes at 100k videos)."""
    ordered = np.sort(logits, axis=1)
    width = logits.shape[1]
    return np.stack([width - np.searchsorted(row, values, side="right") for row, values in zip(ordered, shown)]
                    ) if len(logits) else np.zeros(shown.shape, dtype=np.int64)


def click_probability(affinity: np.ndarray, positions: np.ndarray) -> np.ndarray:
    """The behaviour model's chance that a user clicks a shown video: its true affinity for them,
    discounted by the position it was shown at (`POSITION_BIAS`). The closed loop
    (orchestration.closed_loop) answers the real service's lists with the same model."""
    return POSITION_BIAS[positions] * _sigmoid(-2.6 + 1.1 * affinity)


# The watched fraction's noise: its logit is `watch_fraction_logit` plus N(0, this).
WATCH_FRACTION_NOISE = 0.7


def watch_fraction_logit(affinity: np.ndarray, duration: np.ndarray) -> np.ndarray:
    """The mean logit of the fraction of a clicked video watched: longer videos are finished less
    often; affinity drives the watched fraction."""
    return -0.3 + 1.3 * affinity - 0.25 * np.log(duration / 300.0)


def expected_watch_seconds(affinity: np.ndarray, duration: np.ndarray) -> np.ndarray:
    """What an impression is worth in watch seconds, by the behaviour model, at the top position:
    P(click | affinity) × E[seconds watched | click], the noise of the watched fraction integrated
    out by Gauss-Hermite quadrature. It orders a request's candidates as a scorer that knew the
    ground truth but not the position would: the ceiling row of bench/ranking.py."""
    nodes, weights = np.polynomial.hermite_e.hermegauss(32)
    logits = np.asarray(watch_fraction_logit(affinity, duration), dtype=np.float64)
    fraction = _sigmoid(logits[..., None] + WATCH_FRACTION_NOISE * nodes) @ (weights / weights.sum())
    return _sigmoid(-2.6 + 1.1 * np.asarray(affinity, dtype=np.float64)) * duration * fraction


def _record_watches(
    world: World,
    rng: np.random.Generator,
    log: _EventLog,
    users: np.ndarray,
    videos: np.ndarray,
    times: np.ndarray,
    affinity: np.ndarray,
) -> None:
    if len(users) == 0:
        return
    log.add_watches(watch_outcomes(world, rng, users, videos, times, affinity))


def watch_outcomes(
    world: World,
    rng: np.random.Generator,
    users: np.ndarray,
    videos: np.ndarray,
    times: np.ndarray,
    affinity: np.ndarray,
) -> pd.DataFrame:
    """What each click became (0-based `users`, `videos`): watch rows in the raw log's ids, with
    the seconds watched, like, share and dislike drawn from the true affinity."""
    duration = world.video_duration[videos]
    fraction = _sigmoid(watch_fraction_logit(affinity, duration) + rng.normal(0, WATCH_FRACTION_NOISE, len(users)))
    watch_seconds = np.maximum(1.0, np.round(duration * fraction, 1))
    liked = rng.random(len(users)) < _sigmoid(-3.8 + 1.5 * affinity)
    shared = rng.random(len(users)) < _sigmoid(-5.0 + 1.5 * affinity)
    disliked = (~liked) & (rng.random(len(users)) < _sigmoid(-3.5 - 1.5 * affinity))
    return pd.DataFrame(
        {
            "user_id": (users + 1).astype(np.int64),
            "video_id": (videos + 1).astype(np.int64),
            "watch_time": times,
            "watch_seconds": watch_seconds,
            "liked": liked,
            "shared": shared,
            "disliked": disliked,
        }
    )


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-x))


# A day's sessions run from noon to 23:30, so every event of a day lies between the day's noon
# and the next day's noon: "logged before the day's sessions" is "logged before its noon".
SESSIONS_START = np.timedelta64(12, "h")


def home_candidates(video_upload_time: np.ndarray, day_start: np.datetime64) -> tuple[np.ndarray, np.ndarray]:
    """A day's candidates (0-based video indices) and the home surface's freshness term for each.

    Candidates are the videos uploaded before the day's sessions start, so no event precedes its
    video's upload. Freshness is 2 for a video uploaded that day, falling linearly to 0 four days
    after upload. Both come from the catalog's upload times, which the logging policy may read.
    """
    available = np.flatnonzero(video_upload_time < day_start + SESSIONS_START)
    hours_since_upload = (day_start - video_upload_time[available]).astype("timedelta64[h]").astype(float)
    return available, np.clip(2.0 - hours_since_upload / 48.0, 0, 2)


def _simulate_day(
    config: SimulationConfig,
    world: World,
    policy: LoggingPolicy,
    rng: np.random.Generator,
    log: _EventLog,
    day_index: int,
    signup_time: np.ndarray,
) -> None:
    start = np.datetime64(config.start_date, "us")
    day_start = start + np.timedelta64(day_index, "D").astype("timedelta64[us]")
    n_users = len(world.user_activity)
    available, fresh_boost = home_candidates(world.video_upload_time, day_start)

    active = (rng.random(n_users) < world.user_activity) & (signup_time < day_start + SESSIONS_START)
    active_users = np.flatnonzero(active)
    sessions = 1 + rng.poisson(config.mean_sessions_per_active_day - 1, len(active_users))
    session_users = np.repeat(active_users, sessions)
    session_times = day_start + SESSIONS_START + (
        rng.uniform(0, 11.5 * 3600, len(session_users)) * 1e6
    ).astype("timedelta64[us]")
    is_search = rng.random(len(session_users)) < config.search_session_rate
    prefix = f"d{day_index:03d}-"

    # Home feed.
    home = ~is_search
    home_pools = candidate_pools(rng, len(available), int(home.sum()), config.candidate_pool_size)
    clicked_users, clicked_videos, clicked_times = _show_slate(
        world, policy, rng, log, session_users[home], session_times[home], available, HOME_SLATE_SIZE, "home",
        prefix + "h", extra_logit=fresh_boost[None, :], pools=home_pools,
    )

    _search_sessions(config, world, policy, rng, log, session_users[is_search], session_times[is_search], available,
                     prefix)
    _watch_next_sessions(config, world, policy, rng, log, (clicked_users, clicked_videos, clicked_times), available,
                         prefix)
    _organic_watches(config, world, rng, log, session_users, session_times, available)


def _category_match(candidate_category: np.ndarray, request_category: np.ndarray, weight: float) -> SurfaceTerm:
    """The search and watch-next term: `weight` where a candidate's category is the request's
    (the query's, the video just watched), computed block by block rather than as a whole
    (requests, candidates) matrix."""
    return lambda rows, columns: (candidate_category[columns] == request_category[rows, None]) * weight


def _search_sessions(config: SimulationConfig, world: World, policy: LoggingPolicy, rng: np.random.Generator,
                     log: _EventLog, search_users: np.ndarray, search_times: np.ndarray, available: np.ndarray,
                     prefix: str) -> None:
    """Searches: tokens from a category the user likes; results favour that category."""
    if not len(search_users):
        return
    query_category = np.array([rng.choice(len(CATEGORIES), p=world.user_taste[user]) for user in search_users])
    queries = []
    for category in query_category:
        words = world.category_words[category]
        queries.append([str(word) for word in rng.choice(words, int(rng.integers(1, 4)), replace=False)])
    log.searches.append(
        pd.DataFrame({
            "user_id": (search_users + 1).astype(np.int64),
            "search_time": search_times,
            "query_tokens": queries,
        })
    )
    pools = candidate_pools(rng, len(available), len(search_users), config.candidate_pool_size)
    _show_slate(
        world, policy, rng, log, search_users, search_times + np.timedelta64(2, "s"), available, SEARCH_SLATE_SIZE,
        "search", prefix + "s", extra_logit=_category_match(world.video_category[available], query_category, 3.0),
        pools=pools,
    )


def _watch_next_sessions(config: SimulationConfig, world: World, policy: LoggingPolicy, rng: np.random.Generator,
                         log: _EventLog, home_clicks: tuple[np.ndarray, np.ndarray, np.ndarray],
                         available: np.ndarray, prefix: str) -> None:
    """Watch-next after some home clicks (users, videos, times): related videos (same category)
    are favoured."""
    clicked_users, clicked_videos, clicked_times = home_clicks
    if not len(clicked_videos):
        return
    follow = rng.random(len(clicked_videos)) < config.watch_next_rate
    seed_videos = clicked_videos[follow]
    seed_users = clicked_users[follow]
    seed_times = clicked_times[follow] + (world.video_duration[seed_videos] * 0.5e6).astype("timedelta64[us]")
    related = _category_match(world.video_category[available], world.video_category[seed_videos], 2.0)
    pools = candidate_pools(rng, len(available), len(seed_users), config.candidate_pool_size)
    _show_slate(
        world, policy, rng, log, seed_users, seed_times, available, WATCH_NEXT_SLATE_SIZE, "watch_next",
        prefix + "w", extra_logit=related, pools=pools,
    )


def _organic_watches(config: SimulationConfig, world: World, rng: np.random.Generator, log: _EventLog,
                     session_users: np.ndarray, session_times: np.ndarray, available: np.ndarray) -> None:
    """Organic watches (links, direct navigation): popularity x affinity, no impression."""
    organic = rng.random(len(session_users)) < config.organic_watch_rate
    organic_users = session_users[organic]
    if not len(organic_users):
        return
    pools = candidate_pools(rng, len(available), len(organic_users), config.candidate_pool_size)
    if pools is None:
        affinity = world.affinity_matrix(organic_users, available)
        logits = np.log(world.video_popularity[available])[None, :] + 1.2 * affinity
        choice = np.argmax(logits + rng.gumbel(size=logits.shape), axis=1)
        videos, chosen_affinity = available[choice], affinity[np.arange(len(choice)), choice]
    else:
        videos, chosen_affinity = _organic_choices_in_pools(world, rng, organic_users, available, pools)
    times = session_times[organic] + (rng.uniform(60, 3600, len(organic_users)) * 1e6).astype("timedelta64[us]")
    _record_watches(world, rng, log, organic_users, videos, times, chosen_affinity)


def _organic_choices_in_pools(world: World, rng: np.random.Generator, users: np.ndarray, available: np.ndarray,
                              pools: CandidatePools) -> tuple[np.ndarray, np.ndarray]:
    """Each user's organic video (popularity x affinity, as above) from their own pool, in blocks of
    requests so no matrix is larger than (POLICY_BLOCK_ROWS, pool size): the chosen videos and their
    affinity."""
    log_popularity = np.log(world.video_popularity)
    videos, affinities = [], []
    for start in range(0, len(users), POLICY_BLOCK_ROWS):
        block = slice(start, start + POLICY_BLOCK_ROWS)
        pool_videos = available[pools.columns(block)]  # (block, pool)
        affinity = world.affinity_rows(users[block], pool_videos)
        logits = log_popularity[pool_videos] + 1.2 * affinity
        choice = np.argmax(logits + rng.gumbel(size=logits.shape), axis=1)[:, None]
        videos.append(np.take_along_axis(pool_videos, choice, axis=1)[:, 0])
        affinities.append(np.take_along_axis(affinity, choice, axis=1)[:, 0])
    return np.concatenate(videos), np.concatenate(affinities)


def simulate_world(config: SimulationConfig) -> tuple[dict[str, pd.DataFrame], World]:
    """Run the simulation in memory: returns every raw table (schema columns) and the world."""
    rng = np.random.default_rng(config.seed)
    world, tables = _build_world(config, rng)
    log = _EventLog()
    policy = LoggingPolicy.without_history(config.users, world.video_category, world.creator_of_video)
    signup_time = tables["users"]["signup_time"].to_numpy().astype("datetime64[us]")
    for day_index in range(config.days):
        _simulate_day(config, world, policy, rng, log, day_index, signup_time)
        # The policy's features refresh once a day, from the watches logged so far.
        policy.record(log.close_day(world.video_upload_time))
    impressions = pd.concat(log.impressions, ignore_index=True)
    watches = pd.concat(log.watches, ignore_index=True)
    # An event can never precede the video's upload: drop the rare ones the clock put there
    # (watches were filtered as each day closed).
    upload = world.video_upload_time
    impressions = impressions[impressions["impression_time"].to_numpy() >= upload[impressions["video_id"] - 1]]
    searches = (
        pd.concat(log.searches, ignore_index=True)
        if log.searches
        else pd.DataFrame({column: [] for column in SEARCHES.schema.names})
    )
    searches = searches.drop_duplicates(["user_id", "search_time"])
    tables.update(
        {
            "impressions": impressions.sort_values("impression_time", kind="stable").reset_index(drop=True),
            "watches": watches.sort_values("watch_time", kind="stable").reset_index(drop=True),
            "searches": searches.sort_values("search_time", kind="stable").reset_index(drop=True),
        }
    )
    return tables, world


def rebuild_world(config: SimulationConfig) -> World:
    """The World a simulation with `config` drew, without simulating its days again: the world is
    drawn first, from the seed alone, so the same draws give the same latents."""
    world, _ = _build_world(config, np.random.default_rng(config.seed))
    return world


def ground_truth_frames(world: World) -> dict[str, pd.DataFrame]:
    """The hidden latents, in a form `true_affinity` can be recomputed from."""
    users = pd.DataFrame(
        {
            "user_id": np.arange(1, len(world.user_taste) + 1, dtype=np.int64),
            "taste": list(world.user_taste.astype(np.float32)),
            "style": list(world.user_style.astype(np.float32)),
        }
    )
    videos = pd.DataFrame(
        {
            "video_id": np.arange(1, len(world.video_category) + 1, dtype=np.int64),
            "category_index": world.video_category.astype(np.int64),
            "style": list(world.video_style.astype(np.float32)),
            "quality": world.video_quality.astype(np.float32),
        }
    )
    return {"user_latents": users, "video_latents": videos}


def _stored_latents(ground_truth_dir: Path) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The latents `simulate` wrote, users indexed by user_id and videos by video_id."""
    return (pd.read_parquet(ground_truth_dir / "user_latents.parquet").set_index("user_id"),
            pd.read_parquet(ground_truth_dir / "video_latents.parquet").set_index("video_id"))


def affinity_terms_of_pairs(ground_truth_dir: Path, user_ids: np.ndarray, video_ids: np.ndarray
                            ) -> dict[str, np.ndarray]:
    """The three terms of each (user_ids[i], video_ids[i]) pair's true affinity, from the stored
    ground truth: `taste` (the user's liking of the video's category), `style` (the latent
    user × video match) and `quality` (the video's own); the affinity is their sum. Kept apart so
    a benchmark can ask what knowing only some of them is worth."""
    users, videos = _stored_latents(ground_truth_dir)
    missing_users = np.setdiff1d(np.unique(user_ids), users.index.to_numpy())
    missing_videos = np.setdiff1d(np.unique(video_ids), videos.index.to_numpy())
    if len(missing_users) or len(missing_videos):
        raise ValueError(f"the ground truth in {ground_truth_dir} lacks {len(missing_users)} user(s) "
                         f"(e.g. {missing_users[:3].tolist()}) and {len(missing_videos)} video(s) "
                         f"(e.g. {missing_videos[:3].tolist()}): it is another world's")
    taste = np.stack(users.loc[user_ids, "taste"].to_numpy())
    category = videos.loc[video_ids, "category_index"].to_numpy()
    user_style = np.stack(users.loc[user_ids, "style"].to_numpy())
    video_style = np.stack(videos.loc[video_ids, "style"].to_numpy())
    return {
        "taste": 0.9 * np.log(taste[np.arange(len(category)), category] * len(CATEGORIES) + 1e-3),
        "style": 0.6 * np.einsum("ik,ik->i", user_style, video_style),
        "quality": videos.loc[video_ids, "quality"].to_numpy(),
    }


def true_affinity_of_pairs(ground_truth_dir: Path, user_ids: np.ndarray, video_ids: np.ndarray) -> np.ndarray:
    """True affinity of each (user_ids[i], video_ids[i]) pair: the diagonal of `true_affinity`
    without its matrix (a ranking frame holds 10^5 pairs)."""
    terms = affinity_terms_of_pairs(ground_truth_dir, user_ids, video_ids)
    return terms["taste"] + terms["style"] + terms["quality"]


def true_affinity(ground_truth_dir: Path, user_ids: np.ndarray, video_ids: np.ndarray) -> np.ndarray:
    """True affinity matrix (users × videos) from the stored ground truth."""
    users, videos = _stored_latents(ground_truth_dir)
    taste = np.stack(users.loc[user_ids, "taste"].to_numpy())
    user_style = np.stack(users.loc[user_ids, "style"].to_numpy())
    category = videos.loc[video_ids, "category_index"].to_numpy()
    video_style = np.stack(videos.loc[video_ids, "style"].to_numpy())
    quality = videos.loc[video_ids, "quality"].to_numpy()
    return (
        0.9 * np.log(taste[:, category] * len(CATEGORIES) + 1e-3)
        + 0.6 * user_style @ video_style.T
        + quality[None, :]
    )


@dataclass(frozen=True)
class SimulationSummary:
    config: SimulationConfig
    row_counts: dict[str, int]


def simulate(settings: VidrecSettings, config: SimulationConfig | None = None) -> SimulationSummary:
    """Simulate and write every raw table plus the ground truth under the settings' directories."""
    config = config or SimulationConfig.from_settings(settings)
    logger.info(
        "simulating %s users, %s videos, %s days (seed %s)", config.users, config.videos, config.days, config.seed
    )
    tables, world = simulate_world(config)
    settings.ensure_dirs()
    row_counts = {name: write_raw_table(RAW_TABLES[name], tables[name], settings.raw_dir) for name in RAW_TABLES}
    for name, frame in ground_truth_frames(world).items():
        frame.to_parquet(settings.ground_truth_dir / f"{name}.parquet", index=False)
    RawManifest(
        source="simulator",
        parameters=asdict(config),
        row_counts=row_counts,
        notes=["simulated by vidrec.simulator; ground truth under ground_truth_dir"],
    ).write(settings.raw_dir)
    return SimulationSummary(config=config, row_counts=row_counts)
