import numpy as np
import pandas as pd
import pytest

from models.evaluation.metrics import roc_auc
from models.ranking.bundle import RankerBundle
from models.ranking.config import RankerConfig
from models.ranking.preprocessing import FeaturePreprocessor
from models.ranking.train import train_ranker

CONFIG = RankerConfig(
    categorical_features=["surface", "country"], numeric_features=["quality", "noise"],
    category_min_count=1, hidden_widths=(32, 16), epochs=4, batch_size=512, learning_rate=5e-3,
    show_progress=False, seed=1, heads=("watch_time",), score_weights={"watch_time": 1.0},
    calibration_share=0.0, early_stopping_patience=None,  # train on every train row, as format 1 did
)


@pytest.fixture(scope="module")
def trained(ranking_frame):
    return train_ranker(ranking_frame, CONFIG)


def test_quantile_transform_is_monotone_bounded_and_handles_missing():
    rng = np.random.default_rng(0)
    frame = pd.DataFrame({"x": np.concatenate([np.zeros(400), rng.lognormal(size=600)]), "c": ["a"] * 1000})
    preprocessor = FeaturePreprocessor.fit(frame, RankerConfig(categorical_features=["c"], numeric_features=["x"]))
    probe = pd.DataFrame({"x": [-5.0, 0.0, 0.5, 1.0, 3.0, 1e9, np.nan], "c": ["a", "b", None, "a", "a", "a", "a"]})
    numeric = preprocessor.transform(probe).numeric.numpy()  # columns: x̃, x̃², √x̃, missing
    cdf = numeric[:6, 0]
    assert np.all(np.diff(cdf) >= 0) and cdf.min() >= 0 and cdf.max() <= 1
    assert cdf[-1] == pytest.approx(1.0) and cdf[1] == pytest.approx(0.2, abs=0.02)  # zeros: mid-rank
    np.testing.assert_allclose(numeric[:6, 1], cdf**2, rtol=1e-6)
    np.testing.assert_allclose(numeric[:6, 2], np.sqrt(cdf), rtol=1e-6)
    assert numeric[6].tolist() == [0.0, 0.0, 0.0, 1.0]
    assert preprocessor.transform(probe).categorical[:, 0].tolist() == [1, 0, 0, 1, 1, 1, 1]


def test_integer_ids_survive_a_float_cast_and_a_json_round_trip(tmp_path):
    frame = pd.DataFrame({"video_id": [5, 5, 6], "x": [1.0, 2.0, 3.0]})
    config = RankerConfig(categorical_features=["video_id"], numeric_features=["x"], category_min_count=1)
    preprocessor = FeaturePreprocessor.fit(frame, config)
    preprocessor.save(tmp_path / "preprocessor.json")
    loaded = FeaturePreprocessor.load(tmp_path / "preprocessor.json")
    probe = pd.DataFrame({"video_id": [6.0, np.nan, 7.0], "x": [2.0, 2.0, 2.0]})
    assert loaded.transform(probe).categorical[:, 0].tolist() == [2, 0, 0]
    np.testing.assert_array_equal(loaded.transform(probe).numeric, preprocessor.transform(probe).numeric)


def test_scoring_numpy_columns_matches_scoring_the_same_rows_as_a_frame(trained, ranking_frame):
    """The service scores a mapping of numpy columns; training and evaluation score DataFrames."""
    sample = ranking_frame.head(300).copy()
    sample.loc[sample.index[:5], "quality"] = np.nan
    sample.loc[sample.index[5:10], "country"] = None
    columns = {name: sample[name].to_numpy() for name in ("surface", "country", "quality", "noise")}
    np.testing.assert_array_equal(trained.score(columns), trained.score(sample))


def test_a_column_missing_from_numpy_columns_is_named(trained):
    with pytest.raises(ValueError, match=r"lacks feature columns \['noise'\]"):
        trained.score({"surface": np.array(["home"], dtype=object), "country": np.array(["US"], dtype=object),
                       "quality": np.array([1.0])})


