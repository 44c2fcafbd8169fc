"""Great Expectations suites run as blocking Dagster asset checks.

A failing check stops the assets downstream of the checked asset in the same run, and its
metadata shows the failing expectations with example values, so the UI says what is wrong.
"""


import pandas as pd
from dagster import AssetCheckExecutionContext, AssetCheckResult, AssetCheckSeverity, MetadataValue, asset_check

from expectations.raw_logs import validate_raw_table
from expectations.skew import compare_feature_distributions
from expectations.training_frames import validate_ranking_frame, validate_retrieval_frame
from expectations.validation import ValidationOutcome
from feature_repo.engagement import (
    CANDIDATE_SOURCE_SCORE,
    DAYS_SINCE_FEATURES,
    FRACTION_FEATURES,
    REQUEST_PASSTHROUGH_FEATURES,
    REQUEST_TIME,
    RETRIEVAL_SOURCE,
    RETRIEVAL_SOURCE_SCORE,
)
from feature_repo.entities import next_request_id
from feature_repo.feature_columns import service_feature_columns
from feature_repo.on_demand import unix_seconds
from feature_repo.store import feature_store
from feature_repo.training_frames import historical_features
from orchestration.assets.features import (
    RANKER_SERVICE,
    event_time_range,
    online_feature_store,
    ranking_frame_path,
    ranking_training_frame,
    retrieval_frame_path,
    retrieval_training_frame,
)
from orchestration.assets.raw import RAW_ASSET_KEYS
from orchestration.resources import VidrecResource
from vidrec.rawlog import read_raw_table

SKEW_SAMPLE_ENTITIES = 300


def _result(outcome: ValidationOutcome) -> AssetCheckResult:
    return AssetCheckResult(
        passed=outcome.success,
        severity=AssetCheckSeverity.ERROR,
        metadata={
            "suite": outcome.suite_name,
            "failed_expectations": len(outcome.failures),
            "report": MetadataValue.md(outcome.as_markdown()),
        },
    )


def _raw_check(table_name: str):
    @asset_check(
        asset=RAW_ASSET_KEYS[table_name],
        name=f"raw_{table_name}_expectations",
        blocking=True,
        description=f"Great Expectations suite for raw {table_name}: schema, keys, value ranges.",
    )
    def _check(context: AssetCheckExecutionContext, vidrec: VidrecResource) -> AssetCheckResult:
        frame = read_raw_table(table_name, vidrec.settings().raw_dir)
        return _result(validate_raw_table(table_name, frame))

    return _check


# Null by design where there is nothing to measure: recencies and fractions of never-watched
# creators / categories / videos, and source scores of logs that record none (MovieLens).
OPTIONAL_RANKER_FEATURES = (*DAYS_SINCE_FEATURES, *FRACTION_FEATURES, CANDIDATE_SOURCE_SCORE)

raw_log_checks = [_raw_check(name) for name in RAW_ASSET_KEYS]


@asset_check(asset=ranking_training_frame, blocking=True,
             description="Labels, feature coverage and ranges of the ranking frame.")
def ranking_training_frame_expectations(vidrec: VidrecResource) -> AssetCheckResult:
    settings = vidrec.settings()
    frame = pd.read_parquet(ranking_frame_path(settings))
    columns = service_feature_columns(feature_store(settings), RANKER_SERVICE)
    # Every stored numeric ranker feature is a count, a duration or an age (>= 0) or a rate in [0, 1].
    rates = [name for name in columns.numeric if any(word in name for word in ("ctr", "rate", "fraction"))]
    non_negative = [name for name in columns.numeric if name not in rates]
    return _result(
        validate_ranking_frame(
            frame, count_features=non_negative, rate_features=rates, optional_features=OPTIONAL_RANKER_FEATURES
        )
    )


@asset_check(asset=retrieval_training_frame, blocking=True, description="Rollback labels, histories and example ages.")
def retrieval_training_frame_expectations(vidrec: VidrecResource) -> AssetCheckResult:
    settings = vidrec.settings()
    frame = pd.read_parquet(retrieval_frame_path(settings))
    return _result(validate_retrieval_frame(frame, max_history_length=settings.history_length))


@asset_check(
    asset=online_feature_store,
    blocking=True,
    additional_deps=[ranking_training_frame],
    description="Training-serving skew: online ranker features vs the offline store at the same instant "
                "(PSI, null rates).",
)
def online_features_match_offline(vidrec: VidrecResource) -> AssetCheckResult:
    """What serving reads now must match what a point-in-time join would give for "now".

    Both sides are read through the one `ranker_features` service for the same sampled
    (user, video) pairs, so any gap is skew introduced by materialization (stale or partial
    online store, type coercions), not drift over time.
    """
    settings = vidrec.settings()
    store = feature_store(settings)
    columns = service_feature_columns(store, RANKER_SERVICE)
    # the request data the on-demand view needs travels with each pair, as it does at serving
    training = pd.read_parquet(
        ranking_frame_path(settings), columns=["user_id", "video_id", RETRIEVAL_SOURCE, RETRIEVAL_SOURCE_SCORE]
    )
    sample = training.drop_duplicates(["user_id", "video_id"]).sample(
        n=min(SKEW_SAMPLE_ENTITIES, len(training)), random_state=0
    )
    _, latest = event_time_range(settings)
    sample[REQUEST_TIME] = unix_seconds(pd.Timestamp(latest))
    sample["request_id"] = sample["user_id"].map(next_request_id)  # the request serving would answer
    offline = historical_features(
        store, sample.assign(event_timestamp=pd.Timestamp(latest)), store.get_feature_service(RANKER_SERVICE)
    )
    entity_rows = [
        {
            "request_id": row.request_id,
            "user_id": int(row.user_id),
            "video_id": int(row.video_id),
            REQUEST_TIME: float(getattr(row, REQUEST_TIME)),
            RETRIEVAL_SOURCE: getattr(row, RETRIEVAL_SOURCE),
            RETRIEVAL_SOURCE_SCORE: getattr(row, RETRIEVAL_SOURCE_SCORE),
        }
        for row in sample.itertuples(index=False)
    ]
    online = pd.DataFrame(
        store.get_online_features(features=store.get_feature_service(RANKER_SERVICE), entity_rows=entity_rows).to_dict()
    )
    # what the request itself carries (the retrieval source and score) cannot drift in storage
    stored = [name for name in (*columns.numeric, *columns.categorical) if name not in REQUEST_PASSTHROUGH_FEATURES]
    outcome = compare_feature_distributions(
        offline, online, numeric_features=[name for name in columns.numeric if name in stored],
        categorical_features=[name for name in columns.categorical if not name.endswith("_id") and name in stored],
    )
    return _result(outcome)


all_checks = [
    *raw_log_checks,
    ranking_training_frame_expectations,
    retrieval_training_frame_expectations,
    online_features_match_offline,
]
