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


def clustered_corpus(num_videos: int, dim: int = 16, seed: int = 1):
    """Vectors around 20 centres, as a candidate generator's are around its categories; their
    norms vary (about 4 to 9), and inner products reward the long ones."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(20, dim)) * 1.5

    def draw(count: int) -> np.ndarray:
        return (centres[rng.integers(20, size=count)] + rng.normal(size=(count, dim)) * 0.8).astype(np.float32)

    return np.arange(100, 100 + num_videos, dtype=np.int64), draw(num_videos), draw


def test_hnsw_finds_the_largest_inner_products_through_the_l2_reduction():
    ids, vectors, draw = clustered_corpus(4000)
    index = VideoIndex(exact_threshold=1000).build(ids, vectors)
    queries = draw(200)
    assert index.recall_against_exact(queries, 100) >= 0.98
    found, scores = index.search(queries[:5], 10)
    position = {int(video): row for row, video in enumerate(ids)}
    expected = np.array([[queries[q] @ vectors[position[int(video)]] for video in found[q]] for q in range(5)])
    np.testing.assert_allclose(scores, expected, rtol=1e-3, atol=1e-3)  # distances turned back into inner products


def test_hnsw_index_round_trips_and_takes_new_uploads(tmp_path, caplog):
    ids, vectors, draw = clustered_corpus(1500)
    index = VideoIndex(exact_threshold=1000).build(ids, vectors)
    index.save(tmp_path / "videos.faiss")
    loaded = VideoIndex.load(tmp_path / "videos.faiss")
    queries = draw(10)
    (loaded_ids, loaded_scores), (ids_before, scores_before) = loaded.search(queries, 20), index.search(queries, 20)
    np.testing.assert_array_equal(loaded_ids, ids_before)
    np.testing.assert_allclose(loaded_scores, scores_before, rtol=1e-3, atol=1e-3)  # M re-read from float32 vectors
    upload = 50 * queries[:1]  # far longer than anything at build time: shortened to the bound, still first
    loaded.add(np.array([99_999]), upload)
    assert "above the index's bound" in caplog.text
    assert loaded.search(queries[:1], 1)[0][0, 0] == 99_999
    with pytest.raises(ValueError, match="dim"):
        loaded.search(queries[:, :8], 5)


def test_an_inner_product_hnsw_file_from_an_older_version_is_still_served(tmp_path, caplog):
    import faiss

    _, vectors, rng = random_corpus(50)
    old = faiss.IndexIDMap2(faiss.IndexHNSWFlat(16, 8, faiss.METRIC_INNER_PRODUCT))
    old.add_with_ids(vectors, np.arange(50, dtype=np.int64))
    faiss.write_index(old, str(tmp_path / "old.faiss"))
    loaded = VideoIndex.load(tmp_path / "old.faiss")
    assert "older version" in caplog.text
    query = rng.normal(size=(1, 16)).astype(np.float32)
    found, scores = loaded.search(query, 5)
    np.testing.assert_allclose(scores[0], (query @ vectors.T)[0, found[0]], rtol=1e-5)  # inner products, as before


def test_an_exact_index_gives_back_each_video_vector_and_none_for_a_video_it_lacks(tmp_path):
    ids, vectors, _ = random_corpus(300)
    index = VideoIndex().build(ids, vectors)
    index.add(np.array([777]), vectors[:1] * 2)
    np.testing.assert_array_equal(index.vector(ids[42]), vectors[42])
    np.testing.assert_array_equal(index.vector(777), vectors[0] * 2)  # an upload added after the build
    assert index.vector(99_999) is None
    index.save(tmp_path / "videos.faiss")
    np.testing.assert_array_equal(VideoIndex.load(tmp_path / "videos.faiss").vector(ids[7]), vectors[7])


def test_an_hnsw_index_gives_back_the_vector_without_the_reduction_coordinate(tmp_path):
    ids, vectors, _ = clustered_corpus(1500)
    index = VideoIndex(exact_threshold=1000).build(ids, vectors)
    assert not index.is_exact
    vector = index.vector(ids[3])
    assert vector.shape == (16,) and vector.dtype == np.float32
    np.testing.assert_allclose(vector, vectors[3], rtol=1e-6)
    index.save(tmp_path / "videos.faiss")
    loaded = VideoIndex.load(tmp_path / "videos.faiss")
    np.testing.assert_allclose(loaded.vector(ids[1499]), vectors[1499], rtol=1e-6)
    assert loaded.vector(-5) is None
