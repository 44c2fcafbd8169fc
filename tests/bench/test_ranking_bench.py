"""The ranking bench's own code: the train-click features never count a label or anything after
it, tuning picks the best trial by the chosen validation metric (the loss by default), and a run
from an exported frame needs no Feast, Dagster, dbt or MLflow and keeps what rebuilds its report."""

from __future__ import annotations

import importlib
import json
import math
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

BENCH_DIR = Path(__file__).resolve().parents[2] / "bench"
BENCH = BENCH_DIR / "ranking.py"


@pytest.fixture(scope="module")
def bench_on_path():
    """bench/ first on sys.path, as `python bench/ranking.py` has it: the bench's modules import
    each other as top-level modules. Undone, with those modules, after this file's tests."""
    sys.path.insert(0, str(BENCH_DIR))
    yield
    sys.path.remove(str(BENCH_DIR))
    for name in [name for name in sys.modules if name.startswith("ranking_")]:
        sys.modules.pop(name)


@pytest.fixture(scope="module")
def features(bench_on_path):
    return importlib.import_module("ranking_features")


@pytest.fixture(scope="module")
def ranking_models(bench_on_path):
    return importlib.import_module("ranking_models")


@pytest.fixture(scope="module")
def protocol(bench_on_path):
    return importlib.import_module("ranking_protocol")


@pytest.fixture(scope="module")
def data(bench_on_path):
    return importlib.import_module("ranking_data")


def _row(user, video, when, clicked=False, split="train", bag=()):
    return dict(user_id=user, video_id=video, event_timestamp=pd.Timestamp(when, tz="UTC"),
                clicked=clicked, split=split, recent_watch_video_ids=np.array(bag, dtype=np.int64))


def test_train_click_features_count_only_train_clicks_settled_before_the_rows_day(features):
    frame = pd.DataFrame([
        # user 2 clicks videos 10 and 20 on day 1: known from day 2 on
        _row(2, 10, "2026-01-01 09:00", clicked=True),
        _row(2, 20, "2026-01-01 10:00", clicked=True),
        # user 1, who watched 10, is shown 20: the same day (unknown yet) and the next day
        _row(1, 20, "2026-01-01 18:00", bag=[10]),
        _row(1, 20, "2026-01-02 08:00", clicked=True, bag=[10]),  # its own click is never counted for it
        # a click late on day 2 settles on day 3: counted from day 4 only
        _row(3, 20, "2026-01-02 23:30", clicked=True),
        _row(1, 20, "2026-01-03 08:00", bag=[10]),
        _row(1, 20, "2026-01-04 08:00", bag=[10]),
        # holdout clicks are never counted
        _row(4, 10, "2026-01-04 09:00", clicked=True, split="holdout"),
        _row(4, 20, "2026-01-04 09:30", clicked=True, split="holdout"),
        _row(1, 20, "2026-01-05 08:00", split="holdout", bag=[10, 20, 99]),
    ])
    computed = features.train_click_features(frame)
    clickers = computed["candidate_train_clickers"].tolist()
    cowatch = computed["history_cowatch_count"].tolist()
    assert clickers[2:4] == [0, 1]  # day 1: nothing settled; day 2: user 2 only, not user 1's own click
    assert cowatch[2:4] == [0, 1]
    # day 3: user 1's day-2 click has settled (user 1 watched 20 but not 10: no co-watch of its own)
    assert (clickers[5], cowatch[5]) == (2, 1)
    assert (clickers[6], cowatch[6]) == (3, 1)  # day 4: user 3's late click too
    # holdout: train clicks only; the candidate in the bag and an id nobody clicked add nothing
    assert (clickers[9], cowatch[9]) == (3, 1)
    assert computed["history_cowatch_share"].iloc[9] == pytest.approx(1 / (1 * 3))
    assert math.isnan(computed["history_cowatch_share"].iloc[2])


def test_train_click_features_ignore_future_rows_entirely(features):
    past = pd.DataFrame([_row(2, 10, "2026-01-01 09:00", clicked=True), _row(2, 20, "2026-01-01 10:00", clicked=True),
                         _row(1, 20, "2026-01-03 08:00", bag=[10])])
    future = pd.DataFrame([_row(5, 10, "2026-01-03 08:30", clicked=True), _row(5, 20, "2026-01-03 09:00", clicked=True),
                           _row(6, 20, "2026-01-05 09:00", clicked=True)])
    alone = features.train_click_features(past)
    with_future = features.train_click_features(pd.concat([past, future], ignore_index=True)).iloc[: len(past)]
    pd.testing.assert_frame_equal(alone, with_future)


