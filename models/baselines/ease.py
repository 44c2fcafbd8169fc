"""EASE (Steck 2019): a closed-form item-item linear autoencoder with a zero diagonal.

P = (XᵀX + λI)⁻¹, B = I − P / diag(P) (column-wise), score(u) = x_u B. λ is the only
hyper-parameter; the diagonal constraint stops an item from predicting itself.
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp

from models.baselines.base import ScoringRecommender


class EASE(ScoringRecommender):
    def __init__(self, l2: float = 500.0):
        if l2 <= 0:
            raise ValueError(f"l2 must be positive, got {l2}")
        self.l2 = l2

    def _fit(self, matrix: sp.csr_matrix) -> None:
        gram = (matrix.T @ matrix).toarray().astype(np.float64)
        gram[np.diag_indices_from(gram)] += self.l2
        precision = np.linalg.inv(gram)
        weights = -precision / np.diag(precision)[None, :]
        np.fill_diagonal(weights, 0.0)
        self.weights = weights  # (items, items)

    def _scores(self, rows: np.ndarray) -> np.ndarray:
        return self.data.matrix[rows] @ self.weights
