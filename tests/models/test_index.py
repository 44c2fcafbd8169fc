import numpy as np
import pytest

from models.index import VideoIndex


def random_corpus(num_videos: int, dim: int = 16, seed: int = 0):
    rng = np.random.default_rng(seed)
    return np.arange(100, 100 + num_videos, dtype=np.int64), rng.normal(size=(num_videos, dim)).astype(np.float32), rng


def test_exact_index_matches_brute_force_inner_product():
    ids, vectors, rng = random_corpus(500)
    index = VideoIndex().build(ids, vectors)
    assert index.is_exact
    queries = rng.normal(size=(20, 16)).astype(np.float32)
    found, scores = index.search(queries, 10)
    brute = queries @ vectors.T
    expected = ids[np.argsort(-brute, axis=1)[:, :10]]
    np.testing.assert_array_equal(found, expected)
    np.testing.assert_allclose(scores, np.sort(brute, axis=1)[:, ::-1][:, :10], rtol=1e-5)


def test_hnsw_index_above_threshold_keeps_recall_high():
    ids, vectors, rng = random_corpus(3000)
    index = VideoIndex(exact_threshold=1000).build(ids, vectors)
    assert not index.is_exact
    assert index.recall_against_exact(rng.normal(size=(100, 16)), 10) >= 0.95


def test_added_video_is_retrievable_without_rebuild(tmp_path):
    ids, vectors, _ = random_corpus(300)
    index = VideoIndex().build(ids, vectors)
    new_vector = 10 * vectors[:1]  # dominates every inner product along its direction
    index.add(np.array([777]), new_vector)
    found, _ = index.search(vectors[:1], 1)
    assert found[0, 0] == 777
    index.save(tmp_path / "videos.faiss")
    loaded = VideoIndex.load(tmp_path / "videos.faiss")
    assert len(loaded) == 301
    np.testing.assert_array_equal(loaded.search(vectors[:5], 5)[0], index.search(vectors[:5], 5)[0])
    with pytest.raises(ValueError, match="already in the index"):
        loaded.add(np.array([777]), new_vector)


def test_search_pads_with_minus_one_when_k_exceeds_corpus():
    ids, vectors, _ = random_corpus(3)
    found, _ = VideoIndex().build(ids, vectors).search(vectors[:1], 5)
    assert sorted(found[0, :3].tolist()) == ids.tolist() and found[0, 3:].tolist() == [-1, -1]
