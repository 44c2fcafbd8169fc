"""The retrieval query: the user tower's input columns, built from the Feast service `retrieval_user_features`.

The training frame, the pipeline's holdout and serving all read that one feature service (offline
with `get_historical_features`, online with `get_online_features`) and turn its columns into the
tower's query columns here, through one function, so a feature added to the service reaches all
three or, until this module places it, none: `check_service` refuses a service holding a feature
the query does not map, before any join runs.

Values come out in one form whichever store they came from: lists as Python lists (a missing list
is empty: no history yet), categoricals as the stored string or None. An online row and an
offline row of the same state therefore give identical queries.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd
import pyarrow as pa
from feast import FeatureService, FeatureStore
from feast.type_map import feast_value_type_to_pa

from feature_repo.features import RECENT_SEARCH_TOKENS, RECENT_WATCH_VIDEO_IDS, USER_PROFILE_FEATURES
from feature_repo.services import RETRIEVAL_USER_FEATURES
from feature_repo.training_frames import TIMESTAMP, historical_features
from models.retrieval.features import EXAMPLE_AGE_DAYS, HISTORY_SEARCH_TOKENS, HISTORY_VIDEO_IDS

# service feature -> the tower's query column: list-valued histories, then string categoricals
LIST_QUERY_COLUMNS = {RECENT_WATCH_VIDEO_IDS: HISTORY_VIDEO_IDS, RECENT_SEARCH_TOKENS: HISTORY_SEARCH_TOKENS}
CATEGORICAL_QUERY_COLUMNS = {name: name for name in USER_PROFILE_FEATURES}
QUERY_COLUMNS = {**LIST_QUERY_COLUMNS, **CATEGORICAL_QUERY_COLUMNS}
# The marts' timestamp resolution, and the one training frames floor entity times to: a query
# "before t" reads the features stamped at or before this much earlier, since Feast's
# point-in-time join includes rows stamped at the entity's own time.
JUST_BEFORE = pd.Timedelta(microseconds=1)


def check_service(service: FeatureService) -> None:
    """Raise unless the service's features are exactly the ones this module maps to query columns."""
    served = [feature.name for projection in service.feature_view_projections for feature in projection.features]
    unmapped = [name for name in served if name not in QUERY_COLUMNS]
    absent = [name for name in QUERY_COLUMNS if name not in served]
    if unmapped or absent:
        raise ValueError(
            f"feature service {service.name!r} and the retrieval query disagree: "
            + (
                f"the service carries {unmapped}, which models/retrieval/query.py maps to no tower input; "
                if unmapped
                else ""
            )
            + (f"the query expects {absent}, which the service does not carry; " if absent else "")
            + f"the query maps {list(QUERY_COLUMNS)}"
        )


def query_column_types(service: FeatureService) -> dict[str, pa.DataType]:
    """Each query column's Arrow type as the service declares its feature (lists of the declared
    element type, categoricals as declared): what a column holds even where no row has a value,
    e.g. a batch of users none of whom ever searched, which Arrow would otherwise type as null."""
    check_service(service)
    return {
        QUERY_COLUMNS[feature.name]: feast_value_type_to_pa(feature.dtype.to_value_type())
        for projection in service.feature_view_projections for feature in projection.features
    }


def queries_from_features(features: pd.DataFrame) -> pd.DataFrame:
    """Queries from rows of the service's features (a `get_historical_features` result, or one
    online row): each feature replaced by its query column, every other column (labels, split,
    `example_age_days`) kept; `example_age_days` is 0 ("asked now") where the rows lack it."""
    missing = [name for name in QUERY_COLUMNS if name not in features.columns]
    if missing:
        raise ValueError(f"retrieval user features lack {missing}; have {list(features.columns)}")
    columns = {name: features[name] for name in features.columns if name not in QUERY_COLUMNS}
    columns.update(_query_columns({name: features[name] for name in QUERY_COLUMNS}))
    if EXAMPLE_AGE_DAYS not in columns:
        columns[EXAMPLE_AGE_DAYS] = np.zeros(len(features))
    # one frame built whole: a column at a time costs milliseconds per request at serving
    return pd.DataFrame(columns, index=features.index)


def query_from_online_row(user: Mapping[str, object]) -> pd.DataFrame:
    """The one-row query of a user from their online features (what the request path reads)."""
    columns = _query_columns({feature: [user.get(feature)] for feature in QUERY_COLUMNS})
    return pd.DataFrame({**columns, EXAMPLE_AGE_DAYS: [0.0]})


def _query_columns(features: Mapping[str, Sequence[object]]) -> dict[str, np.ndarray]:
    """The one mapping of service feature values to query column values (lists as Python lists,
    missing ones empty; categoricals as the stored value or None), shared by both entry points.
    Object arrays, not Series: they carry no index to misalign with the caller's frame."""
    columns: dict[str, np.ndarray] = {}
    for feature, column in LIST_QUERY_COLUMNS.items():
        columns[column] = _objects([_as_list(value) for value in features[feature]])
    for feature, column in CATEGORICAL_QUERY_COLUMNS.items():
        columns[column] = _objects([_as_category(value) for value in features[feature]])
    return columns


def _objects(values: list) -> np.ndarray:
    """A 1-d object array of `values` as they are (numpy would stack equally long lists into 2-d)."""
    array = np.empty(len(values), dtype=object)
    for position, value in enumerate(values):
        array[position] = value
    return array


def historical_queries(store: FeatureStore, examples: pd.DataFrame, as_of: pd.Series | pd.Timestamp) -> pd.DataFrame:
    """`examples` (with `user_id`) plus each row's query as the user stood strictly before `as_of`
    (one time for all rows, or one per row), read through the feature service offline.

    Strictly before: a history state is stamped at its last event, so the state stamped at a label
    watch holds that watch; the point-in-time join is made `JUST_BEFORE` the given time instead.
    Rows, their order and every column of `examples` are kept.
    """
    service = store.get_feature_service(RETRIEVAL_USER_FEATURES)
    check_service(service)
    clashing = [column for column in [*QUERY_COLUMNS, *QUERY_COLUMNS.values()] if column in examples.columns]
    if clashing:
        raise ValueError(f"examples already hold query columns {sorted(set(clashing))}; drop or rename them first")
    times = pd.to_datetime(as_of if isinstance(as_of, pd.Series) else pd.Series(as_of, index=examples.index), utc=True)
    entities = examples.reset_index(drop=True)
    entities[TIMESTAMP] = (times - JUST_BEFORE).reset_index(drop=True)
    queries = queries_from_features(historical_features(store, entities, service))
    if TIMESTAMP in examples.columns:
        queries[TIMESTAMP] = examples[TIMESTAMP].to_numpy()
    else:
        queries = queries.drop(columns=TIMESTAMP)
    return queries.set_axis(examples.index)


def _as_list(value: object) -> list:
    if _missing(value):
        return []
    return value.tolist() if isinstance(value, np.ndarray) else list(value)


def _as_category(value: object) -> object:
    return None if _missing(value) else value


def _missing(value: object) -> bool:
    return value is None or value is pd.NA or (isinstance(value, float) and np.isnan(value))
