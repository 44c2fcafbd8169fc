"""Maximum-inner-product search over video vectors, returning video ids.

Below `exact_threshold` videos the index is exact (`IndexFlatIP`): at a few thousand videos a
brute-force scan takes well under a millisecond per query, and exact results make offline metrics
trustworthy. Above it, `IndexHNSWFlat` with the inner-product metric trades a little recall
(measure it with `recall_against_exact`) for sub-linear queries. Both are wrapped in
`IndexIDMap2`, so search returns video ids and `add` can append new uploads without a rebuild
(the index type chosen at `build` stays; rebuild to switch).
"""

from __future__ import annotations

import logging
from pathlib import Path

import faiss
import numpy as np

logger = logging.getLogger(__name__)

INDEX_FILE = "index.faiss"  # the file name a saved index gets inside a bundle directory


class VideoIndex:
    def __init__(self, exact_threshold: int = 50_000, hnsw_m: int = 32, ef_construction: int = 200,
                 ef_search: int = 128):
        self.exact_threshold = exact_threshold
        self.hnsw_m = hnsw_m
        self.ef_construction = ef_construction
        self.ef_search = ef_search
        self._index: faiss.IndexIDMap2 | None = None
        self._ids: set[int] = set()

    @property
    def is_exact(self) -> bool:
        return isinstance(faiss.downcast_index(self._require().index), faiss.IndexFlat)

    def __len__(self) -> int:
        return 0 if self._index is None else self._index.ntotal

    def build(self, video_ids: np.ndarray, vectors: np.ndarray) -> "VideoIndex":
        video_ids, vectors = _check(video_ids, vectors)
        dim = vectors.shape[1]
        if len(video_ids) < self.exact_threshold:
            inner = faiss.IndexFlatIP(dim)
        else:
            inner = faiss.IndexHNSWFlat(dim, self.hnsw_m, faiss.METRIC_INNER_PRODUCT)
            inner.hnsw.efConstruction = self.ef_construction
            inner.hnsw.efSearch = self.ef_search
        self._index = faiss.IndexIDMap2(inner)
        self._ids = set()
        self.add(video_ids, vectors)
        logger.info("built %s index over %d videos (dim %d)", type(inner).__name__, len(video_ids), dim)
        return self

    def add(self, video_ids: np.ndarray, vectors: np.ndarray) -> None:
        """Append videos (e.g. new uploads embedded by the video tower); ids must be new."""
        index = self._require()
        video_ids, vectors = _check(video_ids, vectors)
        if vectors.shape[1] != index.d:
            raise ValueError(f"vectors have dim {vectors.shape[1]}, the index has dim {index.d}")
        duplicates = self._ids.intersection(video_ids.tolist())
        if duplicates or len(set(video_ids.tolist())) != len(video_ids):
            raise ValueError(f"video ids already in the index or repeated: {sorted(duplicates)[:10]}")
        index.add_with_ids(vectors, video_ids)
        self._ids.update(video_ids.tolist())

    def search(self, user_vectors: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """(ids int64 (n, k), scores float32 (n, k)), best first; id -1 pads when k > len(index)."""
        index = self._require()
        queries = _as_matrix(user_vectors, "user_vectors")
        if k < 1:
            raise ValueError(f"k must be a positive integer, got {k!r}")
        scores, ids = index.search(queries, k)
        return ids.astype(np.int64), scores.astype(np.float32)

    def recall_against_exact(self, queries: np.ndarray, k: int) -> float:
        """Share of the exact top-k ids (brute force over the stored vectors) that search returns."""
        queries = _as_matrix(queries, "queries")
        ids, vectors = self._stored()
        k = min(k, len(ids))
        exact_positions = np.argsort(-(queries @ vectors.T), axis=1, kind="stable")[:, :k]
        found, _ = self.search(queries, k)
        hits = sum(len(set(ids[row]) & set(approx)) for row, approx in zip(exact_positions, found.tolist()))
        return hits / (len(queries) * k)

    def save(self, path: str | Path) -> None:
        faiss.write_index(self._require(), str(path))

    @classmethod
    def load(cls, path: str | Path, exact_threshold: int = 50_000) -> "VideoIndex":
        index = faiss.read_index(str(path))
        if not isinstance(index, faiss.IndexIDMap2):
            raise ValueError(f"{path} holds a {type(index).__name__}, expected an IndexIDMap2")
        video_index = cls(exact_threshold=exact_threshold)
        inner = faiss.downcast_index(index.index)
        if isinstance(inner, faiss.IndexHNSW):
            video_index.hnsw_m = inner.hnsw.nb_neighbors(1)
            video_index.ef_construction = inner.hnsw.efConstruction
            video_index.ef_search = inner.hnsw.efSearch
        video_index._index = index
        video_index._ids = set(faiss.vector_to_array(index.id_map).tolist())
        return video_index

    def _stored(self) -> tuple[np.ndarray, np.ndarray]:
        index = self._require()
        ids = faiss.vector_to_array(index.id_map).astype(np.int64)
        return ids, index.index.reconstruct_n(0, index.ntotal)

    def _require(self) -> faiss.IndexIDMap2:
        if self._index is None:
            raise ValueError("VideoIndex is empty; call build() or load() first")
        return self._index


def _as_matrix(values: np.ndarray, name: str) -> np.ndarray:
    matrix = np.ascontiguousarray(values, dtype=np.float32)
    if matrix.ndim != 2:
        raise ValueError(f"{name} must be a 2-d array (n, dim), got shape {matrix.shape}")
    return matrix


def _check(video_ids: np.ndarray, vectors: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    video_ids = np.ascontiguousarray(video_ids, dtype=np.int64).ravel()
    vectors = _as_matrix(vectors, "vectors")
    if len(video_ids) != len(vectors):
        raise ValueError(f"{len(video_ids)} video ids but {len(vectors)} vectors")
    if len(video_ids) == 0:
        raise ValueError("no videos given")
    if not np.all(np.isfinite(vectors)):
        raise ValueError("vectors contain NaN or infinity")
    return video_ids, vectors
