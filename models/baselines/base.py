"""The interface every retrieval method implements, and the user × item matrix most of them fit."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Protocol

import numpy as np
import pandas as pd
import scipy.sparse as sp

from models.evaluation.protocol import rank_by_scores


class Recommender(Protocol):
    def fit(self, train: pd.DataFrame, query_time: Any = None) -> Recommender:
        """Learn from interactions (user_id, video_id, time), to be asked at `query_time`.

        `query_time` is the split's "now" (`TemporalSplit.query_time`: the cut-off of a global
        split), offered to every method alike; a method that measures anything from "now" measures
        it from there. None: each user as of their own last train interaction. Methods that use
        only the order of events (item-item, factorisation, SASRec) ignore it."""

    def recommend(self, user_ids: Sequence[int], k: int, exclude: Mapping[int, set[int]]) -> list[list[int]]:
        """Up to k video ids per user, best first, none of them in exclude[user]."""


class InteractionMatrix:
    """Binary user × item CSR matrix with the id ↔ row/column maps, and how recent each entry is
    within its user's history.

    `recency_rank` lines up with `matrix.data`: the number of the user's train interactions strictly
    newer than this one (0 = the newest; interactions at the same time share a rank, so the ranks
    do not depend on row order). A (user, item) pair seen more than once counts once, at its latest
    time. `time` may be any orderable type (datetimes or numbers): only its order is used.
    """

    def __init__(self, train: pd.DataFrame):
        if train.empty:
            raise ValueError("train interactions are empty; nothing to fit")
        self.user_ids = np.sort(train["user_id"].unique()).astype(np.int64)
        self.item_ids = np.sort(train["video_id"].unique()).astype(np.int64)
        self.user_index = pd.Index(self.user_ids)
        self.item_index = pd.Index(self.item_ids)
        entries = pd.DataFrame({
            "row": self.user_index.get_indexer(train["user_id"].to_numpy(np.int64)),
            "column": self.item_index.get_indexer(train["video_id"].to_numpy(np.int64)),
            "time": train["time"].to_numpy(),
        })
        entries = entries.groupby(["row", "column"], as_index=False, sort=True)["time"].max()  # CSR order
        rank = entries.groupby("row")["time"].rank(method="min", ascending=False) - 1.0
        self.recency_rank = rank.to_numpy(np.int64)
        rows = entries["row"].to_numpy(np.int64)
        indptr = np.concatenate([[0], np.cumsum(np.bincount(rows, minlength=len(self.user_ids)))])
        self.matrix = sp.csr_matrix(
            (np.ones(len(entries), dtype=np.float32), entries["column"].to_numpy(np.int32), indptr),
            shape=(len(self.user_ids), len(self.item_ids)),
        )

    def rows(self, user_ids: Sequence[int]) -> np.ndarray:
        """Row of each user, -1 for users not seen in training."""
        return self.user_index.get_indexer(np.asarray(user_ids, dtype=np.int64))

    def recency_weighted(self, recency_decay: float) -> sp.csr_matrix:
        """The matrix with each user's i-th most recent interaction (0 = newest) weighted
        `recency_decay ** i`; 1.0 returns the binary matrix itself."""
        check_recency_decay(recency_decay)
        if recency_decay == 1.0:
            return self.matrix
        weighted = self.matrix.astype(np.float64)
        weighted.data = np.power(recency_decay, self.recency_rank, dtype=np.float64)
        return weighted


def check_query_time(train: pd.DataFrame, query_time: Any) -> None:
    """A method asked before some of its train interactions would learn from its own future."""
    if query_time is None:
        return
    latest = train["time"].max()
    if latest > query_time:
        raise ValueError(f"query_time {query_time!r} precedes the latest train interaction {latest!r}; "
                         "the query time must be at or after every train interaction (the split's cut-off)")


def check_recency_decay(recency_decay: float) -> None:
    if not 0.0 < recency_decay <= 1.0:
        raise ValueError(f"recency_decay must lie in (0, 1] (1 = every past interaction weighs the same), "
                         f"got {recency_decay}")


class ScoringRecommender:
    """Base for methods that score every training item for a user: subclasses implement `_fit`
    and `_scores(rows) -> (len(rows), items)`. Users unseen in training get an empty list.

    A subclass that scores from the user's history row (x_u) reads it through `history(rows)`,
    which applies `recency_decay` (set in the subclass's constructor; 1.0 = the binary row).
    The position of an interaction in the user's history, not its age in days, sets the weight:
    it is what the candidate generator's learned recency weights see, it works for any `time`
    type, and it is not fooled by bursts (an ml-100k user rates dozens of films within minutes,
    so a half-life in days would weigh a whole session alike and need a per-dataset scale).
    """

    data: InteractionMatrix
    recency_decay: float = 1.0

    def fit(self, train: pd.DataFrame, query_time: Any = None) -> ScoringRecommender:
        """`query_time` is not used: the recency weights count positions in the user's history,
        which do not change with when the user is asked."""
        check_query_time(train, query_time)
        self.data = InteractionMatrix(train)
        self._history = self.data.recency_weighted(self.recency_decay)
        self._fit(self.data.matrix)
        return self

    def history(self, rows: np.ndarray) -> sp.csr_matrix:
        """(len(rows), items) recency-weighted history rows x_u of the given users."""
        return self._history[rows]

    def _fit(self, matrix: sp.csr_matrix) -> None:
        raise NotImplementedError

    def _scores(self, rows: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def recommend(self, user_ids: Sequence[int], k: int, exclude: Mapping[int, set[int]]) -> list[list[int]]:
        rows = self.data.rows(user_ids)
        known = rows >= 0
        ranked: list[list[int]] = [[] for _ in user_ids]
        if known.any():
            scores = np.asarray(self._scores(rows[known]), dtype=np.float64)
            known_users = [user for user, is_known in zip(user_ids, known) if is_known]
            rankings = rank_by_scores(scores, self.data.item_ids, known_users, k, exclude)
            for slot, items in zip(np.flatnonzero(known), rankings):
                ranked[slot] = items
        return ranked