def _two_taste_clicks(days: int = 3) -> pd.DataFrame:
    """Users 0-5 click videos 0-2 and users 6-11 videos 3-5, one click a day each (train)."""
    rows = []
    for day in range(days):
        for user in range(12):
            video = (user + day) % 3 + (0 if user < 6 else 3)
            rows.append(_row(user, video, f"2026-01-{day + 1:02d} 09:00", clicked=True))
    return pd.DataFrame(rows)


def test_click_factor_score_is_puresvd_of_the_clicks_known_before_the_rows_day(features):
    from scipy.sparse.linalg import svds

    clicks = _two_taste_clicks()
    shown = pd.DataFrame([_row(0, 1, "2026-01-04 12:00"), _row(0, 4, "2026-01-04 12:00"),
                          _row(7, 4, "2026-01-04 12:00"), _row(7, 1, "2026-01-04 12:00")])
    frame = pd.concat([clicks, shown], ignore_index=True)
    computed = features.click_factor_features(frame, rank=2).iloc[len(clicks):]
    score = computed["click_factor_score"].to_numpy()
    # each user prefers their own taste's video, by PureSVD's own numbers
    matrix = np.zeros((12, 6))
    for user, video in zip(clicks["user_id"], clicks["video_id"]):
        matrix[user, video] = 1.0
    _, _, right = svds(matrix, k=2)
    expected = [matrix[user] @ right.T @ right[:, video] for user, video in [(0, 1), (0, 4), (7, 4), (7, 1)]]
    np.testing.assert_allclose(score, expected, atol=1e-9)
    assert score[0] > score[1] and score[2] > score[3]
    # the factors' dot product is the score, whatever rotation aligned them
    user_columns, video_columns = features.factor_columns(2)
    products = np.einsum("ik,ik->i", computed[user_columns].to_numpy(), computed[video_columns].to_numpy())
    np.testing.assert_allclose(products, score, atol=1e-9)


def test_click_factors_see_no_click_of_the_rows_day_or_later(features):
    clicks = _two_taste_clicks()
    shown = [_row(0, 1, "2026-01-03 12:00"), _row(9, 2, "2026-01-03 12:00")]  # day 3: days 1-2 known
    later = pd.DataFrame([_row(9, 2, "2026-01-03 13:00", clicked=True), _row(0, 4, "2026-01-05 09:00", clicked=True),
                          _row(0, 5, "2026-01-05 10:00", clicked=True, split="holdout")])
    past = pd.concat([clicks[clicks["event_timestamp"] < pd.Timestamp("2026-01-03", tz="UTC")], pd.DataFrame(shown)],
                     ignore_index=True)
    alone = features.click_factor_features(past, rank=2).iloc[-2:]
    with_later = features.click_factor_features(pd.concat([past, later], ignore_index=True), rank=2)
    with_later = with_later.iloc[len(past) - 2 : len(past)]
    np.testing.assert_allclose(alone["click_factor_score"], with_later["click_factor_score"], atol=1e-9)
    # user 9 clicked nothing of videos 0-2, so a video of the other taste scores 0 for them
    assert alone["click_factor_score"].iloc[1] == pytest.approx(0.0, abs=1e-9)


def test_click_factors_are_missing_where_nothing_is_known_yet(features):
    frame = pd.concat([pd.DataFrame([_row(0, 1, "2026-01-01 08:00"), _row(99, 1, "2026-01-02 08:00")]),
                       _two_taste_clicks(days=1)], ignore_index=True)
    computed = features.click_factor_features(frame, rank=2)
    assert math.isnan(computed["click_factor_score"].iloc[0])  # day 1: no click settled yet
    assert math.isnan(computed["click_factor_score"].iloc[1])  # user 99 never clicked
    assert not computed[features.factor_columns(2)[0]].iloc[1].any()


def test_benchmark_frame_gives_the_click_factors_to_the_config_only_when_asked(features):
    without, plain = features.benchmark_frame(_labelled_frame(800), INPUTS)
    with_factors, config = features.benchmark_frame(_labelled_frame(800), INPUTS, click_factors=True)
    added = [name for name in config.numeric_features if name not in plain.numeric_features]
    assert added[0] == "click_factor_score" and len(added) == 1 + 2 * features.CLICK_FACTOR_RANK
    assert set(added) <= set(with_factors.columns) and not set(added) & set(without.columns)


