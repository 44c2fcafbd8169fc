"""Rows of the user_engagement_history mart for tests that write marts by hand."""

from __future__ import annotations

import json
from datetime import datetime


def engagement_row(
    request_id: str,
    user_id: int,
    event_timestamp: datetime,
    watches: list[tuple[int, int, str, float, float]] = (),
    impressions: list[tuple[int, float]] = (),
) -> dict:
    """`watches`: (video, creator, category, unix seconds, watched fraction); `impressions`:
    (video, unix seconds); both oldest first, encoded as the mart encodes them."""
    watch_columns = list(zip(*watches)) or [[]] * 5
    impression_columns = list(zip(*impressions)) or [[]] * 2
    return dict(
        request_id=request_id,
        user_id=user_id,
        event_timestamp=event_timestamp,
        watch_log=json.dumps(dict(zip(("video_ids", "creator_ids", "categories", "unix_seconds", "fractions"),
                                      map(list, watch_columns)))),
        impression_log=json.dumps(dict(zip(("video_ids", "unix_seconds"), map(list, impression_columns)))),
    )
