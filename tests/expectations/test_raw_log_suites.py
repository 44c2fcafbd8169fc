from datetime import datetime

import pandas as pd
import pytest

from expectations.raw_logs import raw_suite, validate_raw_table
from vidrec.schema import RAW_TABLES

NOW = datetime(2024, 6, 1)  # after every event in the fixtures


def _failure(outcome, expectation, column):
    matches = [
        f for f in outcome.failures if f["expectation"] == expectation and f["column"] == column
    ]
    assert matches, f"no {expectation} failure on {column}: {outcome.failures}"
    return matches[0]


def test_clean_watches_pass(clean_watches):
    outcome = validate_raw_table("watches", clean_watches, now=NOW)
    assert outcome.success, outcome.as_markdown()
    assert outcome.failures == []
    assert outcome.statistics["row_count"] == 4
    assert outcome.statistics["unsuccessful_expectations"] == 0


def test_clean_impressions_pass(clean_impressions):
    outcome = validate_raw_table("impressions", clean_impressions, now=NOW)
    assert outcome.success, outcome.as_markdown()


def test_negative_watch_seconds_fails_naming_column_and_value(clean_watches):
    clean_watches.loc[2, "watch_seconds"] = -5.0
    outcome = validate_raw_table("watches", clean_watches, now=NOW)
    assert not outcome.success
    failure = _failure(outcome, "expect_column_values_to_be_between", "watch_seconds")
    assert failure["unexpected_examples"] == [-5.0]
    assert failure["observed"].startswith("1 of 4 rows")
    assert outcome.failing_columns() == ["watch_seconds"]
    assert "watch_seconds" in outcome.as_markdown() and "-5.0" in outcome.as_markdown()


def test_unknown_surface_fails(clean_impressions):
    clean_impressions.loc[1, "surface"] = "shorts"
    outcome = validate_raw_table("impressions", clean_impressions, now=NOW)
    failure = _failure(outcome, "expect_column_values_to_be_in_set", "surface")
    assert failure["unexpected_examples"] == ["shorts"]
    assert failure["expected"]["value_set"] == ["home", "watch_next", "search"]


def test_source_score_outside_a_rank_score_fails(clean_impressions):
    clean_impressions.loc[0, "source_score"] = 3.7  # a raw source score, not 1 / (1 + rank)
    outcome = validate_raw_table("impressions", clean_impressions, now=NOW)
    assert outcome.failing_columns() == ["source_score"]


def test_missing_column_fails_with_clear_message(clean_watches):
    outcome = validate_raw_table("watches", clean_watches.drop(columns=["liked"]), now=NOW)
    assert not outcome.success
    column_set = _failure(outcome, "expect_table_columns_to_match_set", None)
    assert column_set["observed"] == {"missing": ["liked"]}
    not_null = _failure(outcome, "expect_column_values_to_not_be_null", "liked")
    assert not_null["observed"].startswith("missing column(s) ['liked']")


def test_future_and_duplicate_events_fail(clean_watches):
    clean_watches.loc[3, "watch_time"] = pd.Timestamp("2030-01-01")
    duplicated = pd.concat([clean_watches, clean_watches.iloc[[0]]], ignore_index=True)
    outcome = validate_raw_table("watches", duplicated, now=NOW)
    timestamp = _failure(outcome, "expect_column_values_to_be_between", "watch_time")
    assert timestamp["unexpected_examples"] == ["2030-01-01T00:00:00"]
    unique = _failure(
        outcome, "expect_compound_columns_to_be_unique", "user_id, video_id, watch_time"
    )
    assert len(unique["unexpected_examples"]) == 2  # the row and its copy


def test_non_positive_id_and_null_flag_fail(clean_watches):
    clean_watches.loc[0, "user_id"] = 0
    clean_watches["liked"] = clean_watches["liked"].astype(object)
    clean_watches.loc[1, "liked"] = None
    outcome = validate_raw_table("watches", clean_watches, now=NOW)
    assert _failure(outcome, "expect_column_values_to_be_between", "user_id")[
        "unexpected_examples"
    ] == [0]
    _failure(outcome, "expect_column_values_to_not_be_null", "liked")


@pytest.mark.parametrize("table_name", sorted(RAW_TABLES))
def test_every_raw_table_has_a_suite_over_its_schema_columns(table_name):
    suite = raw_suite(table_name, now=datetime(2024, 1, 1))
    column_set = [e for e in suite.expectations if e.expectation_type.endswith("_match_set")]
    assert column_set[0].column_set == RAW_TABLES[table_name].schema.names


def test_unknown_table_is_rejected_with_the_valid_names():
    with pytest.raises(ValueError, match=r"unknown raw table 'clicks'.*watches"):
        raw_suite("clicks")


def test_old_publication_dates_pass_but_old_events_do_not():
    from datetime import datetime

    import pandas as pd

    from expectations.raw_logs import validate_raw_table

    videos = pd.DataFrame(
        {"video_id": [1], "creator_id": [1], "category": ["film"], "duration_seconds": [7200.0],
         "upload_time": [datetime(1922, 1, 1)], "title_tokens": [["nosferatu"]]}
    )
    assert validate_raw_table("videos", videos, now=datetime(2026, 1, 1)).success

    subscriptions = pd.DataFrame({"user_id": [1], "creator_id": [1], "subscribed_time": [datetime(1922, 1, 1)]})
    outcome = validate_raw_table("subscriptions", subscriptions, now=datetime(2026, 1, 1))
    assert not outcome.success
    assert "subscribed_time" in outcome.failing_columns()
