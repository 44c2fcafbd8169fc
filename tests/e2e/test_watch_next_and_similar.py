"""Surfaces: watch_next steered by the video being watched, and POST /similar's videos like a video."""

from __future__ import annotations

import dataclasses
import time

import httpx
import numpy as np
import pytest

from serving.policy import PolicyConfig, PolicyStage
from serving.recommender import Recommender
from serving.schemas import ErrorResponse, SimilarVideos
from tests.e2e.recommenders import known_users, with_policy

UNKNOWN_VIDEO = 10**12  # no video has this id


# A sixth of the tiny 240-video catalog, so retrieval chooses (as 200 of 100,000 videos do in
# production); at 200 every request ranks nearly the whole catalog, whatever nominated it.
CANDIDATES_PER_REQUEST = 40


@pytest.fixture(scope="module")
def recommender(serving) -> Recommender:
    """The served recommender without exploration (two requests for one list agree)."""
    return _copy(serving[1], PolicyStage(PolicyConfig(exploration_share=0.0)))


def _copy(recommender: Recommender, policy: PolicyStage) -> Recommender:
    return with_policy(recommender, policy, CANDIDATES_PER_REQUEST, seed_share=0.5)


def _seed(recommender: Recommender) -> int:
    """The catalog video with the most co-watch neighbours."""
    catalog = recommender.models.retrieval.catalog_video_ids.tolist()
    return max(catalog, key=lambda video: (len(recommender.models.sources.co_watch.neighbours(video)), -video))


def _like(recommender: Recommender, seed: int) -> set[int]:
    """Videos like the seed: its co-watch neighbours and the 20 nearest to its vector."""
    neighbours = {video for video, _ in recommender.models.sources.co_watch.neighbours(seed)}
    return neighbours | {item.video_id for item in recommender.similar(seed, 20).items}


def _ids(response) -> list[int]:
    return [item.video_id for item in response.items]


def test_watch_next_with_a_known_seed_serves_more_videos_like_it_and_never_the_seed(serving, recommender):
    seed = _seed(recommender)
    like = _like(recommender, seed)
    watch_next_overlap = home_overlap = 0
    for user in known_users(serving)[:12]:
        watch_next = recommender.recommend(user, 10, "watch_next", seed_video_id=seed)
        home = recommender.recommend(user, 10, "home")
        assert not watch_next.degraded and watch_next.surface == "watch_next"
        assert seed not in _ids(watch_next) and len(watch_next.items) == 10
        watch_next_overlap += len(like.intersection(_ids(watch_next)))
        home_overlap += len(like.intersection(_ids(home)))
        for item in watch_next.items:  # the seed is the only video a reason can name here
            assert (item.reason == "because_you_watched") == (item.because_video_id is not None)
            assert item.because_video_id in (None, seed)
    # half the candidates are the seed's; which of them are served is still the ranker's choice
    assert watch_next_overlap >= 2 * home_overlap > 0


def test_the_seeds_co_watch_neighbours_are_served_because_the_user_watched_the_seed(serving, recommender):
    seed = _seed(recommender)
    neighbours = {video for video, _ in recommender.models.sources.co_watch.neighbours(seed)}
    items = [item for user in known_users(serving)[:12]
             for item in recommender.recommend(user, 10, "watch_next", seed_video_id=seed).items]
    from_neighbours = [item for item in items if item.source == "co_watch" and item.video_id in neighbours]
    assert from_neighbours
    assert {(item.reason, item.because_video_id) for item in from_neighbours} == {("because_you_watched", seed)}


def test_with_ann_counted_as_item_to_item_the_seeds_embedding_neighbours_name_it_too(serving, recommender):
    seed = _seed(recommender)
    # The seed's neighbours are mostly its creator's videos: without a creator cap they all can show.
    config = PolicyConfig(exploration_share=0.0, item_to_item_sources=("co_watch", "ann"),
                          max_per_creator=CANDIDATES_PER_REQUEST, separate_adjacent_creators=False)
    items = [item for user in known_users(serving)[:12] for item in
             _copy(recommender, PolicyStage(config)).recommend(user, 10, "watch_next", seed).items]
    naming_the_seed = [item for item in items if item.because_video_id == seed]
    assert {item.source for item in naming_the_seed} == {"co_watch", "ann"}
    neighbours = {video for video, _ in recommender.models.sources.co_watch.neighbours(seed)}
    nearest = {item.video_id for item in recommender.similar(seed, 60).items}
    assert {item.video_id for item in naming_the_seed} <= neighbours | nearest  # only the seed's own rows
    assert all(item.because_video_id in (None, seed) for item in items)


