"""One offline protocol for every retrieval method: temporal split, full ranking, seen items excluded.

Input is an interactions frame (user_id, video_id, time), reduced to each user's FIRST interaction
with each video (a rewatch is not a new discovery). The split is temporal:

- per user (default): each user's last `test_fraction` of interactions by time are test, the rest
  train (ties in time are broken by video_id, so the split is deterministic). A user with fewer than
  1 / test_fraction interactions has no test items and stays wholly in train.
- global cut-off (`cutoff=`): interactions at or after the cut-off are test, the rest train; only
  users with at least one train interaction (a query) are tested.

Test items are what each method must retrieve. Every method ranks the WHOLE catalog (no sampled
negatives), the user's train items are excluded from the ranking, and metrics are averaged over
every test user (a user a method returns nothing for scores 0). The validation split is carved out
of train the same way, so hyper-parameters are tuned without touching test.

Metrics: recall@{10,50,100,500}, ndcg@10, hit_rate@10, mrr (definitions in `metrics.py`) and
coverage@10 / coverage@100 (share of the catalog in at least one user's top K).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from models.evaluation.metrics import catalog_coverage, evaluate_retrieval

INTERACTION_COLUMNS = ("user_id", "video_id", "time")
RECALL_KS = (10, 50, 100, 500)
COVERAGE_KS = (10, 100)
METRIC_NAMES = (
    *(f"recall@{k}" for k in RECALL_KS), "ndcg@10", "hit_rate@10", "mrr", *(f"coverage@{k}" for k in COVERAGE_KS),
)

# recommend(user_ids, k, exclude) -> one ranked id list per user, best first, nothing from exclude[user].
RecommendFunction = Callable[[Sequence[int], int, Mapping[int, set[int]]], list[list[int]]]


@dataclass(frozen=True)
class TemporalSplit:
    train: pd.DataFrame  # user_id, video_id, time (first interactions), sorted by user then time
    test: pd.DataFrame  # same columns

    def seen(self) -> dict[int, set[int]]:
        """Train items per user: what each test user's ranking must exclude."""
        return {int(user): set(map(int, items)) for user, items in self.train.groupby("user_id")["video_id"]}

    def relevant(self) -> dict[int, set[int]]:
        return {int(user): set(map(int, items)) for user, items in self.test.groupby("user_id")["video_id"]}


def first_interactions(interactions: pd.DataFrame) -> pd.DataFrame:
    """Each (user, video) once, at its earliest time; sorted by user, time, video_id."""
    missing = [column for column in INTERACTION_COLUMNS if column not in interactions.columns]
    if missing:
        raise ValueError(f"interactions lacks columns {missing}; expected {list(INTERACTION_COLUMNS)}")
    frame = interactions[list(INTERACTION_COLUMNS)].copy()
    frame["user_id"] = frame["user_id"].astype(np.int64)
    frame["video_id"] = frame["video_id"].astype(np.int64)
    frame = frame.sort_values(["user_id", "time", "video_id"], kind="stable")
    return frame.drop_duplicates(["user_id", "video_id"], keep="first").reset_index(drop=True)


def temporal_split(
    interactions: pd.DataFrame, test_fraction: float = 0.2, cutoff: pd.Timestamp | float | None = None
) -> TemporalSplit:
    """Per-user split by default (each user's last `test_fraction` by time); a global cut-off if
    `cutoff` is given (same type as the `time` column)."""
    if not 0.0 < test_fraction < 1.0:
        raise ValueError(f"test_fraction must lie strictly between 0 and 1, got {test_fraction}")
    frame = first_interactions(interactions)
    if cutoff is not None:
        is_test = (frame["time"] >= cutoff).to_numpy()
        train = frame[~is_test]
        test = frame[is_test & frame["user_id"].isin(train["user_id"].unique()).to_numpy()]
    else:
        position = frame.groupby("user_id").cumcount().to_numpy()  # 0 = the user's earliest
        count = frame.groupby("user_id")["video_id"].transform("size").to_numpy()
        num_test = np.floor(count * test_fraction + 1e-9).astype(np.int64)
        is_test = position >= count - num_test
        train, test = frame[~is_test], frame[is_test]
    return TemporalSplit(train.reset_index(drop=True), test.reset_index(drop=True))


def validation_split(split: TemporalSplit, test_fraction: float = 0.2, cutoff=None) -> TemporalSplit:
    """The same split applied to `split.train`: fit on its train, tune on its test."""
    return temporal_split(split.train, test_fraction, cutoff)


def top_k_masked(scores: np.ndarray, k: int) -> np.ndarray:
    """(users, k) column indices of the best scores per row, best first; -inf marks excluded items."""
    k = min(k, scores.shape[1])
    top = np.argpartition(-scores, k - 1, axis=1)[:, :k]
    order = np.argsort(-np.take_along_axis(scores, top, axis=1), axis=1, kind="stable")
    return np.take_along_axis(top, order, axis=1)


def rank_by_scores(
    scores: np.ndarray, item_ids: np.ndarray, user_ids: Sequence[int], k: int, exclude: Mapping[int, set[int]]
) -> list[list[int]]:
    """Full-corpus top k per user from a (users, items) score matrix, skipping each user's excluded
    ids and items scored -inf (a method that cannot score an item puts it there)."""
    scores = np.array(scores, dtype=np.float64, copy=True)
    position = pd.Index(item_ids)
    for row, user in enumerate(user_ids):
        excluded = list(exclude.get(int(user), ()))
        if excluded:
            columns = position.get_indexer(excluded)
            scores[row, columns[columns >= 0]] = -np.inf
    top = top_k_masked(scores, k)
    ranked = []
    for row in range(len(user_ids)):
        columns = top[row][np.isfinite(scores[row, top[row]])]
        ranked.append([int(item) for item in item_ids[columns]])
    return ranked


def evaluate(
    recommend: RecommendFunction,
    split: TemporalSplit,
    catalog_size: int,
    extra_metrics: Callable[[dict[int, list[int]]], dict[str, float]] | None = None,
    batch_size: int = 1024,
) -> dict[str, float]:
    """Metrics of one method on one split: the `METRIC_NAMES` keys, then whatever `extra_metrics`
    computes from the recommendations ({test user: ranked ids}), then num_users."""
    relevant = split.relevant()
    seen = split.seen()
    users = sorted(relevant)
    k = max(RECALL_KS)
    recommendations: dict[int, list[int]] = {}
    for start in range(0, len(users), batch_size):
        batch = users[start:start + batch_size]
        for user, ranked in zip(batch, recommend(batch, k, seen)):
            leaked = set(ranked[:k]) & seen.get(user, set())
            if leaked:
                raise ValueError(f"method recommended user {user} train items {sorted(leaked)[:5]}")
            recommendations[user] = ranked
    scores = evaluate_retrieval(recommendations, relevant, RECALL_KS)
    result = {name: scores[name] for name in METRIC_NAMES if name in scores}
    for coverage_k in COVERAGE_KS:
        result[f"coverage@{coverage_k}"] = catalog_coverage(recommendations, catalog_size, coverage_k)
    result = {name: result[name] for name in METRIC_NAMES}
    if extra_metrics is not None:
        result.update(extra_metrics(recommendations))
    result["num_users"] = scores["num_users"]
    return result
