"""Methods are asked at the protocol's query time (the split's cut-off), not at each user's last watch."""

import numpy as np
import pandas as pd
import pytest

from models.baselines import EASE, MostPopular
from models.baselines.candidate_generator import CandidateGeneratorRecommender, rollback_examples
from models.evaluation.protocol import temporal_split
from tests.models.fresh_feed import FRESHNESS_ONLY_CONFIG, START, fresh_feed

CUTOFF = START + pd.Timedelta(days=50)
PAUSED_USERS = range(10)  # they stop watching on day 25, 25 days before the cut


def fresh_feed_with_pauses(num_users: int = 60, watches_per_user: int = 20, seed: int = 0):
    """The fresh-only feed; the paused users watch only between days 2 and 25."""
    return fresh_feed(num_users, watches_per_user, seed, paused_users=PAUSED_USERS, paused_from_day=25)


CONFIG = FRESHNESS_ONLY_CONFIG


@pytest.fixture(scope="module")
def split_and_catalog():
    interactions, catalog = fresh_feed_with_pauses()
    return temporal_split(interactions, cutoff=CUTOFF), catalog


def top_upload_days(recommender: CandidateGeneratorRecommender, catalog: pd.DataFrame, user: int) -> np.ndarray:
    ranked = recommender.recommend([user], 5, {})[0]
    upload = catalog.set_index("video_id").loc[ranked, "upload_time"]
    return ((upload - START) / pd.Timedelta(days=1)).to_numpy()


def test_candidate_generator_asks_at_the_cutoff_not_at_the_paused_users_last_watch(split_and_catalog):
    split, catalog = split_and_catalog
    at_cutoff = CandidateGeneratorRecommender(catalog, CONFIG).fit(split.train, split.query_time)
    at_last_watch = CandidateGeneratorRecommender(catalog, CONFIG).fit(split.train)
    user = PAUSED_USERS[0]
    last_watch_day = (split.train.loc[split.train["user_id"] == user, "time"].max() - START) / pd.Timedelta(days=1)
    assert last_watch_day < 25
    # asked at the cut (day 50), the freshness logit ranks what is fresh then, as serving would on day 50
    assert (np.abs(top_upload_days(at_cutoff, catalog, user) - 50) < 3).all()
    # asked at the last watch, it ranks what was fresh 25 days earlier
    assert (np.abs(top_upload_days(at_last_watch, catalog, user) - last_watch_day) < 3).all()


def test_query_rows_carry_the_query_time_and_only_searches_before_it(split_and_catalog):
    split, _ = split_and_catalog
    user = PAUSED_USERS[0]
    searches = pd.DataFrame({
        "user_id": [user, user, user],
        "search_time": [START + pd.Timedelta(days=1), START + pd.Timedelta(days=40), CUTOFF],
        "query_tokens": [["early"], ["between"], ["at_the_cut"]],
    })
    _, at_cutoff = rollback_examples(split.train, 50, 100, searches, split.query_time)
    _, at_last_watch = rollback_examples(split.train, 50, 100, searches)
    assert (at_cutoff["reference_time"] == CUTOFF).all()
    # a search between the last watch and the cut is known at the cut; one at the cut is not before it
    assert at_cutoff.set_index("user_id").loc[user, "history_search_tokens"] == ["early", "between"]
    assert at_last_watch.set_index("user_id").loc[user, "history_search_tokens"] == ["early"]
    last_times = split.train.groupby("user_id")["time"].max()
    assert (at_last_watch.set_index("user_id")["reference_time"] == last_times).all()


def test_recent_popularity_window_ends_at_the_query_time():
    # video 1: three users on day 5; video 2: two users on day 19; the last train event is day 19
    rows = [(user, 1, START + pd.Timedelta(days=5)) for user in range(3)]
    rows += [(user, 2, START + pd.Timedelta(days=19)) for user in (3, 4)]
    train = pd.DataFrame(rows, columns=["user_id", "video_id", "time"])
    at_last_watch = MostPopular(recency_window_days=3.0).fit(train)
    at_cutoff = MostPopular(recency_window_days=3.0).fit(train, START + pd.Timedelta(days=25))
    assert at_last_watch.recommend([9], 2, {})[0] == [2, 1]  # video 2 is inside (day 16, day 19]
    assert at_cutoff.recommend([9], 2, {})[0] == [1, 2]  # nothing inside (day 22, day 25]: all-time counts


def test_a_query_time_before_a_train_interaction_is_rejected(split_and_catalog):
    split, _ = split_and_catalog
    too_early = split.train["time"].max() - pd.Timedelta(days=1)
    for method in (MostPopular(), EASE()):
        with pytest.raises(ValueError, match=r"query_time .* precedes the latest train interaction"):
            method.fit(split.train, too_early)
