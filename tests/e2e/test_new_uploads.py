"""A video written into the raw log is served within seconds, without a retrain.

Real parts throughout: the tiny pipeline's champions from its MLflow registry and its online
store, the runtime's champion watcher and upload follower. The worker here reads a raw log of
its own (a copy of the pipeline's videos table): the session's HTTP service follows the
pipeline's raw log, and uploads written there would reach its answers that other tests compare.
"""

from __future__ import annotations

import logging
import shutil
import time

import mlflow
import pandas as pd
import pytest
from mlflow.tracking import MlflowClient

from feature_repo.store import feature_store
from models.registry import RANKER, champion_version, download_version, log_bundle, set_champion
from serving.policy import PolicyConfig, PolicyStage
from serving.runtime import ServingRuntime
from tests.e2e.recommenders import with_policy
from tests.serving.uploads.video_rows import write_videos
from vidrec.rawlog import read_raw_table, write_raw_table
from vidrec.schema import VIDEOS
from vidrec.settings import VidrecSettings

FIRST_UPLOAD = 1_000_000  # above every catalog id of the tiny pipeline
TWINS = 10
TWINS_UPLOADED_AT = pd.Timestamp("2026-01-10 20:00")  # the tiny pipeline's last simulated day


@pytest.fixture(scope="module")
def worker_settings(pipeline_run, tmp_path_factory) -> VidrecSettings:
    """A worker over the pipeline's registry and online store, reading a raw log of its own;
    reloads swap at once and the follower is polled by the tests (or every 0.2 s once started)."""
    pipeline = pipeline_run[0]
    home = tmp_path_factory.mktemp("upload_worker")
    shutil.copytree(pipeline.raw_dir / VIDEOS.name, home / "raw" / VIDEOS.name)
    return VidrecSettings(home=home, model_poll_seconds=0, uploads_poll_seconds=0.2,
                          VIDREC_MLFLOW_TRACKING_URI=pipeline.mlflow_tracking_uri)


@pytest.fixture(scope="module")
def worker(pipeline_run, worker_settings):
    """(runtime, watcher, follower) serving the champions; the follower is not started."""
    runtime = ServingRuntime.open(worker_settings, store=feature_store(pipeline_run[0]))
    watcher = runtime.champion_watcher()
    assert watcher.poll(), watcher.not_ready_reason
    yield runtime, watcher, runtime.upload_follower(watcher)
    runtime.close()


@pytest.fixture(scope="module")
def catalog(pipeline_run) -> pd.DataFrame:
    return read_raw_table(VIDEOS.name, pipeline_run[0].raw_dir)


@pytest.fixture(scope="module")
def twins(pipeline_run, worker, catalog):
    """(original video ids, their twins' ids): the most-watched videos, uploaded again under new ids
    with the same creator, category and title, made retrievable by one poll."""
    runtime, _, follower = worker
    watches = read_raw_table("watches", pipeline_run[0].raw_dir)["video_id"].value_counts()
    originals = sorted(watches.index[:TWINS].tolist())
    rows = catalog.set_index("video_id").loc[originals].reset_index()
    rows["video_id"] = [FIRST_UPLOAD + position for position in range(TWINS)]
    rows["upload_time"] = TWINS_UPLOADED_AT
    write_videos(runtime.settings.raw_dir / VIDEOS.name, rows.to_dict("records"), "twins")
    assert sorted(follower.poll().tolist()) == rows["video_id"].tolist()
    return originals, rows["video_id"].tolist()


def _upload_row(catalog: pd.DataFrame, video_id: int, **overrides) -> dict:
    """An upload with catalog video 1's content under a new id."""
    return {**catalog.set_index("video_id").loc[1].to_dict(), "video_id": video_id, **overrides}


def _write(runtime, rows: list[dict], name: str) -> None:
    write_videos(runtime.settings.raw_dir / VIDEOS.name, rows, name)


def test_uploads_are_served_after_one_poll_with_the_champions_unchanged(worker, twins):
    _, watcher, _ = worker
    served = watcher.current

    assert served.models.index.holds(twins[1]).all()
    assert all(served.similar(twin, 5) is not None for twin in twins[1])
    assert served.models.versions == watcher.versions  # no retrain, no reload: the same champions


def test_an_upload_lands_near_the_video_whose_content_it_shares(worker, twins):
    recommender = worker[1].current
    originals, uploads = twins

    near_upload = [original in {item.video_id for item in recommender.similar(upload, 10).items}
                   for original, upload in zip(originals, uploads, strict=True)]
    near_original = [upload in {item.video_id for item in recommender.similar(original, 40).items}
                     for original, upload in zip(originals, uploads, strict=True)]

    # By chance 10 of ~250 videos hold a given one 4% of the time, 40 of them 16%.
    assert sum(near_upload) >= 8, near_upload
    assert sum(near_original) >= 8, near_original


