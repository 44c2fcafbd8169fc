"""Point-in-time training frames through Feast's `get_historical_features` (duckdb offline store).

`historical_features` is the one place every training frame, holdout query and offline check
goes through, so what it does to the examples happens once:

* Entity timestamps are taken as UTC and floored to the microsecond, the marts' resolution.
  Feast's duckdb store refuses timestamps with nanoseconds; flooring (never rounding up) cannot
  move an example past a feature row stamped after it, so no future row is joined (the ttl's far
  end moves back by under a microsecond, for sub-microsecond inputs only).
* Each group of views with the same join keys is joined in one call, on the group's *distinct*
  (join keys, timestamp) rows, and the result is merged back onto every example: a slate of
  impressions shown to one user at one instant reads the user-keyed views once, and the examples'
  own columns (labels, weights, lists) never travel through the store.

The duckdb store keeps every entity row (a view without a row for it yet, or only an expired
one, gives nulls), so views of different sources share a call. It joins inside DuckDB rather
than in pandas: the file store it replaced paired every entity row with every source row of its
key in memory (13 GiB in one call on MovieLens 100k), so its calls were cut by such pairs. Here
each group is one call: the MovieLens ranking frame grew the process by about 0.5 GiB
(bench/offline_store.py, docs/benchmarks.md). DuckDB's own memory limit is its default, 80% of
the machine's.
"""

from __future__ import annotations

import logging
import time

import pandas as pd
from feast import FeatureService, FeatureStore

from feature_repo.feature_columns import feature_refs_by_join_keys
from feature_repo.on_demand import on_demand_requests

logger = logging.getLogger(__name__)

TIMESTAMP = "event_timestamp"


def historical_features(
    store: FeatureStore,
    examples: pd.DataFrame,
    features: FeatureService | list[str],
) -> pd.DataFrame:
    """`examples` (with join keys and an `event_timestamp`; naive values are UTC) plus
    point-in-time-correct features.

    Every example row, column and the row order are kept; `event_timestamp` comes back in UTC,
    floored to the microsecond. On-demand views are computed on the joined stored features, by
    the view's own transformation; the request data they need must be columns of `examples`.
    Stored inputs of an on-demand view that were not asked for are dropped.
    """
    if TIMESTAMP not in examples.columns:
        raise ValueError(f"examples need an {TIMESTAMP!r} column; have {list(examples.columns)}")
    frame = examples.reset_index(drop=True)
    frame[TIMESTAMP] = entity_timestamps(frame[TIMESTAMP])
    on_demand = on_demand_requests(store, features)
    stored = _stored_refs(store, features)
    inputs_only = [ref for request in on_demand for ref in request.input_refs if ref not in stored]
    stored += list(dict.fromkeys(inputs_only))
    groups = feature_refs_by_join_keys(store, stored)
    # fail before the joins, not after
    for keys, references in groups.items():
        missing = [key for key in keys if key not in frame.columns]
        if missing:
            raise ValueError(f"examples lack join key(s) {missing} needed by {references[0].split(':')[0]}")
    for request in on_demand:
        request.require_request_data(frame.columns)
    for keys, references in groups.items():
        entity_rows = frame[[*keys, TIMESTAMP]].drop_duplicates()
        started = time.perf_counter()
        joined = store.get_historical_features(entity_df=entity_rows, features=references).to_df()
        logger.info(
            "joined %s for %d distinct entity rows in %.1f s",
            sorted({reference.split(":", 1)[0] for reference in references}), len(entity_rows),
            time.perf_counter() - started,
        )
        joined[TIMESTAMP] = entity_timestamps(joined[TIMESTAMP])
        frame = frame.merge(joined, on=[*keys, TIMESTAMP], how="left", validate="many_to_one")
    for request in on_demand:
        frame = request.apply(frame)
    helper_columns = {ref.split(":", 1)[1] for ref in inputs_only} - set(examples.columns)
    return frame.drop(columns=sorted(helper_columns))


def entity_timestamps(timestamps: pd.Series) -> pd.Series:
    """Timestamps as the store takes them and the merge compares them: UTC (naive values are
    taken as UTC), floored to the microsecond, in one dtype (`datetime64[ns, UTC]`)."""
    return pd.to_datetime(timestamps, utc=True).astype("datetime64[ns, UTC]").dt.floor("us")


def _stored_refs(store: FeatureStore, features: FeatureService | list[str]) -> list[str]:
    """The `view:feature` references of stored (not on-demand) features."""
    return [reference for references in feature_refs_by_join_keys(store, features).values() for reference in references]
