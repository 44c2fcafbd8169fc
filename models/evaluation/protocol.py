"""The one offline protocol for every retrieval method: temporal split, full ranking, seen items excluded.

The harness, the benches and the pipeline's holdout all split, exclude and score through this
module, with one callback signature (`RecommendFunction`).

Input is an interactions frame (user_id, video_id, time), reduced to each user's FIRST interaction
with each video (a rewatch is not a new discovery). Two split kinds:

- `global` (default): one time cut-off T for everybody. Interactions before T are train (every
  user's); test is the interactions at or after T of users with at least one interaction before
  T (a user needs a history to be queried). T defaults to the (1 − test_fraction) quantile of
  the first-interaction times. No train interaction is later than any test interaction, so
  nothing a method learns comes from the test period: this is what production sees.
- `per_user`: each user's last `test_fraction` of interactions are test (ties in time broken by
  video_id). It LEAKS THE FUTURE: a user's train part can be later than other users' test parts
  (on ml-100k about 45% of train interactions are later than some test user's first test
  interaction), so popular-in-the-test-period items are learnable. Kept for comparison with
  older tables only; the split says so (`leaks_future`) and reports must too.

Validation is the same kind of split applied to the train part (`validation_split`): for the
global kind with its own cut-off T_val < T (the same quantile of the train times), so tuning
never sees test time.

The query time (`TemporalSplit.query_time`): when every test user is asked for recommendations.
For the global split it is the cut-off T (T_val on validation): production asks at request time,
every test interaction happens at or after T, and T is the latest moment nothing of the test
period is known, so a method that measures anything from "now" (a freshness logit, an example's
age, a recent-popularity window) measures it from T, the same T for every method. Asking as of
each user's own last train interaction instead (days or weeks before T for a user who paused)
throws away what is known and is not what serving does. The per-user split has no common "now"
(each user's test part starts at a different time), so its query time is None: methods then ask
as of each user's last train interaction, the latest time that user's train part knows.

Every method ranks the WHOLE catalog (no sampled negatives), the user's train items are excluded,
and metrics are averaged over every test user (a user a method returns nothing for scores 0).
`evaluate` also returns the per-user values, indexed by user id, for paired bootstrap intervals
(models/evaluation/bootstrap.py).

The cold-start slice (`evaluate(..., slice="cold_start")`) scores new videos: test items with no
train interaction at all (`TemporalSplit.cold_items`). Only users with at least one cold test
item count, only their cold items are relevant, and EVERY item with a train interaction is
excluded from every ranking, so methods rank among the catalog items nobody interacted with in
train. An id-only method, which can score only items it saw in train, scores 0 there.

Metrics: recall@{10,50,100,500}, ndcg@10, hit_rate@10, mrr (definitions in `metrics.py`) and
coverage@10 / coverage@100 (share of the ranked catalog in at least one user's top K).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from functools import cached_property
from typing import Any

import numpy as np
import pandas as pd

from models.evaluation.metrics import catalog_coverage, per_user_retrieval_metrics

INTERACTION_COLUMNS = ("user_id", "video_id", "time")
SPLIT_KINDS = ("global", "per_user")
SLICES = ("all", "cold_start")
RECALL_KS = (10, 50, 100, 500)
HEADLINE_K = 10  # ndcg and hit rate are reported at this K (the per-user table has every K)
COVERAGE_KS = (10, 100)


def metric_names(ks: Sequence[int] = RECALL_KS) -> tuple[str, ...]:
    """The headline keys of `Evaluation.metrics`, in order, for recall cut-offs `ks`."""
    return (
        *(f"recall@{k}" for k in ks), f"ndcg@{HEADLINE_K}", f"hit_rate@{HEADLINE_K}", "mrr",
        *(f"coverage@{k}" for k in COVERAGE_KS),
    )


METRIC_NAMES = metric_names()

# recommend(user_ids, k, exclude) -> one ranked id list per user, best first, nothing from exclude[user].
RecommendFunction = Callable[[Sequence[int], int, Mapping[int, set[int]]], list[list[int]]]


@dataclass(frozen=True)
class TemporalSplit:
    train: pd.DataFrame  # user_id, video_id, time (first interactions), sorted by user then time
    test: pd.DataFrame  # same columns
    kind: str = "global"  # one of SPLIT_KINDS
    cutoff: Any = None  # global: the time T (same type as `time`); per_user: None
    test_fraction: float = 0.2  # what validation_split carves from train by default

    @property
    def query_time(self) -> Any:
        """When test users are asked (see the module docstring): the cut-off for the global split,
        None for the per-user split (each user as of their own last train interaction)."""
        return self.cutoff if self.kind == "global" else None

    @property
    def leaks_future(self) -> bool:
        """True for the per-user split: train holds interactions later than other users' test ones."""
        return self.kind == "per_user"

    def seen(self) -> dict[int, set[int]]:
        """Train items per user: what each test user's ranking must exclude."""
        return {int(user): set(map(int, items)) for user, items in self.train.groupby("user_id")["video_id"]}

    def relevant(self) -> dict[int, set[int]]:
        """Test items per test user: what each ranking should retrieve."""
        return {int(user): set(map(int, items)) for user, items in self.test.groupby("user_id")["video_id"]}

    @cached_property
    def train_items(self) -> frozenset[int]:
        """Every item with at least one train interaction (anybody's)."""
        return frozenset(map(int, self.train["video_id"].unique()))

    @cached_property
    def cold_items(self) -> frozenset[int]:
        """Test items with no train interaction at all: new videos, for the cold-start slice."""
        return frozenset(map(int, self.test["video_id"].unique())) - self.train_items

    def describe(self) -> dict[str, Any]:
        """The split's size and kind, for report headers and run parameters."""
        return {
            "kind": self.kind,
            "cutoff": self.cutoff,
            "query_time": self.query_time,
            "test_fraction": self.test_fraction,
            "leaks_future": self.leaks_future,
            "train_interactions": len(self.train),
            "train_users": int(self.train["user_id"].nunique()),
            "train_items": len(self.train_items),
            "test_users": int(self.test["user_id"].nunique()),
            "test_interactions": len(self.test),
            "cold_items": len(self.cold_items),
            "cold_test_users": int(self.test.loc[self._cold_rows(), "user_id"].nunique()),
            "cold_test_interactions": int(self._cold_rows().sum()),
        }

    def _cold_rows(self) -> np.ndarray:
        return self.test["video_id"].isin(list(self.cold_items)).to_numpy()


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
    interactions: pd.DataFrame,
    test_fraction: float = 0.2,
    cutoff: pd.Timestamp | float | None = None,
    kind: str = "global",
) -> TemporalSplit:
    """Split first interactions in time (see the module docstring for the two kinds).

    global: `cutoff` is T (same type as the `time` column); None takes the (1 − test_fraction)
    quantile of the first-interaction times. per_user: `cutoff` must be None.
    """
    if not 0.0 < test_fraction < 1.0:
        raise ValueError(f"test_fraction must lie strictly between 0 and 1, got {test_fraction}")
    if kind not in SPLIT_KINDS:
        raise ValueError(f"split kind must be one of {SPLIT_KINDS}, got {kind!r}")
    frame = first_interactions(interactions)
    if frame.empty:
        raise ValueError("interactions are empty; nothing to split")
    if kind == "per_user":
        if cutoff is not None:
            raise ValueError(f"the per-user split takes no cut-off (got {cutoff!r}); use kind='global'")
        return _per_user_split(frame, test_fraction)
    if cutoff is None:
        cutoff = frame["time"].quantile(1.0 - test_fraction)
    is_test = (frame["time"] >= cutoff).to_numpy()
    train = frame[~is_test]
    test = frame[is_test & frame["user_id"].isin(train["user_id"].unique()).to_numpy()]
    return TemporalSplit(train.reset_index(drop=True), test.reset_index(drop=True), "global", cutoff, test_fraction)