def test_a_seed_the_index_lacks_is_answered_as_home_and_flagged(serving, recommender):
    user = known_users(serving)[0]
    home = recommender.recommend(user, 10, "home")

    answer = recommender.recommend(user, 10, "watch_next", seed_video_id=UNKNOWN_VIDEO)

    assert answer.degraded == ["seed:unknown"] and answer.surface == "home"
    assert _ids(answer) == _ids(home)
    assert all(item.because_video_id is None for item in answer.items)


def test_a_seed_on_the_home_surface_is_ignored_and_flagged(serving, recommender):
    user = known_users(serving)[1]
    seed = _seed(recommender)

    answer = recommender.recommend(user, 10, "home", seed_video_id=seed)

    assert answer.degraded == ["seed:ignored"]
    assert _ids(answer) == _ids(recommender.recommend(user, 10, "home"))


def test_a_user_the_store_does_not_know_still_gets_videos_like_the_seed(recommender):
    seed = _seed(recommender)

    answer = recommender.recommend(10**9, 10, "watch_next", seed_video_id=seed)

    assert not answer.known_user and len(answer.items) == 10 and seed not in _ids(answer)
    popular = recommender.recommend(10**9, 10, "home")  # what such a user gets without a seed
    like = _like(recommender, seed)
    assert len(like.intersection(_ids(answer))) > len(like.intersection(_ids(popular)))


def test_similar_returns_the_k_nearest_videos_by_inner_product_without_the_video_itself(recommender):
    seed = _seed(recommender)
    index = recommender.models.index
    catalog = [video for video in recommender.models.retrieval.catalog_video_ids.tolist() if video != seed]
    inner_products = np.stack([index.vector(video) for video in catalog]) @ index.vector(seed)

    similar = recommender.similar(seed, 7)

    assert similar.video_id == seed and similar.model_versions == recommender.models.versions
    assert [item.video_id for item in similar.items] == [catalog[row] for row in np.argsort(-inner_products)[:7]]
    np.testing.assert_allclose([item.score for item in similar.items], np.sort(inner_products)[::-1][:7], rtol=1e-5)
    assert similar == recommender.similar(seed, 7)  # deterministic


def test_similar_leaves_out_blocklisted_videos_and_knows_no_unknown_video(recommender, tmp_path):
    seed = _seed(recommender)
    nearest = [item.video_id for item in recommender.similar(seed, 3).items]
    blocklist = tmp_path / "blocked.txt"
    blocklist.write_text("\n".join(str(video) for video in nearest[:2]) + "\n")
    guarded = _copy(recommender, PolicyStage(dataclasses.replace(PolicyConfig(), blocklist_path=blocklist)))

    similar = [item.video_id for item in guarded.similar(seed, 3).items]

    assert len(similar) == 3 and not set(nearest[:2]) & set(similar) and similar[0] == nearest[2]
    assert recommender.similar(UNKNOWN_VIDEO, 3) is None


def _similar_from_these_models(service_url: str, seed: int, versions: dict[str, str]) -> httpx.Response:
    """POST /similar once the service answers with `versions`: tests before this one promote a
    ranker and restore the champion, and the shared service follows the registry every 10 s."""
    deadline = time.monotonic() + 30
    while True:
        similar = httpx.post(f"{service_url}/similar", json={"video_id": seed, "k": 4}, timeout=30)
        if similar.status_code != 200 or similar.json()["model_versions"] == versions or time.monotonic() > deadline:
            return similar
        time.sleep(0.5)


def test_the_api_takes_a_seed_on_watch_next_and_answers_similar_videos(serving, recommender, service_url):
    seed, user = _seed(recommender), known_users(serving)[0]

    similar = _similar_from_these_models(service_url, seed, recommender.models.versions)
    unknown = httpx.post(f"{service_url}/similar", json={"video_id": UNKNOWN_VIDEO}, timeout=30)
    watch_next = httpx.post(f"{service_url}/recommend", timeout=30,
                            json={"user_id": user, "k": 5, "surface": "watch_next", "seed_video_id": seed})
    lax_seed = httpx.post(f"{service_url}/recommend", timeout=30,
                          json={"user_id": user, "surface": "watch_next", "seed_video_id": str(seed)})

    assert similar.status_code == 200
    # the served models, no blocklist
    assert SimilarVideos.model_validate(similar.json()) == recommender.similar(seed, 4)
    assert unknown.status_code == 404
    assert ErrorResponse.model_validate(unknown.json()).error == f"video_id {UNKNOWN_VIDEO} is not in the video index"
    assert watch_next.status_code == 200 and watch_next.json()["degraded"] == []
    assert seed not in [item["video_id"] for item in watch_next.json()["items"]]
    assert lax_seed.status_code == 400 and "seed_video_id" in lax_seed.json()["error"]
