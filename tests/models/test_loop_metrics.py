"""The closed-loop metrics on hand-built served frames whose answers are known."""

from __future__ import annotations

import time

import numpy as np
import pandas as pd
import pytest

from models.evaluation.bootstrap import two_sample_difference
from models.evaluation.loop_metrics import (
    COLD_VIDEO_IMPRESSIONS,
    DAILY_COUNTS,
    DAILY_METRICS,
    arm_difference,
    creator_exposure_gini,
    daily_arm_metrics,
    gini,
    list_overlap,
    per_user_primary,
)

REQUEST_TIME = pd.Timestamp("2026-01-10 12:00")


def served_rows(arm: str, day: int, user_id: int, video_ids: list[int], **columns) -> list[dict]:
    """One request's rows: `columns` hold one value for every item, or a list with one per item."""
    request_time = columns.pop("request_time", REQUEST_TIME + pd.Timedelta(days=day))
    rows = []
    for position, video_id in enumerate(video_ids):
        row = {
            "arm": arm,
            "day": day,
            "request_id": columns.get("request_id", f"{arm}-{day}-{user_id}"),
            "user_id": user_id,
            "video_id": video_id,
            "creator_id": video_id % 10,
            "position": position,
            "request_time": request_time,
            "upload_time": request_time - pd.Timedelta(days=10),
            "clicked": False,
            "watch_seconds": 0.0,
            "liked": False,
            "truly_relevant": False,
            "propensity": 0.5,
            "explored": False,
        }
        for name, value in columns.items():
            row[name] = value[position] if isinstance(value, list) else value
        rows.append(row)
    return rows


def frame(*requests: list[dict]) -> pd.DataFrame:
    return pd.DataFrame([row for rows in requests for row in rows])


def test_gini_of_equal_exposure_is_zero():
    assert gini([5, 5, 5, 5]) == pytest.approx(0.0)


@pytest.mark.parametrize("creators", [2, 4, 10])
def test_gini_of_all_exposure_on_one_creator_is_n_minus_one_over_n(creators):
    assert gini([0] * (creators - 1) + [7]) == pytest.approx((creators - 1) / creators)


def test_creator_gini_counts_creators_never_shown():
    # Two creators shown equally, two never shown: half the creators hold everything.
    assert creator_exposure_gini([1, 1, 2, 2], n_creators=2) == pytest.approx(0.0)
    assert creator_exposure_gini([1, 1, 2, 2], n_creators=4) == pytest.approx(0.5)


def test_gini_rejects_nothing_to_share():
    with pytest.raises(ValueError, match="every value is 0"):
        gini([0, 0])
    with pytest.raises(ValueError, match="non-negative"):
        gini([1, -1])


def test_identical_lists_are_both_collapsed_and_disjoint_lists_are_not():
    identical = list_overlap([1, 1, 2, 2], [10, 11, 10, 11])
    assert identical.collapsed_user_share == 1.0
    assert identical.mean_jaccard == pytest.approx(1.0)

    disjoint = list_overlap([1, 1, 2, 2, 3, 3], [10, 11, 12, 13, 14, 15])
    assert disjoint.collapsed_user_share == 0.0
    assert disjoint.mean_jaccard == 0.0


def test_collapse_needs_jaccard_of_one_half():
    # Users 1 and 2 share 2 of 4 distinct videos (Jaccard 1/2): collapsed. User 3 shares 1 of 5
    # with user 1 (1/5) and nothing with user 2: not collapsed.
    overlap = list_overlap([1, 1, 1, 2, 2, 2, 3, 3, 3], [10, 11, 12, 10, 11, 13, 12, 20, 21])
    assert overlap.collapsed_user_share == pytest.approx(2 / 3)
    assert overlap.mean_jaccard == pytest.approx((1 / 2 + 1 / 5 + 0) / 3)


def test_list_overlap_of_two_thousand_users_is_fast():
    rng = np.random.default_rng(0)
    users = np.repeat(np.arange(2000), 20)
    videos = rng.integers(0, 300, size=users.size)  # a small catalog: most pairs share a video
    started = time.perf_counter()
    overlap = list_overlap(users, videos)
    assert time.perf_counter() - started < 5.0
    assert 0.0 < overlap.mean_jaccard < 0.1


def test_fresh_share_counts_videos_uploaded_less_than_a_day_before():
    served = frame(
        served_rows(
            "a",
            0,
            1,
            [1, 2],
            upload_time=[REQUEST_TIME - pd.Timedelta(hours=23), REQUEST_TIME - pd.Timedelta(hours=25)],
        )
    )
    assert daily_arm_metrics(served, catalog_size=10, n_creators=10)["fresh_share"].item() == 0.5


def test_video_served_before_its_upload_is_an_error():
    served = frame(served_rows("a", 0, 1, [1], upload_time=REQUEST_TIME + pd.Timedelta(hours=1)))
    with pytest.raises(ValueError, match="before its upload_time"):
        daily_arm_metrics(served, catalog_size=10, n_creators=10)


