import numpy as np
import pandas as pd
import pytest
import torch

from models.baselines.candidate_generator import CandidateGeneratorRecommender, rollback_examples
from models.retrieval.bundle import RetrievalBundle
from models.retrieval.freshness import AGE_BUCKET_EDGES_DAYS, UNKNOWN_AGE_BUCKET, age_buckets, epoch_days
from tests.models.fresh_feed import FRESHNESS_ONLY_CONFIG, START, fresh_feed


def fresh_watching(num_users: int = 60, watches_per_user: int = 20, seed: int = 0):
    return fresh_feed(num_users, watches_per_user, seed)


CONFIG = FRESHNESS_ONLY_CONFIG


@pytest.fixture(scope="module")
def fresh_model():
    interactions, catalog = fresh_watching()
    return CandidateGeneratorRecommender(catalog, CONFIG).fit(interactions), catalog


def bucket_of(age_days: float) -> int:
    return int(np.searchsorted(AGE_BUCKET_EDGES_DAYS, age_days, side="right"))


def test_age_buckets_follow_the_edges_and_send_unknown_times_to_their_own_bucket():
    reference = torch.tensor([10.0, float("nan")], dtype=torch.float64)
    upload = torch.tensor([30.0, 10.0, 9.6, 8.0, 0.0], dtype=torch.float64)  # ages -20, 0, 0.4, 2, 10
    buckets = age_buckets(reference, upload)
    assert buckets[0].tolist() == [bucket_of(age) for age in (-20.0, 0.0, 0.4, 2.0, 10.0)]
    assert buckets[0].tolist() == sorted(buckets[0].tolist())
    assert buckets[1].tolist() == [UNKNOWN_AGE_BUCKET] * 5


def test_epoch_days_turns_missing_times_into_nan():
    days = epoch_days([pd.Timestamp("1970-01-03 12:00"), pd.NaT])
    assert days[0] == pytest.approx(2.5) and np.isnan(days[1])


def test_rollback_examples_take_the_previous_watch_as_reference_time():
    interactions, _ = fresh_watching(num_users=3, watches_per_user=6)
    examples, queries = rollback_examples(interactions, history_length=50, max_examples_per_user=100)
    for user, group in interactions.sort_values(["user_id", "time"]).groupby("user_id"):
        times = group["time"].tolist()
        assert examples.loc[examples["user_id"] == user, "reference_time"].tolist() == times[:-1]
        assert queries.loc[queries["user_id"] == user, "reference_time"].item() == times[-1]


def test_freshness_logit_learns_that_a_fresh_only_feed_prefers_new_uploads(fresh_model):
    recommender, _ = fresh_model
    logits = recommender.bundle.model.video_age_logit.weight.detach().numpy().ravel()
    fresh, old, unreleased = logits[bucket_of(0.5)], logits[bucket_of(20.0)], logits[bucket_of(-10.0)]
    assert fresh > old + 1.0
    assert fresh > unreleased + 1.0


def test_scores_depend_on_the_reference_time_and_need_it(fresh_model):
    recommender, catalog = fresh_model
    bundle = recommender.bundle
    query = recommender.queries.head(1)
    ids, scores = bundle.score_catalog(query.assign(reference_time=START + pd.Timedelta(days=30)))
    upload = catalog.set_index("video_id").loc[ids, "upload_time"]
    top = upload.iloc[np.argsort(-scores[0])[:5]]
    age_days = (START + pd.Timedelta(days=30) - top) / pd.Timedelta(days=1)
    # ranked first: videos uploaded around the reference time (the catalog spans 60 days); some
    # after it, since the next watch may come days later
    assert (age_days.abs() < 3.0).all()
    with pytest.raises(ValueError, match="reference_time"):
        bundle.score_catalog(query.drop(columns=["reference_time"]))


def test_bundle_round_trip_keeps_upload_times_and_scores(fresh_model, tmp_path):
    recommender, _ = fresh_model
    recommender.bundle.save(tmp_path / "fresh")
    loaded = RetrievalBundle.load(tmp_path / "fresh")
    query = recommender.queries.head(3)
    np.testing.assert_array_equal(loaded.score_catalog(query)[1], recommender.bundle.score_catalog(query)[1])
    np.testing.assert_array_equal(loaded.catalog_upload_days, recommender.bundle.catalog_upload_days)
