"""The pipeline's holdout: the protocol's global split at `holdout_start`, plus each test user's query.

Who is a test user, what they had seen and what they watched next all come from
`models/evaluation/protocol.py` (a global split of `watch_interactions`' first watches at the cut
dbt computed). This module adds what only the pipeline's models need: a query per test user built
from data before the cut alone — their `user_watch_history` row as of `holdout_start` (the same
state serving reads) and their latest profile snapshot. No event at or after the cut reaches a query.
"""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd

from models.evaluation.protocol import TemporalSplit, temporal_split
from models.retrieval.features import USER_CATEGORICAL_FEATURES

HOLDOUT_KS = (10, 50, 100)  # the pipeline logs recall / ndcg / hit_rate at each, as holdout_<metric>_at_<k>
PROFILE_COLUMNS = USER_CATEGORICAL_FEATURES


@dataclass(frozen=True)
class HoldoutTask:
    split: TemporalSplit  # global, cut at holdout_start
    queries: pd.DataFrame  # one row per test user, by user_id: user_id, history_video_ids,
    #                        history_search_tokens, example_age_days (0), profile columns


def build_holdout_task(
    interactions: pd.DataFrame,
    history: pd.DataFrame,
    profiles: pd.DataFrame,
    holdout_start: pd.Timestamp,
) -> HoldoutTask:
    """Assemble the task from the marts `watch_interactions`, `user_watch_history`, `user_features_daily`."""
    holdout_start = pd.Timestamp(holdout_start)
    first_watches = pd.DataFrame({
        "user_id": interactions["user_id"],
        "video_id": interactions["video_id"],
        "time": pd.to_datetime(interactions["first_watch_time"]),
    })
    split = temporal_split(first_watches, cutoff=holdout_start)
    return HoldoutTask(split, queries_as_of(history, profiles, sorted(split.relevant()), holdout_start))


def queries_as_of(
    history: pd.DataFrame, profiles: pd.DataFrame, user_ids: list[int], cut: pd.Timestamp
) -> pd.DataFrame:
    """One query per user from their last history state strictly before `cut` and their latest
    profile snapshot at or before it. Every user must have a history state before the cut (any
    watch before it leaves one), else the marts disagree and this raises."""
    states = history[pd.to_datetime(history["event_timestamp"]) < cut]
    states = states.sort_values("event_timestamp").groupby("user_id").tail(1)
    states = states[states["user_id"].isin(user_ids)]
    missing = sorted(set(user_ids) - set(states["user_id"].astype(int)))
    if missing:
        raise ValueError(f"user_watch_history has no state before {cut} for test users {missing[:5]} "
                         f"({len(missing)} in all); every user with a watch before the cut should have one")
    queries = states.rename(
        columns={"recent_watch_video_ids": "history_video_ids", "recent_search_tokens": "history_search_tokens"}
    )[["user_id", "history_video_ids", "history_search_tokens"]]
    latest_profiles = profiles[pd.to_datetime(profiles["event_timestamp"]) <= cut]
    latest_profiles = latest_profiles.sort_values("event_timestamp").groupby("user_id").tail(1)
    queries = queries.merge(latest_profiles[["user_id", *PROFILE_COLUMNS]], on="user_id", how="left")
    queries["example_age_days"] = 0.0
    return queries.sort_values("user_id").reset_index(drop=True)