def test_daily_metrics_per_arm_and_day():
    served = frame(
        # arm a, day 0: two users, one request each, three items; 2 of 3 and 1 of 3 truly relevant.
        served_rows("a", 0, 1, [1, 2, 3], truly_relevant=[True, True, False], clicked=[True, False, False],
                    watch_seconds=[30.0, 0.0, 0.0]),
        served_rows("a", 0, 2, [3, 4, 5], truly_relevant=[False, False, True], clicked=[True, True, False],
                    watch_seconds=[10.0, 20.0, 0.0]),
        # arm a, day 1: one user, all relevant.
        served_rows("a", 1, 1, [6, 7], truly_relevant=True),
        served_rows("b", 0, 3, [1, 2, 3]),
    )
    daily = daily_arm_metrics(served, catalog_size=pd.Series({0: 10, 1: 20}), n_creators=10)
    assert list(daily.columns) == ["arm", "day", *DAILY_COUNTS, *DAILY_METRICS]
    assert list(zip(daily["arm"], daily["day"])) == [("a", 0), ("a", 1), ("b", 0)]

    a0 = daily.iloc[0]
    assert (a0["users"], a0["requests"], a0["impressions"]) == (2, 2, 6)
    assert a0["watch_seconds_per_user"] == pytest.approx(30.0)
    assert a0["click_through"] == pytest.approx(3 / 6)
    assert a0["true_precision_at_k"] == pytest.approx((2 / 3 + 1 / 3) / 2)
    assert a0["catalog_coverage"] == pytest.approx(5 / 10)  # videos 1..5 of 10
    assert a0["collapsed_user_share"] == 0.0  # {1,2,3} and {3,4,5}: Jaccard 1/5
    assert a0["mean_jaccard"] == pytest.approx(1 / 5)

    a1 = daily.iloc[1]
    assert a1["true_precision_at_k"] == 1.0
    assert a1["catalog_coverage"] == pytest.approx(2 / 20)  # day 1's catalog is 20 videos
    assert np.isnan(a1["mean_jaccard"])  # one user: no pairs


def test_a_short_list_is_judged_on_what_it_showed():
    served = frame(served_rows("a", 0, 1, [1, 2], truly_relevant=[True, False]), served_rows("a", 0, 2, [3]))
    assert daily_arm_metrics(served, 10, 10)["true_precision_at_k"].item() == pytest.approx((1 / 2 + 0) / 2)


def test_collapse_uses_each_users_last_list_of_the_day():
    early, late = REQUEST_TIME, REQUEST_TIME + pd.Timedelta(hours=3)
    served = frame(
        served_rows("a", 0, 1, [1, 2], request_id="u1-early", request_time=early),
        served_rows("a", 0, 1, [8, 9], request_id="u1-late", request_time=late),
        served_rows("a", 0, 2, [1, 2], request_id="u2", request_time=late),
    )
    # User 1's last list {8, 9} shares nothing with user 2's {1, 2}, though the earlier one was identical.
    assert daily_arm_metrics(served, 10, 10)["collapsed_user_share"].item() == 0.0


def test_creator_gini_in_the_daily_metrics_counts_every_creator():
    served = frame(served_rows("a", 0, 1, [3, 13, 23]))  # three impressions, all of creator 3
    assert daily_arm_metrics(served, 30, n_creators=5)["creator_exposure_gini"].item() == pytest.approx(4 / 5)


def test_missing_columns_are_named():
    served = frame(served_rows("a", 0, 1, [1])).drop(columns=["truly_relevant", "upload_time"])
    with pytest.raises(ValueError, match=r"lacks columns \['upload_time', 'truly_relevant'\]"):
        daily_arm_metrics(served, 10, 10)


def test_empty_served_frame_is_an_error():
    empty = frame(served_rows("a", 0, 1, [1])).iloc[0:0]
    with pytest.raises(ValueError, match="served frame is empty"):
        daily_arm_metrics(empty, 10, 10)
    with pytest.raises(ValueError, match="served frame is empty"):
        per_user_primary(empty)


def test_catalog_size_must_cover_every_day():
    served = frame(served_rows("a", 0, 1, [1]), served_rows("a", 1, 1, [2]))
    with pytest.raises(ValueError, match="no entry for day 1"):
        daily_arm_metrics(served, pd.Series({0: 10}), 10)


def test_more_videos_shown_than_the_catalog_holds_is_an_error():
    with pytest.raises(ValueError, match="catalog size is 2"):
        daily_arm_metrics(frame(served_rows("a", 0, 1, [1, 2, 3])), 2, 10)


