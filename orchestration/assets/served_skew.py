"""The served-feature comparison: what the ranker was fed at request time beside what the offline
store says it should have been fed then, for the rows of the served-feature log.

The service logs a sampled share of its ranked requests (serving.served_log.feature_log: the
ranker's inputs per served item, with the request's id, time, user and video). This asset reads
the log's last `served_skew_window_days` days and recomputes the same features with Feast's
`get_historical_features` at each request's time, through the `ranker_features` service serving
reads (feature_repo.training_frames.historical_features), the on-demand cross features from the
same logged request data. It writes both, side by side, for two blocking checks
(orchestration/checks.py): row-by-row mismatch rates, and drift from the last ranking training
frame. `champion_models` depends on this asset, so a failing check stops promotion in the same run.

The request key of the engagement view: a request the offline store knows (its impressions came
back through the raw log and the marts were rebuilt, stamped no later than the request) is looked
up by its own id, stamped at its start; any other by `next:<user_id>`, the state the service read
it by. A `next:` row stamped
after the request (the marts moved on since, and the request's own row is not there) cannot say
what the request saw: such rows are counted as `not_recomputable` and left out. So are the rows
of requests whose feature reads fell back (`degraded_rows`: the online store failed and the ranker
was fed last-known or default user features, or stale video features): their fallbacks are counted
where they happen
(`vidrec_fallbacks`), and an outage must not read as a feature pipeline computing other values.
"""

import json
from pathlib import Path

import pandas as pd
from dagster import AssetExecutionContext, MaterializeResult, MetadataValue, asset

from feature_repo.engagement import REQUEST_PASSTHROUGH_FEATURES, REQUEST_TIME, RETRIEVAL_SOURCE, RETRIEVAL_SOURCE_SCORE
from feature_repo.entities import next_request_id
from feature_repo.feature_columns import RANKER_SERVICE, service_feature_columns
from feature_repo.store import feature_store
from feature_repo.training_frames import TIMESTAMP, entity_timestamps, historical_features
from orchestration.assets.features import online_feature_store
from orchestration.resources import VidrecResource
from serving.served_log.feature_files import (
    DEGRADED,
    KEY_COLUMNS,
    REQUEST_ID,
    USER_ID,
    VIDEO_ID,
    read_recent,
    stored_value,
)
from serving.served_log.feature_files import REQUEST_TIME as SERVED_AT
from vidrec.marts import Mart, mart_path
from vidrec.settings import VidrecSettings

SERVED_SKEW_GROUP = "deployment"  # a gate of promotion: shown beside champion_models
# The checks that gate promotion (orchestration/checks.py defines them, deployment.py reads them).
MATCH_CHECK = "served_features_match_offline"
DRIFT_CHECK = "served_features_drift"
SERVED, OFFLINE = "served:", "offline:"  # column prefixes of the comparison
COMPARED_KINDS = ("numeric", "categorical", "list")
# The request stages whose fallbacks feed the ranker other values (serving.recommender).
FEATURE_STAGES = ("user_features", "candidate_features")


def comparison_dir(settings: VidrecSettings) -> Path:
    return settings.artifacts_dir / "served_feature_comparison"


def comparison_path(settings: VidrecSettings) -> Path:
    return comparison_dir(settings) / "comparison.parquet"


def kinds_path(settings: VidrecSettings) -> Path:
    return comparison_dir(settings) / "kinds.json"


@asset(group_name=SERVED_SKEW_GROUP, deps=[online_feature_store], kinds={"feast"})
def served_feature_comparison(context: AssetExecutionContext, vidrec: VidrecResource) -> MaterializeResult:
    """The served-feature log's recent rows, each feature as served and as recomputed offline."""
    settings = vidrec.settings()
    served, logged_kinds = read_recent(settings.served_features_dir, settings.served_skew_window_days)
    store = feature_store(settings)
    stored = set(service_feature_columns(store, RANKER_SERVICE).all) - set(REQUEST_PASSTHROUGH_FEATURES)
    kinds = {name: kind for name, kind in logged_kinds.items() if kind in COMPARED_KINDS and name in stored}
    own, recomputable = _engagement_keys(settings, served)
    degraded = served[DEGRADED].fillna("").astype(str).map(_fed_fallback_features)
    compared = recomputable & ~degraded
    kept = served[compared].reset_index(drop=True)
    comparison = _side_by_side(kept, own[compared].reset_index(drop=True), kinds, store)
    comparison_dir(settings).mkdir(parents=True, exist_ok=True)
    comparison.to_parquet(comparison_path(settings), index=False)
    kinds_path(settings).write_text(json.dumps(kinds, indent=2, sort_keys=True))
    metadata = {
        "served_rows": len(served),
        "compared_rows": len(comparison),
        "not_recomputable": int((~recomputable).sum()),
        "degraded_rows": int((degraded & recomputable).sum()),
        "requests": int(served[REQUEST_ID].nunique()),
        "features_compared": len(kinds),
        "served_features_dir": str(settings.served_features_dir),
        "path": str(comparison_path(settings)),
    }
    if served.empty:
        metadata["note"] = ("nothing served yet: the served-feature log is empty (the service logs "
                            f"{settings.served_features_sample_share:.0%} of ranked requests)")
    else:
        metadata["requests_from"], metadata["requests_until"] = (str(served[SERVED_AT].min()),
                                                                   str(served[SERVED_AT].max()))
    context.log.info("served-feature comparison: %s", metadata)
    return MaterializeResult(metadata={**metadata, "features": MetadataValue.json(kinds)})


