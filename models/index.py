"""Maximum-inner-product search over video vectors, returning video ids.

Below `exact_threshold` videos the index is exact (`IndexFlatIP`): at a few thousand videos a
brute-force scan takes well under a millisecond per query, and exact results make offline metrics
trustworthy. Above it, an HNSW graph trades a little recall (measure it with
`recall_against_exact`, or `bench/index_recall.py`) for sub-linear queries. Both are wrapped in
`IndexIDMap2`, so search returns video ids and `add` can append new uploads without a rebuild
(the index type chosen at `build` stays; rebuild to switch); `with_videos` appends them to a copy
instead, for an index that other threads are searching (serving's live index, serving/uploads).

The HNSW graph is built in Euclidean space, not on inner products: a graph over inner products
(faiss's `METRIC_INNER_PRODUCT`) is not a metric graph, and on the candidate generator's vectors
it kept only 0.90 of the exact recall@100 at 200,000 videos. So each video vector v gets one
more coordinate, sqrt(M² − |v|²) with M the largest norm at build time (times a margin for later
uploads), and each query q a 0: then |q − v|² = |q|² + M² − 2 q · v, and the nearest videos by L2
are exactly the largest inner products (Bachrach et al. 2014, the MIPS-to-nearest-neighbour
reduction). Search converts the distances back to inner products.
"""

from __future__ import annotations

import logging
from pathlib import Path

import faiss
import numpy as np

logger = logging.getLogger(__name__)

INDEX_FILE = "index.faiss"  # the file name a saved index gets inside a bundle directory


NORM_MARGIN = 1.2  # M = this × the largest norm at build, so later uploads with larger norms still fit


