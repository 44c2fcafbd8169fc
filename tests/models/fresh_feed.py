"""A world where only freshness ranks: shared by the freshness-logit and query-time tests.

Videos are uploaded evenly over `DAYS` days and every watch is of a video uploaded less than a
day before it (a fresh-only feed), so the only signal is the video's age when the user asks.
One category and creators at random carry none.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from models.retrieval.config import RetrievalConfig

START = pd.Timestamp("2024-01-01")
NUM_VIDEOS, DAYS = 300, 60

# The history's content bags are off: they carry no signal here, and the tests isolate what the
# freshness logit learns.
FRESHNESS_ONLY_CONFIG = RetrievalConfig(
    embedding_dim=16, tower_widths=(32, 16), item_tower_widths=(16,), epochs=4, batch_size=128,
    num_uniform_negatives=64, show_progress=False, seed=1, video_age_logit=True, history_content=False,
)


def fresh_feed(
    num_users: int = 60, watches_per_user: int = 20, seed: int = 0, paused_users: range = range(0),
    paused_from_day: float = DAYS,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(interactions: user_id, video_id, time; catalog). `paused_users` watch only between day 2
    and `paused_from_day`; everyone else until the last day."""
    rng = np.random.default_rng(seed)
    upload_days = np.sort(rng.uniform(0, DAYS, NUM_VIDEOS))
    catalog = pd.DataFrame({
        "video_id": np.arange(NUM_VIDEOS, dtype=np.int64),
        "creator_id": np.arange(NUM_VIDEOS) % 10,
        "category": "news",
        "duration_seconds": 300.0,
        "upload_time": START + pd.to_timedelta(upload_days, unit="D"),
        "title_tokens": [["news"] for _ in range(NUM_VIDEOS)],
    })
    rows = []
    for user in range(num_users):
        last_day = paused_from_day if user in paused_users else DAYS
        for day in np.sort(rng.uniform(2, last_day, watches_per_user)):
            fresh = np.flatnonzero((upload_days <= day) & (upload_days > day - 1.0))
            if len(fresh):
                rows.append((user, int(rng.choice(fresh)), START + pd.to_timedelta(day, unit="D")))
    interactions = pd.DataFrame(rows, columns=["user_id", "video_id", "time"])
    return interactions.drop_duplicates(["user_id", "video_id"]), catalog
