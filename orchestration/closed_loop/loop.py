"""The closed loop: simulated days of users served by the real services, one arm per policy.

Each simulated day:
1. The day's clock is the end of the online store's last materialization (the services' "data"
   clock, serving.request_clock): the loop continues the home's log rather than jumping to today.
2. The users who come today (orchestration.closed_loop.simulated_users) each ask their arm's service for
   a home list over HTTP (`POST /recommend`), spread over the `session_minutes` after the clock.
   The service logs what it served, with propensities, to the raw log itself.
3. They answer by the simulator's behaviour model, and their watches and likes go through
   `POST /events`, as a product's client would send them.
4. Every `retrain_every` days the pipeline runs over the days the log changed (the raw-log
   sensor's run: orchestration.refresh.changed_days_tags), in process, on the home's Dagster
   instance, so the runs show in the UI; the services reload whatever it promoted, and their
   clocks follow the new materialization.

Arms share the home (one registry, one online store, one raw log): a retrain learns from every
arm's logs, as an A/B test on one production system does. What differs between arms is how they
serve.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import duckdb
import httpx
import numpy as np
import pandas as pd

from orchestration.closed_loop.arms import assign_arms
from orchestration.closed_loop.policies import policy_environment
from orchestration.closed_loop.simulated_users import Served, SimulatedUsers
from vidrec.settings import VidrecSettings

logger = logging.getLogger(__name__)

MAX_EVENTS_PER_POST = 1000  # serving.events.schemas.MAX_EVENTS_PER_BATCH


@dataclass(frozen=True)
class LoopConfig:
    """What one closed-loop experiment runs: its days, its arms (one policy each) and its users'
    randomisation."""

    days: int
    policies: tuple[str, ...]
    salt: str = "closed-loop"  # arm assignment: another salt re-randomises users
    seed: int = 0  # the users' daily arrivals and responses
    list_length: int = 10  # the home list each request asks for (the simulator's home slate)
    relevant_top_n: int = 50  # "truly relevant": among the user's top-N true affinities
    retrain_every: int = 1  # days between pipeline runs
    # The in-loop retrains start the ranker and the candidate generator from their champions
    # (VidrecSettings.warm_start: the incremental mode); False trains them from scratch every run.
    warm_start: bool = True
    session_minutes: float = 20.0  # a day's requests are spread over this long after its clock
    concurrency: int = 8  # requests in flight at once, over all arms

    def __post_init__(self) -> None:
        if self.days < 1:
            raise ValueError(f"days must be at least 1, got {self.days}")
        if len(self.policies) < 2:
            raise ValueError(f"an experiment needs at least 2 arms (policies), got {list(self.policies)}")
        if len(set(self.policies)) != len(self.policies):
            raise ValueError(f"each policy may be one arm only, got {list(self.policies)}")
        for name in self.policies:
            policy_environment(name)  # an unknown name is an error now, not after the set-up
        if self.retrain_every < 1:
            raise ValueError(f"retrain_every must be at least 1, got {self.retrain_every}")
        if not 0 < self.session_minutes <= 25:
            raise ValueError("session_minutes must lie in (0, 25]: a click counts for an impression within 30 "
                             f"minutes of it (int_impression_outcomes), got {self.session_minutes}")


@dataclass(frozen=True)
class DayTiming:
    day: int
    requests: int
    serve_seconds: float
    events_seconds: float
    retrain_seconds: float
    retrain_outcome: str = ""  # what the day's retrain did ("" when none ran), as `retrain` said


@dataclass(frozen=True)
class LoopResult:
    served: pd.DataFrame  # one row per shown item (models.evaluation.loop_metrics's input)
    arms: pd.Series  # user_id → arm
    timings: list[DayTiming]
    catalog_sizes: pd.Series  # day → videos uploaded by the day's clock
    n_creators: int
    # per served request, every other arm's answer to it as a shadow request (shown to nobody,
    # logged nowhere): request_id (the served one), target_arm, position, video_id
    shadows: pd.DataFrame
    # video_id → impressions in the raw log before the loop's first day (the cold-video measure's start)
    prior_impressions: pd.Series


class ClosedLoop:
    """Runs a `LoopConfig` against services at `urls` ({arm: URL}); `retrain` runs the pipeline,
    returns once every service answers with the models it left, and says what it did."""

    def __init__(self, settings: VidrecSettings, config: LoopConfig, urls: dict[str, str],
                 clock: Callable[[], float], retrain: Callable[[], str]):
        self.settings = settings
        self.config = config
        self.urls = urls
        self.clock = clock
        self.retrain = retrain
        self.users = SimulatedUsers.of_home(settings.raw_dir, config.seed)
        user_ids = np.arange(1, self.users.user_count + 1)
        self.arms = pd.Series(assign_arms(user_ids, list(config.policies), config.salt), index=user_ids,
                              name="arm")
        self.rng = np.random.default_rng([config.seed, 1])
        self.http = httpx.Client(timeout=30, limits=httpx.Limits(max_connections=config.concurrency))

    def run(self) -> LoopResult:
        days, timings, catalog_sizes, shadows = [], [], {}, []
        prior = impressions_before(self.settings.raw_dir, self.clock())
        try:
            for day in range(self.config.days):
                frame, day_shadows, timing = self._one_day(day)
                days.append(frame)
                shadows.append(day_shadows)
                timings.append(timing)
                catalog_sizes[day] = int((self.users.world.video_upload_time <= frame["request_time"].iloc[0]).sum())
                logger.info("closed loop: day %d served %d requests in %.1f s, events %.1f s, retrain %.1f s",
                            day, timing.requests, timing.serve_seconds, timing.events_seconds,
                            timing.retrain_seconds)
        finally:
            self.http.close()
        world = self.users.world
        return LoopResult(pd.concat(days, ignore_index=True), self.arms, timings,
                          pd.Series(catalog_sizes, name="catalog_size"), int(world.creator_of_video.max()) + 1,
                          pd.concat(shadows, ignore_index=True), prior)

    def _one_day(self, day: int) -> tuple[pd.DataFrame, pd.DataFrame, DayTiming]:
        clock = np.datetime64(datetime.fromtimestamp(self.clock(), UTC).replace(tzinfo=None), "us")
        users = self.users.active_today()
        offsets = np.sort(self.rng.uniform(0, self.config.session_minutes * 60, len(users)))
        started = time.perf_counter()
        answers = self._ask(users)
        serve_seconds = time.perf_counter() - started
        served, items = _served_items(users, offsets, answers)
        catalog = self.users.world
        video_index = items["video_id"].to_numpy() - 1
        unknown = (video_index < 0) | (video_index >= len(catalog.video_category))
        if unknown.any():  # the loop uploads nothing, so every served video is one the World drew
            raise RuntimeError(f"the services served videos the simulated world does not hold: "
                               f"{sorted(set(items['video_id'][unknown].tolist()))[:10]}")
        shadows = self._shadows(users, answers)
        outcome, watches = self.users.respond(served, clock)
        relevant = self.users.truly_relevant(served, clock, self.config.relevant_top_n)
        started = time.perf_counter()
        self._post_events(watches)
        events_seconds = time.perf_counter() - started
        retrain_seconds, retrain_outcome = 0.0, ""
        if (day + 1) % self.config.retrain_every == 0 and day + 1 < self.config.days:
            started = time.perf_counter()
            retrain_outcome = self.retrain()
            retrain_seconds = time.perf_counter() - started
        frame = items.assign(
            day=day, arm=self.arms.loc[items["user_id"]].to_numpy(), request_time=clock,
            creator_id=catalog.creator_of_video[video_index] + 1,
            upload_time=catalog.video_upload_time[video_index],
            clicked=outcome["clicked"].to_numpy(), watch_seconds=outcome["watch_seconds"].to_numpy(),
            liked=outcome["liked"].to_numpy(), truly_relevant=relevant,
        )
        return frame, shadows, DayTiming(day, len(users), serve_seconds, events_seconds, retrain_seconds,
                                         retrain_outcome)

    def _ask(self, users: np.ndarray) -> list[dict]:
        """Each user's answer from their arm's service, in `users`' order."""
        with ThreadPoolExecutor(self.config.concurrency) as pool:
            return list(pool.map(lambda user: self._recommend(self.arms.loc[user], user), users.tolist()))

    def _shadows(self, users: np.ndarray, answers: list[dict]) -> pd.DataFrame:
        """What every other arm would have answered each served request, asked as shadow requests
        right after it (same user, same clock): the off-policy comparison's target lists."""
        asks = [(answer["request_id"], target, user)
                for user, answer in zip(users.tolist(), answers, strict=True)
                for target in self.config.policies if target != self.arms.loc[user]]
        with ThreadPoolExecutor(self.config.concurrency) as pool:
            shadows = list(pool.map(lambda ask: self._recommend(ask[1], ask[2], shadow=True), asks))
        rows = [(request_id, target, position, item["video_id"])
                for (request_id, target, _), shadow in zip(asks, shadows, strict=True)
                for position, item in enumerate(shadow["items"])]
        return pd.DataFrame(rows, columns=["request_id", "target_arm", "position", "video_id"])

    def _recommend(self, arm: str, user_id: int, shadow: bool = False) -> dict:
        url = self.urls[arm]
        body = {"user_id": int(user_id), "k": self.config.list_length, **({"shadow": True} if shadow else {})}
        response = self.http.post(f"{url}/recommend", json=body)
        if response.status_code != 200:
            raise RuntimeError(f"{url}/recommend answered {response.status_code} for user {user_id}: "
                               f"{response.text[:300]}")
        return response.json()

    def _post_events(self, watches: pd.DataFrame) -> None:
        events = _watch_events(watches)
        url = next(iter(self.urls.values()))
        for start in range(0, len(events), MAX_EVENTS_PER_POST):
            batch = events[start:start + MAX_EVENTS_PER_POST]
            response = self.http.post(f"{url}/events", json={"events": batch})
            if response.status_code != 202:
                raise RuntimeError(f"{url}/events refused a batch: {response.status_code} {response.text[:300]}")