def test_the_ranker_and_the_policy_read_an_uploads_creator_category_duration_and_age(worker, twins, catalog):
    recommender = worker[1].current
    original, upload = twins[0][0], twins[1][0]
    row = catalog.set_index("video_id").loc[original]

    features = recommender.features.video_features([upload]).iloc[0]

    assert (features["creator_id"], features["category"], features["duration_seconds"]) == (
        row["creator_id"], row["category"], row["duration_seconds"])
    age = (recommender.request_clock() - TWINS_UPLOADED_AT.timestamp()) / 86_400
    assert features["video_age_days"] == pytest.approx(max(age, 0.0))
    assert pd.isna(features["impressions_7d"])  # never shown: no counters until the store has them


def test_users_are_recommended_uploads_and_creator_caps_count_them(pipeline_run, worker, twins, catalog):
    recommender = worker[1].current
    capped = with_policy(recommender, PolicyStage(PolicyConfig(max_per_creator=1, exploration_share=0.0)))
    creator_of = {**catalog.set_index("video_id")["creator_id"].to_dict(),
                  **dict(zip(twins[1], catalog.set_index("video_id").loc[twins[0], "creator_id"], strict=True))}
    users = read_raw_table("users", pipeline_run[0].raw_dir)["user_id"].tolist()

    lists = [capped.recommend(user, 10, "home") for user in users[:60]]

    served_uploads = [item for response in lists for item in response.items if item.video_id in twins[1]]
    assert served_uploads and {item.source for item in served_uploads} == {"ann"}
    for response in lists:  # an upload counts under its creator: never beside its original
        creators = [creator_of[item.video_id] for item in response.items]
        assert len(creators) == len(set(creators)), response.items


def test_bad_rows_are_logged_with_their_reason_and_skipped_while_good_ones_serve(worker, catalog, caplog):
    runtime, watcher, follower = worker
    good, negative, no_creator = FIRST_UPLOAD + 100, FIRST_UPLOAD + 101, FIRST_UPLOAD + 102
    _write(runtime, [_upload_row(catalog, good), _upload_row(catalog, negative, duration_seconds=-5.0)], "mixed")
    _write(runtime, [_upload_row(catalog, no_creator, creator_id=None)], "mixed-2")
    (runtime.settings.raw_dir / VIDEOS.name / "day=2026-01-10" / "torn.parquet").write_bytes(b"PAR1 torn")

    with caplog.at_level(logging.WARNING, logger="serving.uploads"):
        assert follower.poll().tolist() == [good]

    assert watcher.current.models.index.holds([good, negative, no_creator]).tolist() == [True, False, False]
    assert f"video_id {negative}: duration_seconds -5 is not a positive number of seconds" in caplog.text
    assert f"video_id {no_creator}: creator_id is missing" in caplog.text
    assert "torn.parquet skipped until it changes" in caplog.text


def test_a_reimported_videos_table_adds_only_the_videos_the_index_lacks(worker, twins, catalog, caplog):
    runtime, watcher, follower = worker
    earlier, later = _upload_row(catalog, FIRST_UPLOAD + 200), _upload_row(catalog, FIRST_UPLOAD + 201)
    _write(runtime, [earlier], "before-reimport")
    follower.poll()
    reimported = pd.DataFrame([*catalog.to_dict("records"), earlier, later])

    write_raw_table(VIDEOS, reimported, runtime.settings.raw_dir)  # swaps the whole directory
    with caplog.at_level(logging.WARNING, logger="serving.uploads"):
        added = follower.poll()

    assert added.tolist() == [later["video_id"]]
    assert caplog.text == ""  # every other row was read again and recognised as served
    # what the import dropped (the twins' file) still serves: the follower only adds, a retrain removes
    assert watcher.current.models.index.holds([earlier["video_id"], later["video_id"], *twins[1]]).all()


def test_a_promoted_champion_set_serves_the_uploads_too(pipeline_run, worker, twins, tmp_path):
    _, watcher, follower = worker
    mlflow.set_tracking_uri(pipeline_run[0].mlflow_tracking_uri)
    client = MlflowClient()
    original = champion_version(client, RANKER)
    try:
        bundle = download_version(RANKER, original, tmp_path / "ranker")
        with mlflow.start_run(run_name="retrain"):
            promoted = log_bundle(RANKER, bundle, {RANKER.selection_metric: 1.0}).version
        set_champion(client, RANKER, promoted)

        assert watcher.poll() is True  # the whole set loaded again from the registry, index included

        assert watcher.versions[RANKER.name] == promoted
        assert watcher.current.models.index.holds(twins[1]).all()
        assert watcher.current.similar(twins[1][0], 5) is not None
        assert follower.poll().tolist() == []  # nothing was missing
    finally:
        set_champion(client, RANKER, original)


def test_the_started_watcher_follows_uploads_on_its_own(pipeline_run, worker_settings, catalog):
    runtime = ServingRuntime.open(worker_settings, store=feature_store(pipeline_run[0]))
    watcher = runtime.champion_watcher()
    watcher.poll()
    watcher.start()  # what the service does: the follower starts with it
    try:
        upload = FIRST_UPLOAD + 300
        written = time.monotonic()
        _write(runtime, [_upload_row(catalog, upload)], "while-serving")
        while not watcher.current.models.index.holds([upload])[0] and time.monotonic() - written < 30:
            time.sleep(0.05)

        assert watcher.current.similar(upload, 5) is not None
    finally:
        watcher.stop()
        runtime.close()
