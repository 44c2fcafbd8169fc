"""The request path keeps answering when its online store stalls or dies, and follows champions.

Real parts throughout: the tiny pipeline's champions from its MLflow registry, its features
materialized into a private redis-server (started here, so stopping it disturbs nobody else),
and the real registry for hot reload.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path

import mlflow
import pandas as pd
import pytest
import redis
from mlflow.tracking import MlflowClient

from feature_repo.store import feature_store
from models.registry import RANKER, champion_version, download_version, log_bundle, set_champion
from orchestration.assets.features import materialize_online_store
from serving.loading import load_champion_models
from serving.runtime import ServingRuntime
from tests.served_service import free_port
from vidrec.settings import VidrecSettings


class PrivateRedis:
    """A redis-server of this test's own, with an append-only file so a restart keeps the data."""

    def __init__(self, directory: Path):
        self.port = free_port()
        self.directory = directory
        self.process: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        self.process = subprocess.Popen(
            ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--dir", str(self.directory),
             "--appendonly", "yes", "--appendfsync", "always", "--save", ""],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )
        client = redis.Redis(port=self.port)
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            try:
                if client.ping():
                    return
            except redis.ConnectionError:
                time.sleep(0.05)
        raise RuntimeError("private redis-server did not start")

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            self.process.wait(timeout=20)

    def freeze(self) -> None:
        os.kill(self.process.pid, signal.SIGSTOP)

    def thaw(self) -> None:
        os.kill(self.process.pid, signal.SIGCONT)


@pytest.fixture(scope="module")
def private_redis(tmp_path_factory):
    if subprocess.run(["which", "redis-server"], capture_output=True).returncode != 0:
        pytest.skip("redis-server is not installed on this machine")
    server = PrivateRedis(tmp_path_factory.mktemp("redis"))
    server.start()
    yield server
    server.thaw() if server.process.poll() is None else None
    server.stop()


@pytest.fixture(scope="module")
def runtime(pipeline_run, private_redis):
    """The tiny pipeline's features in the private Redis, its champions loaded."""
    settings = pipeline_run[0]
    redis_settings = VidrecSettings(home=settings.home, profile="production", redis_url=private_redis.url)
    store = feature_store(redis_settings)
    materialize_online_store(redis_settings, store)
    serving_settings = VidrecSettings(home=settings.home, budget_user_features_seconds=0.5,
                                      budget_candidate_features_seconds=0.5)
    runtime = ServingRuntime.open(serving_settings, store=store)
    yield runtime, runtime.recommender(load_champion_models(serving_settings))
    runtime.close()


def _known_users(settings: VidrecSettings) -> list[int]:
    history = pd.read_parquet(settings.marts_dir / "user_watch_history.parquet")
    return [int(user) for user in history.sort_values("event_timestamp")["user_id"].drop_duplicates(keep="last")]


def _wait_until_recovered(recommender, user: int, seconds: float = 10.0):
    deadline = time.monotonic() + seconds
    while True:
        response = recommender.recommend(user, 5, "home")
        if not response.degraded or time.monotonic() > deadline:
            return response
        time.sleep(0.2)


def test_a_healthy_store_serves_undegraded(pipeline_run, runtime):
    _, recommender = runtime
    user = _known_users(pipeline_run[0])[-1]

    response = recommender.recommend(user, 5, "home")

    assert response.degraded == []
    assert response.known_user is True
    assert len(response.items) == 5


def test_a_stalled_store_answers_within_budget_from_last_known_or_default_features(pipeline_run, runtime,
                                                                                   private_redis):
    serving_runtime, recommender = runtime
    users = _known_users(pipeline_run[0])
    seen, never_seen = users[-2], users[-4]  # (each test asks for users no other test read)
    recommender.recommend(seen, 5, "home")  # read while healthy: remembered

    private_redis.freeze()
    try:
        started = time.perf_counter()
        remembered = recommender.recommend(seen, 5, "home")
        cold = recommender.recommend(never_seen, 5, "home")
        waited = time.perf_counter() - started
        serving_runtime._healthy = (-float("inf"), True)  # probe now, not from the cache
        healthy_while_frozen = serving_runtime.online_store_healthy()
    finally:
        private_redis.thaw()

    assert remembered.degraded == ["user_features:last_known"]
    assert remembered.known_user is True and len(remembered.items) == 5
    assert cold.degraded == ["user_features:default"]
    assert cold.known_user is False and len(cold.items) == 5
    assert waited < 5  # two requests, each abandoning a 0.5 s read, not waiting on Redis
    assert healthy_while_frozen is False
    assert _wait_until_recovered(recommender, never_seen).degraded == []


def test_a_dead_store_degrades_and_recovery_follows_its_return(pipeline_run, runtime, private_redis):
    _, recommender = runtime
    user = _known_users(pipeline_run[0])[-3]

    private_redis.stop()
    try:
        down = recommender.recommend(user, 5, "home")
    finally:
        private_redis.start()

    assert down.degraded == ["user_features:default"]
    assert len(down.items) == 5
    recovered = _wait_until_recovered(recommender, user)
    assert recovered.degraded == []
    assert recovered.known_user is True


def test_a_promoted_champion_is_picked_up_without_restart(pipeline_run, tmp_path):
    settings = pipeline_run[0]
    mlflow.set_tracking_uri(settings.mlflow_tracking_uri)
    client = MlflowClient()
    serving_runtime = ServingRuntime.open(VidrecSettings(home=settings.home))
    watcher = serving_runtime.champion_watcher()
    original = champion_version(client, RANKER)
    try:
        assert watcher.poll() is True
        before = watcher.current
        # a retrain registers a new ranker version and the deployment layer promotes it
        bundle = download_version(RANKER, original, tmp_path / "ranker")
        with mlflow.start_run(run_name="retrain"):
            new_version = log_bundle(RANKER, bundle, {RANKER.selection_metric: 1.0}).version
        set_champion(client, RANKER, new_version)

        assert watcher.poll() is True

        assert watcher.current.models.versions[RANKER.name] == new_version
        assert before.models.versions[RANKER.name] == original  # a request in flight keeps its set
        user = _known_users(settings)[-1]
        assert watcher.current.recommend(user, 5, "home").model_versions[RANKER.name] == new_version
        assert watcher.poll() is False  # nothing moved since
    finally:
        set_champion(client, RANKER, original)
        serving_runtime.close()


def test_a_request_ranks_exactly_the_configured_number_of_candidates(pipeline_run, runtime):
    from serving.request_trace import RequestTrace

    _, recommender = runtime
    user = _known_users(pipeline_run[0])[-5]
    features = recommender.features.user_features(user)
    history = [int(video) for video in features["recent_watch_video_ids"]]

    candidates = recommender._retrieve(user, features, history, 100, RequestTrace())

    videos = candidates.video_ids.tolist()
    assert len(videos) == len(set(videos)) == 100  # every source's quota, ANN filling the rest
    assert set(candidates.sources) > {"ann"}
    assert not set(history) & set(videos)
