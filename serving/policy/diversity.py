"""Topic diversity for MMR: how much a placed video lowers the gain of the candidates like it.

MMR picks, per slot, the candidate with the best lambda * relevance - (1 - lambda) * (its largest
similarity to the videos above). Similarity is "same category" by default (always known, one
comparison per candidate) or the cosine of the caller's embeddings.
"""

from __future__ import annotations

import numpy as np

from serving.policy.config import PolicyConfig
from serving.policy.exploration import ExplorationPool
from serving.policy.inputs import RankedCandidates, dense_codes


def category_keys(candidates: RankedCandidates, pool: ExplorationPool) -> tuple[np.ndarray, np.ndarray]:
    """Categories as integers comparable between candidates and pool (ints pass through)."""
    if candidates.categories.dtype.kind in "iu" and pool.categories.dtype.kind in "iu":
        return candidates.categories.astype(np.int64, copy=False), pool.categories.astype(np.int64, copy=False)
    left, right = candidates.categories.astype(str), pool.categories.astype(str)
    left_codes, right_codes, _ = dense_codes(left, right)
    return left_codes, right_codes


def unit_rows(embeddings: np.ndarray) -> np.ndarray:
    norms = np.linalg.norm(embeddings, axis=1, keepdims=True)
    return embeddings / np.where(norms > 0, norms, 1.0)


class DiversityMemory:
    """Folds each placed video's similarity to the candidates into their MMR gain.

    Similarity is "same category" (0/1) or the cosine of embeddings clipped at 0; both keep the
    MMR penalty within [0, 1], the scale of relevance. Because a candidate's gain only falls as
    videos are placed (lambda * relevance - (1 - lambda) * max similarity), `lower` folds each
    placed video into the gain array with one elementwise minimum.
    """

    def __init__(
        self,
        candidates: RankedCandidates,
        pool: ExplorationPool,
        config: PolicyConfig,
        weighted_relevance: np.ndarray,
    ):
        self.weight = 1.0 - config.diversity_lambda
        self.weighted_relevance = weighted_relevance
        self.by_embedding = config.diversity_similarity == "embedding"
        if self.by_embedding:
            if candidates.embeddings is None or (len(pool) and pool.embeddings is None):
                raise ValueError("diversity_similarity='embedding' needs embeddings for the candidates and the pool")
            self.candidate_keys = unit_rows(candidates.embeddings)
            self.pool_keys = unit_rows(pool.embeddings) if len(pool) else np.empty((0, candidates.embeddings.shape[1]))
        else:
            self.candidate_keys, self.pool_keys = category_keys(candidates, pool)
            self.gain_if_similar = weighted_relevance - self.weight

    def lower(self, gain: np.ndarray, key: np.ndarray | int) -> None:
        """Lower `gain` in place to what it is once a video with `key` (category or embedding) is placed."""
        if self.by_embedding:
            similarity = np.clip(self.candidate_keys @ key, 0.0, 1.0)
            np.minimum(gain, self.weighted_relevance - self.weight * similarity, out=gain)
        else:
            np.minimum(gain, self.gain_if_similar, out=gain, where=self.candidate_keys == key)
