import pandas as pd
import pytest

from models.popularity import PopularityRecommender
from models.segment_popularity import SegmentConfig, SegmentPopularity, choose_prior_strength

DAY = pd.Timestamp("2024-03-10")


def _users() -> pd.DataFrame:
    """40 young US users, 40 older US users, 5 young Japanese users (too few for their own segment)."""
    rows = [(user, "US", "18-24") for user in range(1, 41)]
    rows += [(user, "US", "55+") for user in range(41, 81)]
    rows += [(user, "JP", "18-24") for user in range(81, 86)]
    frame = pd.DataFrame(rows, columns=["user_id", "country", "age_bucket"])
    return frame.assign(device="mobile", gender="unknown")


def _interactions() -> pd.DataFrame:
    """The young watch video 10, the old watch video 20; everybody watched video 30 once, long ago."""
    rows = [(user, 10, DAY) for user in range(1, 41)] + [(user, 20, DAY) for user in range(41, 81)]
    rows += [(user, 10, DAY) for user in range(81, 86)]
    rows += [(user, 30, DAY - pd.Timedelta(days=60)) for user in range(1, 86)]
    return pd.DataFrame(rows, columns=["user_id", "video_id", "first_watch_time"])


@pytest.fixture
def model() -> PopularityRecommender:
    interactions = _interactions()
    segments = SegmentPopularity.fit(interactions, _users(), SegmentConfig(min_users=10, prior_strength=0.0))
    return PopularityRecommender().fit(interactions).with_segments(segments)


def test_a_new_user_gets_what_their_segment_watches_not_the_global_top(model):
    young, segment = model.recommend_for({"country": "US", "age_bucket": "18-24"}, k=1)
    old, old_segment = model.recommend_for({"country": "US", "age_bucket": "55+"}, k=1)
    assert (young[0][0], segment) == (10, "age_bucket=18-24,country=US")
    assert (old[0][0], old_segment) == (20, "age_bucket=55+,country=US")


def test_a_rare_combination_backs_off_to_a_coarser_segment(model):
    picked, segment = model.recommend_for({"country": "JP", "age_bucket": "18-24"}, k=1)
    assert segment == "age_bucket=18-24"  # 45 young users in all; only 5 in Japan
    assert picked[0][0] == 10


def test_no_usable_demographics_means_global_popularity(model):
    for demographics in ({}, {"country": "unknown", "age_bucket": None}, {"country": "BR", "age_bucket": "99"}):
        picked, segment = model.recommend_for(demographics, k=3)
        assert segment is None
        assert picked == model.recommend(3)


def test_a_short_segment_list_is_topped_up_from_global_popularity_without_repeats(model):
    picked, _ = model.recommend_for({"country": "US", "age_bucket": "55+"}, k=3, exclude={30})
    videos = [video for video, _ in picked]
    assert videos[0] == 20 and sorted(videos) == [10, 20] and len(set(videos)) == len(videos)


def test_segments_survive_save_and_load(model, tmp_path):
    model.save(tmp_path / "popularity.json")
    loaded = PopularityRecommender.load(tmp_path / "popularity.json")
    demographics = {"country": "US", "age_bucket": "55+"}
    assert loaded.recommend_for(demographics, k=2) == model.recommend_for(demographics, k=2)


def test_a_bundle_saved_without_segments_answers_globally(tmp_path):
    plain = PopularityRecommender().fit(_interactions())
    plain.save(tmp_path / "popularity.json")
    picked, segment = PopularityRecommender.load(tmp_path / "popularity.json").recommend_for({"age_bucket": "55+"}, 2)
    assert segment is None and picked == plain.recommend(2)


def test_levels_naming_a_column_that_is_not_a_demographic_are_refused():
    with pytest.raises(ValueError, match="not demographics"):
        SegmentConfig(levels=(("favourite_colour",),))


def test_a_strong_prior_turns_a_segment_back_into_global_popularity():
    interactions = _interactions()
    global_order = [video for video, _ in PopularityRecommender().fit(interactions).recommend(2)]
    shrunk = SegmentPopularity.fit(interactions, _users(), SegmentConfig(min_users=10, prior_strength=1e6))
    assert [video for video, _ in shrunk.recommend("age_bucket=55+,country=US", 2)] == global_order
    own = SegmentPopularity.fit(interactions, _users(), SegmentConfig(min_users=10, prior_strength=0.0))
    assert own.recommend("age_bucket=55+,country=US", 1)[0][0] == 20


def test_validation_picks_the_segment_counts_when_segments_really_differ():
    """Later watches follow the segments (the young keep watching 10, the old 20): validation,
    asked as if every user were new, prefers the segments' own counts over global popularity."""
    earlier = _interactions().assign(first_watch_time=DAY - pd.Timedelta(days=10))
    later = pd.DataFrame(
        [(user, 40, DAY) for user in range(1, 41)] + [(user, 50, DAY) for user in range(41, 81)]
        + [(user, 40, DAY - pd.Timedelta(days=9)) for user in range(1, 11)]  # the young found 40 first
        + [(user, 50, DAY - pd.Timedelta(days=9)) for user in range(41, 46)],
        columns=["user_id", "video_id", "first_watch_time"])
    interactions = pd.concat([earlier, later], ignore_index=True)
    best, scores = choose_prior_strength(interactions, _users(), catalog_size=5, config=SegmentConfig(min_users=10),
                                         grid=(0.0, 1e6), validation_days=5)
    assert best == 0.0 and scores[0.0] > scores[1e6], scores
