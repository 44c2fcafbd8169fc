"""The ranking bench's pure helpers: the train-click features never count a label or anything
after it, and the tuner's edge rule widens exactly the edges the best point sits on."""

from __future__ import annotations

import importlib.util
import math
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

BENCH = Path(__file__).resolve().parents[2] / "bench" / "ranking.py"


@pytest.fixture(scope="module")
def bench():
    spec = importlib.util.spec_from_file_location("bench_ranking", BENCH)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up while the class is built
    spec.loader.exec_module(module)
    yield module
    sys.modules.pop(spec.name, None)


def _row(user, video, when, clicked=False, split="train", bag=()):
    return dict(user_id=user, video_id=video, event_timestamp=pd.Timestamp(when, tz="UTC"),
                clicked=clicked, split=split, recent_watch_video_ids=np.array(bag, dtype=np.int64))


def test_train_click_features_count_only_train_clicks_settled_before_the_rows_day(bench):
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
    features = bench.train_click_features(frame)
    clickers = features["candidate_train_clickers"].tolist()
    cowatch = features["history_cowatch_count"].tolist()
    assert clickers[2:4] == [0, 1]  # day 1: nothing settled; day 2: user 2 only, not user 1's own click
    assert cowatch[2:4] == [0, 1]
    # day 3: user 1's day-2 click has settled (user 1 watched 20 but not 10: no co-watch of its own)
    assert (clickers[5], cowatch[5]) == (2, 1)
    assert (clickers[6], cowatch[6]) == (3, 1)  # day 4: user 3's late click too
    # holdout: train clicks only; the candidate in the bag and an id nobody clicked add nothing
    assert (clickers[9], cowatch[9]) == (3, 1)
    assert features["history_cowatch_share"].iloc[9] == pytest.approx(1 / (1 * 3))
    assert math.isnan(features["history_cowatch_share"].iloc[2])


def test_train_click_features_ignore_future_rows_entirely(bench):
    past = pd.DataFrame([_row(2, 10, "2026-01-01 09:00", clicked=True), _row(2, 20, "2026-01-01 10:00", clicked=True),
                         _row(1, 20, "2026-01-03 08:00", bag=[10])])
    future = pd.DataFrame([_row(5, 10, "2026-01-03 08:30", clicked=True), _row(5, 20, "2026-01-03 09:00", clicked=True),
                           _row(6, 20, "2026-01-05 09:00", clicked=True)])
    alone = bench.train_click_features(past)
    with_future = bench.train_click_features(pd.concat([past, future], ignore_index=True)).iloc[: len(past)]
    pd.testing.assert_frame_equal(alone, with_future)


def test_a_best_point_on_an_edge_widens_that_edge_only(bench):
    space = (bench.Param("inverse_regularization", 1e-3, 1e2, log=True),
             bench.Param("epochs", 4, 48, integer=True, floor=1),
             bench.Param("rate", 0.1, 0.9, ceiling=1.0))
    widened, moved = bench.widen_on_edge(space, {"inverse_regularization": 80.0, "epochs": 20, "rate": 0.5})
    assert moved == ["inverse_regularization high"]
    assert widened[0].low == 1e-3 and widened[0].high == pytest.approx(1e2 * 10 ** 2.5)
    assert widened[1:] == space[1:]
    widened, moved = bench.widen_on_edge(space, {"inverse_regularization": 1.0, "epochs": 5, "rate": 0.88})
    assert moved == ["epochs low", "rate high"]
    assert (widened[1].low, widened[1].high) == (1, 48)  # clipped at the floor
    assert widened[2].high == 1.0  # clipped at the ceiling: from there on, no longer an edge that moves
    assert widened[2].edge_of(0.99) is None
    assert bench.widen_on_edge(space, {"inverse_regularization": 1.0, "epochs": 20, "rate": 0.5}) == (space, [])


def test_tuning_searches_again_after_widening_and_reports_it(bench):
    # the loss falls towards epochs = 100, beyond the starting range: the search must follow it
    space = (bench.Param("epochs", 4, 20, integer=True, floor=1, ceiling=200),)
    tuning = bench.tune("toy", space, lambda params: abs(params["epochs"] - 100) / 100, trials=12, max_widenings=3)
    assert len(tuning.trials) == 12 * (1 + len([line for line in tuning.widened if line.startswith("round")]))
    assert tuning.widened and tuning.widened[0].startswith("round 1: epochs high")
    assert tuning.best_params["epochs"] > 20
