"""Point-in-time training frames through Feast's `get_historical_features`.

Two things make a plain call on a whole example frame go wrong here, and this module is the one
place that handles them:

* Feast's `file` offline store keeps only one of several entity rows that share a view's join key
  and timestamp (e.g. two impressions of one user at the same instant: the user-keyed views lose
  one of them). So each group of views is joined on its own *distinct* (join keys, timestamp)
  rows, and the results are merged back onto every example. That is also much faster, since the
  store's dask join costs about half a millisecond per entity row on this hardware.
* Feast's file store drops an entity row when any view in the call has no row for it yet (all
  later, or expired), taking the other views' values with it. So views are only joined together
  when they read the same source (whose rows exist together); examples keep their row, with
  null features where a source has nothing for them yet.

Memory: the file store pairs every entity row with every source row of the same key before it
filters by time, so a call's memory grows with Σ over entity rows of their key's source rows.
For event-grain views of heavy users that reached 13 GiB on MovieLens 100k in one call. The
distinct entity rows, sorted by key, are therefore cut into calls of at most `max_pairs` such
pairs (each call re-reads the source, so no more calls than that).
"""

from __future__ import annotations

import logging
import time

import numpy as np
import pandas as pd
from feast import FeatureService, FeatureStore

from feature_repo.feature_columns import feature_refs_by_join_keys
from feature_repo.on_demand import on_demand_requests

logger = logging.getLogger(__name__)

TIMESTAMP = "event_timestamp"
MAX_PAIRS_PER_JOIN = 5_000_000  # about 2 GiB of Feast's intermediate frames here (~450 bytes a pair)


def historical_features(
    store: FeatureStore,
    examples: pd.DataFrame,
    features: FeatureService | list[str],
    max_pairs: int = MAX_PAIRS_PER_JOIN,
) -> pd.DataFrame:
    """`examples` (with join keys and a UTC `event_timestamp`) plus point-in-time-correct features.

    Every example row, column and the row order are kept. On-demand views are computed on the
    joined stored features, by the view's own transformation; the request data they need must be
    columns of `examples`. Stored inputs of an on-demand view that were not asked for are dropped.
    """
    if TIMESTAMP not in examples.columns:
        raise ValueError(f"examples need an {TIMESTAMP!r} column; have {list(examples.columns)}")
    frame = examples.reset_index(drop=True)
    frame[TIMESTAMP] = _utc_nanoseconds(frame[TIMESTAMP])
    on_demand = on_demand_requests(store, features)
    stored = _stored_refs(store, features)
    inputs_only = [ref for request in on_demand for ref in request.input_refs if ref not in stored]
    stored += list(dict.fromkeys(inputs_only))
    groups = _refs_by_join_keys_and_source(store, stored)
    # fail before the slow joins, not after
    for (keys, _source), references in groups.items():
        missing = [key for key in keys if key not in frame.columns]
        if missing:
            raise ValueError(f"examples lack join key(s) {missing} needed by {references[0].split(':')[0]}")
    for request in on_demand:
        request.require_request_data(frame.columns)
    if max_pairs < 1:
        raise ValueError(f"max_pairs must be at least 1, got {max_pairs}")
    for (keys, _source), references in groups.items():
        entity_rows = frame[[*keys, TIMESTAMP]].drop_duplicates().sort_values([*keys, TIMESTAMP]).reset_index(drop=True)
        started = time.perf_counter()
        calls = _calls_within(entity_rows, _source_rows_per_key(store, references[0], keys), max_pairs)
        joined = pd.concat(
            [store.get_historical_features(entity_df=rows, features=references).to_df() for rows in calls],
            ignore_index=True,
        ) if calls else entity_rows.iloc[:0].assign(**{ref.split(":", 1)[1]: None for ref in references})
        logger.info(
            "joined %s for %d distinct entity rows in %d call(s), %.1f s",
            sorted({reference.split(":", 1)[0] for reference in references}), len(entity_rows), len(calls),
            time.perf_counter() - started,
        )
        joined[TIMESTAMP] = _utc_nanoseconds(joined[TIMESTAMP])
        frame = frame.merge(joined, on=[*keys, TIMESTAMP], how="left", validate="many_to_one")
    for request in on_demand:
        frame = request.apply(frame)
    helper_columns = {ref.split(":", 1)[1] for ref in inputs_only} - set(examples.columns)
    return frame.drop(columns=sorted(helper_columns))


def _source_rows_per_key(store: FeatureStore, reference: str, keys: tuple[str, ...]) -> pd.DataFrame | None:
    """Rows per join-key value in the view's file source (`source_rows` column), or None when the
    source is not a file this process can read."""
    path = getattr(store.get_feature_view(reference.split(":", 1)[0]).batch_source, "path", None)
    if not path:
        return None
    return pd.read_parquet(path, columns=list(keys)).value_counts().rename("source_rows").reset_index()


def _calls_within(entity_rows: pd.DataFrame, source_rows: pd.DataFrame | None, max_pairs: int) -> list[pd.DataFrame]:
    """`entity_rows` (sorted by key) cut into consecutive pieces of at most `max_pairs` (entity row,
    source row of its key) pairs each. Rows whose key has no source rows are left out: the merge
    gives them nulls anyway, and Feast's file store fails on a call where no row has any (a dtype
    error in its ttl filter)."""
    if source_rows is None or entity_rows.empty:
        return [entity_rows]
    keys = [column for column in source_rows.columns if column != "source_rows"]
    per_row = entity_rows[keys].merge(source_rows, on=keys, how="left")["source_rows"].fillna(0).to_numpy()
    entity_rows, per_row = entity_rows[per_row > 0], per_row[per_row > 0]
    call = (np.cumsum(per_row) - 1) // max_pairs
    return [entity_rows[call == index] for index in np.unique(call)]


def _stored_refs(store: FeatureStore, features: FeatureService | list[str]) -> list[str]:
    """The `view:feature` references of stored (not on-demand) features."""
    return [reference for references in feature_refs_by_join_keys(store, features).values() for reference in references]


def _refs_by_join_keys_and_source(
    store: FeatureStore, features: FeatureService | list[str]
) -> dict[tuple[tuple[str, ...], str], list[str]]:
    """The join-key groups split further by each view's batch source (see the module docstring)."""
    groups: dict[tuple[tuple[str, ...], str], list[str]] = {}
    for keys, references in feature_refs_by_join_keys(store, features).items():
        for reference in references:
            source = store.get_feature_view(reference.split(":", 1)[0]).batch_source.name
            groups.setdefault((keys, source), []).append(reference)
    return groups


def _utc_nanoseconds(timestamps: pd.Series) -> pd.Series:
    """One timestamp dtype on both sides of the merge (naive values are taken as UTC)."""
    return pd.to_datetime(timestamps, utc=True).astype("datetime64[ns, UTC]")