def _per_user_split(frame: pd.DataFrame, test_fraction: float) -> TemporalSplit:
    """Each user's last `test_fraction` (floored) by time; users with fewer than 1 / test_fraction
    interactions stay wholly in train."""
    position = frame.groupby("user_id").cumcount().to_numpy()  # 0 = the user's earliest
    count = frame.groupby("user_id")["video_id"].transform("size").to_numpy()
    num_test = np.floor(count * test_fraction + 1e-9).astype(np.int64)
    is_test = position >= count - num_test
    train, test = frame[~is_test], frame[is_test]
    return TemporalSplit(train.reset_index(drop=True), test.reset_index(drop=True), "per_user", None, test_fraction)


def validation_split(
    split: TemporalSplit, test_fraction: float | None = None, cutoff: pd.Timestamp | float | None = None
) -> TemporalSplit:
    """The same kind of split applied to `split.train`: fit on its train, tune on its test.

    For the global kind the validation cut-off T_val defaults to the (1 − test_fraction) quantile
    of the train times, so validation's test period lies strictly before the test cut-off; an
    explicit `cutoff` must lie before it too. `test_fraction` defaults to the split's own.
    """
    test_fraction = split.test_fraction if test_fraction is None else test_fraction
    if split.kind == "global" and cutoff is not None and not cutoff < split.cutoff:
        raise ValueError(f"the validation cut-off {cutoff!r} must lie before the test cut-off {split.cutoff!r}")
    return temporal_split(split.train, test_fraction, cutoff, split.kind)


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


