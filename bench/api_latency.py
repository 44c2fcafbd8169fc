"""Latency of sequential POST /recommend calls against a running service.

    .venv/bin/vidrec serve &        # after `vidrec pipeline`
    .venv/bin/python bench/api_latency.py [--url http://127.0.0.1:3000] [--calls 200] [--k 10]

Users are drawn (seeded) from the raw logs' users, so most are known (personalised path);
`--unknown-share` mixes in unknown users (popularity path).
"""

from __future__ import annotations

import argparse
import random
import statistics
import time

import httpx
import numpy as np
import pandas as pd

from vidrec.settings import VidrecSettings


def main() -> None:
    settings = VidrecSettings()
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", default=settings.api_url)
    parser.add_argument("--calls", type=int, default=200)
    parser.add_argument("--k", type=int, default=10)
    parser.add_argument("--unknown-share", type=float, default=0.0)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    users = pd.read_parquet(settings.raw_dir / "users", columns=["user_id"])["user_id"].tolist()
    rng = random.Random(args.seed)
    latencies_ms = []
    with httpx.Client(timeout=30) as client:
        client.post(f"{args.url}/recommend", json={"user_id": users[0], "k": args.k}).raise_for_status()  # warm-up
        for _ in range(args.calls):
            user = 10**9 + rng.randrange(10**6) if rng.random() < args.unknown_share else rng.choice(users)
            started = time.perf_counter()
            response = client.post(f"{args.url}/recommend", json={"user_id": user, "k": args.k})
            latencies_ms.append((time.perf_counter() - started) * 1000)
            response.raise_for_status()
    values = np.array(latencies_ms)
    print("| calls | k | p50 ms | p90 ms | p99 ms | mean ms |")
    print("|---|---|---|---|---|---|")
    print(
        f"| {args.calls} | {args.k} | {np.percentile(values, 50):.1f} | {np.percentile(values, 90):.1f} | "
        f"{np.percentile(values, 99):.1f} | {statistics.fmean(latencies_ms):.1f} |"
    )


if __name__ == "__main__":
    main()
