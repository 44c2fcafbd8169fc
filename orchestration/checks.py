"""Great Expectations suites run as blocking Dagster asset checks.

A failing check stops the assets downstream of the checked asset in the same run, and its
metadata shows the failing expectations with example values, so the UI says what is wrong.
"""

import json

import pandas as pd
from dagster import AssetCheckExecutionContext, AssetCheckResult, AssetCheckSeverity, MetadataValue, asset_check

from expectations.raw_logs import validate_raw_table
from expectations.served_skew import compare_served_features
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
from orchestration.assets.served_skew import (
    DRIFT_CHECK,
    MATCH_CHECK,
    OFFLINE,
    SERVED,
    comparison_path,
    kinds_path,
    served_feature_comparison,
)
from orchestration.assets.validated import VALIDATED_ASSET_KEYS
from orchestration.assets.validated_files import read_validated_table
from orchestration.resources import VidrecResource

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


def _validated_check(table_name: str):
    """The raw table's whole suite, on its validated rows (every day): the row rules quarantine
    every row that would fail it, so a failure here is a rule the row level lacks (or a key
    repeated across days), and blocks as the suite on raw data did."""

    @asset_check(
        asset=VALIDATED_ASSET_KEYS[table_name],
        name=f"validated_{table_name}_expectations",
        blocking=True,
        description=f"Great Expectations suite for {table_name} on the validated layer: schema, keys, value ranges.",
    )
    def _check(context: AssetCheckExecutionContext, vidrec: VidrecResource) -> AssetCheckResult:
        frame = read_validated_table(vidrec.settings(), table_name).to_pandas()
        return _result(validate_raw_table(table_name, frame))

    return _check


# Null by design where there is nothing to measure: recencies and fractions of never-watched
# creators / categories / videos, and source scores of logs that record none (MovieLens).
OPTIONAL_RANKER_FEATURES = (*DAYS_SINCE_FEATURES, *FRACTION_FEATURES, CANDIDATE_SOURCE_SCORE)

validated_table_checks = [_validated_check(name) for name in VALIDATED_ASSET_KEYS]


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


def _served_comparison(settings) -> tuple[pd.DataFrame, dict[str, str]]:
    return pd.read_parquet(comparison_path(settings)), json.loads(kinds_path(settings).read_text())


def _nothing_to_judge(note: str, rows: int) -> AssetCheckResult:
    """A pass that says why there was nothing to judge (a fresh install has served nothing)."""
    return AssetCheckResult(passed=True, severity=AssetCheckSeverity.ERROR,
                            metadata={"served_rows": rows, "note": note})


def _served_result(outcome: ValidationOutcome, worst: dict[str, float]) -> AssetCheckResult:
    """`_result` plus what the UI shows first: the worst features and some mismatched rows."""
    examples = [f"{failure['column']}: {example}" for failure in outcome.failures
                for example in failure["unexpected_examples"][:3]]
    return AssetCheckResult(passed=outcome.success, severity=AssetCheckSeverity.ERROR, metadata={
        **_result(outcome).metadata,
        "worst_features": MetadataValue.md(
            "| feature | value |\n|---|---|\n" + "".join(f"| {name} | {value} |\n" for name, value in worst.items())),
        "worst": ", ".join(f"{name} {value}" for name, value in list(worst.items())[:3]),
        "examples": MetadataValue.md("\n".join(f"- {example}" for example in examples) or "none"),
    })


@asset_check(asset=served_feature_comparison, name=MATCH_CHECK, blocking=True,
             description="The ranker's inputs as served vs the offline store at each request's time: mismatch "
                         "rate per feature (numbers within a tolerance, categories and bags exactly). Gates "
                         "promotion.")
def served_features_match_offline(vidrec: VidrecResource) -> AssetCheckResult:
    settings = vidrec.settings()
    comparison, kinds = _served_comparison(settings)
    if comparison.empty:
        return _nothing_to_judge("nothing served yet (or nothing recomputable): no served features to compare", 0)
    keys = ["request_id", "user_id", "video_id"]  # named in each example row
    outcome = compare_served_features(
        comparison[[*keys, *(SERVED + name for name in kinds)]].rename(
            columns=lambda column: column.removeprefix(SERVED)),
        comparison[[OFFLINE + name for name in kinds]].rename(columns=lambda column: column.removeprefix(OFFLINE)),
        kinds, key_columns=keys,
        abs_tolerance=settings.served_skew_abs_tolerance, rel_tolerance=settings.served_skew_rel_tolerance,
        max_mismatch_rate=settings.served_skew_max_mismatch_rate,
    )
    worst = {name: f"{rate:.1%} mismatched" for name, rate in list(outcome.statistics["mismatch_rate"].items())[:5]}
    return _served_result(outcome, worst)


@asset_check(asset=served_feature_comparison, name=DRIFT_CHECK, blocking=True,
             additional_deps=[ranking_training_frame],
             description="Drift of the served ranker inputs from the last ranking training frame (PSI, KS, null "
                         "rates). Gates promotion.")
def served_features_drift(vidrec: VidrecResource) -> AssetCheckResult:
    settings = vidrec.settings()
    comparison, kinds = _served_comparison(settings)
    if len(comparison) < settings.served_skew_min_rows:
        return _nothing_to_judge(
            f"{len(comparison)} served rows, fewer than served_skew_min_rows={settings.served_skew_min_rows}: "
            "too few to judge drift", len(comparison))
    served = comparison[[SERVED + name for name in kinds]].rename(columns=lambda column: column.removeprefix(SERVED))
    numeric = [name for name, kind in kinds.items() if kind == "numeric"]
    # ids are identities: their distribution moves with the catalog, not with a serving fault
    categorical = [name for name, kind in kinds.items() if kind == "categorical" and not name.endswith("_id")]
    training = pd.read_parquet(ranking_frame_path(settings), columns=[*numeric, *categorical])
    outcome = compare_feature_distributions(
        training, served, numeric_features=numeric, categorical_features=categorical,
        max_psi=settings.served_skew_max_psi, max_null_rate_gap=settings.served_skew_max_null_rate_gap,
        max_ks=settings.served_skew_max_ks,
        # a feature serving never fills (the days since watching a candidate: watched videos are not
        # served) is judged by its null-rate gap, which also catches one stuck at null
        require_values=False,
    )
    psi, ks = outcome.statistics["psi"], outcome.statistics["ks"]
    worst_names = sorted(psi, key=lambda name: -max(psi[name] or 0.0, ks.get(name, 0.0)))[:5]
    worst = {name: f"PSI {psi[name]}, KS {ks.get(name, '-')}" for name in worst_names}
    return _served_result(outcome, worst)


all_checks = [
    *validated_table_checks,
    ranking_training_frame_expectations,
    retrieval_training_frame_expectations,
    online_features_match_offline,
    served_features_match_offline,
    served_features_drift,
]