class VideoIndex:
    def __init__(self, exact_threshold: int = 50_000, hnsw_m: int = 32, ef_construction: int = 200,
                 ef_search: int = 512):
        self.exact_threshold = exact_threshold
        self.hnsw_m = hnsw_m
        self.ef_construction = ef_construction
        self.ef_search = ef_search
        self._index: faiss.IndexIDMap2 | None = None
        self._ids: set[int] = set()
        self._max_norm: float | None = None  # M of the L2 reduction; None for the exact index

    @property
    def is_exact(self) -> bool:
        return isinstance(faiss.downcast_index(self._require().index), faiss.IndexFlat)

    def __len__(self) -> int:
        return 0 if self._index is None else self._index.ntotal

    def build(self, video_ids: np.ndarray, vectors: np.ndarray) -> VideoIndex:
        video_ids, vectors = _check(video_ids, vectors)
        dim = vectors.shape[1]
        if len(video_ids) < self.exact_threshold:
            inner = faiss.IndexFlatIP(dim)
            self._max_norm = None
        else:
            inner = faiss.IndexHNSWFlat(dim + 1, self.hnsw_m, faiss.METRIC_L2)
            inner.hnsw.efConstruction = self.ef_construction
            inner.hnsw.efSearch = self.ef_search
            self._max_norm = NORM_MARGIN * max(float(np.linalg.norm(vectors, axis=1).max()), 1e-6)
        self._index = faiss.IndexIDMap2(inner)
        self._ids = set()
        self.add(video_ids, vectors)
        logger.info("built %s index over %d videos (dim %d)", type(inner).__name__, len(video_ids), dim)
        return self

    def add(self, video_ids: np.ndarray, vectors: np.ndarray) -> None:
        """Append videos (e.g. new uploads embedded by the video tower); ids must be new."""
        index = self._require()
        video_ids, vectors = _check(video_ids, vectors)
        if vectors.shape[1] != self.dim:
            raise ValueError(f"vectors have dim {vectors.shape[1]}, the index has dim {self.dim}")
        duplicates = self._ids.intersection(video_ids.tolist())
        if duplicates or len(set(video_ids.tolist())) != len(video_ids):
            raise ValueError(f"video ids already in the index or repeated: {sorted(duplicates)[:10]}")
        index.add_with_ids(self._stored_form(vectors), video_ids)
        self._ids.update(video_ids.tolist())

    def with_videos(self, video_ids: np.ndarray, vectors: np.ndarray) -> VideoIndex:
        """A copy of this index with the videos added; this one is left as it was.

        For an index that other threads search while videos arrive (serving's live index): faiss
        must not be written while it is read, so the copy is grown beside the served one and
        swapped in whole. Copying costs about what the index occupies (a memcpy of its vectors
        and, under HNSW, its graph)."""
        grown = VideoIndex(self.exact_threshold, self.hnsw_m, self.ef_construction, self.ef_search)
        grown._index = faiss.clone_index(self._require())
        grown._ids = set(self._ids)
        grown._max_norm = self._max_norm
        grown.add(video_ids, vectors)
        return grown

    def holds(self, video_ids: np.ndarray) -> np.ndarray:
        """(n,) bool: whether the index holds each of `video_ids` (an id-map lookup each, no search)."""
        ids = self._ids
        return np.fromiter((video in ids for video in np.asarray(video_ids).tolist()), dtype=bool, count=len(video_ids))

    def search(self, user_vectors: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """(ids int64 (n, k), scores float32 (n, k)), best first; id -1 pads when k > len(index)."""
        index = self._require()
        queries = _as_matrix(user_vectors, "user_vectors")
        if k < 1:
            raise ValueError(f"k must be a positive integer, got {k!r}")
        if queries.shape[1] != self.dim:
            raise ValueError(f"user_vectors have dim {queries.shape[1]}, the index has dim {self.dim}")
        if self._max_norm is None:
            scores, ids = index.search(queries, k)
            return ids.astype(np.int64), scores.astype(np.float32)
        distances, ids = index.search(np.hstack([queries, np.zeros((len(queries), 1), np.float32)]), k)
        # |q − v'|² = |q|² + M² − 2 q · v  →  q · v; padding slots (id −1) keep faiss's sentinel.
        scores = (np.sum(queries**2, axis=1, keepdims=True) + self._max_norm**2 - distances) / 2
        scores = np.where(ids >= 0, scores, -np.finfo(np.float32).max)
        return ids.astype(np.int64), scores.astype(np.float32)

    def vector(self, video_id: int) -> np.ndarray | None:
        """The vector the index holds for `video_id` (float32, shape (dim,)), or None if it holds none.

        A lookup in the id map and a copy, no search. Under the HNSW reduction it is the stored
        vector without its extra coordinate: what was added, unless it was longer than M and so
        shortened (see `_stored_form`)."""
        video_id = int(video_id)
        if video_id not in self._ids:
            return None
        stored = self._require().reconstruct(video_id)
        return stored if self._max_norm is None else stored[:-1]

    @property
    def dim(self) -> int:
        """Dimension of the video and user vectors (the stored L2 form has one more)."""
        stored = self._require().d
        return stored if self._max_norm is None else stored - 1

    def _stored_form(self, vectors: np.ndarray) -> np.ndarray:
        """Vectors as the inner index holds them: as given (exact), or with the reduction's coordinate.

        A vector longer than M (a later upload) cannot be represented exactly: it is shortened to
        norm M, so it stays findable in its direction with an underestimated score, and a warning
        says to rebuild."""
        if self._max_norm is None:
            return vectors
        norms = np.linalg.norm(vectors.astype(np.float64), axis=1)
        too_long = norms > self._max_norm
        if too_long.any():
            logger.warning("%d added videos have a norm above the index's bound %.3f: they are shortened to it "
                           "(scores underestimated) until the index is rebuilt", int(too_long.sum()), self._max_norm)
            shrink = (self._max_norm / np.maximum(norms, 1e-12))[:, None]
            vectors = np.where(too_long[:, None], vectors * shrink, vectors)
            norms = np.minimum(norms, self._max_norm)
        extra = np.sqrt(np.clip(self._max_norm**2 - norms**2, 0.0, None))
        return np.hstack([vectors, extra[:, None]]).astype(np.float32)

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
    def load(cls, path: str | Path, exact_threshold: int = 50_000) -> VideoIndex:
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
        if isinstance(inner, faiss.IndexHNSW) and inner.metric_type == faiss.METRIC_L2 and index.ntotal:
            # Every stored vector of the reduction has norm M (up to float rounding): read it back.
            stored = inner.reconstruct_n(0, min(index.ntotal, 1000))
            video_index._max_norm = float(np.linalg.norm(stored, axis=1).min())
        elif isinstance(inner, faiss.IndexHNSW):
            logger.warning("%s holds an inner-product HNSW graph from an older version (lower recall); it is "
                           "served as it is until video_index is materialized again", path)
        return video_index

    def _stored(self) -> tuple[np.ndarray, np.ndarray]:
        index = self._require()
        ids = faiss.vector_to_array(index.id_map).astype(np.int64)
        stored = index.index.reconstruct_n(0, index.ntotal)
        return ids, stored if self._max_norm is None else stored[:, :-1]

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
