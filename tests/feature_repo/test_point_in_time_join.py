"""Training frames through Feast's duckdb offline store equal an independent point-in-time join:
`pandas.merge_asof` per view, backward, exact matches included, within the view's ttl.

The marts are random, with gaps longer than the daily views' 2-day ttl, and every feature value
names the mart row it came from, so the test can also say which row each example read.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from feature_repo.features import DAILY_SNAPSHOT_TTL, HISTORY_TTL, PROFILE_TTL
from feature_repo.store import apply_feature_definitions
from feature_repo.training_frames import historical_features
from tests.engagement_rows import engagement_row
from vidrec.settings import VidrecSettings

FIRST_DAY = pd.Timestamp("2026-01-01")
DAYS = 12
USERS = range(1, 7)  # user 7 in the examples has no rows anywhere
VIDEOS = range(10, 15)
TTL = pd.Timedelta(DAILY_SNAPSHOT_TTL)
# The features the frame asks for: user_activity and video_stats (2-day ttl), user_profile (365 days,
# over the same daily mart as user_activity) and the history view (365 days)
REFERENCES = [
    "user_activity:watch_count_28d",
    "user_profile:country",
    "video_stats:impressions_7d",
    "user_watch_history:watch_count_total",
    "user_watch_history:recent_watch_video_ids",
]


def _user_days(rng: np.random.Generator) -> pd.DataFrame:
    """Daily user snapshots, each day kept with probability 0.6; watch_count_28d = user × 1000 + day."""
    rows = [
        dict(user_id=user, event_timestamp=FIRST_DAY + pd.Timedelta(days=day), country=f"c{user}{day}",
             device="mobile", age_bucket="18-24", gender="female", watch_count_28d=user * 1000 + day,
             watch_seconds_28d=1.0, mean_watch_fraction_28d=0.5, like_count_28d=0, active_days_28d=1,
             impressions_7d=0, clicks_7d=0)
        for user in USERS for day in range(DAYS) if rng.random() < 0.6
    ]
    return pd.DataFrame(rows)


def _video_days(rng: np.random.Generator) -> pd.DataFrame:
    """Daily video snapshots, each day kept with probability 0.6; impressions_7d = video × 1000 + day."""
    rows = [
        dict(video_id=video, event_timestamp=FIRST_DAY + pd.Timedelta(days=day), creator_id=1, category="music",
             duration_seconds=60.0, video_age_days=1.0, impressions_7d=video * 1000 + day, clicks_7d=0, ctr_7d=0.0,
             watches_7d=0, watch_seconds_7d=0.0, mean_watch_fraction_7d=0.0, like_rate_7d=0.0, watch_count_total=0)
        for video in VIDEOS for day in range(DAYS) if rng.random() < 0.6
    ]
    return pd.DataFrame(rows)


def _histories(rng: np.random.Generator) -> pd.DataFrame:
    """History states at random microseconds; watch_count_total numbers the states."""
    times = FIRST_DAY + pd.to_timedelta(rng.integers(0, DAYS * 86_400_000_000, size=60), unit="us")
    users = rng.choice(list(USERS)[:-1], size=60)  # user 6 has no history
    return pd.DataFrame({
        "user_id": users,
        "event_timestamp": times,
        "recent_watch_video_ids": [[int(number), int(number) + 1] for number in range(60)],
        "recent_search_tokens": [[] for _ in range(60)],
        "watch_count_total": np.arange(60),
        "last_watched_video_id": np.arange(60),
    }).drop_duplicates(["user_id", "event_timestamp"])


def _examples(rng: np.random.Generator, user_days: pd.DataFrame, histories: pd.DataFrame) -> pd.DataFrame:
    """Random (user, video, time) rows to the microsecond, plus rows on every edge: at a snapshot,
    at its ttl's end and a microsecond past it, a microsecond before a history state, duplicates."""
    size = 400
    random_rows = pd.DataFrame({
        "user_id": rng.choice([*USERS, 7], size=size),
        "video_id": rng.choice([*VIDEOS, 15], size=size),
        "event_timestamp": FIRST_DAY - pd.Timedelta(days=1)
        + pd.to_timedelta(rng.integers(0, (DAYS + 3) * 86_400_000_000, size=size), unit="us"),
    })
    snapshots = user_days[["user_id", "event_timestamp"]].sample(10, random_state=1)
    states = histories[["user_id", "event_timestamp"]].sample(10, random_state=2)
    edges = pd.concat([
        snapshots,
        snapshots.assign(event_timestamp=snapshots["event_timestamp"] + TTL),
        snapshots.assign(event_timestamp=snapshots["event_timestamp"] + TTL + pd.Timedelta(microseconds=1)),
        states,
        states.assign(event_timestamp=states["event_timestamp"] - pd.Timedelta(microseconds=1)),
    ]).assign(video_id=10)
    examples = pd.concat([random_rows, edges, random_rows.iloc[:20]], ignore_index=True)  # 20 duplicates
    examples["event_timestamp"] = examples["event_timestamp"].dt.tz_localize("UTC")
    examples["example_number"] = np.arange(len(examples))
    return examples


def _as_of(examples: pd.DataFrame, mart: pd.DataFrame, key: str, ttl: pd.Timedelta, columns: list[str]) -> pd.DataFrame:
    """The reference: for each example, the latest `mart` row of its key at or before its time and
    no more than `ttl` before it (`merge_asof`, backward, exact matches included), in example order."""
    right = mart[[key, "event_timestamp", *columns]].rename(columns={"event_timestamp": "feature_timestamp"})
    right["feature_timestamp"] = right["feature_timestamp"].dt.tz_localize("UTC")
    joined = pd.merge_asof(
        examples.sort_values("event_timestamp"), right.sort_values("feature_timestamp"),
        left_on="event_timestamp", right_on="feature_timestamp", by=key,
        direction="backward", allow_exact_matches=True, tolerance=ttl,
    )
    return joined.sort_values("example_number").reset_index(drop=True)


