"""The MLflow registry: a version becomes champion only when it beats the current one."""

from __future__ import annotations

import uuid
from pathlib import Path

import mlflow
import psycopg2
import pytest
from mlflow.tracking import MlflowClient

from models.registry import (
    CANDIDATE_GENERATOR,
    CHALLENGER_ALIAS,
    RANKER,
    SERVED_ARTIFACTS,
    ChampionRescored,
    alias_version,
    champion_version,
    download_champion,
    is_better_than_champion,
    log_bundle,
    set_alias,
    set_champion,
)
from serving.loading import champion_versions


def _register(bundle_dir: Path, artifact, value: float) -> str:
    with mlflow.start_run():
        return log_bundle(artifact, bundle_dir, {artifact.selection_metric: value}).version


def _promote_if_better(artifact, version: str, value: float) -> bool:
    client = MlflowClient()
    if is_better_than_champion(client, artifact, value):
        set_champion(client, artifact, version)
        return True
    return False


@pytest.fixture
def bundle_dir(tmp_path: Path) -> Path:
    bundle = tmp_path / "bundle"
    bundle.mkdir()
    (bundle / "weights.json").write_text('{"w": 1}')
    return bundle


@pytest.fixture
def sqlite_tracking(tmp_path: Path):
    mlflow.set_tracking_uri(f"sqlite:///{tmp_path / 'mlflow.db'}")
    mlflow.set_experiment("registry-test")
    yield
    mlflow.set_tracking_uri(None)


def test_first_version_wins_and_only_better_versions_take_over(sqlite_tracking, bundle_dir):
    first = _register(bundle_dir, CANDIDATE_GENERATOR, 0.20)
    assert _promote_if_better(CANDIDATE_GENERATOR, first, 0.20)

    worse = _register(bundle_dir, CANDIDATE_GENERATOR, 0.10)
    equal = _register(bundle_dir, CANDIDATE_GENERATOR, 0.20)
    assert not _promote_if_better(CANDIDATE_GENERATOR, worse, 0.10)
    assert not _promote_if_better(CANDIDATE_GENERATOR, equal, 0.20)
    assert champion_version(MlflowClient(), CANDIDATE_GENERATOR) == first

    better = _register(bundle_dir, CANDIDATE_GENERATOR, 0.30)
    assert _promote_if_better(CANDIDATE_GENERATOR, better, 0.30)
    assert champion_version(MlflowClient(), CANDIDATE_GENERATOR) == better


def test_nan_metric_is_never_promoted(sqlite_tracking, bundle_dir):
    version = _register(bundle_dir, RANKER, float("nan"))
    assert not _promote_if_better(RANKER, version, float("nan"))
    assert champion_version(MlflowClient(), RANKER) is None


def test_download_champion_returns_the_logged_bundle(sqlite_tracking, bundle_dir, tmp_path):
    version = _register(bundle_dir, RANKER, 0.7)
    set_champion(MlflowClient(), RANKER, version)

    downloaded = download_champion(RANKER, tmp_path / "download")

    assert (downloaded / "weights.json").read_text() == '{"w": 1}'


def test_missing_champion_is_a_lookup_error_naming_the_model(sqlite_tracking, tmp_path):
    with pytest.raises(LookupError, match="vidrec-ranker"):
        download_champion(RANKER, tmp_path / "download")


def test_missing_selection_metric_is_rejected(sqlite_tracking, bundle_dir):
    with mlflow.start_run(), pytest.raises(ValueError, match="holdout_auc_watch_weighted"):
        log_bundle(RANKER, bundle_dir, {"holdout_auc_clicked": 0.7})


@pytest.fixture
def postgres_tracking():
    """A throw-away database on the local PostgreSQL (production profile's MLflow backend)."""
    database = f"vidrec_test_{uuid.uuid4().hex[:8]}"
    admin = psycopg2.connect(host="127.0.0.1", user="postgres", dbname="postgres")
    admin.autocommit = True
    admin.cursor().execute(f"create database {database}")
    mlflow.set_tracking_uri(f"postgresql+psycopg2://postgres@127.0.0.1:5432/{database}")
    mlflow.set_experiment("registry-test")
    yield
    mlflow.set_tracking_uri(None)
    admin.cursor().execute(f"drop database {database} with (force)")
    admin.close()


def test_registry_on_postgres_promotes_and_serves_the_champion(postgres_tracking, bundle_dir, tmp_path):
    first = _register(bundle_dir, CANDIDATE_GENERATOR, 0.2)
    second = _register(bundle_dir, CANDIDATE_GENERATOR, 0.25)
    assert _promote_if_better(CANDIDATE_GENERATOR, first, 0.2)
    assert _promote_if_better(CANDIDATE_GENERATOR, second, 0.25)

    assert champion_version(MlflowClient(), CANDIDATE_GENERATOR) == second
    assert (download_champion(CANDIDATE_GENERATOR, tmp_path / "dl") / "weights.json").exists()


def test_an_alias_serves_its_versions_and_models_without_it_serve_their_champions(sqlite_tracking, bundle_dir):
    client = MlflowClient()
    for artifact in SERVED_ARTIFACTS.values():
        set_champion(client, artifact, _register(bundle_dir, artifact, 0.5))
    newer_ranker = _register(bundle_dir, RANKER, 0.4)  # worse on holdout: not promoted, but a challenger
    set_alias(client, RANKER, CHALLENGER_ALIAS, newer_ranker)

    champions = champion_versions(client)
    challengers = champion_versions(client, CHALLENGER_ALIAS)

    assert champions[RANKER.name] == "1" and challengers[RANKER.name] == newer_ranker == "2"
    assert {name: version for name, version in challengers.items() if name != RANKER.name} == {
        name: version for name, version in champions.items() if name != RANKER.name}
    assert alias_version(client, CANDIDATE_GENERATOR, CHALLENGER_ALIAS) is None


def test_a_champion_rescored_on_the_candidates_holdout_is_compared_instead_of_its_own_tag(sqlite_tracking, bundle_dir):
    """The holdout moved since the champion was measured (0.80 then): on today's rows it scores
    0.70, and a candidate at 0.75 is better on the same rows, though below the old tag."""
    client = MlflowClient()
    champion = _register(bundle_dir, RANKER, 0.80)
    set_champion(client, RANKER, champion)
    candidate = 0.75

    assert not is_better_than_champion(client, RANKER, candidate)
    assert is_better_than_champion(client, RANKER, candidate, ChampionRescored(champion, 0.70))
    assert not is_better_than_champion(client, RANKER, candidate, ChampionRescored(champion, 0.76))
    # a rescoring of a version that is no longer champion is not evidence about the champion
    set_champion(client, RANKER, _register(bundle_dir, RANKER, 0.85))
    assert not is_better_than_champion(client, RANKER, candidate, ChampionRescored(champion, 0.70))
