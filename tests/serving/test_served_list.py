"""Each served item keeps the rank score and head values of the candidate it is, whatever order
the policy served them in."""

from __future__ import annotations

import numpy as np

from models.sources.candidate import CandidateColumns
from serving.schemas import RecommendedVideo
from serving.served_list import served_items

CANDIDATES = CandidateColumns.from_ranked("ann", [(30, 0.9), (10, 0.8), (20, 0.7)]).concat(
    CandidateColumns.from_ranked("trending", [(40, 5.0)]))  # rank scores 1, 1/2, 1/3 and 1
HEAD_VALUES = {"watch_time": np.array([3.0, 1.0, 2.0, 4.0]), "like": np.array([0.3, 0.1, 0.2, 0.4])}


def items(*video_ids: int) -> list[RecommendedVideo]:
    return [RecommendedVideo(video_id=video, score=0.0, source="ann", retrieval_score=0.0) for video in video_ids]


def test_items_take_their_own_candidates_values_in_served_order():
    served = served_items(items(20, 40, 30), CANDIDATES, HEAD_VALUES)

    np.testing.assert_array_equal(served.rank_scores, [1 / 3, 1.0, 1.0])
    np.testing.assert_array_equal(served.head_values["watch_time"], [2.0, 4.0, 3.0])
    np.testing.assert_array_equal(served.head_values["like"], [0.2, 0.4, 0.3])


def test_an_item_the_candidates_lack_has_no_values():
    served = served_items(items(10, 99), CANDIDATES, HEAD_VALUES)

    np.testing.assert_array_equal(served.rank_scores, [0.5, np.nan])
    np.testing.assert_array_equal(served.head_values["like"], [0.1, np.nan])


def test_without_the_rankers_values_only_rank_scores_are_kept():
    served = served_items(items(30), CANDIDATES, None)

    assert served.head_values is None
    np.testing.assert_array_equal(served.rank_scores, [1.0])
