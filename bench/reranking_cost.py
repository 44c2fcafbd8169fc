"""What the re-ranking / policy stage costs per request: µs per call, mean and p99, in-process.

    .venv/bin/python bench/reranking_cost.py [--candidates 500] [--k 20] [--calls 3000]

Times `serving.policy.PolicyStage.rerank` on synthetic requests shaped like vidrec's: 500 ranked
candidates from ~200 creators and 20 categories, 6 retrieval sources, a 50-video watch history,
30 subscriptions, a 10k-video blocklist, and the candidates from the exploration and fresh
sources as the exploration pool. Each row varies one thing: the rules (exploration off/on),
the creator mix (the creator rules bind when few creators share the list), the similarity
(category or embedding), and building the inputs from lists (what a caller holding Python
lists pays on top). Each call gets a fresh request id (so its own random stream, as served).
One thread; numbers move with the machine, compare rows of one run.
"""

from __future__ import annotations

import argparse
import time
from dataclasses import dataclass

import numpy as np

from serving.policy import Blocklist, PolicyConfig, PolicyStage, RankedCandidates, UserContext, pool_from_candidates

SOURCES = np.array(["ann", "co_watch", "subscriptions", "trending", "fresh", "exploration"])
SOURCE_SHARES = [0.5, 0.15, 0.1, 0.1, 0.1, 0.05]
NOW = 1_800_000_000.0
WARMUP_CALLS = 50


@dataclass
class Case:
    name: str
    config: PolicyConfig
    creators: int = 200
    embedding_dim: int = 0
    from_lists: bool = False


def synthetic_request(
    rng: np.random.Generator, candidates: int, creators: int, embedding_dim: int
) -> tuple[RankedCandidates, UserContext]:
    video_ids = rng.choice(100_000, size=candidates, replace=False)
    ranked = RankedCandidates(
        video_ids=video_ids,
        scores=np.sort(rng.gamma(2.0, 60.0, size=candidates))[::-1],  # watch-second equivalents
        creator_ids=rng.integers(0, creators, size=candidates),
        categories=rng.integers(0, 20, size=candidates),
        upload_times=NOW - rng.exponential(30 * 24 * 3600, size=candidates),
        sources=rng.choice(SOURCES, size=candidates, p=SOURCE_SHARES).tolist(),
        source_scores=1.0 / (1.0 + rng.integers(0, 100, size=candidates)),
        because_video_ids=rng.integers(0, 100_000, size=candidates),
        embeddings=rng.normal(size=(candidates, embedding_dim)).astype(np.float32) if embedding_dim else None,
    )
    user = UserContext(
        request_time=NOW,
        subscribed_creator_ids=rng.integers(0, creators, size=30),
        watched_video_ids=np.concatenate([video_ids[:10], rng.integers(0, 100_000, size=40)]),
        watched_fractions=rng.uniform(size=50),
    )
    return ranked, user


def as_lists(ranked: RankedCandidates) -> dict[str, object]:
    """The request's columns as Python lists, for the row that times building the inputs too."""
    columns = {name: getattr(ranked, name) for name in (
        "video_ids", "scores", "creator_ids", "categories", "upload_times", "source_scores", "because_video_ids"
    )}
    return {**{name: column.tolist() for name, column in columns.items()}, "sources": list(ranked.sources)}


def time_case(case: Case, candidates: int, k: int, calls: int, seed: int) -> tuple[np.ndarray, float]:
    """(µs per call, mean list length share explored) over `calls` requests."""
    rng = np.random.default_rng(seed)
    requests = [synthetic_request(rng, candidates, case.creators, case.embedding_dim) for _ in range(16)]
    lists = [as_lists(ranked) for ranked, _ in requests]
    stage = PolicyStage(case.config, Blocklist(rng.choice(100_000, size=10_000, replace=False)))
    micros, explored = [], 0
    for call in range(WARMUP_CALLS + calls):
        ranked, user = requests[call % len(requests)]
        started = time.perf_counter()
        if case.from_lists:
            ranked = RankedCandidates(**lists[call % len(requests)])
        result = stage.rerank(ranked, user, k, request_id=f"bench-{call}", pool=pool_from_candidates(ranked))
        elapsed = time.perf_counter() - started
        if call >= WARMUP_CALLS:
            micros.append(elapsed * 1e6)
            explored += int(result.was_explored.sum())
    return np.array(micros), explored / (calls * k)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--candidates", type=int, default=500)
    parser.add_argument("--k", type=int, default=20)
    parser.add_argument("--calls", type=int, default=3000)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    default = PolicyConfig()
    cases = [
        Case("rules, no exploration", PolicyConfig(exploration_share=0.0)),
        Case("defaults (3% exploration)", default),
        Case("defaults, 30 creators (rules bind)", default, creators=30),
        Case("defaults, embedding MMR (dim 64)", PolicyConfig(diversity_similarity="embedding"), embedding_dim=64),
        Case("defaults, inputs built from lists", default, from_lists=True),
        Case("ranker order (lambda 1, no rules)", PolicyConfig(
            diversity_lambda=1.0, separate_adjacent_creators=False, max_per_creator=500, exploration_share=0.0
        )),
    ]
    print(
        f"re-ranking {args.candidates} candidates -> k={args.k}, {args.calls} calls per row "
        "(pool: exploration + fresh sources)\n"
    )
    print(f"| {'case':<36} | {'mean µs':>8} | {'p50 µs':>7} | {'p99 µs':>7} | {'explored slots':>14} |")
    print(f"|{'-' * 38}|{'-' * 10}|{'-' * 9}|{'-' * 9}|{'-' * 16}|")
    for case in cases:
        micros, explored_share = time_case(case, args.candidates, args.k, args.calls, args.seed)
        print(
            f"| {case.name:<36} | {micros.mean():>8.0f} | {np.percentile(micros, 50):>7.0f} | "
            f"{np.percentile(micros, 99):>7.0f} | {explored_share:>13.1%} |"
        )


if __name__ == "__main__":
    main()