def test_per_user_primary_sums_watch_seconds_over_days():
    served = frame(
        served_rows("a", 0, 1, [1, 2], watch_seconds=[10.0, 5.0]),
        served_rows("a", 1, 1, [3], watch_seconds=20.0),
        served_rows("b", 0, 2, [1], watch_seconds=7.0),
    )
    per_user = per_user_primary(served)
    assert per_user.to_dict("records") == [
        {"arm": "a", "user_id": 1, "total_watch_seconds": 35.0, "days_served": 2},
        {"arm": "b", "user_id": 2, "total_watch_seconds": 7.0, "days_served": 1},
    ]


def test_a_user_in_two_arms_is_an_error():
    served = frame(served_rows("a", 0, 1, [1]), served_rows("b", 0, 1, [2]))
    with pytest.raises(ValueError, match="more than one arm"):
        per_user_primary(served)


def normal_samples(shift: float, seed: int, size: int = 400) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    return rng.normal(100.0 + shift, 20.0, size), rng.normal(100.0, 20.0, size + 100)


def test_two_sample_interval_covers_the_true_difference_about_as_often_as_it_claims():
    covered = 0
    for seed in range(40):
        a, b = normal_samples(shift=5.0, seed=seed)
        interval = two_sample_difference(a, b, resamples=500, seed=seed)
        covered += interval.low <= 5.0 <= interval.high
    assert covered >= 34  # 95% nominal: 38 of 40 expected, 34 or fewer has probability < 1%


def test_two_sample_interval_excludes_zero_for_a_large_shift_and_includes_it_for_none():
    a, b = normal_samples(shift=10.0, seed=1)
    shifted = two_sample_difference(a, b, seed=1)
    assert shifted.excludes_zero and shifted.low > 0
    assert shifted.estimate == pytest.approx(a.mean() - b.mean())
    assert shifted.units == a.size + b.size

    a, b = normal_samples(shift=0.0, seed=2)
    assert not two_sample_difference(a, b, seed=2).excludes_zero


def test_two_sample_interval_is_wider_than_a_paired_one_would_need_to_be():
    # The unpaired interval's half-width tracks sqrt(var_a/n_a + var_b/n_b): about 1.96 × 1.31 here.
    a, b = normal_samples(shift=0.0, seed=3)
    interval = two_sample_difference(a, b, seed=3)
    expected_half_width = 1.96 * np.sqrt(a.var() / a.size + b.var() / b.size)
    assert (interval.high - interval.low) / 2 == pytest.approx(expected_half_width, rel=0.15)


def test_same_seed_gives_the_same_interval():
    a, b = normal_samples(shift=1.0, seed=4)
    assert two_sample_difference(a, b, seed=9) == two_sample_difference(a, b, seed=9)


def test_arm_difference_per_served_day_pools_watch_seconds_over_served_days():
    per_user = pd.DataFrame({
        "arm": ["a", "a", "b", "b"],
        "user_id": [1, 2, 3, 4],
        "total_watch_seconds": [100.0, 300.0, 60.0, 60.0],
        "days_served": [1, 3, 2, 2],
    })
    per_served_day = arm_difference(per_user, "a", "b", resamples=200)
    assert per_served_day.estimate == pytest.approx(400 / 4 - 120 / 4)
    per_user_mean = arm_difference(per_user, "a", "b", per="user", resamples=200)
    assert per_user_mean.estimate == pytest.approx(200 - 60)


def test_arm_difference_names_an_unknown_arm():
    per_user = pd.DataFrame({"arm": ["a", "a"], "user_id": [1, 2], "total_watch_seconds": [1.0, 2.0],
                             "days_served": [1, 1]})
    with pytest.raises(ValueError, match=r"arm 'b' has no users .*\['a'\]"):
        arm_difference(per_user, "a", "b")


def test_a_sample_of_one_user_cannot_be_bootstrapped():
    with pytest.raises(ValueError, match=r"sample B has 1 unit\(s\)"):
        two_sample_difference([1.0, 2.0], [3.0])


def test_cold_share_counts_videos_shown_less_than_the_threshold_before_the_day():
    """Video 1 was shown 99 times before the loop and once more on day 0 (by the other arm): cold on
    day 0, warm on day 1. Video 2 was shown 500 times before: never cold."""
    served = frame(served_rows("a", 0, 1, [1]), served_rows("b", 0, 2, [2, 1]), served_rows("a", 1, 1, [1, 2]))
    prior = pd.Series({1: COLD_VIDEO_IMPRESSIONS - 1, 2: 500})

    daily = daily_arm_metrics(served, catalog_size=10, n_creators=10, prior_impressions=prior).set_index(["arm", "day"])

    assert daily.loc[("a", 0), "cold_share"] == 1.0
    assert daily.loc[("b", 0), "cold_share"] == 0.5
    assert daily.loc[("a", 1), "cold_share"] == 0.0
    without_history = daily_arm_metrics(served, catalog_size=10, n_creators=10).set_index(["arm", "day"])
    assert without_history.loc[("a", 1), "cold_share"] == 1.0  # two earlier shows are far below 100
