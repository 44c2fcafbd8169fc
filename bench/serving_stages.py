"""Where a `/recommend` request's time goes, stage by stage, in-process (no HTTP, one thread).

    VIDREC_HOME=<home of a finished pipeline> VIDREC_CANDIDATES_PER_REQUEST=500 \\
        .venv/bin/python bench/serving_stages.py [--requests 200] [--k 20] [--whole-corpus 3]

Builds the request path the service runs (`serving.runtime.ServingRuntime`: the champion models,
the online store, the warmed video-feature cache, one torch and faiss thread) and times the real
`Recommender.recommend` for known users: each stage as its `RequestTrace` recorded it (the same
timings `/metrics` exports under load), the end-to-end call, and unknown users' path (popular in
their segment when a profile is given, global otherwise; through the policy stage).
`--whole-corpus N` also ranks every catalog video for N users: the cost the two-stage funnel avoids.
"""

from __future__ import annotations

import argparse
import random
import time
from collections import defaultdict

import faiss
import numpy as np
import pandas as pd
import torch

from models.segment_popularity import DEMOGRAPHIC_COLUMNS
from serving.recommender import Recommender
from serving.runtime import ServingRuntime
from vidrec.settings import VidrecSettings

WARMUP_REQUESTS = 5


def whole_corpus_seconds(recommender: Recommender, user_ids: list[int]) -> list[float]:
    """Seconds to build ranking columns for, and score, every catalog video for each user."""
    catalog = recommender.models.retrieval.catalog_video_ids.tolist()
    timings = []
    for user_id in user_ids:
        started = time.perf_counter()
        user = recommender.features.user_features(user_id)
        columns = recommender.features.ranking_columns(user, user_id, catalog, recommender.request_clock())
        columns["surface"] = np.array(["home"] * len(catalog), dtype=object)
        recommender.models.ranker.score(columns)
        timings.append(time.perf_counter() - started)
    return timings


def _row(name: str, seconds: list[float]) -> str:
    values = np.array(seconds) * 1000
    return f"| {name} | {values.mean():.2f} | {np.percentile(values, 50):.2f} | {np.percentile(values, 99):.2f} |"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=200)
    parser.add_argument("--k", type=int, default=20)
    parser.add_argument("--whole-corpus", type=int, default=3, help="Users for whom the whole catalog is ranked.")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    torch.set_num_threads(1)
    faiss.omp_set_num_threads(1)
    settings = VidrecSettings()
    started = time.perf_counter()
    runtime = ServingRuntime.open(settings)
    watcher = runtime.champion_watcher()
    if not watcher.poll():
        raise SystemExit(f"no models to serve: {watcher.not_ready_reason}")
    recommender = watcher.current
    loaded = time.perf_counter()

    users = pd.read_parquet(settings.raw_dir / "users", columns=["user_id"])["user_id"].tolist()
    rng = random.Random(args.seed)
    features = recommender.features
    known = [user for user in rng.sample(users, min(len(users), 4 * args.requests)) if features.user_features(user)]
    chosen = [known[i % len(known)] for i in range(args.requests + WARMUP_REQUESTS)]
    stages: dict[str, list[float]] = defaultdict(list)
    end_to_end, degraded = [], 0
    for position, user in enumerate(chosen):
        began = time.perf_counter()
        answer = recommender.recommend_traced(user, args.k, "home")
        response, trace = answer.response, answer.trace
        if position >= WARMUP_REQUESTS:  # the first requests warm caches
            end_to_end.append(time.perf_counter() - began)
            for stage, seconds in trace.seconds.items():
                stages[stage].append(seconds)
            degraded += bool(response.degraded)
    unknown, with_profile = [], []
    profiles = pd.read_parquet(settings.raw_dir / "users", columns=list(DEMOGRAPHIC_COLUMNS)).to_dict("records")
    for offset in range(args.requests):
        began = time.perf_counter()
        recommender.recommend(max(users) + 1 + offset, args.k, "home")
        unknown.append(time.perf_counter() - began)
        began = time.perf_counter()
        recommender.recommend(max(users) + 1 + offset, args.k, "home", profile=rng.choice(profiles))
        with_profile.append(time.perf_counter() - began)

    print(f"catalog {len(recommender.models.retrieval.catalog_video_ids):,} videos; models loaded and video "
          f"features warmed in {loaded - started:.1f} s; {settings.candidates_per_request} candidates ranked per "
          f"request; {degraded} degraded answers")
    print()
    print(f"| stage ({args.requests} known-user requests, k={args.k}) | mean ms | p50 ms | p99 ms |")
    print("|---|---|---|---|")
    for stage, samples in stages.items():
        print(_row(stage, samples))
    print(_row("Recommender.recommend, end to end (known users)", end_to_end))
    print(_row("Recommender.recommend, unknown users, no profile (global popularity + exploration)", unknown))
    print(_row("Recommender.recommend, unknown users with a profile (segment popularity + exploration)", with_profile))
    if args.whole_corpus:
        whole = whole_corpus_seconds(recommender, chosen[: args.whole_corpus])
        print(_row(f"rank the whole catalog instead ({args.whole_corpus} users)", whole))
        print()
        print(f"funnel speed-up over ranking the whole catalog: {np.mean(whole) / np.mean(end_to_end):.0f}x "
              f"(mean whole-catalog ranking / mean end-to-end request)")
    runtime.close()


if __name__ == "__main__":
    main()