def _labelled_frame(rows: int, seed: int = 0) -> pd.DataFrame:
    """Requests of 4 impressions over 10 days, the last 3 days holdout; clicks likelier with quality."""
    rng = np.random.default_rng(seed)
    quality = rng.uniform(0, 1, rows)
    clicked = rng.random(rows) < 0.1 + 0.5 * quality
    request = np.arange(rows) // 4
    when = pd.Timestamp("2026-01-01", tz="UTC") + pd.to_timedelta(request * (10 * 24 * 60 // (rows // 4)), unit="min")
    return pd.DataFrame({
        "request_id": request.astype(str), "user_id": request % 40, "video_id": rng.integers(0, 30, rows),
        "surface": rng.choice(["home", "search"], rows), "position": np.arange(rows) % 4, "event_timestamp": when,
        "quality": quality, "recent_watch_video_ids": [rng.integers(0, 30, 3) for _ in range(rows)],
        "clicked": clicked, "watch_seconds": np.where(clicked, rng.exponential(60, rows), 0.0),
        "liked": clicked & (rng.random(rows) < 0.3), "duration_seconds": 300.0,
        "split": np.where(when >= pd.Timestamp("2026-01-08", tz="UTC"), "holdout", "train"),
    })


INPUTS = {"categorical": ["surface", "video_id"], "numeric": ["quality"], "lists": ["recent_watch_video_ids"]}


def test_tuning_minimises_the_validation_loss_and_a_diverged_fit_loses(features, ranking_models, protocol):
    frame, config = features.benchmark_frame(_labelled_frame(800), INPUTS)
    splits = protocol.make_splits(frame, config)

    def constant_odds(fit_rows, config, params, seed):  # predicts the odds C everywhere; NaN past C = 10
        odds = params["inverse_regularization"]
        logit = math.log(odds) if odds <= 10 else math.nan
        return ranking_models.Fitted(logits=lambda rows: np.full(len(rows), logit),
                                     final_score=lambda rows: np.zeros(len(rows)))

    spec = ranking_models.ModelSpec("logistic regression", constant_odds, stochastic=False)
    tuning = protocol.tune_model(spec, splits, config, trials=8, max_widenings=0)
    values = tuning.trials["value"]
    assert tuning.best_value == values.min() and values.nunique() > 1
    assert tuning.best_params["inverse_regularization"] <= 10
    diverged = values[tuning.trials["inverse_regularization"] > 10]
    assert len(diverged) and np.isinf(diverged).all()  # they ran, lost, and failed nothing
    assert tuning.best_value == pytest.approx(ranking_models.validation_loss(
        splits.validation, np.full(len(splits.validation), math.log(tuning.best_params["inverse_regularization"]))))


def test_each_selection_metric_picks_the_trial_that_is_best_by_it(features, ranking_models, protocol):
    """A calibrated constant wins on the log loss and cannot rank; an over-confident scorer ranks
    by quality (which drives clicks) with a terrible log loss; a diverged fit wins nothing."""
    from models.evaluation.tuning import Choice
    from models.ranking.evaluate import ranking_report
    from models.ranking.labels import watch_time_labels

    frame, config = features.benchmark_frame(_labelled_frame(800), INPUTS)
    splits = protocol.make_splits(frame, config)
    clicked, weights = watch_time_labels(splits.validation)
    rate = (clicked * weights).sum() / weights.sum()  # the loss weighs a click by its watch seconds

    def scorer(fit_rows, config, params, seed):
        logits = {"constant": lambda rows: np.full(len(rows), math.log(rate / (1 - rate))),
                  "ranks": lambda rows: rows["quality"].to_numpy() - 6.0,  # p < 0.01 for every row
                  "diverged": lambda rows: np.full(len(rows), math.nan)}[params["scorer"]]
        return ranking_models.Fitted(logits=logits, final_score=logits)

    spec = ranking_models.ModelSpec("toy", scorer, stochastic=False)
    space = {"scorer": Choice(("constant", "ranks", "diverged"))}
    chosen = {}
    for selection in ("log_loss", "gauc", "pairwise_loss"):
        tuning = protocol.tune_model(spec, splits, config, trials=12, max_widenings=0, space=space, selection=selection)
        assert set(tuning.trials["scorer"]) == {"constant", "ranks", "diverged"}
        diverged = tuning.trials.loc[tuning.trials["scorer"] == "diverged", "value"]
        assert np.isinf(diverged).all() and (diverged > 0).all() == (selection != "gauc")  # the worst either way
        chosen[selection] = tuning.best_params["scorer"], tuning.best_value
    assert [scorer for scorer, _ in chosen.values()] == ["constant", "ranks", "ranks"]
    report = ranking_report(splits.validation, splits.validation["quality"].to_numpy() - 6.0)
    assert chosen["gauc"][1] == pytest.approx(report["gauc_clicked"]) and chosen["gauc"][1] > 0.55
    assert chosen["pairwise_loss"][1] == pytest.approx(report["pairwise_loss_watch_weighted"])


def test_an_export_reads_back_as_the_homes_frame_and_ranker_inputs(data, features, tmp_path, monkeypatch):
    from vidrec.settings import VidrecSettings

    settings = VidrecSettings(home=tmp_path / "home")
    settings.artifacts_dir.mkdir(parents=True)
    frame = _labelled_frame(200)
    frame.to_parquet(settings.artifacts_dir / "ranking_training_frame.parquet", index=False)
    monkeypatch.setattr(data, "pipeline_inputs", lambda _: INPUTS)  # Feast's answer for this home
    data.export_frame(settings, None, tmp_path / "export")
    read_frame, read_inputs = data.exported_frame(tmp_path / "export")
    pd.testing.assert_frame_equal(read_frame,
                                  pd.read_parquet(settings.artifacts_dir / "ranking_training_frame.parquet"))
    assert read_inputs == INPUTS
    _, config = features.benchmark_frame(read_frame, read_inputs)
    assert config.numeric_features == ["quality", *features.TRAIN_CLICK_FEATURES]
    assert (config.categorical_features, config.bag_features) == (["surface", "video_id"], ["recent_watch_video_ids"])


def _write_ground_truth(directory: Path, users: int = 40, videos: int = 30, seed: int = 0) -> None:
    """Latents for `_labelled_frame`'s users (0..39) and videos (0..29), as `vidrec simulate` stores them."""
    from vidrec.schema import CATEGORIES

    rng = np.random.default_rng(seed)
    directory.mkdir(parents=True, exist_ok=True)
    taste = rng.dirichlet(np.ones(len(CATEGORIES)), users).astype(np.float32)
    pd.DataFrame({"user_id": np.arange(users), "taste": list(taste),
                  "style": list(rng.normal(0, 0.5, (users, 4)).astype(np.float32))}
                 ).to_parquet(directory / "user_latents.parquet", index=False)
    pd.DataFrame({"video_id": np.arange(videos), "category_index": rng.integers(0, len(CATEGORIES), videos),
                  "style": list(rng.normal(0, 0.5, (videos, 4)).astype(np.float32)),
                  "quality": rng.normal(0, 0.5, videos).astype(np.float32)}
                 ).to_parquet(directory / "video_latents.parquet", index=False)


def _export(tmp_path: Path, frame: pd.DataFrame | None = None, with_ground_truth: bool = False) -> Path:
    """What `bench/ranking.py --export` writes, for `frame` (default: 600 labelled rows)."""
    export = tmp_path / "export"
    export.mkdir()
    (_labelled_frame(600) if frame is None else frame).to_parquet(export / "ranking_frame.parquet", index=False)
    (export / "ranker_inputs.json").write_text(json.dumps(INPUTS))
    if with_ground_truth:
        _write_ground_truth(export / "ground_truth")
    return export


def _home_with_frame(tmp_path: Path, source: str):
    from vidrec.rawlog import RawManifest
    from vidrec.settings import VidrecSettings

    settings = VidrecSettings(home=tmp_path / "home")
    settings.artifacts_dir.mkdir(parents=True)
    settings.raw_dir.mkdir(parents=True)
    _labelled_frame(200).to_parquet(settings.artifacts_dir / "ranking_training_frame.parquet", index=False)
    RawManifest(source=source, parameters={}, row_counts={}, notes=[]).write(settings.raw_dir)
    _write_ground_truth(settings.ground_truth_dir)
    return settings


def test_an_export_carries_the_ground_truth_of_simulated_data_only(data, tmp_path, monkeypatch):
    monkeypatch.setattr(data, "pipeline_inputs", lambda _: INPUTS)
    simulated = _home_with_frame(tmp_path / "simulated", "simulator")
    data.export_frame(simulated, None, tmp_path / "export")
    copied = data.exported_ground_truth(tmp_path / "export")
    assert copied == tmp_path / "export" / "ground_truth"
    pd.testing.assert_frame_equal(pd.read_parquet(copied / "video_latents.parquet"),
                                  pd.read_parquet(simulated.ground_truth_dir / "video_latents.parquet"))

    # an import over a simulated home leaves the old world's latents: they are not this data's truth
    imported = _home_with_frame(tmp_path / "imported", "movielens")
    assert data.home_ground_truth(imported) is None
    data.export_frame(imported, None, tmp_path / "export")  # the same directory: the stale copy goes
    assert data.exported_ground_truth(tmp_path / "export") is None


@pytest.fixture(scope="module")
def ceiling(bench_on_path):
    return importlib.import_module("ranking_ceiling")


def test_the_ceilings_score_each_row_by_its_own_users_and_videos_truth(ceiling, tmp_path):
    from vidrec.simulator import expected_watch_seconds

    _write_ground_truth(tmp_path / "truth")
    frame = _labelled_frame(80).assign(duration_seconds=np.linspace(30.0, 3000.0, 80))
    users = pd.read_parquet(tmp_path / "truth" / "user_latents.parquet").set_index("user_id")
    videos = pd.read_parquet(tmp_path / "truth" / "video_latents.parquet").set_index("video_id")
    row = frame.iloc[17]
    user, video = users.loc[row["user_id"]], videos.loc[row["video_id"]]
    taste = 0.9 * np.log(user["taste"][video["category_index"]] * len(user["taste"]) + 1e-3)
    style = 0.6 * float(np.dot(user["style"], video["style"]))
    scores = ceiling.ceiling_scores(frame, tmp_path / "truth")
    assert scores[ceiling.AFFINITY][17] == pytest.approx(taste + style + video["quality"], rel=1e-5)
    assert scores[ceiling.EXPECTED_WATCH][17] == pytest.approx(
        expected_watch_seconds(np.array([taste + style + video["quality"]]), np.array([row["duration_seconds"]]))[0],
        rel=1e-5)
    assert set(scores) == set(ceiling.CEILINGS)
    with pytest.raises(ValueError, match="duration_seconds must be positive"):
        ceiling.ceiling_scores(frame.assign(duration_seconds=0.0), tmp_path / "truth")


@pytest.fixture(scope="module")
def true_terms(bench_on_path):
    return importlib.import_module("ranking_true_terms")


def test_the_true_term_design_holds_each_rows_own_terms_and_log_duration(true_terms, ceiling, tmp_path):
    _write_ground_truth(tmp_path / "truth")
    frame = _labelled_frame(80).assign(duration_seconds=np.linspace(30.0, 3000.0, 80))
    design = true_terms.true_term_design(frame, tmp_path / "truth")
    affinity = ceiling.ceiling_scores(frame, tmp_path / "truth")[ceiling.AFFINITY]
    np.testing.assert_allclose(design[:, :3].sum(axis=1), affinity, rtol=1e-5)  # taste + style + quality
    np.testing.assert_allclose(design[:, 3], np.log(frame["duration_seconds"]))
    with pytest.raises(ValueError, match="duration_seconds must be positive"):
        true_terms.true_term_design(frame.assign(duration_seconds=np.nan), tmp_path / "truth")


def test_scorers_fit_on_the_true_terms_learn_the_term_that_decides_the_click(true_terms, tmp_path):
    """Clicks decided by the style term alone: both fits separate unseen rows' clicks by style,
    and neither reads the scored rows' labels (flipping them changes no score)."""
    from sklearn.metrics import roc_auc_score

    _write_ground_truth(tmp_path / "truth")
    frame = _labelled_frame(2000, seed=3).assign(duration_seconds=300.0)
    style = true_terms.true_term_design(frame, tmp_path / "truth")[:, 1]
    frame["clicked"] = style > np.median(style)
    frame["watch_seconds"] = np.where(frame["clicked"], 60.0, 0.0)
    fit_rows, rows = frame.iloc[:1500], frame.iloc[1500:]
    fitted = true_terms.fit_on_true_terms(fit_rows, rows, tmp_path / "truth")
    assert [len(fitted[true_terms.LINEAR]), len(fitted[true_terms.BOOSTED])] == [1, 3]
    for scores in fitted[true_terms.LINEAR] + fitted[true_terms.BOOSTED]:
        assert roc_auc_score(rows["clicked"], scores) > 0.95
    flipped = rows.assign(clicked=~rows["clicked"], watch_seconds=60.0 - rows["watch_seconds"])
    again = true_terms.fit_on_true_terms(fit_rows, flipped, tmp_path / "truth")
    np.testing.assert_array_equal(again[true_terms.LINEAR][0], fitted[true_terms.LINEAR][0])


def test_the_ceiling_script_reads_the_validation_rows_only(tmp_path):
    frame = _labelled_frame(600)
    frame.loc[frame["split"] == "holdout", "video_id"] = 10_000  # no truth: reading a holdout row would fail
    export = _export(tmp_path, frame)
    script = BENCH_DIR / "ranking_ceiling.py"
    common = dict(capture_output=True, text=True, cwd=BENCH.parents[1], timeout=300,
                  env={**os.environ, "PYTHONPATH": str(BENCH.parents[1])})
    completed = subprocess.run([sys.executable, str(script), "--frame-dir", str(export)], **common)
    assert completed.returncode == 1 and "holds no ground truth" in completed.stderr

    _write_ground_truth(export / "ground_truth")
    completed = subprocess.run([sys.executable, str(script), "--frame-dir", str(export), "--resamples", "50"],
                               **common)
    assert completed.returncode == 0, completed.stderr[-3000:]
    validation_rows = int(completed.stdout.split("validation: ")[1].split(" rows")[0])
    assert 0 < validation_rows <= 0.1 * (frame["split"] == "train").sum()  # the last 10 % of train, by time
    rows = [line for line in completed.stdout.splitlines() if line.startswith("| ground truth")]
    assert len(rows) == 3 and all(line.count("[") == 2 for line in rows)
    fitted = [line.split(" | ") for line in completed.stdout.splitlines() if line.startswith(("| LR fit", "| HGB fit"))]
    assert [cells[1] for cells in fitted if " − " not in cells[0]] == ["1", "3"]  # LR once, HGB per seed
    paired = [line for line in completed.stdout.splitlines() if " − " in line and line.count("[") == 2]
    assert len(paired) == 2
    fit_rows = int(completed.stdout.split("fit on ")[1].split(" rows")[0])
    assert fit_rows + validation_rows == (frame["split"] == "train").sum()  # fit on the rows before validation


RUN_FROM_EXPORT = """
import json, runpy, sys
sys.argv = ["ranking.py", *json.loads(sys.argv[1])]
sys.path.insert(0, {bench_dir!r})  # as `python bench/ranking.py` has it
runpy.run_path({bench!r}, run_name="__main__")
heavy = {{"feast", "dagster", "dbt", "mlflow"}}
print("IMPORTED", json.dumps(sorted({{name.split(".")[0] for name in sys.modules}} & heavy)))
"""


def _run_bench(arguments: list[str]) -> str:
    script = RUN_FROM_EXPORT.format(bench=str(BENCH), bench_dir=str(BENCH_DIR))
    completed = subprocess.run([sys.executable, "-c", script, json.dumps(arguments)],
                               capture_output=True, text=True, cwd=BENCH.parents[1], timeout=300)
    assert completed.returncode == 0, completed.stderr[-3000:]
    return completed.stdout


@pytest.mark.trains
def test_a_run_from_an_export_imports_no_pipeline_stack_and_its_results_rebuild_the_report(tmp_path):
    export = _export(tmp_path)
    results = tmp_path / "results.json"
    common = ["--dataset", "toy", "--resamples", "50", "--no-mlflow"]
    printed = _run_bench(["--frame-dir", str(export), "--models", "ranker,popularity (train clickers)",
                          "--trials", "1", "--seeds", "2", "--max-widenings", "0", "--results-json", str(results),
                          "--selection-metric", "gauc", *common])
    assert "IMPORTED []" in printed
    assert "every model's trial picked by validation GAUC" in printed and "holdout read 3 times" in printed
    report = printed[printed.index("### tuning"):printed.index("\nbundle.score")]
    assert "| validation GAUC |" in report
    assert "| ranker | 2 |" in report and "| popularity (train clickers) | 1 |" in report
    saved = json.loads(results.read_text())
    assert [len(scored["components"]) for scored in saved["results"]] == [2, 1]
    assert saved["setup"]["selection_metric"] == "gauc"
    assert [touch["seed"] for touch in saved["touches"]] == [0, 1, "deterministic"]
    assert all(pd.Timestamp(touch["at"]).tzname() == "UTC" for touch in saved["touches"])
    rebuilt = _run_bench(["--from-results", str(results), *common])
    assert rebuilt[rebuilt.index("### tuning"):rebuilt.index("\nbundle.score")] == report


@pytest.mark.trains
def test_a_run_on_simulated_data_reports_the_ceilings_as_holdout_reads_never_as_baselines(tmp_path):
    export = _export(tmp_path, with_ground_truth=True)
    results = tmp_path / "results.json"
    printed = _run_bench(["--frame-dir", str(export), "--models", "ranker", "--trials", "1", "--seeds", "1",
                          "--max-widenings", "0", "--results-json", str(results), "--resamples", "50", "--no-mlflow"])
    assert "IMPORTED []" in printed and "holdout read 4 times" in printed
    comparison = printed[printed.index("### paired differences"):printed.index("### spread")]
    for name in ("ground truth: expected watch seconds", "ground truth without the style term: expected watch seconds",
                 "ground truth: affinity"):
        assert f"| {name} | 1 |" in printed
        assert next(line for line in comparison.splitlines() if line.startswith(f"| {name} |")).endswith(
            "| — (a ceiling) |")
    saved = json.loads(results.read_text())
    assert [touch["model"] for touch in saved["touches"]][1:] == [
        "ground truth: expected watch seconds", "ground truth without the style term: expected watch seconds",
        "ground truth: affinity"]
    assert saved["setup"]["ground_truth"] == str(export / "ground_truth")

    # logged to MLflow like the models, under names MLflow accepts
    from mlflow.tracking import MlflowClient

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    _run_bench(["--from-results", str(results), "--mlflow-uri", uri])
    client = MlflowClient(tracking_uri=uri)
    runs = client.search_runs([client.get_experiment_by_name("vidrec-benchmarks").experiment_id])
    metrics = runs[0].data.metrics
    assert 0.0 <= metrics["ground_truth_affinity.gauc_clicked"] <= 1.0
    assert "ground_truth_without_the_style_term_expected_watch_seconds.pairwise_loss_watch_weighted" in metrics
    assert "ranker.gauc_clicked" in metrics


@pytest.mark.trains
def test_a_run_in_parts_merges_into_one_report_and_parts_of_different_runs_are_refused(tmp_path):
    export = _export(tmp_path, with_ground_truth=True)  # our part scores the ceilings too
    common = ["--frame-dir", str(export), "--dataset", "toy", "--resamples", "50", "--no-mlflow", "--trials", "1",
              "--seeds", "2", "--max-widenings", "0"]
    ours, baseline = tmp_path / "ours.json", tmp_path / "baseline.json"
    _run_bench([*common, "--models", "ranker", "--results-json", str(ours)])
    printed = _run_bench([*common, "--models", "popularity (train clickers)", "--results-json", str(baseline)])
    assert "part of a run" in printed and "### tuning" not in printed
    merged = _run_bench(["--from-results", str(ours), str(baseline), "--no-mlflow"])
    holdout_table = merged[merged.index("### holdout"):merged.index("### paired")]
    rows = [line.split(" | ")[0].strip("| ") for line in holdout_table.splitlines() if line.startswith("| ")][1:]
    assert rows == ["ranker", "popularity (train clickers)", "ground truth: expected watch seconds",
                    "ground truth without the style term: expected watch seconds", "ground truth: affinity"]
    assert "holdout read 6 times" in merged

    other = tmp_path / "other.json"
    _run_bench([*common[:-6], "--trials", "2", "--seeds", "2", "--max-widenings", "0",
                "--models", "popularity (train clickers)", "--results-json", str(other)])
    completed = subprocess.run([sys.executable, str(BENCH), "--from-results", str(ours), str(other), "--no-mlflow"],
                               capture_output=True, text=True, cwd=BENCH.parents[1], timeout=300)
    assert completed.returncode != 0 and "differ in ['trials']" in completed.stderr


def test_a_part_without_our_ranker_must_write_results_and_skip_mlflow(tmp_path):
    completed = subprocess.run([sys.executable, str(BENCH), "--frame-dir", str(tmp_path), "--models",
                                "logistic regression"], capture_output=True, text=True, timeout=120)
    assert completed.returncode == 2 and "needs --results-json and --no-mlflow" in completed.stderr


def test_the_bench_runs_as_a_script_from_any_directory(tmp_path):
    """`python bench/ranking.py` finds its sibling modules with no PYTHONPATH for bench/."""
    completed = subprocess.run([sys.executable, str(BENCH), "--help"], capture_output=True, text=True, cwd=tmp_path,
                               timeout=120)
    assert completed.returncode == 0, completed.stderr[-3000:]
    assert "--frame-dir DIR" in completed.stdout and "Ranker benchmark: our multi-task ranker" in completed.stdout


@pytest.fixture(scope="module")
def variants(bench_on_path):
    return importlib.import_module("ranking_variants")


def test_the_variant_study_scores_validation_and_never_reads_the_holdout(features, variants):
    raw = _labelled_frame(800)
    holdout = raw["split"] == "holdout"
    scrambled = raw.copy()
    scrambled.loc[holdout, "clicked"] = ~scrambled.loc[holdout, "clicked"]
    scrambled.loc[holdout, "quality"] = 1.0 - scrambled.loc[holdout, "quality"]

    def reports(raw):
        frame, config = features.benchmark_frame(raw, INPUTS)
        splits = variants.validation_splits(frame, config)
        assert splits.holdout.empty and len(splits.validation) == round(0.1 * (~holdout).sum())
        return [variants.study(name, splits, config, [0], trials=2, max_widenings=0)[1].reports[0]
                for name in ("logistic regression", "popularity (train clickers)")]

    assert reports(raw) == reports(scrambled)
    assert reports(raw)[0]["rows"] == round(0.1 * (~holdout).sum())


def test_an_ablation_scores_the_given_hyper_parameters_untuned(features, variants):
    frame, config = features.benchmark_frame(_labelled_frame(800), INPUTS)
    splits = variants.validation_splits(frame, config)
    params = {"epochs": 1, "weight_decay": 1e-3, "learning_rate": 1e-2, "dropout": 0.5, "cross_layers": 1}
    tuning, scored = variants.study("ranker tuned shape", splits, config, [0, 1], trials=5, max_widenings=0,
                                    params=params)
    assert tuning is None and scored.params == params and scored.seeds == [0, 1]
    assert all(0.0 <= report["gauc_logit"] <= 1.0 for report in scored.reports)


@pytest.mark.trains
def test_the_variant_study_reports_each_variant_paired_against_each_baseline(tmp_path):
    export = _export(tmp_path)
    script = BENCH_DIR / "ranking_variants.py"
    common = dict(capture_output=True, text=True, cwd=BENCH.parents[1], timeout=300,
                  env={**os.environ, "PYTHONPATH": str(BENCH.parents[1])})
    for name, models in (("ours", "ranker tuned shape"),
                         ("baselines", "logistic regression,popularity (train clickers)")):
        completed = subprocess.run([sys.executable, str(script), "--frame-dir", str(export), "--models", models,
                                    "--trials", "1", "--max-widenings", "0", "--seeds", "1",
                                    "--selection-metric", "pairwise_loss",
                                    "--results-json", str(tmp_path / f"{name}.json")], **common)
        assert completed.returncode == 0, completed.stderr[-3000:]
    completed = subprocess.run([sys.executable, str(script), "--combine", str(tmp_path / "ours.json"),
                                str(tmp_path / "baselines.json"), "--resamples", "50"], **common)
    assert completed.returncode == 0, completed.stderr[-3000:]
    assert "| validation pairwise loss (selection) |" in completed.stdout.splitlines()[0]
    rows = {line.split(" | ")[0].strip("| "): line for line in completed.stdout.splitlines()[2:]}
    assert set(rows) == {"ranker tuned shape", "logistic regression", "popularity (train clickers)"}
    assert rows["ranker tuned shape"].count("[") == 2 + 2 * 2  # its own two intervals, two per baseline


def test_the_variant_study_takes_the_click_factors_and_never_combines_them_with_results_without(tmp_path):
    export = _export(tmp_path)
    script = BENCH_DIR / "ranking_variants.py"
    common = dict(capture_output=True, text=True, cwd=BENCH.parents[1], timeout=300,
                  env={**os.environ, "PYTHONPATH": str(BENCH.parents[1])})
    for name, extra in (("with", []), ("without", ["--no-click-factors"])):  # on by default
        completed = subprocess.run([sys.executable, str(script), "--frame-dir", str(export), "--models",
                                    "logistic regression", "--trials", "1", "--max-widenings", "0", "--seeds", "1",
                                    "--results-json", str(tmp_path / f"{name}.json"), *extra], **common)
        assert completed.returncode == 0, completed.stderr[-3000:]
    assert json.loads((tmp_path / "with.json").read_text())["setup"]["click_factors"] is True
    assert json.loads((tmp_path / "without.json").read_text())["setup"]["click_factors"] is False
    completed = subprocess.run([sys.executable, str(script), "--combine", str(tmp_path / "with.json"),
                                str(tmp_path / "without.json"), "--resamples", "50"], **common)
    assert completed.returncode != 0 and "some of these results had the click factors" in completed.stderr


def test_the_calibration_table_sets_the_calibration_in_the_large_beside_the_constants_ece(protocol):
    tables = importlib.import_module("ranking_tables")
    report = {"ece_click": 0.02, "base_rate_click": 0.27, "ece_counts_toward_bar_click": 1.0, "positives_click": 900,
              "ece_constant_click": 0.005}
    seeds = [dict(report, calibration_in_the_large_click=value) for value in (0.003, 0.005)]
    header, _, row = tables.calibration_table(protocol.Scored("ranker", [0, 1], seeds, [], {}, [0.0, 0.0])).splitlines()
    cells = dict(zip(header.split(" | "), row.split(" | "), strict=True))
    assert cells["in the large: abs(mean prediction − base rate)"] == "0.0040 ± 0.0014"
    assert cells["constant (train rate) ECE"] == "0.0050"
    # results written before the figure existed still print, with a dash
    older = tables.calibration_table(protocol.Scored("ranker", [0], [report], [], {}, [0.0])).splitlines()[2]
    assert " | — | 0.0050 | " in older
