"""The video-feature cache knows an upload by its static features until the online store knows it."""

from __future__ import annotations

import math

import pandas as pd
import pytest

from serving.online_features import OnlineFeatureReader
from serving.uploads.uploaded_videos import UploadedVideos
from tests.serving.test_online_features import (  # noqa: F401 - store is the fixture these tests use
    DAY_SECONDS,
    FakeClock,
    _push,
    _video_row,
    store,
)
from tests.serving.uploads.video_rows import video_row

UPLOAD = 77  # a video the store's marts never had
UPLOADED_AT = DAY_SECONDS - 0.5 * 86_400  # half a day before the store's data clock


@pytest.fixture
def reader(store):  # noqa: F811 - the fixture imported above
    uploads = UploadedVideos()
    uploads.add(pd.DataFrame([video_row(UPLOAD, creator_id=3, category="news", duration_seconds=42.0,
                                        upload_time=pd.Timestamp(UPLOADED_AT, unit="s"))]))
    clock = FakeClock()
    features = OnlineFeatureReader(store, video_ttl_seconds=300, clock=clock,
                                   unknown_video_features=lambda ids: uploads.video_features(ids, DAY_SECONDS))
    return features, clock


def test_an_upload_has_its_creator_category_duration_and_age_and_no_counters_yet(reader):
    features, _ = reader

    frame = features.video_features([UPLOAD, 5])

    upload, known = frame.iloc[0], frame.iloc[1]
    assert (upload["creator_id"], upload["category"], upload["duration_seconds"]) == (3, "news", 42.0)
    assert upload["video_age_days"] == pytest.approx(0.5)
    assert math.isnan(upload["impressions_7d"]) and math.isnan(upload["ctr_7d"])
    assert (known["creator_id"], known["ctr_7d"]) == (1, 0.2)  # a video the store knows: the store's values


def test_a_refresh_keeps_them_and_the_stores_own_values_win_once_it_has_some(reader, store):  # noqa: F811
    features, clock = reader
    features.video_features([UPLOAD])

    clock.now = 301  # expired: read again, the store still knows nothing of it
    assert features.video_features([UPLOAD])["creator_id"].tolist() == [3]

    _push(store, "video_stats", [{**_video_row(UPLOAD, 0.3), "creator_id": 9}])  # the next materialization
    clock.now = 602
    refreshed = features.video_features([UPLOAD]).iloc[0]
    assert (refreshed["creator_id"], refreshed["ctr_7d"]) == (9, 0.3)
