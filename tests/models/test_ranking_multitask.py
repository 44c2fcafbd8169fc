
import numpy as np
import pandas as pd
import pytest
import torch

from models.ranking.bundle import RankerBundle
from models.ranking.config import HEADS, RankerConfig
from models.ranking.model import Ranker
from models.ranking.preprocessing import FeaturePreprocessor
from models.ranking.train import train_ranker
from tests.models.conftest import make_ranking_frame

LABELS = ["clicked", "watch_seconds", "liked", "position", "split", "example_weight"]
CONFIG = RankerConfig(
    categorical_features=["surface", "country"], numeric_features=["quality", "noise"],
    category_min_count=1, hidden_widths=(32, 16), epochs=8, batch_size=256, learning_rate=5e-3,
    show_progress=False, seed=1, num_positions=5,
)


def make_multitask_frame(num_rows: int, seed: int) -> pd.DataFrame:
    """The conftest frame plus likes (likelier with quality), a planted position effect (lower
    positions click less), time, users, requests, and 25 % negative down-sampling (weight 4)."""
    rng = np.random.default_rng(seed)
    frame = make_ranking_frame(num_rows, rng)
    frame["position"] = rng.integers(0, 5, num_rows)
    frame["clicked"] &= rng.random(num_rows) < 1.0 - 0.15 * frame["position"]
    frame.loc[~frame["clicked"], "watch_seconds"] = 0.0
    frame["liked"] = frame["clicked"] & (rng.random(num_rows) < np.nan_to_num(frame["quality"], nan=5) / 12)
    frame["duration_seconds"] = 600.0
    frame["event_timestamp"] = pd.Timestamp("2026-01-01", tz="UTC") + pd.to_timedelta(np.arange(num_rows), unit="min")
    frame["split"] = np.where(np.arange(num_rows) < 0.8 * num_rows, "train", "holdout")
    frame["user_id"] = rng.integers(0, 300, num_rows)
    frame["request_id"] = (np.arange(num_rows) // 5).astype(str)
    full = frame
    kept = full[full["clicked"] | (rng.random(num_rows) < 0.25)].copy()
    kept["example_weight"] = np.where(kept["clicked"], 1.0, 4.0)
    kept.attrs["full"] = full
    return kept


@pytest.fixture(scope="module")
def frame():
    return make_multitask_frame(40_000, seed=5)


@pytest.fixture(scope="module")
def trained(frame):
    return train_ranker(frame, CONFIG)


def test_every_head_trains_and_beats_random(trained):
    assert trained.model.head_names == HEADS
    assert set(trained.calibrators) == {"click", "like", "skip"}
    assert trained.metrics["holdout_auc_click"] > 0.58
    assert trained.metrics["holdout_auc_like"] > 0.6
    assert trained.metrics["holdout_auc_watch_weighted"] > 0.6
    for key in ("holdout_gauc_clicked", "holdout_pairwise_loss_watch_weighted", "holdout_ndcg_at_10_watch_seconds"):
        assert np.isfinite(trained.metrics[key])


def test_calibrated_heads_match_the_full_log_base_rate_despite_down_sampling(trained, frame):
    full_holdout = frame.attrs["full"].query("split == 'holdout'")
    values = trained.head_values(full_holdout)
    assert values["click"].mean() == pytest.approx(full_holdout["clicked"].mean(), rel=0.08)
    assert values["like"].mean() == pytest.approx(full_holdout["liked"].mean(), rel=0.15)
    for head in ("click", "like", "skip"):
        assert trained.metrics[f"holdout_ece_{head}"] <= 0.03


def test_position_tower_learns_the_planted_bias_but_serving_ignores_position(trained, frame):
    click_column = trained.model.head_names.index("click")
    position_bias = trained.model.bias_tower.position.weight[:, click_column].detach().numpy()
    assert position_bias[0] > position_bias[4]  # lower slots click less
    sample = frame.head(300)
    shuffled = sample.assign(position=np.random.default_rng(0).integers(0, 5, len(sample)))
    np.testing.assert_array_equal(trained.score(sample), trained.score(shuffled))
    np.testing.assert_array_equal(trained.score(sample), trained.score(sample.drop(columns=["position"])))


def test_score_of_500_candidates_needs_no_labels_and_combines_the_heads(trained, frame):
    candidates = frame.sample(500, random_state=0).drop(columns=LABELS)
    score = trained.score(candidates)
    assert score.shape == (500,) and score.dtype == np.float64 and np.all(np.isfinite(score))
    values = trained.head_values(candidates)
    expected = values["watch_time"] + 30.0 * values["like"] - 30.0 * values["skip"]
    np.testing.assert_allclose(score, expected)  # its speed is measured by bench/ranking_latency.py


def test_other_head_weights_rescore_without_retraining_and_unknown_heads_are_refused(trained, frame):
    candidates = frame.sample(100, random_state=2).drop(columns=LABELS)
    values = trained.head_values(candidates)

    like_heavy = trained.with_score_weights({"watch_time": 1.0, "like": 120.0, "skip": -30.0})

    np.testing.assert_allclose(like_heavy.score(candidates),
                               values["watch_time"] + 120.0 * values["like"] - 30.0 * values["skip"])
    assert trained.config.score_weights["like"] == 30.0  # the trained bundle keeps its own
    with pytest.raises(ValueError, match="unknown heads"):
        trained.with_score_weights({"watch_time": 1.0, "share": 5.0})


def test_the_score_comes_with_the_head_values_it_combined(trained, frame):
    candidates = frame.sample(50, random_state=1).drop(columns=LABELS)

    score, values = trained.score_with_head_values(candidates)

    np.testing.assert_array_equal(score, trained.score(candidates))
    assert sorted(values) == sorted(trained.model.head_names)
    for head, expected in trained.head_values(candidates).items():
        np.testing.assert_array_equal(values[head], expected)


def test_bundle_round_trip_keeps_calibrators_and_the_report(trained, frame, tmp_path):
    trained.save(tmp_path / "ranker")
    loaded = RankerBundle.load(tmp_path / "ranker")
    sample = frame.head(200)
    np.testing.assert_array_equal(loaded.score(sample), trained.score(sample))
    report = loaded.calibration_report()
    assert set(report) == {"click", "like", "skip"}
    assert report["click"]["method"] in ("platt", "isotonic")
    assert report["click"]["ece_after"] <= report["click"]["ece_before"] + 0.01
    assert report["click"]["diagram_png"].startswith(b"\x89PNG")
    paths = loaded.write_reliability_diagrams(tmp_path / "plots")
    assert sorted(path.name for path in paths.values()) == ["reliability_click.png", "reliability_like.png",
                                                            "reliability_skip.png"]


def test_mmoe_gates_are_softmaxes_and_the_model_trains(frame):
    config = RankerConfig(**{**CONFIG.__dict__, "architecture": "mmoe", "num_experts": 3, "epochs": 2})
    preprocessor = FeaturePreprocessor.fit(frame, config)
    model = Ranker(config, preprocessor.vocabulary_sizes, preprocessor.numeric_width)
    inputs = preprocessor.transform(frame.head(64))
    gates = model.mixture.gate_weights(model.features(inputs))
    assert set(gates) == set(HEADS)
    for weights in gates.values():
        assert weights.shape == (64, 3)
        torch.testing.assert_close(weights.sum(dim=1), torch.ones(64))
    bundle = train_ranker(frame, config)
    assert bundle.metrics["holdout_auc_click"] > 0.56


def test_config_rejects_unknown_heads_and_score_weights_on_missing_heads():
    with pytest.raises(ValueError, match="unknown heads"):
        RankerConfig(heads=("watch_time", "share"))
    with pytest.raises(ValueError, match="not in heads"):
        RankerConfig(heads=("watch_time",), score_weights={"like": 1.0})
    with pytest.raises(ValueError, match="architecture"):
        RankerConfig(architecture="transformer")
