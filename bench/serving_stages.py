"""Where a `/recommend` request's time goes, stage by stage, in-process (no HTTP, one thread).

    VIDREC_HOME=<home of a finished pipeline> .venv/bin/python bench/serving_stages.py \\
        [--candidates 500] [--requests 200] [--k 20] [--whole-corpus 3]

Loads the champion models and the online store as the service does (one torch and faiss thread,
video-feature cache warmed) and walks the request path of `serving.recommender.Recommender` for
known users, timing each stage: the user's online features, the retrieval query and user
embedding, the ANN search, each other retrieval source, their union, the candidates' ranking
features, the ranker's score and building the response. `--candidates` sets the ANN quota so the
union reaches that many candidates (the other sources keep their trained quotas); the table says
how many were ranked. The end-to-end `Recommender.recommend` is timed too, on the same users, so
the stage sum can be checked against the real path. `--whole-corpus N` also ranks every catalog
video for N users: the cost the two-stage funnel avoids.

This is the "before" profile for issue #11; once the service exports per-stage histograms on
/metrics, `bench/serving_load.py --metrics` reports the same stages under load.
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

from feature_repo.store import feature_store
from models.sources.candidate import union_candidates
from serving.loading import load_champion_models
from serving.online_features import OnlineFeatureReader
from serving.recommender import PROFILE_COLUMNS, Recommender
from serving.request_clock import request_clock
from serving.schemas import RecommendationResponse, RecommendedVideo
from vidrec.settings import VidrecSettings

WARMUP_REQUESTS = 5


class StageTimer:
    """Accumulates per-stage seconds for the current request; `lap(name)` closes a stage."""

    def __init__(self) -> None:
        self.samples: dict[str, list[float]] = defaultdict(list)
        self._last = time.perf_counter()

    def start(self) -> None:
        self._last = time.perf_counter()

    def lap(self, stage: str) -> None:
        now = time.perf_counter()
        self.samples[stage].append(now - self._last)
        self._last = now


def profile_request(recommender: Recommender, user_id: int, k: int, target: int, timer: StageTimer) -> int:
    """One known user's request, stage by stage as Recommender.recommend runs it, with `target`
    candidates ranked (ANN fills up after the other sources); returns how many were ranked."""
    models, features = recommender.models, recommender.features
    timer.start()
    user = features.user_features(user_id)
    timer.lap("user features (online store)")
    history = [int(video) for video in (user.get("recent_watch_video_ids") or [])]
    query = pd.DataFrame([{
        "history_video_ids": history,
        "history_search_tokens": list(user.get("recent_search_tokens") or []),
        "example_age_days": 0.0,
        **{column: user.get(column) for column in PROFILE_COLUMNS},
    }])
    vector = models.retrieval.user_embeddings(query)
    timer.lap("user embedding (query frame + tower)")
    excluded = set(history)  # the service never recommends what the user already watched
    sources, config = models.sources, models.sources.config
    lists = {}
    for name, ask in (
        ("co_watch", lambda: sources.co_watch.recommend(history, excluded, config.co_watch.quota)),
        ("subscriptions", lambda: sources.subscriptions.recommend(user_id, excluded, config.subscriptions.quota)),
        ("trending", lambda: sources.trending.recommend(excluded, config.trending.quota)),
        ("fresh", lambda: sources.fresh.recommend(excluded, config.fresh.quota)),
        ("exploration", lambda: sources.exploration.recommend(user_id, excluded, config.exploration.quota, 0)),
    ):
        lists[name] = ask()
        timer.lap(f"source: {name}")
    # ANN fills the union up to the target: the other sources' distinct videos leave this many.
    others = {video for ranked in lists.values() for video, _ in ranked}
    count = max(k, target - len(others))
    skip = excluded | others
    ids, scores = models.index.search(vector, count + len(skip))
    ann = [(int(v), float(s)) for v, s in zip(ids[0], scores[0]) if v >= 0 and int(v) not in skip][:count]
    lists["ann"] = ann
    timer.lap("ANN search (faiss)")
    quotas = {**config.quotas(), "ann": count}
    candidates = union_candidates(lists, quotas, excluded, list(config.priority))
    timer.lap("union of sources")
    columns = features.ranking_columns(
        user, user_id, [c.video_id for c in candidates], recommender.request_clock(),
        [c.source for c in candidates], [c.rank_score for c in candidates],
    )
    columns["surface"] = np.array(["home"] * len(candidates), dtype=object)
    timer.lap("candidate features (ranking columns)")
    ranker_scores = models.ranker.score(columns)
    timer.lap("ranker score (all heads, calibrated)")
    order = np.argsort(-ranker_scores, kind="stable")
    items = [
        RecommendedVideo(video_id=candidates[p].video_id, score=float(ranker_scores[p]), source=candidates[p].source,
                         retrieval_score=candidates[p].source_score)
        for p in order
    ][:k]  # as the service does: an object per candidate, then the top k
    RecommendationResponse(user_id=user_id, surface="home", known_user=True, items=items,
                           model_versions=models.versions).model_dump_json()
    timer.lap("response (sort, objects, JSON)")
    return len(candidates)


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
    parser.add_argument("--candidates", type=int, default=500, help="Target union size (sets the ANN quota).")
    parser.add_argument("--requests", type=int, default=200)
    parser.add_argument("--k", type=int, default=20)
    parser.add_argument("--whole-corpus", type=int, default=3, help="Users for whom the whole catalog is ranked.")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    torch.set_num_threads(1)
    faiss.omp_set_num_threads(1)
    settings = VidrecSettings()
    started = time.perf_counter()
    models = load_champion_models(settings)
    store = feature_store(settings)
    features = OnlineFeatureReader(store, settings.video_feature_ttl_seconds)
    loaded = time.perf_counter()
    features.warm_video_cache(models.retrieval.catalog_video_ids.tolist())
    warmed = time.perf_counter()
    recommender = Recommender(models, features, settings.candidates_per_request, request_clock(settings, store))

    users = pd.read_parquet(settings.raw_dir / "users", columns=["user_id"])["user_id"].tolist()
    rng = random.Random(args.seed)
    known = [user for user in rng.sample(users, min(len(users), 4 * args.requests)) if features.user_features(user)]
    chosen = [known[i % len(known)] for i in range(args.requests + WARMUP_REQUESTS)]
    timer = StageTimer()
    sizes = [profile_request(recommender, user, args.k, args.candidates, timer) for user in chosen]
    end_to_end = []
    for user in chosen:
        began = time.perf_counter()
        recommender.recommend(user, args.k, "home")
        end_to_end.append(time.perf_counter() - began)
    unknown = []
    for offset in range(args.requests):
        began = time.perf_counter()
        recommender.recommend(max(users) + 1 + offset, args.k, "home")
        unknown.append(time.perf_counter() - began)

    keep = slice(WARMUP_REQUESTS, None)  # the first requests warm caches
    totals = np.sum([samples[keep] for samples in timer.samples.values()], axis=0)
    print(f"catalog {len(models.retrieval.catalog_video_ids):,} videos; models loaded in {loaded - started:.1f} s, "
          f"video features warmed in {warmed - loaded:.1f} s; stages: candidates ranked per request: mean {np.mean(sizes[keep]):.0f}, min {min(sizes[keep])}, max {max(sizes[keep])}")
    print()
    print(f"| stage ({args.requests} known-user requests, k={args.k}) | mean ms | p50 ms | p99 ms |")
    print("|---|---|---|---|")
    for stage, samples in timer.samples.items():
        print(_row(stage, samples[keep]))
    print(_row("sum of stages", list(totals)))
    print(_row("Recommender.recommend, end to end (known users)", end_to_end[keep]))
    print(_row("Recommender.recommend, unknown users (popularity)", unknown))
    if args.whole_corpus:
        whole = whole_corpus_seconds(recommender, chosen[: args.whole_corpus])
        print(_row(f"rank the whole catalog instead ({args.whole_corpus} users)", whole))
        print()
        print(f"funnel speed-up over ranking the whole catalog: {np.mean(whole) / np.mean(end_to_end[keep]):.0f}x "
              f"(mean whole-catalog ranking / mean end-to-end request)")


if __name__ == "__main__":
    main()
