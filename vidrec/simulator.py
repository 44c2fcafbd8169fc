"""A seeded simulator of a video platform's raw logs, with its ground truth kept.

No public dataset here may be redistributed, so the embedded default data comes from here. The
simulator aims to reproduce the structure that makes recommendation hard, not to be realistic in
every number:

* users have latent tastes (a distribution over categories plus a small "style" vector), partly
  predictable from demographics, so cold-start priors carry signal;
* creators and videos have power-law popularity; new videos are uploaded every day;
* a logging policy (the "current production system") shows videos with a mild preference for
  popular and relevant ones; clicks depend on position (position bias) and true affinity; watch
  time depends on affinity and video length; likes/shares/dislikes follow affinity;
* searches reflect taste (query tokens come from the vocabulary of a preferred category);
* some watches are organic (no impression), as on any real platform.

The ground truth (user tastes, video latents) is written under `ground_truth_dir`, never under
`raw_dir`, so later evaluation can measure true relevance without training ever seeing it.
"""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from vidrec.rawlog import RawManifest, write_raw_table
from vidrec.schema import AGE_BUCKETS, CATEGORIES, COUNTRIES, DEVICES, GENDERS, RAW_TABLES, SEARCHES
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
    n_users, n_videos, n_categories = config.users, config.videos, len(CATEGORIES)
    start = np.datetime64(config.start_date, "us")
    day = np.timedelta64(1, "D").astype("timedelta64[us]")

    # Users: demographics first, then a taste that leans on an age-bucket prior (cold-start signal).
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

    # Creators own a primary category and a power-law audience.
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
    video_upload_time = start + (upload_offset_days * 86_400e6).astype("timedelta64[us]")

    category_words = [
        [f"{name}"] + [f"{name[:4]}{index:02d}" for index in range(WORDS_PER_CATEGORY - 1)] for name in CATEGORIES
    ]
    common_words = ["best", "new", "top", "how", "live", "full", "vlog", "guide"]
    title_tokens = []
    for video in range(n_videos):
        words = category_words[video_category[video]]
        n_words = int(rng.integers(2, 6))
        chosen = list(rng.choice(words, n_words, replace=False))
        if rng.random() < 0.5:
            chosen.append(str(rng.choice(common_words)))
        title_tokens.append([str(word) for word in chosen])
    videos = pd.DataFrame(
        {
            "video_id": np.arange(1, n_videos + 1, dtype=np.int64),
            "creator_id": (creator_of_video + 1).astype(np.int64),
            "category": np.asarray(CATEGORIES)[video_category],
            "duration_seconds": video_duration,
            "upload_time": video_upload_time,
            "title_tokens": title_tokens,
        }
    )

    # Subscriptions: a few creators per user, favouring popular creators in preferred categories.
    subscription_rows = []
    creator_weight_base = creator_popularity
    for user in range(n_users):
        n_subscriptions = int(rng.poisson(1.5))
        if n_subscriptions == 0:
            continue
        weights = creator_weight_base * user_taste[user, creator_category]
        chosen = rng.choice(n_creators, min(n_subscriptions, n_creators), replace=False, p=weights / weights.sum())
        for creator in chosen:
            when = max(signup_time[user], start - 30 * day) + np.timedelta64(int(rng.uniform(0, 20) * 86_400e6), "us")
            subscription_rows.append((user + 1, int(creator) + 1, when))
    subscriptions = pd.DataFrame(subscription_rows, columns=["user_id", "creator_id", "subscribed_time"])
    subscriptions["subscribed_time"] = pd.to_datetime(subscriptions["subscribed_time"]).astype("datetime64[us]")

    world = World(
        user_taste=user_taste,
        user_style=user_style,
        user_activity=user_activity,
        video_category=video_category,
        video_style=video_style,
        video_quality=video_quality,
        video_popularity=video_popularity,
        video_duration=video_duration,
        video_upload_time=video_upload_time,
        creator_of_video=creator_of_video,
        category_words=category_words,
    )
    return world, {"users": users, "videos": videos, "subscriptions": subscriptions}


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


