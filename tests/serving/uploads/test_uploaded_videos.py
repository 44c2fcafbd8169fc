"""Accepted uploads: one row per video, and the features they have before anyone watched them."""

from __future__ import annotations

import pandas as pd
import pytest

from serving.uploads.uploaded_videos import UploadedVideos
from tests.serving.uploads.video_rows import video_row

UPLOADED_AT = pd.Timestamp("2026-01-10 12:00").timestamp()  # video_row's upload time, Unix seconds
DAY_SECONDS = 86_400


def test_a_video_is_accepted_once_in_the_order_it_came():
    uploads = UploadedVideos()

    first = uploads.add(pd.DataFrame([video_row(3), video_row(1)]))
    again = uploads.add(pd.DataFrame([video_row(1, creator_id=99), video_row(2)]))

    assert first.tolist() == [3, 1] and again.tolist() == [2]
    assert uploads.catalog()["video_id"].tolist() == [3, 1, 2]
    assert uploads.catalog()["creator_id"].tolist() == [7, 7, 7]  # the first row of video 1 stays
    assert 2 in uploads and 4 not in uploads and len(uploads) == 3


def test_features_are_the_raw_columns_and_the_age_at_the_request_clock():
    uploads = UploadedVideos()
    uploads.add(pd.DataFrame([video_row(3, creator_id=12, category="news", duration_seconds=61.5)]))

    features = uploads.video_features([3, 8], now_unix_seconds=UPLOADED_AT + 1.5 * DAY_SECONDS)

    assert features["creator_id"] == [12, None]
    assert features["category"] == ["news", None]
    assert features["duration_seconds"] == [61.5, None]
    assert features["video_age_days"][0] == pytest.approx(1.5)
    assert features["video_age_days"][1] is None


def test_an_upload_after_the_request_clock_is_zero_days_old_as_the_daily_mart_says():
    uploads = UploadedVideos()
    uploads.add(pd.DataFrame([video_row(3)]))

    assert uploads.video_features([3], now_unix_seconds=UPLOADED_AT - DAY_SECONDS)["video_age_days"] == [0.0]
