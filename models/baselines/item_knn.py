"""Item-kNN: score(u, j) = Σ_{i ∈ history(u)} w_ui · cos(i, j), keeping each item's `neighbours`
most similar items. Similarities come from the binary matrix; w_ui = `recency_decay ** i` for the
user's i-th most recent interaction (see `ScoringRecommender`), 1.0 = every watch counts alike.
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp

from models.baselines.base import ScoringRecommender, check_recency_decay


class ItemKNN(ScoringRecommender):
    def __init__(self, neighbours: int | None = 100, recency_decay: float = 1.0):
        if neighbours is not None and neighbours < 1:
            raise ValueError(f"neighbours must be a positive integer or None (keep all), got {neighbours}")
        check_recency_decay(recency_decay)
        self.neighbours = neighbours
        self.recency_decay = recency_decay

    def _fit(self, matrix: sp.csr_matrix) -> None:
        norms = np.sqrt(np.asarray(matrix.sum(axis=0)).ravel())  # binary: ||column|| = sqrt(count)
        inverse = np.where(norms > 0, 1.0 / np.maximum(norms, 1e-12), 0.0)
        similarity = (matrix.T @ matrix).toarray().astype(np.float64)
        similarity *= inverse[:, None] * inverse[None, :]
        np.fill_diagonal(similarity, 0.0)
        if self.neighbours is not None and self.neighbours < similarity.shape[1]:
            # keep each column's top neighbours: item i contributes to j only if i is among j's nearest
            threshold = -np.partition(-similarity, self.neighbours - 1, axis=0)[self.neighbours - 1]
            similarity[similarity < threshold[None, :]] = 0.0
        self.similarity = similarity  # (items, items)

    def _scores(self, rows: np.ndarray) -> np.ndarray:
        return self.history(rows) @ self.similarity
