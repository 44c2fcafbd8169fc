"""MovieLens import: the real ml-100k files and a tiny CSV-layout fixture, mapped value by value."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pandas as pd
import pytest

from vidrec.importers import DatasetImportError, load_movielens, write_imported
from vidrec.rawlog import RawManifest, read_raw_table, write_raw_table
from vidrec.schema import SUBSCRIPTIONS

PROJECT_ROOT = Path(__file__).resolve().parents[2]
ML100K_DIR = Path(os.environ.get("VIDREC_ML100K_DIR", PROJECT_ROOT.parent / "shared" / "data" / "ml-100k"))
CSV_FIXTURE = Path(__file__).parent / "fixtures" / "movielens_csv"

needs_ml100k = pytest.mark.skipif(
    not (ML100K_DIR / "u.data").is_file(),
    reason=f"ml-100k not found at {ML100K_DIR} (set VIDREC_ML100K_DIR to the directory holding u.data)",
)


@pytest.fixture(scope="module")
def ml100k():
    return load_movielens(ML100K_DIR)


@needs_ml100k
def test_ml100k_keeps_every_user_movie_and_rating(ml100k):
    assert ml100k.source == "movielens"
    assert ml100k.row_counts == {
        "users": 943, "videos": 1682, "impressions": ml100k.row_counts["impressions"], "watches": 100_000,
        "searches": 0, "subscriptions": 0,
    }  # fmt: skip
    # every rating is shown once in its sampled slate, beside up to 4 movies rated by others before it
    assert 99_000 * 5 <= ml100k.row_counts["impressions"] <= 100_000 * 5


@needs_ml100k
def test_ml100k_rating_becomes_a_watch(ml100k):
    watches = ml100k.frames["watches"]
    # u.data line 1: user 196 rated item 242 (Kolya) 3 stars at 881250949.
    row = watches[(watches["user_id"] == 196) & (watches["video_id"] == 242)].iloc[0]
    assert row["watch_time"] == pd.Timestamp("1997-12-04 15:55:49")
    assert row["watch_seconds"] == pytest.approx(3 / 5 * 7200)
    assert (row["liked"], row["shared"], row["disliked"]) == (False, False, False)
    assert watches["liked"].sum() == 55_375  # ratings 4 and 5
    assert watches["disliked"].sum() == 17_480  # ratings 1 and 2


@needs_ml100k
def test_ml100k_users_get_their_demographics(ml100k):
    users = ml100k.frames["users"].set_index("user_id")
    assert users.loc[1, ["age_bucket", "gender", "country", "device"]].tolist() == ["18-24", "male", "US", "desktop"]
    assert users.loc[196, ["age_bucket", "gender"]].tolist() == ["45-54", "male"]  # 49, M
    assert users.loc[2, "gender"] == "female"
    assert users.loc[30, "age_bucket"] == "13-17"  # aged 7: the youngest bucket
    assert users.loc[196, "signup_time"] == ml100k.frames["watches"].query("user_id == 196")["watch_time"].min()


@needs_ml100k
def test_ml100k_movies_become_videos(ml100k):
    videos = ml100k.frames["videos"].set_index("video_id")
    kolya = videos.loc[242]
    assert kolya["title_tokens"] == ["kolya"]
    assert kolya["category"] == "comedy"
    assert kolya["upload_time"] == pd.Timestamp("1997-01-24")
    assert kolya["creator_id"] == 242
    assert videos.loc[1, "title_tokens"] == ["toy", "story"]
    assert videos.loc[1, "category"] == "film"  # Animation is listed before Comedy
    assert videos.loc[267, "title_tokens"] == []  # u.item's title "unknown", no release date


def test_csv_layout_maps_ratings_tags_and_movies():
    logs = load_movielens(CSV_FIXTURE)
    watches = logs.frames["watches"].set_index(["user_id", "video_id"])
    assert watches.loc[(1, 2), "watch_seconds"] == pytest.approx(1.5 / 5 * 7200)
    assert watches.loc[(1, 2), ["liked", "disliked"]].tolist() == [False, True]
    assert watches.loc[(2, 3), ["liked", "disliked"]].tolist() == [True, False]
    assert watches.loc[(2, 3), "watch_time"] == pd.Timestamp(1445714994, unit="s")

    videos = logs.frames["videos"].set_index("video_id")
    assert videos["category"].to_dict() == {1: "film", 2: "comedy", 3: "education", 4: "film"}
    assert videos.loc[2, "title_tokens"] == ["american", "president", "the"]
    assert videos.loc[1, "upload_time"] == pd.Timestamp("1995-01-01")
    # No year and never rated: the earliest event of the dataset.
    assert videos.loc[4, "upload_time"] == pd.Timestamp(964981247, unit="s")

    searches = logs.frames["searches"]
    assert searches["user_id"].tolist() == [2, 3]
    assert searches["query_tokens"].tolist() == [["pixar", "fun", "family"], ["cuban", "music"]]
    assert searches["search_time"].tolist() == [pd.Timestamp(1445714900, unit="s"), pd.Timestamp(1500000100, unit="s")]

    users = logs.frames["users"].set_index("user_id")
    assert users.loc[2, "signup_time"] == pd.Timestamp(1445714835, unit="s")
    assert set(users["age_bucket"]) == {"unknown"} and set(users["gender"]) == {"unknown"}
    assert logs.row_counts["subscriptions"] == 0


def test_import_writes_tables_and_a_manifest_naming_the_source(tmp_path):
    write_imported(load_movielens(CSV_FIXTURE), tmp_path)

    manifest = RawManifest.read(tmp_path)
    assert manifest.source == "movielens"
    assert manifest.parameters["layout"] == "csv"
    assert manifest.row_counts["watches"] == 5
    assert any(note.startswith("impressions: sampled, not logged") for note in manifest.notes)
    assert sorted(read_raw_table("watches", tmp_path)["video_id"]) == [1, 1, 2, 2, 3]
    assert read_raw_table("impressions", tmp_path)["request_id"].nunique() == 5  # one sampled slate per rating
    assert not list((tmp_path / "subscriptions").glob("day=*/*.parquet"))  # empty: no day partition


def test_limit_users_draws_a_seeded_sample():
    first = load_movielens(CSV_FIXTURE, limit_users=2, seed=3)
    again = load_movielens(CSV_FIXTURE, limit_users=2, seed=3)
    sampled = first.frames["users"]["user_id"].tolist()
    assert len(sampled) == 2 and sampled == again.frames["users"]["user_id"].tolist()
    assert set(first.frames["watches"]["user_id"]) <= set(sampled)
    assert len(first.frames["videos"]) == 4  # the whole catalog stays


def test_missing_file_is_named(tmp_path):
    shutil.copy(CSV_FIXTURE / "ratings.csv", tmp_path)
    with pytest.raises(DatasetImportError, match=r"movies\.csv: file not found"):
        load_movielens(tmp_path)


def test_directory_without_a_layout_is_rejected(tmp_path):
    with pytest.raises(DatasetImportError, match="not a MovieLens directory"):
        load_movielens(tmp_path)


def test_missing_column_is_named_and_raw_logs_stay_as_they_were(tmp_path):
    dataset, raw_dir = tmp_path / "dataset", tmp_path / "raw"
    shutil.copytree(CSV_FIXTURE, dataset)
    ratings = pd.read_csv(dataset / "ratings.csv").drop(columns=["rating"])
    ratings.to_csv(dataset / "ratings.csv", index=False)
    before = pd.DataFrame({"user_id": [1], "creator_id": [9], "subscribed_time": [pd.Timestamp("2026-01-01")]})
    write_raw_table(SUBSCRIPTIONS, before, raw_dir)
    RawManifest("simulator", {}, {"subscriptions": 1}, []).write(raw_dir)

    with pytest.raises(DatasetImportError, match=r"ratings\.csv: missing column\(s\) \['rating'\]"):
        write_imported(load_movielens(dataset), raw_dir)

    pd.testing.assert_frame_equal(read_raw_table("subscriptions", raw_dir),
                                  before.astype({"subscribed_time": "datetime64[us]"}))
    assert RawManifest.read(raw_dir).source == "simulator"
    assert sorted(path.name for path in raw_dir.iterdir()) == ["_manifest.json", "subscriptions"]


def test_ml100k_file_with_too_few_fields_is_named(tmp_path):
    (tmp_path / "u.data").write_text("196\t242\t3\n")
    (tmp_path / "u.item").write_text("")
    (tmp_path / "u.user").write_text("")
    with pytest.raises(DatasetImportError, match=r"u\.data: missing column\(s\) \['timestamp'\]"):
        load_movielens(tmp_path)


def test_frame_that_does_not_fit_the_schema_is_rejected_before_any_write(tmp_path):
    logs = load_movielens(CSV_FIXTURE)
    logs.frames["watches"] = logs.frames["watches"].drop(columns=["liked"])
    with pytest.raises(DatasetImportError, match=r"watches: missing column\(s\) \['liked'\]"):
        write_imported(logs, tmp_path)
    assert not tmp_path.exists() or not list(tmp_path.iterdir())


@needs_ml100k
def test_ml100k_sampled_slates_show_the_rated_movie_beside_movies_not_yet_rated(ml100k):
    impressions = ml100k.frames["impressions"]
    watches = ml100k.frames["watches"]
    assert not impressions.duplicated(["request_id", "video_id"]).any()
    slate = impressions[impressions["request_id"] == impressions["request_id"].iloc[0]]
    assert sorted(slate["position"]) == [0, 1, 2, 3, 4]
    # every rating is in its own slate, shown 60 s before it
    rated = watches.assign(impression_time=watches["watch_time"] - pd.Timedelta(seconds=60))
    shown = impressions[["user_id", "video_id", "impression_time"]].drop_duplicates()
    assert len(rated.merge(shown, on=["user_id", "video_id", "impression_time"])) == len(watches)
    # no slate shows a movie its user had already rated
    first_rated = watches.groupby(["user_id", "video_id"])["watch_time"].min()
    rated_at = first_rated.reindex(pd.MultiIndex.from_arrays([impressions["user_id"], impressions["video_id"]]))
    assert not (rated_at.to_numpy() < impressions["impression_time"].to_numpy()).any()
    released = ml100k.frames["videos"].set_index("video_id")["upload_time"]
    assert (impressions["impression_time"].to_numpy() >= released.loc[impressions["video_id"]].to_numpy()).mean() > 0.99
