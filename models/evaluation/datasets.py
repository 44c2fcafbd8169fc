"""The inputs of a retrieval benchmark, from any raw-log directory or from the two built-in datasets.

Every retrieval method (baselines and the candidate generator alike) is offered the same
`RetrievalDataset`: interactions (user_id, video_id, time: every watch), the catalog (the raw
`videos` table), demographics (the raw `users` table), searches, subscriptions and impressions where
the data has them. What a method uses of it is the method's business; what it is offered is equal.

- `from_raw_logs(raw_dir)`: whatever `vidrec simulate` or `vidrec import ...` wrote (the layout of
  `vidrec/schema.py`), so users benchmark their own data without code. When the directory's
  manifest says the simulator wrote it and the ground truth sits beside it, the true affinity comes
  along for ground-truth metrics.
- `simulated(config)`: the simulator in memory, with its `World`.
- `ml100k(path)`: MovieLens 100k read in place with more content than the importer keeps (every
  genre, the release year as a creator stand-in, occupation and zip digit as demographics), so
  content-aware methods have something to use; never copied.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from vidrec.rawlog import RawManifest, read_raw_table

# (users, videos) ids → true affinity matrix; only simulated data has one.
AffinityFunction = Callable[[np.ndarray, np.ndarray], np.ndarray]

ML100K_AGE_BUCKETS = ((18, "13-17"), (25, "18-24"), (35, "25-34"), (45, "35-44"), (55, "45-54"), (200, "55+"))


@dataclass
class RetrievalDataset:
    name: str
    interactions: pd.DataFrame  # user_id, video_id, time (every watch; the protocol keeps first ones)
    # the raw videos table: video_id, creator_id, category, duration_seconds, upload_time, title_tokens
    catalog: pd.DataFrame
    demographics: pd.DataFrame | None = None  # user_id, country, device, age_bucket, gender
    searches: pd.DataFrame | None = None  # user_id, search_time, query_tokens
    subscriptions: pd.DataFrame | None = None  # user_id, creator_id, subscribed_time
    impressions: pd.DataFrame | None = None  # user_id, video_id, impression_time
    true_affinity: AffinityFunction | None = None

    @property
    def catalog_ids(self) -> np.ndarray:
        return np.sort(self.catalog["video_id"].to_numpy(np.int64))


def _interactions(watches: pd.DataFrame) -> pd.DataFrame:
    return pd.DataFrame({
        "user_id": watches["user_id"].astype(np.int64),
        "video_id": watches["video_id"].astype(np.int64),
        "time": pd.to_datetime(watches["watch_time"]),
    })


def _optional(frame: pd.DataFrame) -> pd.DataFrame | None:
    """A table the data does not have is written with zero rows: offer None, not an empty frame."""
    return frame if len(frame) else None


def from_raw_logs(raw_dir: Path, ground_truth_dir: Path | None = None) -> RetrievalDataset:
    """A raw-log directory as a benchmark dataset; `ground_truth_dir` defaults to `raw_dir/../ground_truth`."""
    raw_dir = Path(raw_dir)
    if not (raw_dir / "watches").is_dir():
        raise FileNotFoundError(
            f"{raw_dir} holds no raw logs (no watches/ table): pass the directory `vidrec simulate` or "
            "`vidrec import` wrote, i.e. VIDREC_HOME/raw"
        )
    manifest = RawManifest.read(raw_dir)
    impressions = read_raw_table("impressions", raw_dir)
    dataset = RetrievalDataset(
        name=manifest.source if manifest else raw_dir.name,
        interactions=_interactions(read_raw_table("watches", raw_dir)),
        catalog=read_raw_table("videos", raw_dir),
        demographics=_optional(read_raw_table("users", raw_dir)),
        searches=_optional(read_raw_table("searches", raw_dir)),
        subscriptions=_optional(read_raw_table("subscriptions", raw_dir)),
        impressions=_optional(impressions[["user_id", "video_id", "impression_time"]]),
    )
    ground_truth_dir = Path(ground_truth_dir) if ground_truth_dir else raw_dir.parent / "ground_truth"
    if manifest is not None and manifest.source == "simulator" and (ground_truth_dir / "user_latents.parquet").exists():
        from vidrec.simulator import true_affinity

        dataset.true_affinity = lambda users, videos: true_affinity(ground_truth_dir, users, videos)
    return dataset


def simulated(config=None) -> RetrievalDataset:
    """The simulator's default world (or `config`), in memory, with its true affinity."""
    from vidrec.simulator import SimulationConfig, simulate_world

    tables, world = simulate_world(config or SimulationConfig())
    return RetrievalDataset(
        name="simulated",
        interactions=_interactions(tables["watches"]),
        catalog=tables["videos"],
        demographics=tables["users"],
        searches=tables["searches"],
        subscriptions=tables["subscriptions"],
        impressions=tables["impressions"][["user_id", "video_id", "impression_time"]],
        # World rows are 0-based; ids are row + 1.
        true_affinity=lambda users, videos: world.affinity_matrix(
            np.asarray(users, np.int64) - 1, np.asarray(videos, np.int64) - 1
        ),
    )


def ml100k(data_dir: Path) -> RetrievalDataset:
    """MovieLens 100k from its own files: category = first listed genre, title_tokens = lower-case
    title words (year dropped), creator_id = release year (the closest thing to a producer the data
    has), duration unknown (0); demographics: gender, age bucket, occupation (in the `device` slot)
    and the zip code's first digit (`country` slot)."""
    data_dir = Path(data_dir)
    if not (data_dir / "u.data").is_file():
        raise FileNotFoundError(f"{data_dir} is not an ml-100k directory (no u.data)")
    ratings = pd.read_csv(data_dir / "u.data", sep="\t", names=["user_id", "video_id", "rating", "timestamp"])
    genres = pd.read_csv(data_dir / "u.genre", sep="|", names=["genre", "index"], encoding="latin-1").dropna()
    genre_names = genres.sort_values("index")["genre"].tolist()
    items = pd.read_csv(
        data_dir / "u.item", sep="|", encoding="latin-1", header=None,
        names=["video_id", "title", "release", "video_release", "url", *genre_names],
    )
    release = pd.to_datetime(items["release"], format="%d-%b-%Y", errors="coerce")
    first_genre = items[genre_names].to_numpy().argmax(axis=1)
    titles = items["title"].fillna("").str.replace(r"\(\d{4}\)\s*$", "", regex=True).str.lower()
    catalog = pd.DataFrame({
        "video_id": items["video_id"].astype(np.int64),
        "creator_id": release.dt.year.fillna(0).astype(np.int64),
        "category": [genre_names[index] for index in first_genre],
        "duration_seconds": 0.0,
        "upload_time": release.fillna(pd.Timestamp("1995-01-01")),
        "title_tokens": [[word for word in title.replace(",", " ").split() if word.isalnum()] for title in titles],
    })
    users = pd.read_csv(data_dir / "u.user", sep="|", names=["user_id", "age", "gender", "occupation", "zip"])
    demographics = pd.DataFrame({
        "user_id": users["user_id"].astype(np.int64),
        "country": "zip" + users["zip"].astype(str).str[0],
        "device": users["occupation"],
        "age_bucket": [next(name for upper, name in ML100K_AGE_BUCKETS if age < upper) for age in users["age"]],
        "gender": users["gender"],
    })
    interactions = pd.DataFrame({
        "user_id": ratings["user_id"].astype(np.int64),
        "video_id": ratings["video_id"].astype(np.int64),
        "time": pd.to_datetime(ratings["timestamp"], unit="s"),
    })
    return RetrievalDataset("ml-100k", interactions, catalog, demographics)
