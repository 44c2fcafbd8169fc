"""The raw event schema: the one definition of what a raw log table holds.

Everything that writes raw logs (the simulator, the importers, the service's event intake and
served-impression log) validates against these schemas, and dbt's sources read exactly these
columns. Tables are Parquet, partitioned by the UTC day of their `partition_column`:
`<raw_dir>/<table>/day=YYYY-MM-DD/part-0.parquet`. Timestamps are timezone-naive UTC with
microsecond precision.

A table's `optional_columns` are what only some writers know (the serving system's own record of
an impression): a writer may leave them out and `vidrec.rawlog.to_arrow` fills them with nulls,
so every file written from now on has every column. Files written before a column existed lack
it; readers fill it with nulls (`read_raw_table`, dbt's sources with `union_by_name`).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import pyarrow as pa

TIMESTAMP = pa.timestamp("us")
# Imported public datasets reach back to MovieLens' first ratings (1995); nothing older is a
# plausible event in any source vidrec reads (the raw suite, POST /events and uploads check it).
EARLIEST_PLAUSIBLE_TIME = datetime(1995, 1, 1)
# The first films date from the 1880s; nothing in a catalogue is older (a video's upload_time).
EARLIEST_PUBLICATION_TIME = datetime(1880, 1, 1)


@dataclass(frozen=True)
class RawTable:
    name: str
    schema: pa.Schema
    partition_column: str
    primary_key: tuple[str, ...]
    description: str
    optional_columns: frozenset[str] = frozenset()  # nullable; a writer may leave them out

    def __post_init__(self) -> None:
        unknown = sorted(self.optional_columns - set(self.schema.names))
        if unknown:
            raise ValueError(f"{self.name}: optional columns {unknown} are not in the schema {self.schema.names}")
        keys = sorted(self.optional_columns & set(self.primary_key))
        if keys:
            raise ValueError(f"{self.name}: key columns {keys} cannot be optional")

    @property
    def required_columns(self) -> list[str]:
        """The columns every writer must supply, in schema order."""
        return [name for name in self.schema.names if name not in self.optional_columns]


USERS = RawTable(
    name="users",
    schema=pa.schema(
        [
            ("user_id", pa.int64()),
            ("signup_time", TIMESTAMP),
            ("country", pa.string()),
            ("device", pa.string()),
            ("age_bucket", pa.string()),
            ("gender", pa.string()),
        ]
    ),
    partition_column="signup_time",
    primary_key=("user_id",),
    description="One row per registered user with slowly changing demographics.",
)

VIDEOS = RawTable(
    name="videos",
    schema=pa.schema(
        [
            ("video_id", pa.int64()),
            ("creator_id", pa.int64()),
            ("category", pa.string()),
            ("duration_seconds", pa.float64()),
            ("upload_time", TIMESTAMP),
            ("title_tokens", pa.list_(pa.string())),
        ]
    ),
    partition_column="upload_time",
    primary_key=("video_id",),
    description="One row per uploaded video.",
)

IMPRESSIONS = RawTable(
    name="impressions",
    schema=pa.schema(
        [
            ("request_id", pa.string()),
            ("user_id", pa.int64()),
            ("video_id", pa.int64()),
            ("surface", pa.string()),
            ("position", pa.int32()),
            ("impression_time", TIMESTAMP),
            # What the serving system logged about why the video was a candidate: the retrieval
            # source that nominated it and that source's rank score, 1 / (1 + its 0-based rank in
            # the source's ordering). Null where the log does not say (MovieLens, KuaiRand's
            # standard logs).
            ("source", pa.string()),
            ("source_score", pa.float64()),
            # What only the serving system knows (serving.served_log logs it for every item it
            # serves): null in simulated, imported and client-sent rows. `score` is the final
            # score the list was ordered by (watch-second equivalents; the popularity score for
            # the unknown-user answer); `propensity` the probability the policy showed this video
            # at this position given the positions above (off-policy evaluation divides by it);
            # `reason` and `explored` as in the API's RecommendedVideo.
            ("score", pa.float64()),
            ("propensity", pa.float64()),
            ("reason", pa.string()),
            ("explored", pa.bool_()),
            # The ranker's head values the score combined (watch_time in expected seconds, the
            # others calibrated probabilities), and the registry version of each model that
            # served. Maps, not JSON text: the heads and the models differ between versions, and
            # a map keeps each value typed (DuckDB reads `head_predictions['like']` as a DOUBLE,
            # pyarrow and pandas as (key, value) pairs) with no parsing in SQL.
            ("head_predictions", pa.map_(pa.string(), pa.float64())),
            ("model_versions", pa.map_(pa.string(), pa.string())),
        ]
    ),
    partition_column="impression_time",
    primary_key=("request_id", "video_id"),
    description="A video shown to a user at a position of a surface (home, watch_next, search).",
    optional_columns=frozenset(
        {"score", "propensity", "reason", "explored", "head_predictions", "model_versions"}
    ),
)

WATCHES = RawTable(
    name="watches",
    schema=pa.schema(
        [
            ("user_id", pa.int64()),
            ("video_id", pa.int64()),
            ("watch_time", TIMESTAMP),
            ("watch_seconds", pa.float64()),
            ("liked", pa.bool_()),
            ("shared", pa.bool_()),
            ("disliked", pa.bool_()),
        ]
    ),
    partition_column="watch_time",
    primary_key=("user_id", "video_id", "watch_time"),
    description="Every watch, recommendation-driven or organic (the paper trains on all of them).",
)

SEARCHES = RawTable(
    name="searches",
    schema=pa.schema(
        [
            ("user_id", pa.int64()),
            ("search_time", TIMESTAMP),
            ("query_tokens", pa.list_(pa.string())),
        ]
    ),
    partition_column="search_time",
    primary_key=("user_id", "search_time"),
    description="A search query, already tokenised.",
)

SUBSCRIPTIONS = RawTable(
    name="subscriptions",
    schema=pa.schema(
        [
            ("user_id", pa.int64()),
            ("creator_id", pa.int64()),
            ("subscribed_time", TIMESTAMP),
        ]
    ),
    partition_column="subscribed_time",
    primary_key=("user_id", "creator_id"),
    description="A user subscribing to a creator.",
)

RAW_TABLES: dict[str, RawTable] = {
    table.name: table for table in (USERS, VIDEOS, IMPRESSIONS, WATCHES, SEARCHES, SUBSCRIPTIONS)
}

SURFACES = ("home", "watch_next", "search")
# Importers write this where a source lacks a demographic or category (the simulator never does).
UNKNOWN = "unknown"
CATEGORIES = (
    "music",
    "gaming",
    "news",
    "sports",
    "comedy",
    "education",
    "science",
    "cooking",
    "travel",
    "fashion",
    "film",
    "autos",
)
COUNTRIES = ("US", "IN", "BR", "GB", "DE", "JP", "MX", "FR")
DEVICES = ("mobile", "desktop", "tv", "tablet")
AGE_BUCKETS = ("13-17", "18-24", "25-34", "35-44", "45-54", "55+")
GENDERS = ("female", "male", "unknown")
