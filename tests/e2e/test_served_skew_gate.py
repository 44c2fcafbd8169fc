"""Promotion is gated on skew measured on what was served: the real recommender of the tiny
pipeline serves requests whose ranker inputs the served-feature log keeps; the served-feature
comparison recomputes them offline; its blocking checks stop champion_models when serving fed the
ranker other values than the offline store holds (here: watch seconds in minutes), and let it run
when it did not."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import pytest
from dagster import AssetKey, materialize
from mlflow.tracking import MlflowClient

from models.registry import CANDIDATE_GENERATOR, POPULARITY, RANKER, RETRIEVAL_SOURCES, VIDEO_INDEX, champion_version
from orchestration.assets.deployment import champion_models
from orchestration.assets.served_skew import DRIFT_CHECK, MATCH_CHECK, served_feature_comparison
from orchestration.checks import served_features_drift, served_features_match_offline
from orchestration.resources import build_resources
from serving.request_trace import StageBudgets
from serving.served_log import ServedFeatureLog
from tests.e2e.recommenders import known_users

FAULTY_FEATURE = "watch_seconds_28d"  # a user feature: every served row of a user who watched carries it
GATE = [served_feature_comparison, served_features_match_offline, served_features_drift, champion_models]
ARTIFACTS = (CANDIDATE_GENERATOR, VIDEO_INDEX, RETRIEVAL_SOURCES, RANKER, POPULARITY)
# Budgets no loaded test machine reaches: a read that falls back feeds the ranker other values, and
# the comparison leaves such requests out; here every request should be compared.
PATIENT = StageBudgets(user_features=30.0, retrieval=30.0, candidate_features=30.0, ranking=30.0, policy=30.0)


@pytest.fixture
def served_dir(tmp_path: Path) -> Path:
    """This test's own served-feature log (the pipeline's services write to theirs)."""
    return tmp_path / "served_features"


@pytest.fixture
def serve(serving, served_dir: Path, monkeypatch: pytest.MonkeyPatch) -> Callable[[bool], int]:
    """serve(fault) answers /recommend for every known user through the real recommender, every
    request sampled into the served-feature log; with `fault`, the serving feature path hands the
    ranker watch seconds in minutes. Returns the rows logged."""
    _, recommender = serving
    monkeypatch.setattr(recommender, "feature_sample_share", 1.0)
    monkeypatch.setattr(recommender, "budgets", PATIENT)
    users = known_users(serving)

    def serve_all(fault: bool) -> int:
        if fault:
            faulty = in_minutes(recommender.features.ranking_columns)
            monkeypatch.setattr(recommender.features, "ranking_columns", faulty)
        log = ServedFeatureLog(served_dir, max_pending=1_000_000, flush_seconds=3600)
        rows = 0
        try:
            for user in users:
                answer = recommender.recommend_traced(user, 10, "home")
                rows += len(answer.served.fed_features or [])
                log.offer(answer)
        finally:
            log.close()
        return rows

    return serve_all


def in_minutes(ranking_columns: Callable[..., dict[str, np.ndarray]]) -> Callable[..., dict[str, np.ndarray]]:
    """The fault: the serving feature path computes FAULTY_FEATURE in minutes, not seconds."""
    def faulty(*args, **kwargs) -> dict[str, np.ndarray]:
        columns = ranking_columns(*args, **kwargs)
        columns[FAULTY_FEATURE] = np.asarray(columns[FAULTY_FEATURE], dtype=np.float64) / 60.0
        return columns
    return faulty


@pytest.fixture
def run_gate(pipeline_run, served_dir) -> Iterator[Callable[..., object]]:
    """run_gate(*assets) materializes `assets` (the gate's, by default) over the pipeline's state
    and instance, where champion_models reads the models' latest metadata. Afterwards the checks
    run once more over an empty log, so the instance's latest results pass again for other tests."""
    settings, _, instance, _ = pipeline_run
    resources = build_resources(settings.model_copy(update={"served_features_dir_override": served_dir}))

    def run(*assets) -> object:
        return materialize(list(assets or GATE), instance=instance, resources=resources, raise_on_error=False)

    yield run
    for path in served_dir.rglob("*.parquet"):
        path.unlink()
    assert run(served_feature_comparison, served_features_match_offline, served_features_drift).success


def champions(pipeline_run) -> dict[str, str | None]:
    settings = pipeline_run[0]
    client = MlflowClient(settings.mlflow_tracking_uri)
    return {artifact.name: champion_version(client, artifact) for artifact in ARTIFACTS}


def evaluations(result) -> dict[str, object]:
    return {evaluation.check_name: evaluation for evaluation in result.get_asset_check_evaluations()}


def materialized(result, key: str) -> list:
    return [event for event in result.get_asset_materialization_events() if event.asset_key == AssetKey(key)]


def test_a_fresh_install_passes_the_gate_saying_nothing_was_served(pipeline_run):
    result = pipeline_run[1]

    checks = evaluations(result)
    assert checks[MATCH_CHECK].passed and checks[DRIFT_CHECK].passed
    assert "nothing served yet" in checks[MATCH_CHECK].metadata["note"].value
    [comparison] = materialized(result, "served_feature_comparison")
    assert comparison.materialization.metadata["served_rows"].value == 0
    assert materialized(result, "champion_models")


def test_features_served_in_other_units_block_promotion_and_say_why(pipeline_run, serve, run_gate):
    before = champions(pipeline_run)
    assert serve(fault=True) > 0

    result = run_gate()

    checks = evaluations(result)
    match = checks[MATCH_CHECK]
    assert not match.passed
    assert match.metadata["worst"].value.startswith(f"{FAULTY_FEATURE} ")
    assert f"{FAULTY_FEATURE}: request_id" in match.metadata["examples"].value
    rates = match.metadata["report"].value
    assert FAULTY_FEATURE in rates
    drift = checks[DRIFT_CHECK]
    assert not drift.passed and drift.metadata["worst"].value.startswith(f"{FAULTY_FEATURE} PSI ")
    assert not materialized(result, "champion_models")  # stopped in the same run
    assert champions(pipeline_run) == before

    # run on its own (its checks not in the run), champion_models reads their latest results
    alone = run_gate(champion_models)

    [decision] = materialized(alone, "champion_models")
    gate = decision.materialization.metadata["promotion_gate"].value
    assert gate.startswith(f"blocked: {MATCH_CHECK} failed (worst: {FAULTY_FEATURE} ")
    assert "served-skew gate**: blocked" in decision.materialization.metadata["decisions"].value
    assert champions(pipeline_run) == before


def test_features_served_as_computed_offline_pass_the_gate(pipeline_run, serve, run_gate):
    rows = serve(fault=False)

    result = run_gate()

    checks = evaluations(result)
    assert checks[MATCH_CHECK].passed, checks[MATCH_CHECK].metadata["report"].value
    assert checks[DRIFT_CHECK].passed, checks[DRIFT_CHECK].metadata["report"].value
    [comparison] = materialized(result, "served_feature_comparison")
    assert comparison.materialization.metadata["compared_rows"].value == rows
    [decision] = materialized(result, "champion_models")
    assert decision.materialization.metadata["promotion_gate"].value == "passed"
