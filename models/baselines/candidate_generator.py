"""Our candidate generator behind the baselines' interface, trained only on the train split.

Training examples are built by rollback from the train interactions (as the dbt mart does): every
interaction with at least one earlier interaction of that user is a label, its history the up to
`history_length` previous items (oldest first), at most `max_examples_per_user` per user (the most
recent). `example_age_days` is measured from the query time (the end of the training window);
`reference_time` (when the freshness logit measures video age) is the time of the example's last
history item; searches (tokens of the user's last 10 searches strictly before the label) and
demographics are used when given.

The query is each user's train history (the model keeps its last `history_length` items) with
example age 0, as serving asks, at the protocol's query time (`fit(train, query_time)`; the
split's cut-off, `TemporalSplit.query_time`): `reference_time` is that time and the searches are
those made before it. That is what production does, asking at request time, and every test
interaction happens at or after the cut. Without a query time (the per-user split has no common
one) each user is asked as of their last train interaction, the last moment the train split knows
about that user.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

from models.baselines.base import check_query_time
from models.evaluation.protocol import rank_by_scores
from models.retrieval.config import RetrievalConfig
from models.retrieval.features import USER_CATEGORICAL_FEATURES
from models.retrieval.train import train_candidate_generator

SEARCHES_PER_HISTORY = 10


class CandidateGeneratorRecommender:
    def __init__(
        self,
        catalog: pd.DataFrame,
        config: RetrievalConfig | None = None,
        demographics: pd.DataFrame | None = None,  # user_id + country, device, age_bucket, gender
        searches: pd.DataFrame | None = None,  # user_id, search_time, query_tokens
        max_examples_per_user: int = 200,
    ):
        self.catalog = catalog
        self.config = config or RetrievalConfig(show_progress=False)
        self.demographics = demographics
        self.searches = searches
        self.max_examples_per_user = max_examples_per_user

    def fit(self, train: pd.DataFrame, query_time: Any = None) -> CandidateGeneratorRecommender:
        check_query_time(train, query_time)
        examples, queries = rollback_examples(
            train, self.config.history_length, self.max_examples_per_user, self.searches, query_time
        )
        self.bundle = train_candidate_generator(self._with_demographics(examples), self.catalog, self.config)
        self.queries = self._with_demographics(queries).set_index("user_id", drop=False)
        return self

    def _with_demographics(self, frame: pd.DataFrame) -> pd.DataFrame:
        if self.demographics is None:
            return frame.assign(**dict.fromkeys(USER_CATEGORICAL_FEATURES))
        columns = ["user_id", *USER_CATEGORICAL_FEATURES]
        return frame.merge(self.demographics[columns], on="user_id", how="left")

    def recommend(self, user_ids: Sequence[int], k: int, exclude: Mapping[int, set[int]]) -> list[list[int]]:
        known = [int(user) for user in user_ids if int(user) in self.queries.index]
        video_ids, scores = self.bundle.score_catalog(self.queries.loc[known])
        ranked = dict(zip(known, rank_by_scores(scores, video_ids, known, k, exclude)))
        return [ranked.get(int(user), []) for user in user_ids]


def rollback_examples(
    train: pd.DataFrame,
    history_length: int,
    max_examples_per_user: int,
    searches: pd.DataFrame | None = None,
    query_time: Any = None,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(training examples, one query row per user) from interactions (user_id, video_id, time).

    Query rows have example age 0 ("now") and `query_time` as `reference_time`, with the searches
    made before it; without a query time, their user's last train time and the searches up to it.
    Examples' `example_age_days` count back from `query_time` (default: the last train time)."""
    train = train.sort_values(["user_id", "time", "video_id"], kind="stable")
    if query_time is not None:
        query_time = pd.Timestamp(query_time).to_datetime64()  # compares with the numpy times below
    window_end = train["time"].max() if query_time is None else query_time
    search_index = _search_index(searches)
    example_rows, query_rows = [], []
    for user, group in train.groupby("user_id", sort=True):
        items = group["video_id"].to_numpy(np.int64).tolist()
        times = group["time"].to_numpy()
        user_searches = search_index.get(int(user))
        first_label = max(1, len(items) - max_examples_per_user)
        for position in range(first_label, len(items)):
            example_rows.append((
                int(user), items[position], items[max(0, position - history_length):position],
                _tokens_before(user_searches, times[position]),
                (window_end - times[position]) / np.timedelta64(1, "D"),
                times[position - 1],
            ))
        if query_time is None:
            query_searches, asked_at = _tokens_before(user_searches, times[-1], inclusive=True), times[-1]
        else:
            query_searches, asked_at = _tokens_before(user_searches, query_time), query_time
        query_rows.append((int(user), items[-history_length:], query_searches, asked_at))
    examples = pd.DataFrame(example_rows, columns=[
        "user_id", "label_video_id", "history_video_ids", "history_search_tokens", "example_age_days",
        "reference_time",
    ])
    examples["example_age_days"] = examples["example_age_days"].astype(np.float64)
    examples["split"] = "train"
    queries = pd.DataFrame(
        query_rows, columns=["user_id", "history_video_ids", "history_search_tokens", "reference_time"]
    )
    queries["example_age_days"] = 0.0
    return examples, queries


def _search_index(searches: pd.DataFrame | None) -> dict[int, tuple[np.ndarray, list[list[str]]]]:
    if searches is None or searches.empty:
        return {}
    searches = searches.sort_values(["user_id", "search_time"], kind="stable")
    return {
        int(user): (group["search_time"].to_numpy(), [list(tokens) for tokens in group["query_tokens"]])
        for user, group in searches.groupby("user_id", sort=False)
    }


def _tokens_before(user_searches, time, inclusive: bool = False) -> list[str]:
    """Distinct tokens of the user's last searches before `time` (at or before, if inclusive):
    a query never sees a search made after the moment it is asked."""
    if user_searches is None:
        return []
    search_times, queries = user_searches
    end = int(np.searchsorted(search_times, time, side="right" if inclusive else "left"))
    tokens = [token for query in queries[max(0, end - SEARCHES_PER_HISTORY):end] for token in query]
    return list(dict.fromkeys(tokens))
