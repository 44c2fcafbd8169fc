"""Feast's duckdb offline store against the file (dask) store it replaced: the pipeline's ranking
and retrieval training frames and its online-store load, through each store in one process,
alternating.

    VIDREC_HOME=/tmp/vh_duck .venv/bin/python bench/offline_store.py [--repeats 2]

Needs a home where `vidrec pipeline` has run (its marts and Feast registry). Each frame is built
the way its asset builds it (`ranking_frame`, `retrieval_frame` in orchestration/assets/features.py).
"online" loads the online store the way `online_feature_store` does (`materialize_online_store`),
into a scratch home over the same marts (the home's own online store is left alone), and reads
both feature services back for every user (the ranker's with one video each, cycling).
The file store runs behind the training-frame code it shipped with, read from git at
--baseline-revision (its workarounds, one call per source and calls bounded by entity × source
row pairs, are part of its cost); the duckdb store behind today's `feature_repo.training_frames`.
Runs alternate (file, duckdb, then duckdb, file, ...), so drift on a shared machine hits both.

Per build: wall time, the process's peak RSS during it (the high-water mark is reset before each
build through /proc/self/clear_refs, so Linux only) and its rise over the RSS at the start.
Then the medians per store with their ratio, and whether the two stores' frames are equal
(same rows in the same order, same values; lists compared element-wise, nulls equal to nulls).
"""

from __future__ import annotations

import argparse
import gc
import io
import statistics
import subprocess
import sys
import tempfile
import time
import types
from collections.abc import Callable, Iterator
from contextlib import contextmanager, redirect_stdout
from pathlib import Path

import numpy as np
import pandas as pd
from feast import FeatureStore, RepoConfig

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import models.retrieval.query
import orchestration.assets.features
from feature_repo.engagement import REQUEST_TIME, RETRIEVAL_SOURCE, RETRIEVAL_SOURCE_SCORE
from feature_repo.entities import next_request_id
from feature_repo.services import RANKER_FEATURES, RETRIEVAL_USER_FEATURES
from feature_repo.store import apply_feature_definitions, build_repo_config, feature_store
from feature_repo.training_frames import historical_features
from orchestration.assets.features import materialize_online_store, ranking_frame, retrieval_frame
from vidrec.settings import VidrecSettings

REPOSITORY = Path(__file__).resolve().parents[1]
# The last commit whose feature_repo/training_frames.py drove Feast's file store.
FILE_STORE_REVISION = "0a673e48c6170e5d296c683c5356875a565610dd"
STORES = ("file", "duckdb")
FRAMES = ("ranking", "retrieval", "online")
# The modules whose frame functions call `historical_features` (see `joins_through`).
CALLERS = (orchestration.assets.features, models.retrieval.query)


def duckdb_store(settings: VidrecSettings) -> FeatureStore:
    return feature_store(settings)


def file_store(settings: VidrecSettings) -> FeatureStore:
    """The settings' store with Feast's file offline store, all else as `build_repo_config` has it."""
    config = RepoConfig(**{**build_repo_config(settings).model_dump(by_alias=True), "offline_store": {"type": "file"}})
    return FeatureStore(config=config, repo_path=str(settings.feast_dir))


def shipped_historical_features(revision: str) -> Callable[..., pd.DataFrame]:
    """`historical_features` of feature_repo/training_frames.py as it was at `revision`."""
    try:
        source = subprocess.run(
            ["git", "show", f"{revision}:feature_repo/training_frames.py"],
            cwd=REPOSITORY, check=True, capture_output=True, text=True,
        ).stdout
    except subprocess.CalledProcessError as error:
        raise SystemExit(
            f"cannot read feature_repo/training_frames.py at {revision!r}: {error.stderr.strip()}"
        ) from error
    module = types.ModuleType(f"training_frames_at_{revision}")
    exec(compile(source, f"{revision}:feature_repo/training_frames.py", "exec"), module.__dict__)
    return module.historical_features


