"""The interface every retrieval method implements, and the user × item matrix most of them fit."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Protocol

import numpy as np
import pandas as pd
import scipy.sparse as sp

from models.evaluation.protocol import rank_by_scores


class Recommender(Protocol):
    def fit(self, train: pd.DataFrame) -> Recommender:
        """Learn from interactions (user_id, video_id, time)."""

    def recommend(self, user_ids: Sequence[int], k: int, exclude: Mapping[int, set[int]]) -> list[list[int]]:
        """Up to k video ids per user, best first, none of them in exclude[user]."""


class InteractionMatrix:
    """Binary user × item CSR matrix with the id ↔ row/column maps."""

    def __init__(self, train: pd.DataFrame):
        if train.empty:
            raise ValueError("train interactions are empty; nothing to fit")
        self.user_ids = np.sort(train["user_id"].unique()).astype(np.int64)
        self.item_ids = np.sort(train["video_id"].unique()).astype(np.int64)
        self.user_index = pd.Index(self.user_ids)
        self.item_index = pd.Index(self.item_ids)
        rows = self.user_index.get_indexer(train["user_id"].to_numpy(np.int64))
        columns = self.item_index.get_indexer(train["video_id"].to_numpy(np.int64))
        matrix = sp.csr_matrix(
            (np.ones(len(rows), dtype=np.float32), (rows, columns)), shape=(len(self.user_ids), len(self.item_ids))
        )
        matrix.data[:] = 1.0  # duplicates count once
        self.matrix = matrix

    def rows(self, user_ids: Sequence[int]) -> np.ndarray:
        """Row of each user, -1 for users not seen in training."""
        return self.user_index.get_indexer(np.asarray(user_ids, dtype=np.int64))


class ScoringRecommender:
    """Base for methods that score every training item for a user: subclasses implement `_fit`
    and `_scores(rows) -> (len(rows), items)`. Users unseen in training get an empty list."""

    data: InteractionMatrix

    def fit(self, train: pd.DataFrame) -> ScoringRecommender:
        self.data = InteractionMatrix(train)
        self._fit(self.data.matrix)
        return self

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
            for slot, items in zip(np.flatnonzero(known), rank_by_scores(scores, self.data.item_ids, known_users, k, exclude)):
                ranked[slot] = items
        return ranked
