"""The pipeline's holdout: the protocol's global split at `holdout_start`, plus each test user's query.

Who is a test user, what they had seen and what they watched next all come from
`models/evaluation/protocol.py` (a global split of `watch_interactions`' first watches at the cut
dbt computed). This module adds what only the pipeline's models need: a query per test user as
they stood strictly before the cut, read through the retrieval feature service by
`models.retrieval.query` (the same service and builder the training frame and serving use). No
event at or after the cut reaches a query.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
from feast import FeatureStore

from models.evaluation.protocol import TemporalSplit, temporal_split
from models.retrieval.features import HISTORY_SEARCH_TOKENS, HISTORY_VIDEO_IDS
from models.retrieval.query import historical_queries

HOLDOUT_KS = (10, 50, 100)  # the pipeline logs recall / ndcg / hit_rate at each, as holdout_<metric>_at_<k>


@dataclass(frozen=True)
class HoldoutTask:
    split: TemporalSplit  # global, cut at holdout_start
    queries: pd.DataFrame  # one row per test user, by user_id: user_id, the query columns of
    #                        models.retrieval.query (history, search tokens, profile), example_age_days (0)


def build_holdout_task(interactions: pd.DataFrame, store: FeatureStore, holdout_start: pd.Timestamp) -> HoldoutTask:
    """Assemble the task from the mart `watch_interactions` and the Feast store over the marts."""
    split = holdout_split(interactions, holdout_start)
    return HoldoutTask(split, queries_before(store, sorted(split.relevant()), pd.Timestamp(holdout_start)))


def holdout_split(interactions: pd.DataFrame, holdout_start: pd.Timestamp) -> TemporalSplit:
    """The protocol's global split of the mart `watch_interactions`' first watches at the cut."""
    first_watches = pd.DataFrame({
        "user_id": interactions["user_id"],
        "video_id": interactions["video_id"],
        "time": pd.to_datetime(interactions["first_watch_time"]),
    })
    return temporal_split(first_watches, cutoff=pd.Timestamp(holdout_start))


def task_with_stored_queries(
    interactions: pd.DataFrame, queries: pd.DataFrame, holdout_start: pd.Timestamp
) -> HoldoutTask:
    """The task from queries built earlier (and stored: lists come back as arrays, made lists
    again); raises when they are not one per test user of this split, e.g. built on older data."""
    split = holdout_split(interactions, holdout_start)
    if sorted(queries["user_id"].astype(int)) != sorted(int(user) for user in split.relevant()):
        raise ValueError(
            f"the stored holdout queries ({len(queries)} users) are not those of this holdout "
            f"({len(split.relevant())} test users at {holdout_start}): materialize holdout_queries again"
        )
    queries = queries.copy()
    for column in (HISTORY_VIDEO_IDS, HISTORY_SEARCH_TOKENS):
        queries[column] = [list(value) for value in queries[column]]
    return HoldoutTask(split, queries.sort_values("user_id").reset_index(drop=True))


def queries_before(store: FeatureStore, user_ids: list[int], cut: pd.Timestamp) -> pd.DataFrame:
    """One query per user as they stood strictly before `cut`. Every test user watched something
    before the cut, which leaves a history state; one without, or whose state lies beyond the
    history view's ttl, means the marts and the store disagree, and this raises."""
    users = pd.DataFrame({"user_id": np.asarray(user_ids, dtype=np.int64)})
    queries = historical_queries(store, users, as_of=cut)
    missing = queries.loc[queries[HISTORY_VIDEO_IDS].map(len) == 0, "user_id"].astype(int).tolist()
    if missing:
        raise ValueError(f"user_watch_history has no state before {cut} for test users {missing[:5]} "
                         f"({len(missing)} in all); every user with a watch before the cut should have one")
    return queries.sort_values("user_id").reset_index(drop=True)
