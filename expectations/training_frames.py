"""Suites for the training frames the models read (see docs/architecture.md, dbt marts).

Ranking frame: one row per impression with the label (`clicked`, `watch_seconds`), the temporal
`split` and whatever feature columns the ranker was joined with. Its checks catch the mistakes
that silently ruin a ranker: a label that leaks (watch time on a non-click), a degenerate click
rate, a missing split, features that arrive mostly null or out of range.

Retrieval frame: one row per label watch with the user's history before it. Its checks catch
empty histories, negative example ages and a history that reaches past the label (leakage).
"""

from __future__ import annotations

from collections.abc import Sequence, Sized

import great_expectations as gx
import great_expectations.expectations as gxe
import pandas as pd
from great_expectations.expectations import Expectation
from great_expectations.expectations.row_conditions import Column

from expectations.validation import ValidationOutcome, validate_frame

SPLITS = ("train", "holdout")
RANKING_COLUMNS = ("user_id", "video_id", "event_timestamp", "clicked", "watch_seconds", "split")
RETRIEVAL_COLUMNS = ("user_id", "label_video_id", "history_video_ids", "example_age_days", "split")
# Derived by `validate_retrieval_frame` before validation: GX's value-length expectation measures
# the *string form* of a value, so it cannot tell an empty list from a short one.
HISTORY_COUNT_COLUMN = "history_video_count"


def ranking_suite(
    numeric_features: Sequence[str] = (),
    count_features: Sequence[str] = (),
    rate_features: Sequence[str] = (),
    mostly: float = 0.95,
    min_click_rate: float = 0.001,
    max_click_rate: float = 0.9,
    optional_features: Sequence[str] = (),
) -> gx.ExpectationSuite:
    """The ranking training frame's suite.

    Every feature in `numeric_features`, `count_features` and `rate_features` must be present and
    non-null in at least `mostly` of rows, except `optional_features`, which are null by design
    where there is nothing to measure (days since the user last watched a creator they never
    watched); counts must be ≥ 0 and rates (ctr, like rate, watch fraction) within [0, 1].
    Extra columns (request_id, surface, ...) are allowed.
    """
    features = list(dict.fromkeys([*numeric_features, *count_features, *rate_features]))
    expectations: list[Expectation] = [
        gxe.ExpectTableColumnsToMatchSet(
            column_set=[*RANKING_COLUMNS, *features], exact_match=False
        ),
        *_id_expectations(("user_id", "video_id")),
        gxe.ExpectColumnValuesToNotBeNull(column="event_timestamp"),
        gxe.ExpectColumnValuesToNotBeNull(column="clicked"),
        gxe.ExpectColumnValuesToBeInSet(column="clicked", value_set=[True, False]),
        gxe.ExpectColumnMeanToBeBetween(
            column="clicked", min_value=min_click_rate, max_value=max_click_rate
        ),
        gxe.ExpectColumnValuesToNotBeNull(column="watch_seconds"),
        gxe.ExpectColumnValuesToBeBetween(column="watch_seconds", min_value=0),
        # Watch time exists only for clicks; anything else is the label leaking into the frame.
        gxe.ExpectColumnValuesToBeBetween(
            column="watch_seconds",
            min_value=0,
            max_value=0,
            row_condition=Column("clicked") == False,  # noqa: E712 (builds a GX condition)
        ),
        *_split_expectations(),
    ]
    for feature in features:
        if feature not in optional_features:
            expectations.append(gxe.ExpectColumnValuesToNotBeNull(column=feature, mostly=mostly))
    for feature in count_features:
        expectations.append(gxe.ExpectColumnValuesToBeBetween(column=feature, min_value=0))
    for feature in rate_features:
        expectations.append(
            gxe.ExpectColumnValuesToBeBetween(column=feature, min_value=0, max_value=1)
        )
    return gx.ExpectationSuite(name="ranking_training_frame", expectations=expectations)


def retrieval_suite(
    max_history_length: int = 50, check_history_before_label: bool = True
) -> gx.ExpectationSuite:
    """The retrieval training frame's suite (validate with `validate_retrieval_frame`).

    Histories hold 1..`max_history_length` videos. With `check_history_before_label`, the frame
    also needs `label_time` and `history_last_watch_time`, and every history must end strictly
    before its label.
    """
    required = [*RETRIEVAL_COLUMNS]
    if check_history_before_label:
        required += ["label_time", "history_last_watch_time"]
    expectations: list[Expectation] = [
        gxe.ExpectTableColumnsToMatchSet(column_set=required, exact_match=False),
        *_id_expectations(("user_id", "label_video_id")),
        gxe.ExpectColumnValuesToNotBeNull(column="history_video_ids"),
        gxe.ExpectColumnValuesToBeBetween(
            column=HISTORY_COUNT_COLUMN, min_value=1, max_value=max_history_length
        ),
        gxe.ExpectColumnValuesToNotBeNull(column="example_age_days"),
        gxe.ExpectColumnValuesToBeBetween(column="example_age_days", min_value=0),
        *_split_expectations(),
    ]
    if check_history_before_label:
        expectations += [
            gxe.ExpectColumnValuesToNotBeNull(column="label_time"),
            gxe.ExpectColumnPairValuesAToBeGreaterThanB(
                column_A="label_time", column_B="history_last_watch_time", or_equal=False
            ),
        ]
    return gx.ExpectationSuite(name="retrieval_training_frame", expectations=expectations)


def validate_ranking_frame(
    frame: pd.DataFrame,
    numeric_features: Sequence[str] = (),
    count_features: Sequence[str] = (),
    rate_features: Sequence[str] = (),
    mostly: float = 0.95,
    min_click_rate: float = 0.001,
    max_click_rate: float = 0.9,
    optional_features: Sequence[str] = (),
) -> ValidationOutcome:
    suite = ranking_suite(
        numeric_features, count_features, rate_features, mostly, min_click_rate, max_click_rate, optional_features
    )
    return validate_frame(frame, suite)


def validate_retrieval_frame(
    frame: pd.DataFrame, max_history_length: int = 50, check_history_before_label: bool = True
) -> ValidationOutcome:
    """Validate a retrieval frame; adds `history_video_count` to a copy of the frame first."""
    suite = retrieval_suite(max_history_length, check_history_before_label)
    return validate_frame(with_history_count(frame), suite)


def with_history_count(frame: pd.DataFrame) -> pd.DataFrame:
    """A shallow copy of `frame` with `history_video_count` (null where the history is null)."""
    if "history_video_ids" not in frame.columns:
        return frame
    counted = frame.copy(deep=False)
    counted[HISTORY_COUNT_COLUMN] = (
        frame["history_video_ids"]
        .map(lambda history: len(history) if isinstance(history, Sized) else None)
        .astype("Int64")
    )
    return counted


def _id_expectations(columns: Sequence[str]) -> list[Expectation]:
    expectations: list[Expectation] = []
    for column in columns:
        expectations += [
            gxe.ExpectColumnValuesToNotBeNull(column=column),
            gxe.ExpectColumnValuesToBeBetween(column=column, min_value=0, strict_min=True),
        ]
    return expectations


def _split_expectations() -> list[Expectation]:
    return [
        gxe.ExpectColumnValuesToNotBeNull(column="split"),
        gxe.ExpectColumnValuesToBeInSet(column="split", value_set=list(SPLITS)),
        gxe.ExpectColumnDistinctValuesToContainSet(column="split", value_set=list(SPLITS)),
    ]
