"""The temporal-holdout protocol for retrieval, applied identically to every method.

Everything before `holdout_start` is known; the videos each user first watches at or after it are
what we try to retrieve. Each method ranks the whole corpus (no sampled negatives), videos the user
already watched before the cut are excluded, and queries are built only from data before the cut:
the user's history row as of `holdout_start` (the same `user_watch_history` state serving reads)
and their latest profile snapshot. No event at or after the cut can reach a query.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import pandas as pd

from models.evaluation.metrics import evaluate_retrieval

DEFAULT_KS = (10, 50, 100)
PROFILE_COLUMNS = ("country", "device", "age_bucket", "gender")


@dataclass(frozen=True)
class HoldoutTask:
    """Queries (one row per evaluated user) with what they had seen and what they watched next."""

    queries: pd.DataFrame  # user_id, history_video_ids, history_search_tokens, example_age_days, profile columns
    seen: dict[int, set[int]]
    relevant: dict[int, set[int]]


def build_holdout_task(
    interactions: pd.DataFrame,
    history: pd.DataFrame,
    profiles: pd.DataFrame,
    holdout_start: pd.Timestamp,
) -> HoldoutTask:
    """Assemble the task from the marts `watch_interactions`, `user_watch_history`, `user_features_daily`.

    Users need at least one watch before the cut (a query to embed) and one new video after it.
    """
    holdout_start = pd.Timestamp(holdout_start)
    first_watch = pd.to_datetime(interactions["first_watch_time"])
    before = interactions[first_watch < holdout_start]
    after = interactions[first_watch >= holdout_start]
    seen = before.groupby("user_id")["video_id"].agg(set).to_dict()
    relevant = {
        int(user): videos - seen.get(user, set())
        for user, videos in after.groupby("user_id")["video_id"].agg(set).items()
        if user in seen
    }
    relevant = {user: videos for user, videos in relevant.items() if videos}

    states = history[pd.to_datetime(history["event_timestamp"]) < holdout_start]
    states = states.sort_values("event_timestamp").groupby("user_id").tail(1)
    states = states[states["user_id"].isin(list(relevant))]
    queries = states.rename(
        columns={"recent_watch_video_ids": "history_video_ids", "recent_search_tokens": "history_search_tokens"}
    )[["user_id", "history_video_ids", "history_search_tokens"]]
    latest_profiles = profiles[pd.to_datetime(profiles["event_timestamp"]) <= holdout_start]
    latest_profiles = latest_profiles.sort_values("event_timestamp").groupby("user_id").tail(1)
    queries = queries.merge(latest_profiles[["user_id", *PROFILE_COLUMNS]], on="user_id", how="left")
    queries["example_age_days"] = 0.0
    queries = queries.sort_values("user_id").reset_index(drop=True)
    relevant = {user: relevant[user] for user in queries["user_id"].astype(int)}
    return HoldoutTask(queries=queries, seen={int(u): v for u, v in seen.items()}, relevant=relevant)


def top_k_excluding(scores: np.ndarray, item_ids: np.ndarray, exclude: set[int], k: int) -> list[int]:
    """Best `k` item ids by score, skipping excluded ids (full-corpus ranking)."""
    take = min(len(item_ids), k + len(exclude))
    best = np.argpartition(-scores, take - 1)[:take]
    best = best[np.argsort(-scores[best], kind="stable")]
    return [int(item) for item in item_ids[best] if int(item) not in exclude][:k]


def evaluate_embeddings(
    task: HoldoutTask,
    user_vectors: np.ndarray,
    video_ids: np.ndarray,
    video_vectors: np.ndarray,
    ks: tuple[int, ...] = DEFAULT_KS,
) -> dict[str, float]:
    """Exact inner-product retrieval over the whole corpus for each query row."""
    scores = user_vectors @ video_vectors.T  # (users, videos)
    recommendations = {
        int(user): top_k_excluding(scores[row], video_ids, task.seen.get(int(user), set()), max(ks))
        for row, user in enumerate(task.queries["user_id"])
    }
    return evaluate_retrieval(recommendations, task.relevant, ks)


def evaluate_ranked_lists(
    task: HoldoutTask, recommend: Callable[[int, set[int], int], list[int]], ks: tuple[int, ...] = DEFAULT_KS
) -> dict[str, float]:
    """Evaluate any method given as `recommend(user_id, exclude, k) -> ranked video ids`."""
    recommendations = {
        user: recommend(user, task.seen.get(user, set()), max(ks)) for user in task.relevant
    }
    return evaluate_retrieval(recommendations, task.relevant, ks)