def impressions_before(raw_dir: Path, unix_seconds: float) -> pd.Series:
    """video_id → impressions the raw log holds before `unix_seconds` (every file of every day)."""
    files = sorted((raw_dir / "impressions").glob("*/*.parquet"))
    if not files:
        return pd.Series(dtype=np.int64, name="impressions")
    cut = datetime.fromtimestamp(unix_seconds, UTC).replace(tzinfo=None)
    counts = duckdb.sql(
        "select video_id, count(*) as impressions from read_parquet($files, union_by_name = true) "
        "where impression_time < $cut group by video_id", params={"files": [str(path) for path in files], "cut": cut},
    ).df()
    return counts.set_index("video_id")["impressions"]


def _served_items(users: np.ndarray, offsets: np.ndarray, answers: list[dict]) -> tuple[Served, pd.DataFrame]:
    rows = [
        (request, user, answer["request_id"], item["video_id"], position, item.get("propensity", np.nan),
         bool(item.get("explored", False)))
        for request, (user, answer) in enumerate(zip(users.tolist(), answers, strict=True))
        for position, item in enumerate(answer["items"])
    ]
    items = pd.DataFrame(rows, columns=["request_index", "user_id", "request_id", "video_id", "position",
                                        "propensity", "explored"])
    items = items.astype({"request_index": np.int64, "user_id": np.int64, "video_id": np.int64,
                          "position": np.int64, "propensity": float})
    served = Served(items["user_id"].to_numpy(), items["video_id"].to_numpy(), items["position"].to_numpy(),
                    items["request_index"].to_numpy(), offsets)
    return served, items.drop(columns=["request_index"])


def _watch_events(watches: pd.DataFrame) -> list[dict]:
    """POST /events bodies: a watch per click (with its seconds) and a like where the user liked."""
    events = []
    for row in watches.itertuples(index=False):
        started = pd.Timestamp(row.watch_time).tz_localize(UTC)
        stamp = started.isoformat()
        key = f"loop-{row.user_id}-{row.video_id}-{started.value // 1000}"  # ids take [A-Za-z0-9._:-] only
        base = {"user_id": int(row.user_id), "video_id": int(row.video_id), "watch_time": stamp}
        events.append({**base, "kind": "watch", "event_id": f"{key}-watch", "watch_seconds": float(row.watch_seconds)})
        if row.liked:
            events.append({**base, "kind": "like", "event_id": f"{key}-like"})
    return events