def test_ranker_beats_random_at_separating_clicks(trained, ranking_frame):
    assert trained.metrics["holdout_auc_clicked"] > 0.62
    assert trained.metrics["holdout_auc_watch_weighted"] > trained.metrics["holdout_auc_clicked"]
    holdout = ranking_frame[ranking_frame["split"] == "holdout"]
    random_scores = np.random.default_rng(0).random(len(holdout))
    assert trained.metrics["holdout_auc_clicked"] > roc_auc(holdout["clicked"], random_scores) + 0.1


def test_exp_logit_tracks_expected_watch_time(trained):
    quality = np.linspace(0.5, 9.5, 10)
    grid = pd.DataFrame({
        "quality": np.tile(quality, 2), "noise": 0.0, "surface": ["home"] * 10 + ["search"] * 10, "country": "US",
    })
    true_expected = (0.05 + 0.03 * grid["quality"] + 0.1 * (grid["surface"] == "home")) * (
        20.0 * np.exp(0.25 * grid["quality"]) * np.where(grid["surface"] == "home", 1.5, 1.0))
    predicted = trained.score(grid)
    assert predicted.dtype == np.float64
    assert pd.Series(predicted).corr(pd.Series(true_expected), method="spearman") > 0.9
    home, search = predicted[:10], predicted[10:]
    assert np.all(np.diff(home) > 0) and np.all(np.diff(search) > 0)  # more quality, more watch time
    assert np.all(home > search)  # home impressions are worth more at equal quality


def test_bundle_round_trip_scores_identically(trained, ranking_frame, tmp_path):
    trained.save(tmp_path / "ranker")
    loaded = RankerBundle.load(tmp_path / "ranker")
    sample = ranking_frame.head(200)
    np.testing.assert_array_equal(loaded.score(sample), trained.score(sample))
    assert loaded.config == trained.config


def test_training_rejects_a_frame_without_labels(ranking_frame):
    with pytest.raises(ValueError, match="watch_seconds"):
        train_ranker(ranking_frame.drop(columns=["watch_seconds"]), CONFIG)


def test_a_format_1_bundle_still_loads_and_scores_e_to_the_f(trained, ranking_frame, tmp_path):
    import copy
    import json

    import torch

    directory = tmp_path / "format1"
    trained.save(directory)
    state = {key: value for key, value in trained.model.state_dict().items() if not key.startswith("bias_tower")}
    torch.save(state, directory / "model.pt")
    (directory / "calibration.json").unlink()
    config = json.loads((directory / "config.json").read_text())
    for key in ("heads", "score_weights", "position_column", "bias_surface_feature", "architecture"):
        config.pop(key)
    (directory / "config.json").write_text(json.dumps(config))
    metadata = json.loads((directory / "metadata.json").read_text())
    (directory / "metadata.json").write_text(json.dumps({"format_version": 1, "heads": ["watch_time"],
                                                         "metrics": metadata["metrics"]}))
    loaded = RankerBundle.load(directory)
    without_bias_tower = copy.deepcopy(trained)
    for parameter in without_bias_tower.model.bias_tower.parameters():
        parameter.data.zero_()
    sample = ranking_frame.head(100)
    np.testing.assert_allclose(loaded.score(sample), np.exp(without_bias_tower.logits(sample)), rtol=1e-6)


def test_denormal_weights_are_flushed_to_zero_and_normal_ones_kept(trained):
    """L2 decay leaves rare ids' weights at denormal floats, which CPUs multiply very slowly."""
    import torch

    model = trained.model
    weight = model.heads["watch_time"].weight
    kept = weight.detach().clone()
    with torch.no_grad():
        weight[0, :2] = torch.tensor([1e-40, -1e-41])
    assert model.flush_denormal_weights() == 2
    assert weight[0, :2].tolist() == [0.0, 0.0]
    torch.testing.assert_close(weight[0, 2:], kept[0, 2:])
    with torch.no_grad():
        weight.copy_(kept)
