"""The live index grows by copy: the index requests are searching is never written."""

from __future__ import annotations

import threading

import numpy as np
import pytest

from models.index import VideoIndex

DIM = 8


def _vectors(count: int, seed: int) -> np.ndarray:
    return np.random.default_rng(seed).normal(size=(count, DIM)).astype(np.float32)


@pytest.mark.parametrize("exact_threshold", [10_000, 50], ids=["exact", "hnsw"])
def test_a_grown_copy_holds_the_new_videos_and_the_original_is_untouched(exact_threshold):
    served = VideoIndex(exact_threshold=exact_threshold).build(np.arange(1, 201), _vectors(200, 0))
    upload = _vectors(1, 1)

    grown = served.with_videos(np.array([5000]), upload)

    assert len(served) == 200 and not served.holds(np.array([5000]))[0] and served.vector(5000) is None
    assert len(grown) == 201 and grown.holds(np.array([5000, 7, 9999])).tolist() == [True, True, False]
    np.testing.assert_allclose(grown.vector(5000), upload[0], rtol=1e-5)
    assert 5000 in grown.search(upload, len(grown))[0][0]  # reachable by a search (under HNSW: in the graph)


def test_a_copy_refuses_an_id_it_already_holds():
    served = VideoIndex().build(np.arange(1, 11), _vectors(10, 0))

    with pytest.raises(ValueError, match="already in the index"):
        served.with_videos(np.array([3]), _vectors(1, 1))


def test_searches_of_the_served_index_answer_while_copies_grow():
    served = VideoIndex(exact_threshold=50).build(np.arange(1, 301), _vectors(300, 0))
    queries = _vectors(20, 3)
    expected = served.search(queries, 10)[0]
    answers, stop = [], threading.Event()

    def search_until_stopped() -> None:
        while not stop.is_set():
            answers.append(served.search(queries, 10)[0])

    searcher = threading.Thread(target=search_until_stopped)
    searcher.start()
    grown = served
    for upload in range(20):
        grown = grown.with_videos(np.array([10_000 + upload]), _vectors(1, 100 + upload))
    stop.set()
    searcher.join()

    assert answers and all(np.array_equal(answer, expected) for answer in answers)
    assert len(grown) == 320 and len(served) == 300