def _fed_fallback_features(degraded: str) -> bool:
    """Whether a request's fallbacks changed what the ranker was fed (not only which candidates)."""
    return any(entry.split(":", 1)[0] in FEATURE_STAGES for entry in degraded.split(",") if entry)


def _engagement_keys(settings: VidrecSettings, served: pd.DataFrame) -> tuple[pd.Series, pd.Series]:
    """(own, recomputable) per row: whether the offline store holds the request's own engagement
    row, stamped no later than the request; whether it can give the state the request saw (its own
    row, a `next:<user>` row stamped no later than the request, or no row at all, as serving found
    none).

    A request's own row is stamped at its first logged impression. When a client logs the
    impressions later than the service answered (its clock, or its own delay), that row is stamped
    after the request: a point-in-time join at the request's time cannot reach it, and it holds
    events the service never saw, so it does not stand for the request."""
    if served.empty:
        return pd.Series(False, index=served.index), pd.Series(True, index=served.index)
    states = pd.read_parquet(mart_path(settings.marts_dir, Mart.USER_ENGAGEMENT_HISTORY),
                             columns=["request_id", "event_timestamp"])
    stamped = dict(zip(states["request_id"], entity_timestamps(states["event_timestamp"]), strict=True))
    served_at = entity_timestamps(served[SERVED_AT])
    own_stamp = pd.to_datetime(served[REQUEST_ID].map(lambda request: stamped.get(request, pd.NaT)), utc=True)
    own = own_stamp.notna() & (own_stamp <= served_at)
    next_stamp = served[USER_ID].map(lambda user: stamped.get(next_request_id(user), pd.NaT))
    next_stamp = pd.to_datetime(next_stamp, utc=True)
    # no row at all: the store held nothing for the request, online or offline (both give nulls)
    return own, own | next_stamp.isna() | (next_stamp <= served_at)


def _side_by_side(served: pd.DataFrame, own: pd.Series, kinds: dict[str, str], store) -> pd.DataFrame:
    """Keys, then `served:<feature>` and `offline:<feature>` for each of `kinds`."""
    keys = served[[name for name in KEY_COLUMNS if name in served.columns]]
    columns = {name: served[name] if name in served.columns else None for name in kinds}
    if served.empty:
        return keys.assign(**{SERVED + name: column for name, column in columns.items()},
                           **{OFFLINE + name: column for name, column in columns.items()})
    offline = historical_features(store, _examples(served, own), store.get_feature_service(RANKER_SERVICE))
    return pd.concat(
        [keys,
         pd.DataFrame({SERVED + name: served[name] for name in kinds}),
         pd.DataFrame({OFFLINE + name: offline[name].map(lambda value, kind=kind: stored_value(value, kind))
                       if name in offline.columns else None for name, kind in kinds.items()})],
        axis=1,
    )


def _examples(served: pd.DataFrame, own: pd.Series) -> pd.DataFrame:
    """Entity rows at each request's time, keyed on the request's own engagement row where the
    store holds it (`own`), with the request data the on-demand features read."""
    return pd.DataFrame({
        USER_ID: served[USER_ID].astype("int64"),
        VIDEO_ID: served[VIDEO_ID].astype("int64"),
        "request_id": served[REQUEST_ID].where(own, served[USER_ID].map(next_request_id)),
        TIMESTAMP: served[SERVED_AT],
        REQUEST_TIME: served[REQUEST_TIME].astype(float),
        RETRIEVAL_SOURCE: served[RETRIEVAL_SOURCE].astype(object),
        RETRIEVAL_SOURCE_SCORE: served[RETRIEVAL_SOURCE_SCORE].astype(float),
    })
