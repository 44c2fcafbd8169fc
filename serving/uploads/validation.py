"""Which new video rows may be served: the raw log's rules for the videos table, row by row.

The pipeline checks a whole raw table with the Great Expectations suite of
`expectations/raw_logs.py` and stops on a failure; serving cannot stop, so here each row that
breaks a rule is skipped with the reason, and the rest serve. The rules are the suite's for
videos (serving does not import the suite: Great Expectations is not part of the Bento): ids
present and positive, a category of the schema's vocabulary, a positive duration, an upload time
between the first films and now (a minute of clock skew allowed, as POST /events allows), title
tokens present (an empty list is fine). A video id listed twice keeps its earliest upload, as
dbt's staging model keeps it.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import numpy as np
import pandas as pd

from serving.events.schemas import MAX_CLOCK_SKEW
from vidrec.schema import CATEGORIES, EARLIEST_PUBLICATION_TIME, UNKNOWN

SERVABLE_CATEGORIES = frozenset((*CATEGORIES, UNKNOWN))


@dataclass(frozen=True)
class SkippedUpload:
    """A row that will not serve, and why (`video_id` as given; None when missing)."""

    video_id: int | None
    reason: str

    def __str__(self) -> str:
        return f"video_id {self.video_id}: {self.reason}"


def servable_uploads(videos: pd.DataFrame, now: datetime) -> tuple[pd.DataFrame, list[SkippedUpload]]:
    """(rows that may serve, the rows skipped with their reasons), for rows in the VIDEOS schema.

    `now` is the latest plausible upload time, timezone-naive UTC like the raw log."""
    reasons = pd.Series(None, index=videos.index, dtype=object)
    for broken, column, template in _rules(videos, pd.Timestamp(now) + MAX_CLOCK_SKEW):
        newly = broken.fillna(False).astype(bool) & reasons.isna()
        reasons[newly] = [template.format(_shown(value)) for value in videos.loc[newly, column]]
    valid = videos[reasons.isna()]
    earliest_first = valid.sort_values(["upload_time", "creator_id", "category"], kind="stable")
    reasons[earliest_first.index[earliest_first["video_id"].duplicated()]] = (
        "listed more than once; the earliest upload is kept"
    )
    skipped = [
        SkippedUpload(None if pd.isna(video) else int(video), str(reason))
        for video, reason in zip(videos["video_id"].tolist(), reasons.tolist(), strict=True)
        if pd.notna(reason)
    ]
    servable = videos[reasons.isna()].reset_index(drop=True)
    return servable.astype({"video_id": "int64", "creator_id": "int64"}), skipped


def _rules(videos: pd.DataFrame, latest: pd.Timestamp) -> list[tuple[pd.Series, str, str]]:
    """(rows breaking it, the column it reads, the reason with {} for the value) of every rule,
    in the order a row's reason is chosen (its first broken rule)."""
    video_id, creator_id = videos["video_id"], videos["creator_id"]
    duration, upload_time = videos["duration_seconds"], videos["upload_time"]
    return [
        (video_id.isna(), "video_id", "video_id is missing"),
        (video_id <= 0, "video_id", "video_id {} is not positive"),
        (creator_id.isna(), "creator_id", "creator_id is missing"),
        (creator_id <= 0, "creator_id", "creator_id {} is not positive"),
        (~videos["category"].isin(SERVABLE_CATEGORIES), "category",
         "category {} is not one of the schema's categories (or 'unknown')"),
        (~(np.isfinite(duration.astype(float)) & (duration > 0)), "duration_seconds",
         "duration_seconds {} is not a positive number of seconds"),
        (upload_time.isna(), "upload_time", "upload_time is missing"),
        (upload_time < EARLIEST_PUBLICATION_TIME, "upload_time",
         f"upload_time {{}} is before {EARLIEST_PUBLICATION_TIME:%Y}"),
        (upload_time > latest, "upload_time", f"upload_time {{}} is in the future (now is {latest - MAX_CLOCK_SKEW})"),
        (videos["title_tokens"].isna(), "title_tokens", "title_tokens is missing (an empty list is fine)"),
    ]


def _shown(value: object) -> str:
    """A value as a reason names it: ids read as floats (a column with a null) without their '.0'."""
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return repr(value) if isinstance(value, str) else str(value)