@contextmanager
def joins_through(join: Callable[..., pd.DataFrame]) -> Iterator[None]:
    """Make the frame functions call `join` for their point-in-time joins, for the duration."""
    originals = [caller.historical_features for caller in CALLERS]
    for caller in CALLERS:
        caller.historical_features = join
    try:
        yield
    finally:
        for caller, original in zip(CALLERS, originals, strict=True):
            caller.historical_features = original


def build(frame: str, store: Callable[[VidrecSettings], FeatureStore], settings: VidrecSettings) -> pd.DataFrame:
    if frame == "online":
        return online_features(store, settings)
    if frame == "ranking":
        examples = pd.read_parquet(settings.marts_dir / "ranking_training_examples.parquet")
        return ranking_frame(store(settings), examples, settings.ranking_negative_sample_rate)[0]
    examples = pd.read_parquet(settings.marts_dir / "retrieval_training_examples.parquet")
    examples = examples.sort_values(["user_id", "label_time", "label_video_id"], kind="stable").reset_index(drop=True)
    return retrieval_frame(store(settings), examples)[0]


def online_features(store: Callable[[VidrecSettings], FeatureStore], settings: VidrecSettings) -> pd.DataFrame:
    """Both services' online features for every user, after loading a scratch home's online store."""
    users = np.sort(pd.read_parquet(settings.marts_dir / "user_features_daily.parquet", columns=["user_id"])[
        "user_id"].unique())
    videos = np.sort(pd.read_parquet(settings.marts_dir / "video_features_daily.parquet", columns=["video_id"])[
        "video_id"].unique())
    ranked = [
        {"user_id": int(user), "video_id": int(videos[position % len(videos)]), "request_id": next_request_id(user),
         REQUEST_TIME: 0.0, RETRIEVAL_SOURCE: "ann", RETRIEVAL_SOURCE_SCORE: 1.0}
        for position, user in enumerate(users)
    ]
    with tempfile.TemporaryDirectory(prefix="offline_store_bench_online_") as scratch:
        scratch_settings = VidrecSettings(home=Path(scratch))
        scratch_settings.marts_dir.symlink_to(settings.marts_dir.resolve())
        apply_feature_definitions(scratch_settings)
        loaded = store(scratch_settings)
        materialize_online_store(scratch_settings, loaded)
        ranker = loaded.get_online_features(features=loaded.get_feature_service(RANKER_FEATURES), entity_rows=ranked)
        queries = loaded.get_online_features(features=loaded.get_feature_service(RETRIEVAL_USER_FEATURES),
                                             entity_rows=[{"user_id": row["user_id"]} for row in ranked])
    retrieval = pd.DataFrame(queries.to_dict()).drop(columns="user_id").add_prefix("retrieval:")
    return pd.concat([pd.DataFrame(ranker.to_dict()), retrieval], axis=1)


def memory_kib(field: str) -> int:
    """`VmRSS` or `VmHWM` (peak RSS) of this process, in KiB."""
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith(f"{field}:"):
                return int(line.split()[1])
    raise RuntimeError(f"/proc/self/status has no {field}")


def reset_peak_rss() -> None:
    with open("/proc/self/clear_refs", "w") as clear_refs:
        clear_refs.write("5")  # 5: reset the peak RSS (VmHWM) to the current RSS


def frame_differences(left: pd.DataFrame, right: pd.DataFrame) -> list[str]:
    """What differs between two frames' values (rows in order); empty when they are equal."""
    if list(left.columns) != list(right.columns):
        return [f"columns: only file {sorted(set(left) - set(right))}, only duckdb {sorted(set(right) - set(left))}"]
    if len(left) != len(right):
        return [f"rows: file {len(left)}, duckdb {len(right)}"]
    differences = []
    for column in left.columns:
        differing = int((~_equal_cells(left[column], right[column])).sum())
        if differing:
            differences.append(f"{column}: {differing} rows differ")
    return differences


def _equal_cells(left: pd.Series, right: pd.Series) -> np.ndarray:
    if left.dtype != object and right.dtype != object:
        nulls = left.isna().to_numpy() & right.isna().to_numpy()
        return nulls | (left.to_numpy() == right.to_numpy())
    return np.array([_cell(a) == _cell(b) for a, b in zip(left, right, strict=True)])