def _show_slate(
    world: World,
    rng: np.random.Generator,
    log: _EventLog,
    users: np.ndarray,
    times: np.ndarray,
    candidate_videos: np.ndarray,
    slate_size: int,
    surface: str,
    request_prefix: str,
    extra_logit: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Show a slate per request, simulate clicks and watches; return clicked (user, video, time)."""
    n_requests = len(users)
    if n_requests == 0 or len(candidate_videos) == 0:
        empty = np.array([], dtype=np.int64)
        return empty, empty, np.array([], dtype="datetime64[us]")
    slate_size = min(slate_size, len(candidate_videos))
    affinity = world.affinity_matrix(users, candidate_videos)  # (requests, candidates)
    # The logging policy: popular and somewhat relevant videos, with noise (Gumbel top-k sampling).
    popularity_logit = 0.6 * np.log(world.video_popularity[candidate_videos])[None, :]
    policy_logit = popularity_logit + 0.5 * affinity
    if extra_logit is not None:
        policy_logit = policy_logit + extra_logit
    gumbel = rng.gumbel(size=policy_logit.shape)
    slate_columns = np.argpartition(-(policy_logit + gumbel), slate_size - 1, axis=1)[:, :slate_size]
    slate_keys = np.take_along_axis(policy_logit + gumbel, slate_columns, axis=1)
    slate_columns = np.take_along_axis(slate_columns, np.argsort(-slate_keys, axis=1), axis=1)
    slate_videos = candidate_videos[slate_columns]  # (requests, slate)
    slate_affinity = np.take_along_axis(affinity, slate_columns, axis=1)

    sources, source_scores = _logged_sources(
        slate_columns, policy_logit, [popularity_logit, 0.5 * affinity, extra_logit], surface
    )
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

    click_probability = POSITION_BIAS[positions] * _sigmoid(-2.6 + 1.1 * slate_affinity)
    clicked = rng.random(slate_videos.shape) < click_probability
    click_users = np.repeat(users, slate_size).reshape(slate_videos.shape)[clicked]
    click_videos = slate_videos[clicked]
    click_times = shown_times[clicked] + (rng.uniform(2, 30, clicked.sum()) * 1e6).astype("timedelta64[us]")
    _record_watches(world, rng, log, click_users, click_videos, click_times, slate_affinity[clicked])
    return click_users, click_videos, click_times


# The source the logging policy names for a shown video: the term of its logit that stood out most.
POPULARITY_SOURCE = "trending"
AFFINITY_SOURCE = "ann"
EXTRA_LOGIT_SOURCES = {"home": "fresh", "watch_next": "co_watch", "search": "search"}


def _logged_sources(
    slate_columns: np.ndarray,
    policy_logit: np.ndarray,
    terms: list[np.ndarray | None],
    surface: str,
) -> tuple[np.ndarray, np.ndarray]:
    """What the production system logs with each shown video: its source and source score.

    The source is the policy term (popularity -> trending, affinity -> ann, the surface's extra
    term -> fresh / co_watch / search) in which the video stands furthest above the candidates'
    mean, in standard deviations: the reason it was shown. The score is the rank score serving
    logs too, 1 / (1 + the video's 0-based rank by the noise-free policy logit), so logged and
    served scores mean the same thing.
    """
    names = [POPULARITY_SOURCE, AFFINITY_SOURCE, EXTRA_LOGIT_SOURCES[surface]]
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
    rank = np.concatenate(
        [
            (policy_logit[start:start + 256, None, :] > shown_logit[start:start + 256, :, None]).sum(axis=2)
            for start in range(0, len(policy_logit), 256)
        ]
    )
    return sources, 1.0 / (1.0 + rank)


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
    duration = world.video_duration[videos]
    # Longer videos are finished less often; affinity drives the watched fraction.
    fraction = _sigmoid(-0.3 + 1.3 * affinity - 0.25 * np.log(duration / 300.0) + rng.normal(0, 0.7, len(users)))
    watch_seconds = np.maximum(1.0, np.round(duration * fraction, 1))
    liked = rng.random(len(users)) < _sigmoid(-3.8 + 1.5 * affinity)
    shared = rng.random(len(users)) < _sigmoid(-5.0 + 1.5 * affinity)
    disliked = (~liked) & (rng.random(len(users)) < _sigmoid(-3.5 - 1.5 * affinity))
    log.watches.append(
        pd.DataFrame(
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
    )


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-x))


def _simulate_day(
    config: SimulationConfig,
    world: World,
    rng: np.random.Generator,
    log: _EventLog,
    day_index: int,
    signup_time: np.ndarray,
) -> None:
    start = np.datetime64(config.start_date, "us")
    day_start = start + np.timedelta64(day_index, "D").astype("timedelta64[us]")
    n_users = len(world.user_activity)
    # Videos visible today: uploaded before the end of the day (sessions before upload are rare
    # enough to ignore; clipping session times below keeps every event after its video's upload).
    available = np.flatnonzero(world.video_upload_time < day_start + np.timedelta64(12, "h"))
    fresh_boost = np.clip(
        2.0 - (day_start - world.video_upload_time[available]).astype("timedelta64[h]").astype(float) / 48.0, 0, 2
    )

    active = (rng.random(n_users) < world.user_activity) & (signup_time < day_start + np.timedelta64(12, "h"))
    active_users = np.flatnonzero(active)
    sessions = 1 + rng.poisson(config.mean_sessions_per_active_day - 1, len(active_users))
    session_users = np.repeat(active_users, sessions)
    session_times = day_start + np.timedelta64(12, "h") + (
        rng.uniform(0, 11.5 * 3600, len(session_users)) * 1e6
    ).astype("timedelta64[us]")
    is_search = rng.random(len(session_users)) < config.search_session_rate
    prefix = f"d{day_index:03d}-"

    # Home feed.
    home = ~is_search
    clicked_users, clicked_videos, clicked_times = _show_slate(
        world, rng, log, session_users[home], session_times[home], available, HOME_SLATE_SIZE, "home",
        prefix + "h", extra_logit=fresh_boost[None, :],
    )

    # Searches: tokens from a category the user likes; results favour that category.
    search_users = session_users[is_search]
    search_times = session_times[is_search]
    if len(search_users):
        query_category = np.array([rng.choice(len(CATEGORIES), p=world.user_taste[user]) for user in search_users])
        queries = []
        for category in query_category:
            words = world.category_words[category]
            queries.append([str(word) for word in rng.choice(words, int(rng.integers(1, 4)), replace=False)])
        log.searches.append(
            pd.DataFrame({"user_id": (search_users + 1).astype(np.int64), "search_time": search_times, "query_tokens": queries})
        )
        match = (world.video_category[available][None, :] == query_category[:, None]) * 3.0
        _show_slate(
            world, rng, log, search_users, search_times + np.timedelta64(2, "s"), available, SEARCH_SLATE_SIZE,
            "search", prefix + "s", extra_logit=match,
        )

    # Watch-next after some home clicks: related videos (same category) are favoured.
    if len(clicked_videos):
        follow = rng.random(len(clicked_videos)) < config.watch_next_rate
        seed_videos = clicked_videos[follow]
        seed_users = clicked_users[follow]
        seed_times = clicked_times[follow] + (world.video_duration[seed_videos] * 0.5e6).astype("timedelta64[us]")
        related = (world.video_category[available][None, :] == world.video_category[seed_videos][:, None]) * 2.0
        _show_slate(
            world, rng, log, seed_users, seed_times, available, WATCH_NEXT_SLATE_SIZE, "watch_next",
            prefix + "w", extra_logit=related,
        )

    # Organic watches (links, direct navigation): popularity x affinity, no impression.
    organic = rng.random(len(session_users)) < config.organic_watch_rate
    organic_users = session_users[organic]
    if len(organic_users):
        affinity = world.affinity_matrix(organic_users, available)
        logits = np.log(world.video_popularity[available])[None, :] + 1.2 * affinity
        choice = np.argmax(logits + rng.gumbel(size=logits.shape), axis=1)
        videos = available[choice]
        times = session_times[organic] + (rng.uniform(60, 3600, len(organic_users)) * 1e6).astype("timedelta64[us]")
        _record_watches(world, rng, log, organic_users, videos, times, affinity[np.arange(len(videos)), choice])


def simulate_world(config: SimulationConfig) -> tuple[dict[str, pd.DataFrame], World]:
    """Run the simulation in memory: returns every raw table (schema columns) and the world."""
    rng = np.random.default_rng(config.seed)
    world, tables = _build_world(config, rng)
    log = _EventLog()
    signup_time = tables["users"]["signup_time"].to_numpy().astype("datetime64[us]")
    for day_index in range(config.days):
        _simulate_day(config, world, rng, log, day_index, signup_time)
    impressions = pd.concat(log.impressions, ignore_index=True)
    watches = pd.concat(log.watches, ignore_index=True)
    # An event can never precede the video's upload: drop the rare ones the clock put there.
    upload = world.video_upload_time
    impressions = impressions[impressions["impression_time"].to_numpy() >= upload[impressions["video_id"] - 1]]
    watches = watches[watches["watch_time"].to_numpy() >= upload[watches["video_id"] - 1]]
    watches = watches.drop_duplicates(["user_id", "video_id", "watch_time"])
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


def true_affinity(ground_truth_dir: Path, user_ids: np.ndarray, video_ids: np.ndarray) -> np.ndarray:
    """True affinity matrix (users × videos) from the stored ground truth."""
    users = pd.read_parquet(ground_truth_dir / "user_latents.parquet").set_index("user_id")
    videos = pd.read_parquet(ground_truth_dir / "video_latents.parquet").set_index("video_id")
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
    logger.info("simulating %s users, %s videos, %s days (seed %s)", config.users, config.videos, config.days, config.seed)
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
