"""A worker's served-feature log: for sampled requests, what the ranker was fed for each served
item, written in the background to Parquet files (serving.served_log.feature_files) that the
pipeline's skew checks read (orchestration/assets/served_skew.py).

Per served item, not per scored candidate: the served items are the population the ranking
training frame is built from (impressions), so their values are what drift is measured against;
they share (request_id, video_id) with the impressions rows; and a request logs k rows instead of
a few hundred, so the offline recomputation stays cheap at a useful sample share.

The requests are sampled by the recommender (a hash of the request id, `served_features_sample_share`),
which keeps the fed columns only for those; everything else is the shared machinery of
serving.served_log.background: bounded, never waited for, best effort. A write that fails with
an OSError (a full or missing disk) keeps its rows for the next flush.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from serving.served_list import ServedAnswer
from serving.served_log.background import BackgroundRowLog
from serving.served_log.feature_files import (
    DEGRADED,
    KEY_COLUMNS,
    POSITION,
    RANKER_VERSION,
    REQUEST_ID,
    REQUEST_TIME,
    USER_ID,
    VIDEO_ID,
    stored_value,
    write_day_file,
)
from serving.serving_metrics import serving_metrics

RANKER_ARTIFACT = "ranker"  # the model_versions key of the ranker's registry version


@dataclass(frozen=True)
class FedFeatureRow:
    """One served item's keys and stored values, and the kinds of the model set that served it."""

    values: dict[str, object]
    kinds: Mapping[str, str]


def fed_feature_rows(answer: ServedAnswer) -> list[FedFeatureRow]:
    """The rows of a sampled answer's served items (none for an answer that was not sampled, or a
    user id the raw log could not hold)."""
    fed, response = answer.served.fed_features, answer.response
    if fed is None or response.user_id < 1:
        return []
    request_time = datetime.fromtimestamp(answer.request_time, UTC).replace(tzinfo=None)
    keys = {REQUEST_ID: response.request_id, USER_ID: response.user_id, REQUEST_TIME: request_time,
            RANKER_VERSION: response.model_versions.get(RANKER_ARTIFACT), DEGRADED: ",".join(response.degraded)}
    columns = {name: column for name, column in fed.columns.items() if name not in KEY_COLUMNS}
    rows = []
    for row, position in enumerate(fed.positions.tolist()):
        values = {**keys, POSITION: position, VIDEO_ID: response.items[position].video_id}
        values.update({name: stored_value(column[row], fed.kinds[name]) for name, column in columns.items()})
        rows.append(FedFeatureRow(values, {name: fed.kinds[name] for name in columns}))
    return rows


class ServedFeatureLog(BackgroundRowLog[FedFeatureRow]):
    """Writes the fed features of sampled answers under `directory`, in the background."""

    name = "served-feature log"
    retryable = (OSError,)
    destination = "the served-feature directory"

    def __init__(self, directory: Path, max_pending: int, flush_seconds: float) -> None:
        self.directory = directory
        super().__init__(max_pending, flush_seconds)

    def row_count(self, answer: ServedAnswer) -> int:
        fed = answer.served.fed_features
        return 0 if fed is None else len(fed)

    def rows_of(self, answer: ServedAnswer) -> list[FedFeatureRow]:
        return fed_feature_rows(answer)

    def write(self, rows: list[FedFeatureRow]) -> None:
        """One file per request day and model set's columns (a reload may change the columns)."""
        groups: dict[tuple[object, tuple], list[FedFeatureRow]] = defaultdict(list)
        for row in rows:
            groups[(row.values[REQUEST_TIME].date(), tuple(row.kinds.items()))].append(row)
        for (day, kinds), group in groups.items():
            write_day_file(self.directory, datetime.combine(day, datetime.min.time()),
                           [row.values for row in group], dict(kinds))
        serving_metrics().served_features.labels(outcome="logged").inc(len(rows))

    def count_dropped(self, reason: str, rows: int) -> None:
        serving_metrics().served_features_dropped.labels(reason=reason).inc(rows)