@pytest.fixture(scope="module")
def marts_and_store(tmp_path_factory: pytest.TempPathFactory):
    rng = np.random.default_rng(13)
    settings = VidrecSettings(home=tmp_path_factory.mktemp("point_in_time_home"))
    settings.marts_dir.mkdir(parents=True)
    marts = {
        "user_features_daily": _user_days(rng),
        "video_features_daily": _video_days(rng),
        "user_watch_history": _histories(rng),
        "user_engagement_history": pd.DataFrame([engagement_row("r1", 1, FIRST_DAY.to_pydatetime())]),
    }
    for mart, rows in marts.items():
        # microsecond timestamps, as DuckDB (dbt) writes the marts
        pq.write_table(pa.Table.from_pandas(rows, preserve_index=False), settings.marts_dir / f"{mart}.parquet",
                       coerce_timestamps="us")
    return marts, apply_feature_definitions(settings)


@pytest.fixture(scope="module")
def frame_and_examples(marts_and_store):
    marts, store = marts_and_store
    examples = _examples(np.random.default_rng(5), marts["user_features_daily"], marts["user_watch_history"])
    return historical_features(store, examples, REFERENCES), examples


def test_the_store_under_test_is_duckdb(marts_and_store):
    assert marts_and_store[1].config.offline_store.type == "duckdb"


def test_every_example_is_kept_in_order(frame_and_examples):
    frame, examples = frame_and_examples
    assert frame["example_number"].tolist() == examples["example_number"].tolist()
    assert frame[["user_id", "video_id"]].equals(examples[["user_id", "video_id"]])


@pytest.mark.parametrize(
    ("mart", "key", "ttl", "columns"),
    [
        ("user_features_daily", "user_id", TTL, ["watch_count_28d"]),  # user_activity
        ("user_features_daily", "user_id", pd.Timedelta(PROFILE_TTL), ["country"]),  # user_profile
        ("video_features_daily", "video_id", TTL, ["impressions_7d"]),
        ("user_watch_history", "user_id", pd.Timedelta(HISTORY_TTL), ["watch_count_total", "recent_watch_video_ids"]),
    ],
)
def test_features_equal_merge_asof_within_the_ttl(frame_and_examples, marts_and_store, mart, key, ttl, columns):
    frame, examples = frame_and_examples
    reference = _as_of(examples, marts_and_store[0][mart], key, ttl, columns)
    for column in columns:
        expected = [None if _missing(value) else _plain(value) for value in reference[column]]
        actual = [None if _missing(value) else _plain(value) for value in frame[column]]
        assert actual == expected, column
    assert reference[columns[0]].notna().sum() > 50 and reference[columns[0]].isna().sum() > 20  # both kinds occur


def test_no_example_reads_a_row_from_its_future_or_past_the_ttl(frame_and_examples):
    frame, _ = frame_and_examples
    read = frame.dropna(subset=["watch_count_28d"])
    snapshot_day = FIRST_DAY.tz_localize("UTC") + pd.to_timedelta(read["watch_count_28d"] % 1000, unit="D")
    assert (read["watch_count_28d"] // 1000 == read["user_id"]).all()
    assert (snapshot_day <= read["event_timestamp"]).all()
    assert (snapshot_day >= read["event_timestamp"] - TTL).all()
    # the edge rows (see _examples): at a snapshot's own time it is read; at its ttl's end it (or a
    # later one) still is; a microsecond later it never is
    at_snapshot, at_edge, past_edge = (frame["watch_count_28d"].iloc[start : start + 10] for start in (400, 410, 420))
    days = (frame["event_timestamp"].iloc[400:410] - FIRST_DAY.tz_localize("UTC")).dt.days
    snapshot = (frame["user_id"].iloc[400:410] * 1000 + days).to_numpy()
    assert (at_snapshot.to_numpy() == snapshot).all()
    assert (at_edge.to_numpy() >= snapshot).all() and (at_edge.to_numpy() == snapshot).sum() >= 1
    assert (past_edge.to_numpy() != snapshot).all()


def test_nanosecond_timestamps_are_floored_to_the_microsecond(marts_and_store):
    """The duckdb store refuses nanoseconds; flooring keeps a time just before a state before it."""
    marts, store = marts_and_store
    state = marts["user_watch_history"].sort_values("event_timestamp").iloc[-1]
    at_state = pd.Timestamp(state["event_timestamp"], tz="UTC")
    examples = pd.DataFrame({
        "user_id": [state["user_id"]] * 2,
        "event_timestamp": [at_state - pd.Timedelta(nanoseconds=1), at_state + pd.Timedelta(nanoseconds=999)],
    })

    frame = historical_features(store, examples, ["user_watch_history:watch_count_total"])

    assert frame["event_timestamp"].tolist() == [at_state - pd.Timedelta(microseconds=1), at_state]
    assert frame["watch_count_total"].iloc[0] != state["watch_count_total"]
    assert frame["watch_count_total"].iloc[1] == state["watch_count_total"]


def _missing(value: object) -> bool:
    return value is None or (np.isscalar(value) and pd.isna(value))


def _plain(value: object) -> object:
    """Lists and arrays as lists of Python ints, numbers as Python numbers."""
    if isinstance(value, (list, np.ndarray)):
        return [int(item) for item in value]
    return value.item() if isinstance(value, np.generic) else value
