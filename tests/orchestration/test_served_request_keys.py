"""Which engagement row stands for a logged request when the served-feature comparison recomputes
its features: the request's own row only when it is stamped no later than the request."""

import pandas as pd

from feature_repo.entities import next_request_id
from orchestration.assets.served_skew import _engagement_keys
from vidrec.marts import Mart, mart_path
from vidrec.settings import VidrecSettings

SERVED_AT = pd.Timestamp("2026-01-11 00:00:01")


def _settings_with_states(tmp_path, states: list[tuple[str, int, str]]) -> VidrecSettings:
    settings = VidrecSettings(home=tmp_path)
    path = mart_path(settings.marts_dir, Mart.USER_ENGAGEMENT_HISTORY)
    path.parent.mkdir(parents=True, exist_ok=True)
    pd.DataFrame(states, columns=["request_id", "user_id", "event_timestamp"]).astype(
        {"event_timestamp": "datetime64[us]"}).to_parquet(path)
    return settings


def _served(*requests: tuple[str, int]) -> pd.DataFrame:
    return pd.DataFrame({"request_id": [request for request, _ in requests],
                         "user_id": [user for _, user in requests],
                         "request_time": [SERVED_AT] * len(requests)})


def test_a_request_whose_impressions_were_logged_at_its_time_is_looked_up_by_its_own_row(tmp_path):
    settings = _settings_with_states(tmp_path, [("r1", 7, "2026-01-11 00:00:01"),
                                                (next_request_id(7), 7, "2026-01-11 00:30:00")])

    own, recomputable = _engagement_keys(settings, _served(("r1", 7)))

    assert own.tolist() == [True]
    assert recomputable.tolist() == [True]


def test_a_request_whose_impressions_were_logged_later_is_not_its_own_row_nor_recomputable(tmp_path):
    """The client posted the impressions a minute after the answer, and the user watched more since:
    the own row holds events the service never saw, and the `next:` row moved on too."""
    settings = _settings_with_states(tmp_path, [("r1", 7, "2026-01-11 00:01:01"),
                                                (next_request_id(7), 7, "2026-01-11 00:30:00")])

    own, recomputable = _engagement_keys(settings, _served(("r1", 7)))

    assert own.tolist() == [False]
    assert recomputable.tolist() == [False]


def test_a_request_the_marts_have_not_seen_is_recomputable_while_the_next_row_predates_it(tmp_path):
    settings = _settings_with_states(tmp_path, [(next_request_id(7), 7, "2026-01-10 23:59:00"),
                                                (next_request_id(8), 8, "2026-01-11 00:30:00")])

    own, recomputable = _engagement_keys(settings, _served(("r1", 7), ("r2", 8), ("r3", 9)))

    assert own.tolist() == [False, False, False]
    assert recomputable.tolist() == [True, False, True]  # user 9: no row online or offline