def inner_product_recommend(
    user_ids: Sequence[int], user_vectors: np.ndarray, item_ids: np.ndarray, item_vectors: np.ndarray
) -> RecommendFunction:
    """Exact inner-product retrieval over every item, as a `RecommendFunction` for the users whose
    vectors are given (row i of `user_vectors` is `user_ids[i]`); any other user gets nothing."""
    row_of = {int(user): row for row, user in enumerate(user_ids)}

    def recommend(users: Sequence[int], k: int, exclude: Mapping[int, set[int]]) -> list[list[int]]:
        known = [int(user) for user in users if int(user) in row_of]
        scores = user_vectors[[row_of[user] for user in known]] @ item_vectors.T  # (known users, items)
        ranked = dict(zip(known, rank_by_scores(scores, item_ids, known, k, exclude)))
        return [ranked.get(int(user), []) for user in users]

    return recommend


@dataclass(frozen=True)
class Evaluation:
    """One method scored on one split (or its cold-start slice)."""

    metrics: dict[str, float]  # metric_names(ks), then extra metrics, then num_users
    per_user: pd.DataFrame  # index user_id (ascending); recall@K, ndcg@K, hit_rate@K per K, and mrr
    recommendations: dict[int, list[int]]  # test user → ranked ids, best first
    slice: str = "all"

    def averages(self) -> dict[str, float]:
        """The mean of every per-user column, plus num_users."""
        averaged = {name: float(value) for name, value in self.per_user.mean().items()}
        averaged["num_users"] = float(len(self.per_user))
        return averaged


def _slice_task(split: TemporalSplit, slice: str) -> tuple[dict[int, set[int]], dict[int, set[int]]]:
    """(relevant, exclude) per scored user for one slice of the split."""
    if slice not in SLICES:
        raise ValueError(f"slice must be one of {SLICES}, got {slice!r}")
    if slice == "all":
        return split.relevant(), split.seen()
    cold = split.cold_items
    relevant = {user: items & cold for user, items in split.relevant().items() if items & cold}
    if not relevant:
        raise ValueError("the split has no cold-start test item (a test item with no train interaction)")
    excluded = set(split.train_items)  # one set shared by every user: rank only never-seen items
    return relevant, dict.fromkeys(relevant, excluded)


def evaluate(
    recommend: RecommendFunction,
    split: TemporalSplit,
    catalog_size: int,
    extra_metrics: Callable[[dict[int, list[int]]], dict[str, float]] | None = None,
    batch_size: int = 1024,
    *,
    ks: Sequence[int] = RECALL_KS,
    slice: str = "all",
) -> Evaluation:
    """Score one method on one split: `recommend` is asked for max(ks) items per test user in
    batches, with the slice's exclusions; a recommended excluded item is an error, not a miss.

    `catalog_size` is the number of catalog items (the coverage denominator; for the cold-start
    slice the items without a train interaction are counted, assuming every train item is in the
    catalog). `extra_metrics` computes more keys from {test user: ranked ids}.
    """
    relevant, exclude = _slice_task(split, slice)
    users = sorted(relevant)
    k = max(ks)
    recommendations: dict[int, list[int]] = {}
    for start in range(0, len(users), batch_size):
        batch = users[start:start + batch_size]
        for user, ranked in zip(batch, recommend(batch, k, exclude)):
            leaked = set(ranked[:k]) & exclude.get(user, set())
            if leaked:
                raise ValueError(f"method recommended user {user} train items {sorted(leaked)[:5]}, "
                                 f"which the {slice!r} slice excludes")
            recommendations[user] = list(ranked)
    per_user = per_user_retrieval_metrics(recommendations, relevant, sorted({*ks, HEADLINE_K}))
    means = per_user.mean()
    ranked_catalog_size = catalog_size - (len(split.train_items) if slice == "cold_start" else 0)
    if ranked_catalog_size < 1:
        raise ValueError(f"catalog_size {catalog_size} leaves no item to rank in the {slice!r} slice "
                         f"({len(split.train_items)} items have train interactions)")
    metrics = {name: float(means[name]) for name in metric_names(ks) if not name.startswith("coverage@")}
    for coverage_k in COVERAGE_KS:
        metrics[f"coverage@{coverage_k}"] = catalog_coverage(recommendations, ranked_catalog_size, coverage_k)
    metrics = {name: metrics[name] for name in metric_names(ks)}
    if extra_metrics is not None:
        metrics.update(extra_metrics(recommendations))
    metrics["num_users"] = float(len(per_user))
    return Evaluation(metrics, per_user, recommendations, slice)
