"""How long a new upload takes to be retrievable, and what growing the live index costs.

    VIDREC_HOME=<home of a finished pipeline> .venv/bin/python bench/upload_retrievable.py \\
        [--uploads 20] [--poll-seconds 5] [--pad-index 100000] [--index-sizes 100000]

In process, no HTTP: a worker as the service builds one (`serving.runtime.ServingRuntime`, its
champion watcher and upload follower, one torch and faiss thread), started as the service starts
it, the follower polling every `--poll-seconds`. It reads a raw log of its own, a copy of the
home's videos table, so the home is left as it was. Each upload copies a random catalog video's
content under a new id and lands as a file of its own (written under a hidden name and renamed
into place, as a careful upstream writes it) at a random moment of the poll cycle. Its time runs
from the rename to the moment the serving index holds it (its id map, checked every 2 ms from the
bench's thread, which stands for the request threads); a search with the upload's own vector
(k = 1000) must then return it, or the bench fails. `--pad-index N` first grows the served index
to N videos with random vectors (norms drawn from the catalog's), so the growth copies an index
of production size (HNSW from 50,000) while the tiny pipeline's models embed.

Then the follower's own cost per poll (nothing new; one new upload; the first poll, which reads
the whole table) and, at `--index-sizes` videos with random vectors of the model's dimension,
what one growth of the live index costs (`VideoIndex.with_videos`: a copy plus one add), exact
and HNSW as `VideoIndex.build` chooses them.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import random
import shutil
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from feature_repo.store import feature_store
from models.index import VideoIndex
from serving.compute_threads import single_threaded_math
from serving.hot_reload import ChampionWatcher
from serving.recommender import ServingModels
from serving.runtime import ServingRuntime
from vidrec.rawlog import read_raw_table
from vidrec.schema import VIDEOS
from vidrec.settings import VidrecSettings

FIRST_UPLOAD = 10**9  # above any catalog id
FIRST_PADDING = 2 * 10**9  # ids of the random videos that pad the index
CHECK_SECONDS = 0.002
SEARCH_K = 1000


def worker_settings(home_settings: VidrecSettings, worker_home: Path, poll_seconds: float) -> VidrecSettings:
    """A worker over the home's registry and online store, reading its own copy of the videos table."""
    shutil.copytree(home_settings.raw_dir / VIDEOS.name, worker_home / "raw" / VIDEOS.name)
    return VidrecSettings(home=worker_home, uploads_poll_seconds=poll_seconds, model_poll_seconds=0,
                          VIDREC_MLFLOW_TRACKING_URI=home_settings.mlflow_tracking_uri)


def land(videos_dir: Path, row: dict, name: str) -> None:
    """One upload's file, visible at once (renamed into place after it is written)."""
    final = videos_dir / f"day={row['upload_time']:%Y-%m-%d}" / f"{name}.parquet"
    final.parent.mkdir(parents=True, exist_ok=True)
    hidden = final.with_name(f".{final.name}.tmp")
    pq.write_table(pa.Table.from_pylist([row], schema=VIDEOS.schema), hidden)
    os.replace(hidden, final)


def padded(models: ServingModels, size: int) -> ServingModels:
    """`models` with an index over `size` videos: the catalog's vectors plus random directions
    with norms drawn from the catalog's."""
    video_ids, vectors = models.retrieval.video_embeddings()
    rng = np.random.default_rng(7)
    extra = size - len(video_ids)
    directions = rng.normal(size=(extra, vectors.shape[1]))
    directions /= np.linalg.norm(directions, axis=1, keepdims=True)
    norms = rng.choice(np.linalg.norm(vectors, axis=1), extra)
    index = VideoIndex().build(np.concatenate([video_ids, FIRST_PADDING + np.arange(extra)]),
                               np.vstack([vectors, directions * norms[:, None]]).astype(np.float32))
    return dataclasses.replace(models, index=index)


def held(watcher: ChampionWatcher, video_id: int) -> bool:
    return bool(watcher.current.models.index.holds([video_id])[0])


def found_by_search(watcher: ChampionWatcher, video_id: int) -> bool:
    """Whether a search of the serving index with the video's own vector returns it."""
    index = watcher.current.models.index
    return video_id in index.search(index.vector(video_id)[None, :], min(SEARCH_K, len(index)))[0][0]


def seconds_to_retrievable(watcher: ChampionWatcher, videos_dir: Path, catalog: pd.DataFrame, uploads: int,
                           poll_seconds: float) -> list[float]:
    chooser = random.Random(7)
    timings = []
    for number in range(uploads):
        time.sleep(chooser.uniform(0, poll_seconds))  # a random moment of the poll cycle
        video_id = FIRST_UPLOAD + number
        row = {**catalog.iloc[chooser.randrange(len(catalog))].to_dict(), "video_id": video_id,
               "upload_time": pd.Timestamp.now("UTC").tz_localize(None).floor("us")}
        land(videos_dir, row, f"bench-{video_id}")
        landed = time.perf_counter()
        while not held(watcher, video_id):
            if time.perf_counter() - landed > 120:
                raise RuntimeError(f"upload {video_id} not in the serving index within 120 s")
            time.sleep(CHECK_SECONDS)
        timings.append(time.perf_counter() - landed)
        if not found_by_search(watcher, video_id):
            raise RuntimeError(f"upload {video_id} is in the index but its own vector's search misses it")
    return timings


