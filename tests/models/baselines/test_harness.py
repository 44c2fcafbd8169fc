"""The harness: equal tuning, test read once per seed of the chosen configuration, paired verdicts."""

from collections.abc import Mapping, Sequence
from dataclasses import replace
from typing import ClassVar

import numpy as np
import pandas as pd
import pytest

from models.baselines.harness import HarnessSettings, MethodSpec, run_harness, summary_table
from models.evaluation.tuning import Choice, FloatRange

START = pd.Timestamp("2024-01-01")


def drifting_interactions(num_users: int = 80, per_user: int = 12) -> pd.DataFrame:
    """User u watches videos u, u+1, ... (mod 50) on consecutive days: the next video is predictable."""
    rows = [(user, (user + step) % 50, START + pd.Timedelta(days=step, hours=user % 24))
            for user in range(num_users) for step in range(per_user)]
    return pd.DataFrame(rows, columns=["user_id", "video_id", "time"])


class NextVideo:
    """Recommends the videos after the user's last train video, in order (knows the pattern)."""

    def __init__(self, seed: int = 0, stride: float = 1.0):
        self.seed, self.stride = seed, stride

    def fit(self, train: pd.DataFrame, query_time=None):
        self.last = train.sort_values("time").groupby("user_id")["video_id"].last().to_dict()
        return self

    def recommend(self, user_ids: Sequence[int], k: int, exclude: Mapping[int, set[int]]) -> list[list[int]]:
        step = max(1, round(self.stride))
        ranked = []
        for user in user_ids:
            candidates = [(self.last[user] + step * i) % 50 for i in range(1, 50)]
            ranked.append([v for v in dict.fromkeys(candidates) if v not in exclude.get(user, set())][:k])
        return ranked


class Shuffled:
    def __init__(self, seed: int = 0):
        self.rng = np.random.default_rng(seed)

    def fit(self, train: pd.DataFrame, query_time=None):
        return self

    def recommend(self, user_ids, k, exclude):
        return [[int(v) for v in self.rng.permutation(50) if v not in exclude.get(user, set())][:k]
                for user in user_ids]


SETTINGS = HarnessSettings(trials=4, max_widenings=0, seeds=(0, 1, 2), slices=("all",))


def test_seeded_methods_run_every_seed_and_deterministic_ones_once():
    fits = []

    class Counting(NextVideo):
        def fit(self, train, query_time=None):
            fits.append(self.seed)
            return super().fit(train, query_time)

    methods = [MethodSpec("ours", Counting, {"stride": FloatRange(0.6, 3.0)}, seeded=True),
               MethodSpec("random", Shuffled)]
    result = run_harness(drifting_interactions(), methods, catalog_size=50, settings=SETTINGS)
    assert result.runs["ours"].seeds == (0, 1, 2) and result.runs["random"].seeds == (0,)
    assert fits == [0] * 4 + [0, 1, 2]  # four tuning trials with the first seed, then one test fit per seed
    assert [read["method"] for read in result.test_reads] == ["ours", "random"]
    assert result.test_reads[0]["seeds"] == [0, 1, 2]


def test_tuning_picks_the_configuration_that_wins_on_validation():
    methods = [MethodSpec("ours", NextVideo, {"stride": Choice((3, 2, 1))}, seeded=True)]
    settings = replace(SETTINGS, tuning_metric="recall@10", trials=8)
    result = run_harness(drifting_interactions(), methods, catalog_size=50, settings=settings)
    assert result.runs["ours"].params == {"stride": 1}


def test_a_clear_winner_is_called_better_and_an_equal_method_is_not():
    methods = [MethodSpec("ours", NextVideo, seeded=True), MethodSpec("random", Shuffled, seeded=True),
               MethodSpec("same", NextVideo)]
    result = run_harness(drifting_interactions(), methods, catalog_size=50, settings=SETTINGS)
    table = summary_table(result.runs, ["recall@10"], reference="ours", resamples=500)
    assert table.loc["random", "recall@10 verdict"] == "reference better"
    assert table.loc["random", "recall@10 Δ low"] > 0
    assert table.loc["same", "recall@10 verdict"] == "no difference"
    assert table.loc["ours", "recall@10 low"] <= table.loc["ours", "recall@10"] <= table.loc["ours", "recall@10 high"]
    assert table.loc["random", "seeds"] == 3 and table.loc["random", "recall@10 seed sd"] > 0


class RecordingQueryTime(NextVideo):
    """NextVideo that notes the query time and the latest train time of every fit."""

    fits: ClassVar[list] = []

    def fit(self, train, query_time=None):
        RecordingQueryTime.fits.append((query_time, train["time"].max()))
        return super().fit(train, query_time)


def test_every_fit_is_asked_at_its_splits_cutoff():
    RecordingQueryTime.fits = []
    result = run_harness(drifting_interactions(), [MethodSpec("ours", RecordingQueryTime)], catalog_size=50,
                         settings=replace(SETTINGS, trials=1))
    tuning_fit, test_fit = RecordingQueryTime.fits
    assert tuning_fit[0] == result.validation.cutoff and test_fit[0] == result.split.cutoff
    assert tuning_fit[1] < tuning_fit[0] < test_fit[1] < test_fit[0]  # each "now" after its train, before test


def test_asking_at_the_last_interaction_gives_no_query_time_to_any_method():
    RecordingQueryTime.fits = []
    run_harness(drifting_interactions(), [MethodSpec("ours", RecordingQueryTime)], catalog_size=50,
                settings=replace(SETTINGS, trials=1, query_at="last_interaction"))
    assert [query_time for query_time, _ in RecordingQueryTime.fits] == [None, None]


def test_a_validation_holdout_never_reaches_the_test_period():
    interactions = drifting_interactions()
    full = run_harness(interactions, [MethodSpec("random", Shuffled)], catalog_size=50, settings=SETTINGS)
    RecordingQueryTime.fits = []
    result = run_harness(interactions, [MethodSpec("ours", RecordingQueryTime)], catalog_size=50,
                         settings=replace(SETTINGS, trials=1, holdout="validation"))
    assert result.split.cutoff == full.validation.cutoff  # scored on validation
    assert result.validation.cutoff < result.split.cutoff  # tuned on the same cut inside its train
    assert result.split.test["time"].max() < full.split.cutoff
    assert all(latest < full.validation.cutoff for _, latest in RecordingQueryTime.fits)


@pytest.mark.parametrize(("field", "value"), [("query_at", "now"), ("holdout", "train")])
def test_unknown_query_time_or_holdout_is_rejected(field, value):
    with pytest.raises(ValueError, match=f"{field} must be one of .*{value}"):
        replace(SETTINGS, **{field: value})
