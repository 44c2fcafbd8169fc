"""The retrieval training frame reads each example's query through the retrieval feature service."""

from __future__ import annotations

from datetime import datetime

import numpy as np
import pandas as pd
import pytest

from orchestration.assets.features import retrieval_frame
from tests.models.retrieval.user_feature_marts import history_row, profile_row, store_over_marts

# user 1 watched 10 at 10:00 and 11 at 12:00 (searching "cat" at 11:00); user 4's last state is
# more than the history view's ttl (365 days) before their label
HISTORIES = [
    history_row(1, datetime(2026, 1, 2, 10), [10], []),
    history_row(1, datetime(2026, 1, 2, 11), [10], ["cat"]),
    history_row(1, datetime(2026, 1, 2, 12), [10, 11], ["cat"]),
    history_row(4, datetime(2024, 12, 1), [40], []),
]
PROFILES = [profile_row(user, datetime(2026, 1, 2), country=country) for user, country in ((1, "FR"), (4, "US"))]


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    return store_over_marts(tmp_path_factory.mktemp("frame_home"), PROFILES, HISTORIES)


def rollback_examples(user_4_history=(40,)) -> pd.DataFrame:
    """Rows of the mart retrieval_training_examples: each label with the history dbt rolled back to."""
    return pd.DataFrame({
        "user_id": [1, 1, 4],
        "label_video_id": [11, 12, 41],
        "label_time": pd.to_datetime(["2026-01-02 12:00", "2026-01-02 13:00", "2026-01-02 09:00"]),
        "history_video_ids": [np.array([10]), np.array([10, 11]), np.array(user_4_history)],
        "history_search_tokens": [np.array(["cat"]), np.array(["cat"]), np.array([], dtype=object)],
        "history_last_watch_time": pd.to_datetime(["2026-01-02 10:00", "2026-01-02 12:00", "2024-12-01 00:00"]),
        "example_age_days": [1.5, 1.4, 1.6],
        "split": ["train", "train", "train"],
    })


def test_each_example_gets_the_query_the_service_held_just_before_its_label(store):
    frame, without_state = retrieval_frame(store, rollback_examples())
    assert frame["label_video_id"].tolist() == [11, 12]
    assert frame["history_video_ids"].tolist() == [[10], [10, 11]]  # not the state stamped at the label
    assert frame["history_search_tokens"].tolist() == [["cat"], ["cat"]]
    assert frame["country"].tolist() == ["FR", "FR"]
    assert frame["example_age_days"].tolist() == [1.5, 1.4]
    assert without_state == 1  # user 4's state lies beyond the ttl: a request would not see it either


def test_a_service_history_unlike_the_marts_rollback_is_an_error(store):
    examples = rollback_examples().iloc[:2].copy()
    examples.at[1, "history_video_ids"] = np.array([10, 99])
    with pytest.raises(ValueError,
                       match=r"1 retrieval examples get a history_video_ids .* service \[10, 11\], mart \[10, 99\]"):
        retrieval_frame(store, examples)