def follower_poll_costs(runtime: ServingRuntime, watcher: ChampionWatcher, catalog: pd.DataFrame) -> dict[str, float]:
    """Milliseconds of one poll by a fresh follower: the first (the whole table), idle, one new upload."""
    follower = runtime.upload_follower(watcher)
    started = time.perf_counter()
    follower.poll()
    costs = {f"first poll (reads the whole table, {len(catalog):,} rows)": 1000 * (time.perf_counter() - started)}
    idle, one_new = [], []
    for number in range(10):
        started = time.perf_counter()
        follower.poll()
        idle.append(time.perf_counter() - started)
        row = {**catalog.iloc[number].to_dict(), "video_id": FIRST_UPLOAD + 10_000 + number}
        land(runtime.settings.raw_dir / VIDEOS.name, row, f"cost-{number}")
        started = time.perf_counter()
        follower.poll()
        one_new.append(time.perf_counter() - started)
    costs["idle (no new file), median"] = 1000 * statistics.median(idle)
    costs["one new upload (embed, copy index, swap), median"] = 1000 * statistics.median(one_new)
    return costs


def growth_costs(sizes: list[int], dim: int) -> list[tuple[int, str, float]]:
    """(videos, index kind, ms) of one `with_videos` at each size, the median of five."""
    rows = []
    rng = np.random.default_rng(7)
    for size in sizes:
        vectors = rng.normal(size=(size, dim)).astype(np.float32)
        for exact_threshold, kind in ((size + 1, "exact"), (size, "HNSW")):
            built = time.perf_counter()
            index = VideoIndex(exact_threshold=exact_threshold).build(np.arange(size), vectors)
            built = time.perf_counter() - built
            timings = []
            for number in range(5):
                started = time.perf_counter()
                index.with_videos(np.array([size + number]), vectors[:1])
                timings.append(time.perf_counter() - started)
            print(f"  ({kind} index of {size:,} built in {built:.0f} s)")
            rows.append((size, kind, 1000 * statistics.median(timings)))
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--uploads", type=int, default=20)
    parser.add_argument("--poll-seconds", type=float, default=VidrecSettings().uploads_poll_seconds)
    parser.add_argument("--pad-index", type=int, default=0, help="videos in the served index (0: as trained)")
    parser.add_argument("--index-sizes", default="100000", help="comma-separated; empty: skip")
    args = parser.parse_args()
    single_threaded_math()
    home = VidrecSettings()
    catalog = read_raw_table(VIDEOS.name, home.raw_dir)
    with tempfile.TemporaryDirectory(prefix="upload-bench-") as worker_home:
        settings = worker_settings(home, Path(worker_home), args.poll_seconds)
        runtime = ServingRuntime.open(settings, store=feature_store(home))
        watcher = runtime.champion_watcher()
        if not watcher.poll():
            raise SystemExit(f"no champions to serve: {watcher.not_ready_reason}")
        if args.pad_index > len(watcher.current.models.index):
            watcher.extend(lambda models: padded(models, args.pad_index))
        dim, served = watcher.current.models.index.dim, len(watcher.current.models.index)
        watcher.start()  # the follower starts with it, as in the service
        time.sleep(1)  # its first poll (the whole table) is not an upload's wait
        timings = seconds_to_retrievable(watcher, settings.raw_dir / VIDEOS.name, catalog, args.uploads,
                                         args.poll_seconds)
        watcher.stop()
        costs = follower_poll_costs(runtime, watcher, catalog)
        runtime.close()

    kind = "exact" if watcher.current.models.index.is_exact else "HNSW"
    padding = ", padded with random vectors" if args.pad_index else ""
    print(f"\n\nServed index: {served:,} videos ({kind}, dim {dim}{padding}); "
          f"follower polls every {args.poll_seconds:g} s\n")
    print("| uploads | poll interval s | median s | p90 s | max s |\n|---|---|---|---|---|")
    p90 = float(np.percentile(timings, 90))
    print(f"| {len(timings)} | {args.poll_seconds:g} | {statistics.median(timings):.2f} | {p90:.2f} | "
          f"{max(timings):.2f} |")
    print("\n| follower poll | ms |\n|---|---|")
    for name, milliseconds in costs.items():
        print(f"| {name} | {milliseconds:.1f} |")
    growth = growth_costs([int(size) for size in args.index_sizes.split(",") if size], dim)
    if growth:
        print("\n| live index growth (copy + one add) | videos | ms |\n|---|---|---|")
        for size, kind, milliseconds in growth:
            print(f"| {kind} | {size:,} | {milliseconds:.1f} |")


if __name__ == "__main__":
    main()
