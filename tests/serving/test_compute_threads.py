import threading

import faiss

from serving.compute_threads import single_threaded_math


def test_each_request_thread_gets_one_openmp_thread_not_just_the_one_that_built_the_service():
    single_threaded_math()  # the constructor's thread
    seen = {}

    def request_thread():
        seen["before"] = faiss.omp_get_max_threads()
        single_threaded_math()
        seen["after"] = faiss.omp_get_max_threads()

    thread = threading.Thread(target=request_thread)
    thread.start()
    thread.join()

    assert seen["after"] == 1
    # what the constructor's call alone left a new thread with (more than one on a multi-core box)
    assert seen["before"] >= 1
