"""ALS (Hu, Koren & Volinsky 2008) and BPR (Rendle et al. 2009) from `implicit`, on CPU.

Both learn user and item factors from the binary matrix; score = user · item. Threads are capped
at `num_threads` (default 1) so benchmark timings are comparable on a shared machine.
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp
from implicit.cpu.als import AlternatingLeastSquares
from implicit.cpu.bpr import BayesianPersonalizedRanking
from threadpoolctl import threadpool_limits

from models.baselines.base import ScoringRecommender


class _Factorization(ScoringRecommender):
    def _scores(self, rows: np.ndarray) -> np.ndarray:
        return self.user_factors[rows] @ self.item_factors.T

    def _fit_model(self, model, matrix: sp.csr_matrix) -> None:
        with threadpool_limits(1, "blas"):  # implicit's own threads; a BLAS pool underneath only thrashes
            model.fit(matrix, show_progress=False)
        self.user_factors = np.asarray(model.user_factors)
        self.item_factors = np.asarray(model.item_factors)


class ALS(_Factorization):
    def __init__(self, factors: int = 64, regularization: float = 0.01, alpha: float = 1.0, iterations: int = 15,
                 seed: int = 0, num_threads: int = 1):
        self.params = {"factors": factors, "regularization": regularization, "alpha": alpha,
                       "iterations": iterations, "random_state": seed, "num_threads": num_threads}

    def _fit(self, matrix: sp.csr_matrix) -> None:
        self._fit_model(AlternatingLeastSquares(**self.params), matrix)


class BPR(_Factorization):
    def __init__(self, factors: int = 64, learning_rate: float = 0.01, regularization: float = 0.01,
                 iterations: int = 100, seed: int = 0, num_threads: int = 1):
        self.params = {"factors": factors, "learning_rate": learning_rate, "regularization": regularization,
                       "iterations": iterations, "random_state": seed, "num_threads": num_threads}

    def _fit(self, matrix: sp.csr_matrix) -> None:
        self._fit_model(BayesianPersonalizedRanking(**self.params), matrix)
