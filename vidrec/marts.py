"""The dbt marts: the one contract between the SQL layer and every Python layer.

dbt writes each mart as Parquet at `<marts_dir>/<name>.parquet` (the `mart_location` macro in
dbt_project/macros/paths.sql; a directory of part files in the distributed profile). Python
names a mart only through `Mart`, and finds it only through `mart_path`, so renaming a mart is
one change here and one in dbt, and a test (tests/vidrec/test_marts_contract.py) fails when the
two disagree. Staging and intermediate models are dbt's own business: nothing outside dbt reads
them.
"""

from __future__ import annotations

from enum import StrEnum
from pathlib import Path


class Mart(StrEnum):
    """Every mart dbt builds (dbt_project/models/marts/<name>.sql)."""

    VIDEO_CATALOG = "video_catalog"
    USER_FEATURES_DAILY = "user_features_daily"
    VIDEO_FEATURES_DAILY = "video_features_daily"
    USER_WATCH_HISTORY = "user_watch_history"
    USER_ENGAGEMENT_HISTORY = "user_engagement_history"
    RETRIEVAL_TRAINING_EXAMPLES = "retrieval_training_examples"
    RANKING_TRAINING_EXAMPLES = "ranking_training_examples"
    WATCH_INTERACTIONS = "watch_interactions"
    WATCH_EVENTS = "watch_events"
    IMPRESSION_EVENTS = "impression_events"
    SUBSCRIPTION_EVENTS = "subscription_events"
    EVENT_WINDOW = "event_window"


# The marts Feast's offline and online stores read (feature_repo/data_sources.py).
FEATURE_MARTS = (
    Mart.USER_FEATURES_DAILY,
    Mart.VIDEO_FEATURES_DAILY,
    Mart.USER_WATCH_HISTORY,
    Mart.USER_ENGAGEMENT_HISTORY,
)


def mart_path(marts_dir: Path, mart: Mart) -> Path:
    """Where dbt wrote `mart` under `marts_dir` (settings.marts_dir)."""
    return Path(marts_dir) / f"{Mart(mart).value}.parquet"
