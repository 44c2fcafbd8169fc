"""A row that breaks the raw log's rules for videos is skipped with a reason naming it; the rest serve."""

from __future__ import annotations

from datetime import datetime

import pandas as pd
import pytest

from serving.uploads.validation import servable_uploads
from tests.serving.uploads.video_rows import video_row

NOW = datetime(2026, 1, 11)


def _skipped(rows: list[dict]) -> list[str]:
    return [str(skip) for skip in servable_uploads(pd.DataFrame(rows), NOW)[1]]


def test_valid_rows_serve_with_integer_ids():
    servable, skipped = servable_uploads(pd.DataFrame([video_row(1), video_row(2, title_tokens=[])]), NOW)

    assert skipped == []
    assert servable["video_id"].tolist() == [1, 2]
    assert servable["video_id"].dtype == "int64" and servable["creator_id"].dtype == "int64"


@pytest.mark.parametrize(("overrides", "reason"), [
    ({"video_id": None}, "video_id None: video_id is missing"),
    ({"video_id": -4}, "video_id -4: video_id -4 is not positive"),
    ({"creator_id": None}, "video_id 3: creator_id is missing"),
    ({"creator_id": 0}, "video_id 3: creator_id 0 is not positive"),
    ({"category": "cats"}, "video_id 3: category 'cats' is not one of the schema's categories (or 'unknown')"),
    ({"duration_seconds": 0.0}, "video_id 3: duration_seconds 0 is not a positive number of seconds"),
    ({"duration_seconds": float("nan")}, "video_id 3: duration_seconds nan is not a positive number of seconds"),
    ({"upload_time": None}, "video_id 3: upload_time is missing"),
    ({"upload_time": pd.Timestamp("1850-06-01")}, "video_id 3: upload_time 1850-06-01 00:00:00 is before 1880"),
    ({"upload_time": pd.Timestamp("2026-01-12")},
     "video_id 3: upload_time 2026-01-12 00:00:00 is in the future (now is 2026-01-11 00:00:00)"),
    ({"title_tokens": None}, "video_id 3: title_tokens is missing (an empty list is fine)"),
])
def test_each_broken_rule_is_named_with_the_value(overrides, reason):
    assert _skipped([video_row(1), {**video_row(3), **overrides}]) == [reason]


def test_a_minute_of_clock_skew_is_no_future():
    assert _skipped([video_row(3, upload_time=pd.Timestamp(NOW) + pd.Timedelta(seconds=50))]) == []


def test_a_row_breaking_several_rules_gets_the_first_reason_once():
    assert _skipped([video_row(3, creator_id=None, duration_seconds=-1.0)]) == ["video_id 3: creator_id is missing"]


def test_a_video_listed_twice_keeps_its_earliest_upload():
    later, earlier = video_row(5, creator_id=1), video_row(5, creator_id=2, upload_time=pd.Timestamp("2026-01-09"))

    servable, skipped = servable_uploads(pd.DataFrame([later, earlier]), NOW)

    assert servable[["video_id", "creator_id"]].values.tolist() == [[5, 2]]
    assert [str(skip) for skip in skipped] == ["video_id 5: listed more than once; the earliest upload is kept"]
