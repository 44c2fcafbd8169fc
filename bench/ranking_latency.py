"""Cost of ranking N candidates inside the service's request path, feature lookup included.

    VIDREC_HOME=<home of a finished pipeline> .venv/bin/python bench/ranking_latency.py [--candidates 500]

Loads the champion models and the online store exactly as the service does (one torch and faiss
thread, video-feature cache warmed), then times, per request: the user's online features, the
ranking frame for N candidates (cached video features + the user's), and the ranker's score.
Candidates are N random catalog videos, each tagged with a random retrieval source and rank; users
are drawn (seeded) from the raw logs. The on-demand cross features (the user's engagement with
each candidate, its creator and category) are computed in the frame step, as in the service.
"""

from __future__ import annotations

import argparse
import random
import time

import faiss
import numpy as np
import pandas as pd
import torch

from feature_repo.store import feature_store
from models.sources import SOURCE_PRIORITY
from models.sources.candidate import rank_score
from serving.loading import load_champion_models
from serving.online_features import OnlineFeatureReader
from serving.request_clock import request_clock
from vidrec.settings import VidrecSettings


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--candidates", type=int, default=500)
    parser.add_argument("--requests", type=int, default=200)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    torch.set_num_threads(1)
    faiss.omp_set_num_threads(1)
    settings = VidrecSettings()
    models = load_champion_models(settings)
    store = feature_store(settings)
    features = OnlineFeatureReader(store, settings.video_feature_ttl_seconds)
    clock = request_clock(settings, store)
    catalog = models.retrieval.catalog_video_ids.tolist()
    features.warm_video_cache(catalog)
    users = pd.read_parquet(settings.raw_dir / "users", columns=["user_id"])["user_id"].tolist()
    rng = random.Random(args.seed)

    lookups, frames, scores, totals = [], [], [], []
    for _ in range(args.requests + 5):
        user_id = rng.choice(users)
        candidates = rng.sample(catalog, min(args.candidates, len(catalog)))
        started = time.perf_counter()
        user = features.user_features(user_id) or {}
        looked_up = time.perf_counter()
        sources = [rng.choice(SOURCE_PRIORITY) for _ in candidates]
        columns = features.ranking_columns(
            user, user_id, candidates, clock(), sources, [rank_score(rank) for rank in range(len(candidates))]
        )
        columns["surface"] = np.array(["home"] * len(candidates), dtype=object)
        framed = time.perf_counter()
        models.ranker.score(columns)
        scored = time.perf_counter()
        lookups.append(looked_up - started)
        frames.append(framed - looked_up)
        scores.append(scored - framed)
        totals.append(scored - started)
    print(f"| step ({args.candidates} candidates, {args.requests} requests) | p50 ms | p99 ms |")
    print("|---|---|---|")
    for name, values in (("user features (online store)", lookups),
                         ("ranking frame (cached video features + cross features)", frames),
                         ("ranker score (all heads, calibrated)", scores), ("total", totals)):
        values_ms = np.array(values[5:]) * 1000  # the first requests warm caches
        print(f"| {name} | {np.percentile(values_ms, 50):.2f} | {np.percentile(values_ms, 99):.2f} |")


if __name__ == "__main__":
    main()
