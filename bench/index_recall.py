"""Recall@K of the faiss HNSW index against exact search, on the pipeline's real embeddings.

    .venv/bin/vidrec pipeline && .venv/bin/python bench/index_recall.py [--sizes 3000,50000,200000]

The `video_index` asset builds an exact index below `VideoIndex.exact_threshold` videos (the
default data has 3,000), so its registered recall is 1.0 by construction. This benchmark forces
HNSW at the index's default parameters over the trained candidate generator's video vectors, and
over larger corpora made by adding synthetic vectors drawn from a Gaussian with the real vectors'
mean and covariance (so the catalog size where HNSW would actually be chosen is covered), and
queries it with the holdout users' real vectors. It prints recall@K against brute force, build
time and per-query latency.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from models.index import VideoIndex
from models.retrieval.bundle import RetrievalBundle
from orchestration.model_runs import holdout_task
from vidrec.settings import VidrecSettings


def corpus(video_vectors: np.ndarray, size: int, rng: np.random.Generator) -> np.ndarray:
    """The real vectors, plus synthetic ones with the same mean and covariance up to `size`."""
    extra = size - len(video_vectors)
    if extra <= 0:
        return video_vectors[:size]
    mean, covariance = video_vectors.mean(axis=0), np.cov(video_vectors, rowvar=False)
    synthetic = rng.multivariate_normal(mean, covariance, size=extra).astype(np.float32)
    return np.vstack([video_vectors, synthetic])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="3000,50000,200000", help="corpus sizes, comma-separated")
    parser.add_argument("--k", type=int, default=100)
    parser.add_argument("--queries", type=int, default=500, help="at most this many holdout users")
    parser.add_argument("--ef-search", type=int, help="HNSW efSearch (default: VideoIndex's)")
    args = parser.parse_args()
    settings = VidrecSettings()
    bundle_dir = settings.artifacts_dir / "candidate_generator"
    if not (bundle_dir / "model.pt").exists():
        raise SystemExit(f"no candidate generator under {bundle_dir}; run `vidrec pipeline` first")
    bundle = RetrievalBundle.load(bundle_dir)
    _, video_vectors = bundle.video_embeddings()
    task = holdout_task(settings)
    queries = bundle.user_embeddings(task.queries.head(args.queries))
    rng = np.random.default_rng(0)
    defaults = VideoIndex() if args.ef_search is None else VideoIndex(ef_search=args.ef_search)
    print(f"HNSW M={defaults.hnsw_m}, efConstruction={defaults.ef_construction}, efSearch={defaults.ef_search}; "
          f"{len(queries)} holdout users' vectors as queries, dim {video_vectors.shape[1]}")
    print(f"| videos | recall@{args.k} vs exact | build s | ms per query (HNSW) | ms per query (exact) |")
    print("|---|---|---|---|---|")
    for size in (int(value) for value in args.sizes.split(",")):
        vectors = corpus(video_vectors, size, rng)
        ids = np.arange(1, len(vectors) + 1, dtype=np.int64)
        started = time.perf_counter()
        hnsw = VideoIndex(exact_threshold=0, ef_search=defaults.ef_search).build(ids, vectors)
        build_seconds = time.perf_counter() - started
        exact = VideoIndex(exact_threshold=size + 1).build(ids, vectors)
        recall = hnsw.recall_against_exact(queries, args.k)
        timings = []
        for index in (hnsw, exact):
            started = time.perf_counter()
            for query in queries:
                index.search(query[None, :], args.k)
            timings.append((time.perf_counter() - started) / len(queries) * 1000)
        print(f"| {len(vectors):,} | {recall:.4f} | {build_seconds:.1f} | {timings[0]:.2f} | {timings[1]:.2f} |",
              flush=True)


if __name__ == "__main__":
    main()
