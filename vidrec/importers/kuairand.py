"""KuaiRand as raw logs: every logged exposure is an impression, every click a watch.

Reads the KuaiRand layout (Gao et al., CIKM 2022): `log_standard_*.csv` (the platform's own
recommendations), optional `log_random_*.csv` (videos exposed at random, `is_rand = 1`),
`user_features_*.csv` and `video_features_basic_*.csv`, in PATH or PATH/data. KuaiRand ids start at
0 while vidrec ids are positive, so every id is shifted by one (vidrec id = KuaiRand id + 1). What
else is derived is listed in the manifest's notes and in docs/importers.md.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from vidrec.importers.common import (
    DatasetImportError,
    ImportedLogs,
    empty_frame,
    numeric_column,
    read_csv_checked,
    sample_user_ids,
    unix_millis_to_time,
)

SOURCE = "kuairand"
ID_OFFSET = 1
DEVICE = "mobile"  # Kuaishou is a mobile app.
UNKNOWN = "unknown"  # KuaiRand publishes no country, age, gender or named category.
# KuaiRand's `tab` (the page a video was exposed on) is an anonymised integer id; the dataset
# does not say which id is a search page or a "next video" page, so every tab is the home feed
# unless listed here ({tab id: surface}).
TAB_SURFACES: dict[int, str] = {}
DEFAULT_SURFACE = "home"

LOG_COLUMNS = (
    "user_id", "video_id", "time_ms", "is_click", "is_like", "is_follow", "is_forward", "is_hate",
    "play_time_ms", "duration_ms", "tab",
)  # fmt: skip
USER_COLUMNS = ("user_id",)
VIDEO_COLUMNS = ("video_id", "author_id", "upload_dt", "video_duration", "tag")

NOTES = [
    "ids: vidrec id = KuaiRand id + 1 for users, videos and creators (vidrec ids are positive)",
    "impressions: one per log row (standard and random logs); request_id = "
    "'kuairand-<user>-<time_ms>-<tab>'; position = order of the rows within that request in the files "
    "(KuaiRand logs no slate position); surface: every tab -> 'home' (tab ids are anonymised); "
    "source: 'exploration' for log_random rows (videos exposed at random), null for the platform's own "
    "recommendations (KuaiRand does not say which retrieval source nominated them); source_score: null",
    "watches: one per clicked log row (is_click = 1) at time_ms; watch_seconds = play_time_ms / 1000; "
    "liked = is_like, shared = is_forward, disliked = is_hate",
    "subscriptions: a log row with is_follow = 1 subscribes the user to the video's author, at the first such time",
    "searches: none (KuaiRand logs no queries); the table is empty",
    "videos: those with at least one logged exposure; creator_id = author_id + 1; duration_seconds = "
    "video_duration / 1000, else the largest logged duration_ms / 1000; upload_time = upload_dt, or the "
    "first exposure if earlier or missing; title_tokens = the ids in `tag` as 'tag_<id>'; category = 'unknown'",
    f"users: signup_time = first logged event (register_days has no published reference date); device = "
    f"{DEVICE!r}; country, age_bucket = {UNKNOWN!r}, gender = 'unknown' (KuaiRand publishes no demographics)",
]


def load_kuairand(path: Path, limit_users: int | None = None, seed: int = 7) -> ImportedLogs:
    """Read the KuaiRand layout under `path` (or `path/data`) into raw tables (nothing is written)."""
    path = Path(path)
    directory = path / "data" if not list(path.glob("log_standard_*.csv")) and (path / "data").is_dir() else path
    log_paths = _files(directory, "log_standard_*.csv", required=True) + _files(directory, "log_random_*.csv")
    user_path = _one_file(directory, "user_features_*.csv")
    video_path = _one_file(directory, "video_features_basic_*.csv")

    logs = pd.concat(
        [_read_log(log_path).assign(random_exposure=log_path.name.startswith("log_random_")) for log_path in log_paths],
        ignore_index=True,
    )
    user_features = read_csv_checked(user_path, USER_COLUMNS, usecols=lambda column: column in USER_COLUMNS)
    user_features["user_id"] = numeric_column(user_features, "user_id", user_path).astype(np.int64)
    video_features = read_csv_checked(
        video_path, VIDEO_COLUMNS, usecols=lambda column: column in VIDEO_COLUMNS, dtype={"tag": str, "upload_dt": str}
    )
    video_features["video_id"] = numeric_column(video_features, "video_id", video_path).astype(np.int64)
    video_features["author_id"] = numeric_column(video_features, "author_id", video_path, allow_missing=True)
    video_features["video_duration"] = numeric_column(video_features, "video_duration", video_path, allow_missing=True)

    notes = list(NOTES)
    silent_users = np.setdiff1d(user_features["user_id"], logs["user_id"])
    if len(silent_users):
        notes.append(f"users: {len(silent_users)} user(s) of {user_path.name} without any logged event are left out")
    logs = logs[logs["user_id"].isin(sample_user_ids(logs["user_id"], limit_users, seed))]
    videos, dropped = _videos(logs, video_features.drop_duplicates("video_id").set_index("video_id"))
    if dropped:
        notes.append(
            f"videos: {dropped} video(s) without an author or a positive duration are left out, with their events"
        )
        logs = logs[logs["video_id"].isin(videos["video_id"] - ID_OFFSET)]
    users = _users(logs)
    if limit_users is not None:
        notes.append(
            f"sample: {len(users)} user(s) drawn with seed {seed} (--limit-users {limit_users}); their events only"
        )
    frames = {
        "users": users,
        "videos": videos,
        "impressions": _impressions(logs),
        "watches": _watches(logs),
        "searches": empty_frame("searches"),
        "subscriptions": _subscriptions(logs, videos),
    }
    parameters = {
        "path": str(path.resolve()),
        "files": [file.name for file in (*log_paths, user_path, video_path)],
        "limit_users": limit_users,
        "seed": seed,
        "tab_surfaces": {str(tab): surface for tab, surface in TAB_SURFACES.items()},
        "default_surface": DEFAULT_SURFACE,
    }
    return ImportedLogs(source=SOURCE, frames=frames, parameters=parameters, notes=notes)


def _files(directory: Path, pattern: str, required: bool = False) -> list[Path]:
    files = sorted(directory.glob(pattern))
    if required and not files:
        raise DatasetImportError(f"{directory}: no {pattern} file found (KuaiRand layout)")
    return files


def _one_file(directory: Path, pattern: str) -> Path:
    files = _files(directory, pattern, required=True)
    if len(files) > 1:
        raise DatasetImportError(f"{directory}: several {pattern} files {[file.name for file in files]}; expected one")
    return files[0]


def _read_log(path: Path) -> pd.DataFrame:
    frame = read_csv_checked(path, LOG_COLUMNS, usecols=lambda column: column in LOG_COLUMNS)
    optional = ("play_time_ms", "duration_ms")
    return pd.DataFrame(
        {
            column: numeric_column(frame, column, path, allow_missing=column in optional).fillna(0).astype(np.int64)
            for column in LOG_COLUMNS
        }
    )


def _videos(logs: pd.DataFrame, features: pd.DataFrame) -> tuple[pd.DataFrame, int]:
    """Videos with an exposure; returns them and how many were dropped for lack of author/duration."""
    exposed = logs.groupby("video_id").agg(first_time_ms=("time_ms", "min"), logged_ms=("duration_ms", "max"))
    known = features.reindex(exposed.index)
    duration = (known["video_duration"] / 1000).where(known["video_duration"] > 0, exposed["logged_ms"] / 1000)
    usable = known["author_id"].notna() & (duration > 0)
    first_seen = unix_millis_to_time(exposed["first_time_ms"])
    uploaded = pd.to_datetime(known["upload_dt"], errors="coerce")
    upload_time = pd.concat([uploaded, first_seen], axis=1).min(axis=1)
    videos = pd.DataFrame(
        {
            "video_id": exposed.index.to_numpy(np.int64) + ID_OFFSET,
            "creator_id": known["author_id"].fillna(-1).to_numpy(np.int64) + ID_OFFSET,
            "category": UNKNOWN,
            "duration_seconds": duration.to_numpy(float),
            "upload_time": upload_time.astype("datetime64[us]").to_numpy(),
            "title_tokens": known["tag"].map(_tag_tokens).to_numpy(),
        }
    )
    return videos[usable.to_numpy()].reset_index(drop=True), int((~usable).sum())


def _tag_tokens(tag: object) -> list[str]:
    if not isinstance(tag, str):
        return []
    return [f"tag_{part.strip()}" for part in tag.split(",") if part.strip()]


def _users(logs: pd.DataFrame) -> pd.DataFrame:
    first_event = logs.groupby("user_id")["time_ms"].min()
    return pd.DataFrame(
        {
            "user_id": first_event.index.to_numpy(np.int64) + ID_OFFSET,
            "signup_time": unix_millis_to_time(first_event).to_numpy(),
            "country": UNKNOWN,
            "device": DEVICE,
            "age_bucket": UNKNOWN,
            "gender": "unknown",
        }
    )


def _impressions(logs: pd.DataFrame) -> pd.DataFrame:
    request = ["user_id", "time_ms", "tab"]
    impressions = pd.DataFrame(
        {
            "request_id": "kuairand-" + logs["user_id"].astype(str) + "-" + logs["time_ms"].astype(str)
            + "-" + logs["tab"].astype(str),
            "user_id": logs["user_id"].to_numpy(np.int64) + ID_OFFSET,
            "video_id": logs["video_id"].to_numpy(np.int64) + ID_OFFSET,
            "surface": logs["tab"].map(TAB_SURFACES).fillna(DEFAULT_SURFACE).to_numpy(),
            "position": logs.groupby(request, sort=False).cumcount().to_numpy(np.int32),
            "impression_time": unix_millis_to_time(logs["time_ms"]).to_numpy(),
            "source": np.where(logs["random_exposure"].to_numpy(bool), "exploration", None),
            "source_score": np.nan,
        }
    )  # fmt: skip
    return impressions.drop_duplicates(["request_id", "video_id"]).reset_index(drop=True)


# KuaiRand stamps a click with its impression's time. A watch at the very instant of its request
# would count as history that request was ranked with (point-in-time joins include rows at the
# same instant): the clicked video would sit in its own user's watch bag. The watch is stamped
# just after the impression instead, as a real click follows what was shown.
WATCH_AFTER_IMPRESSION = pd.Timedelta(seconds=1)


def _watches(logs: pd.DataFrame) -> pd.DataFrame:
    clicks = logs[logs["is_click"] == 1]
    watches = pd.DataFrame(
        {
            "user_id": clicks["user_id"].to_numpy(np.int64) + ID_OFFSET,
            "video_id": clicks["video_id"].to_numpy(np.int64) + ID_OFFSET,
            "watch_time": (unix_millis_to_time(clicks["time_ms"]) + WATCH_AFTER_IMPRESSION).to_numpy(),
            "watch_seconds": clicks["play_time_ms"].to_numpy(float) / 1000,
            "liked": clicks["is_like"].to_numpy() == 1,
            "shared": clicks["is_forward"].to_numpy() == 1,
            "disliked": clicks["is_hate"].to_numpy() == 1,
        }
    )
    return watches.drop_duplicates(["user_id", "video_id", "watch_time"]).reset_index(drop=True)


def _subscriptions(logs: pd.DataFrame, videos: pd.DataFrame) -> pd.DataFrame:
    follows = logs[logs["is_follow"] == 1]
    creator_of = videos.set_index("video_id")["creator_id"]
    subscriptions = pd.DataFrame(
        {
            "user_id": follows["user_id"].to_numpy(np.int64) + ID_OFFSET,
            "creator_id": (follows["video_id"] + ID_OFFSET).map(creator_of).to_numpy(np.int64),
            "time_ms": follows["time_ms"].to_numpy(np.int64),
        }
    )
    first = subscriptions.groupby(["user_id", "creator_id"], as_index=False)["time_ms"].min()
    return pd.DataFrame(
        {
            "user_id": first["user_id"].astype(np.int64),
            "creator_id": first["creator_id"].astype(np.int64),
            "subscribed_time": unix_millis_to_time(first["time_ms"]),
        }
    )
