"""KuaiRand import on a tiny fixture in the KuaiRand layout, mapped value by value."""

from __future__ import annotations

import shutil
from pathlib import Path

import pandas as pd
import pytest

from vidrec.importers import DatasetImportError, load_kuairand, write_imported
from vidrec.rawlog import RawManifest, read_raw_table

FIXTURE = Path(__file__).parent / "fixtures" / "kuairand"


@pytest.fixture(scope="module")
def kuairand():
    return load_kuairand(FIXTURE)


def test_every_log_row_is_an_impression_in_its_request(kuairand):
    impressions = kuairand.frames["impressions"]
    assert kuairand.source == "kuairand"
    assert len(impressions) == 5  # 4 standard + 1 random exposures
    first_request = impressions[impressions["request_id"] == "kuairand-0-1649383200000-1"]
    assert first_request["video_id"].tolist() == [11, 12]  # KuaiRand ids 10, 11 shifted by one
    assert first_request["position"].tolist() == [0, 1]
    assert set(impressions["surface"]) == {"home"}
    assert first_request["impression_time"].iloc[0] == pd.Timestamp(1649383200000, unit="ms")


def test_random_exposures_are_logged_as_exploration_and_the_rest_without_a_source(kuairand):
    impressions = kuairand.frames["impressions"]
    assert impressions["source"].value_counts(dropna=False).to_dict() == {None: 4, "exploration": 1}
    assert impressions["source_score"].isna().all()


def test_clicks_become_watches_with_play_time_and_feedback(kuairand):
    watches = kuairand.frames["watches"].set_index(["user_id", "video_id"])
    assert len(watches) == 3
    assert watches.loc[(1, 11), ["watch_seconds", "liked", "shared", "disliked"]].tolist() == [15.0, True, False, False]
    assert watches.loc[(2, 11), ["watch_seconds", "liked", "shared", "disliked"]].tolist() == [5.2, False, True, False]
    assert watches.loc[(2, 13), ["watch_seconds", "liked", "shared", "disliked"]].tolist() == [0.8, False, False, True]


def test_follow_subscribes_to_the_videos_author(kuairand):
    subscriptions = kuairand.frames["subscriptions"]
    assert subscriptions.to_dict("records") == [
        {"user_id": 2, "creator_id": 101, "subscribed_time": pd.Timestamp(1649386800000, unit="ms")}
    ]


def test_exposed_videos_get_author_duration_upload_time_and_tag_tokens(kuairand):
    videos = kuairand.frames["videos"].set_index("video_id")
    assert sorted(videos.index) == [11, 12, 13]  # KuaiRand video 13 was never exposed
    assert videos["creator_id"].to_dict() == {11: 101, 12: 102, 13: 101}
    assert videos["duration_seconds"].to_dict() == {11: 20.0, 12: 30.5, 13: 9.0}  # 13: from duration_ms
    assert videos.loc[12, "upload_time"] == pd.Timestamp("2022-04-01")
    assert videos.loc[13, "upload_time"] == pd.Timestamp(1649466000000, unit="ms")  # no upload_dt: first exposure
    assert videos.loc[12, "title_tokens"] == ["tag_22", "tag_49"]
    assert set(videos["category"]) == {"unknown"}


def test_users_are_those_with_events(kuairand):
    users = kuairand.frames["users"].set_index("user_id")
    assert sorted(users.index) == [1, 2, 3]
    assert users.loc[3, "signup_time"] == pd.Timestamp(1650600000000, unit="ms")
    assert (users.loc[1, ["device", "country", "age_bucket", "gender"]].tolist()
            == ["mobile", "unknown", "unknown", "unknown"])
    assert any("1 user(s) of user_features_pure.csv without any logged event" in note for note in kuairand.notes)


def test_import_writes_every_table_and_the_manifest(tmp_path, kuairand):
    write_imported(kuairand, tmp_path)
    manifest = RawManifest.read(tmp_path)
    assert manifest.source == "kuairand"
    assert manifest.row_counts == {
        "users": 3, "videos": 3, "impressions": 5, "watches": 3, "searches": 0, "subscriptions": 1,
    }  # fmt: skip
    assert len(read_raw_table("impressions", tmp_path)) == 5


def test_missing_log_column_names_the_file_and_the_columns(tmp_path):
    shutil.copytree(FIXTURE, tmp_path / "data")
    log_path = tmp_path / "data" / "log_random_4_22_to_5_08_pure.csv"
    pd.read_csv(log_path).drop(columns=["is_click", "tab"]).to_csv(log_path, index=False)
    with pytest.raises(DatasetImportError,
                       match=r"log_random_4_22_to_5_08_pure\.csv: missing column\(s\) \['is_click', 'tab'\]"):
        load_kuairand(tmp_path)  # PATH/data is found too


def test_missing_video_features_file_is_named(tmp_path):
    shutil.copytree(FIXTURE, tmp_path, dirs_exist_ok=True)
    (tmp_path / "video_features_basic_pure.csv").unlink()
    with pytest.raises(DatasetImportError, match=r"no video_features_basic_\*\.csv file found"):
        load_kuairand(tmp_path)


def test_a_watch_follows_its_impression_so_no_request_sees_its_own_click(kuairand):
    impressions = kuairand.frames["impressions"]
    watches = kuairand.frames["watches"]
    shown = impressions.groupby(["user_id", "video_id"])["impression_time"].min()
    watched = watches.set_index(["user_id", "video_id"])["watch_time"]
    assert len(watched) > 0
    assert (watched > shown.reindex(watched.index)).all()
    assert (watched - shown.reindex(watched.index) == pd.Timedelta(seconds=1)).all()