def _cell(value: object) -> object:
    if isinstance(value, (list, tuple, np.ndarray)):
        return tuple(_cell(item) for item in value)
    return None if pd.isna(value) else value


def _medians(runs: list[dict]) -> dict[str, float]:
    return {measure: statistics.median(run[measure] for run in runs) for measure in ("wall", "peak", "rise")}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--home", type=Path,
                        help="VIDREC_HOME with a completed `vidrec pipeline` (default: VIDREC_HOME)")
    parser.add_argument("--repeats", type=int, default=2, help="builds of each frame per store (default 2)")
    parser.add_argument("--frames", nargs="+", choices=FRAMES, default=list(FRAMES), help="frames to build")
    parser.add_argument("--baseline-revision", default=FILE_STORE_REVISION,
                        help="git revision of the file store's training-frame code (default: its last)")
    args = parser.parse_args()
    if args.repeats < 1:
        parser.error(f"--repeats must be at least 1, got {args.repeats}")
    settings = VidrecSettings(home=args.home) if args.home else VidrecSettings()
    registry = settings.feast_dir / "registry.db"
    if not registry.is_file():
        parser.error(f"{registry} does not exist: run `vidrec pipeline` with VIDREC_HOME={settings.home} first")
    stores = {"file": file_store, "duckdb": duckdb_store}
    joins = {"file": shipped_historical_features(args.baseline_revision), "duckdb": historical_features}
    kept = Path(tempfile.mkdtemp(prefix="offline_store_bench_"))
    runs = []
    print(f"home {settings.home}; file store behind training_frames.py at {args.baseline_revision}\n")
    print("| frame | store | run | rows | wall s | peak RSS MiB | rise MiB |")
    print("|---|---|---|---|---|---|---|")
    for repeat in range(args.repeats):
        for frame in args.frames:
            for store in STORES if repeat % 2 == 0 else reversed(STORES):
                gc.collect()
                before = memory_kib("VmRSS")
                reset_peak_rss()
                started = time.perf_counter()
                # Feast prints materialization progress on stdout: kept out of the table
                with joins_through(joins[store]), redirect_stdout(io.StringIO()):
                    result = build(frame, stores[store], settings)
                wall = time.perf_counter() - started
                peak = memory_kib("VmHWM")
                rise = max(peak - before, 0)  # RSS can shrink between the two readings
                runs.append(dict(frame=frame, store=store, wall=wall, peak=peak / 1024, rise=rise / 1024))
                print(f"| {frame} | {store} | {repeat + 1} | {len(result):,} | {wall:.1f} | {peak / 1024:,.0f} | "
                      f"{rise / 1024:,.0f} |", flush=True)
                if repeat == 0:
                    result.to_pickle(kept / f"{frame}_{store}.pickle")
                del result
    print("\nMedians over the runs; ratio = file / duckdb.\n")
    print("| frame | file s | duckdb s | time ratio | file peak MiB | duckdb peak MiB | file rise MiB "
          "| duckdb rise MiB | frames equal |")
    print("|---|---|---|---|---|---|---|---|---|")
    for frame in args.frames:
        medians = {store: _medians([run for run in runs if run["frame"] == frame and run["store"] == store])
                   for store in STORES}
        differences = frame_differences(*(pd.read_pickle(kept / f"{frame}_{store}.pickle") for store in STORES))
        print(f"| {frame} | {medians['file']['wall']:.1f} | {medians['duckdb']['wall']:.1f} | "
              f"{medians['file']['wall'] / medians['duckdb']['wall']:.1f}x | {medians['file']['peak']:,.0f} | "
              f"{medians['duckdb']['peak']:,.0f} | {medians['file']['rise']:,.0f} | {medians['duckdb']['rise']:,.0f} | "
              f"{'yes' if not differences else 'NO: ' + '; '.join(differences)} |")
    for pickle in kept.iterdir():
        pickle.unlink()
    kept.rmdir()


if __name__ == "__main__":
    main()
