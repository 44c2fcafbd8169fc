"""EASE (Steck 2019): a closed-form item-item linear autoencoder with a zero diagonal.

P = (XᵀX + λI)⁻¹, B = I − P / diag(P) (column-wise), score(u) = x_u B. λ is the main
hyper-parameter; the diagonal constraint stops an item from predicting itself. B is fitted on the
binary matrix; `recency_decay` < 1 weighs the user's i-th most recent interaction `decay ** i` in
x_u at scoring time (see `ScoringRecommender`), the same recency signal our candidate generator
learns. The default 1.0 is plain EASE.
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp

from models.baselines.base import ScoringRecommender, check_recency_decay


class EASE(ScoringRecommender):
    def __init__(self, l2: float = 500.0, recency_decay: float = 1.0):
        if l2 <= 0:
            raise ValueError(f"l2 must be positive, got {l2}")
        check_recency_decay(recency_decay)
        self.l2 = l2
        self.recency_decay = recency_decay

    def _fit(self, matrix: sp.csr_matrix) -> None:
        gram = (matrix.T @ matrix).toarray().astype(np.float64)
        gram[np.diag_indices_from(gram)] += self.l2
        precision = np.linalg.inv(gram)
        weights = -precision / np.diag(precision)[None, :]
        np.fill_diagonal(weights, 0.0)
        self.weights = weights  # (items, items)

    def _scores(self, rows: np.ndarray) -> np.ndarray:
        return self.history(rows) @ self.weights
