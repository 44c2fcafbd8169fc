"""Recall of each retrieval source alone and of their union, under a global temporal holdout.

    .venv/bin/python bench/sources.py [--holdout-days 3]

Simulated data (`simulate_world(SimulationConfig())`, in memory). The cut is dbt's:
holdout_start = midnight of the last watch's day − (holdout_days − 1) days. Sources are fitted on
rows strictly before the cut (`now` = holdout_start); a user's query is their watch history
before it (the last 50 ids, oldest first). Relevant = videos a user first watches at or after the
cut and had not watched before it; users need watches on both sides. Recall@quota = |the source's
top quota ∩ relevant| / |relevant|, already-watched videos excluded (models/evaluation/metrics.py).

ANN is not in the union: it needs a trained candidate generator (bench/retrieval.py measures it).
A popularity list (models/popularity.py, quota 200) stands in for it in the last row.
Coverage = distinct videos a source nominates over all users / videos uploaded before the cut.
"""

from __future__ import annotations

import argparse
import logging
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT))

from models.evaluation.metrics import recall_at_k
from models.popularity import PopularityRecommender
from models.sources import MultiSourceConfig, MultiSourceRetriever
from vidrec.simulator import SimulationConfig, simulate_world

HISTORY_LENGTH = 50
POPULAR_QUOTA = 200


def holdout_split(watches: pd.DataFrame, holdout_days: int):
    holdout_start = watches["watch_time"].max().floor("D") - pd.Timedelta(days=holdout_days - 1)
    before = watches[watches["watch_time"] < holdout_start].sort_values("watch_time", kind="stable")
    after = watches[watches["watch_time"] >= holdout_start]
    seen = before.groupby("user_id")["video_id"].agg(set).to_dict()
    relevant = {
        int(user): videos - seen[user]
        for user, videos in after.groupby("user_id")["video_id"].agg(set).items()
        if user in seen and videos - seen[user]
    }
    history = {
        int(user): videos.tolist()[-HISTORY_LENGTH:] for user, videos in before.groupby("user_id")["video_id"]
    }
    return holdout_start, before, seen, relevant, history


def fit_popularity(before: pd.DataFrame) -> PopularityRecommender:
    first = before.groupby(["user_id", "video_id"], as_index=False)["watch_time"].min()
    return PopularityRecommender().fit(first.rename(columns={"watch_time": "first_watch_time"}))


def evaluate(retriever, popularity, seen, relevant, history, catalog_size, quotas):
    recommended: dict[str, dict[int, list[int]]] = {}
    request_seconds = []
    for user in relevant:
        exclude = seen[user]
        started = time.perf_counter()
        union = retriever.retrieve(user, history[user], exclude)
        request_seconds.append(time.perf_counter() - started)
        lists = retriever.source_lists(user, history[user], exclude | set(history[user]))
        lists["popular"] = popularity.recommend(POPULAR_QUOTA, exclude=exclude)
        popular_union = retriever.retrieve(user, history[user], exclude, precomputed={"popular": lists["popular"]})
        lists["union (no ANN)"] = [(c.video_id, c.source_score) for c in union]
        lists["union + popular (ANN stand-in)"] = [(c.video_id, c.source_score) for c in popular_union]
        for name, ranked in lists.items():
            recommended.setdefault(name, {})[user] = [video for video, _ in ranked]
    without_ann = sum(quota for name, quota in quotas.items() if name != "ann")
    union_quotas = {"union (no ANN)": without_ann, "union + popular (ANN stand-in)": without_ann + POPULAR_QUOTA}
    rows = []
    for name, by_user in recommended.items():
        sizes = [len(by_user[user]) for user in relevant]
        rows.append({
            "source": name,
            "quota": union_quotas.get(name, quotas.get(name, POPULAR_QUOTA)),
            "mean_returned": float(np.mean(sizes)),
            "recall": float(np.mean([recall_at_k(by_user[u], relevant[u], max(len(by_user[u]), 1)) for u in relevant])),
            "hit_rate": float(np.mean([bool(set(by_user[u]) & relevant[u]) for u in relevant])),
            "coverage": len({video for videos in by_user.values() for video in videos}) / catalog_size,
        })
    return pd.DataFrame(rows), np.array(request_seconds)


def markdown_table(table: pd.DataFrame) -> str:
    lines = ["| source | quota | mean returned | recall@quota | hit rate | coverage |",
             "|---|---:|---:|---:|---:|---:|"]
    for row in table.itertuples(index=False):
        lines.append(f"| {row.source} | {row.quota:.0f} | {row.mean_returned:.1f} | {row.recall:.4f} | "
                     f"{row.hit_rate:.4f} | {row.coverage:.4f} |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--holdout-days", type=int, default=3)
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)

    tables, _ = simulate_world(SimulationConfig())
    watches, catalog = tables["watches"], tables["videos"]
    holdout_start, before, seen, relevant, history = holdout_split(watches, args.holdout_days)
    impressions = tables["impressions"]
    impression_counts = (
        impressions[impressions["impression_time"] < holdout_start]["video_id"].value_counts()
        .rename("impressions").rename_axis("video_id").reset_index()
    )
    config = MultiSourceConfig()
    started = time.perf_counter()
    retriever = MultiSourceRetriever(config).fit(
        before, catalog, tables["subscriptions"], impression_counts, holdout_start
    )
    fit_seconds = time.perf_counter() - started
    popularity = fit_popularity(before)
    catalog_size = int((catalog["upload_time"] < holdout_start).sum())
    quotas = config.quotas()
    table, request_seconds = evaluate(retriever, popularity, seen, relevant, history, catalog_size, quotas)

    relevant_pairs = [(user, video) for user, videos in relevant.items() for video in videos]
    upload = catalog.set_index("video_id")["upload_time"]
    unreachable = np.mean([upload[video] >= holdout_start for _, video in relevant_pairs])
    print(f"holdout_start {holdout_start}, {len(relevant)} users, {len(relevant_pairs)} relevant (user, video) "
          f"pairs, {unreachable:.1%} of them uploaded after the cut (no source fitted before it can know them)")
    print(markdown_table(table))
    print(f"fit {fit_seconds:.2f} s; retrieve (union, no ANN) per request: mean "
          f"{request_seconds.mean() * 1e6:.0f} µs, p99 {np.quantile(request_seconds, 0.99) * 1e6:.0f} µs")


if __name__ == "__main__":
    main()
