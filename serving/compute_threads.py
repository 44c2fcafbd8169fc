"""One math thread per request thread: a request is one small batch, and 2 cores serve it.

OpenMP's thread count is per calling thread: `faiss.omp_set_num_threads(1)` in the service's
constructor limited only the thread that built the service, while BentoML answers requests on
other threads. There faiss's OpenMP teams kept their default size and spun on the other core:
a request cost 11 ms of CPU instead of 7.7 (bench/serving_stages.py's request path, run on a
worker thread), and under load the spinning took the CPU the other worker needed.
"""

from __future__ import annotations

import threading

import faiss
import torch

_configured = threading.local()


def single_threaded_math() -> None:
    """Limit faiss (OpenMP) and torch to one thread for the calling thread; cheap to repeat."""
    if getattr(_configured, "done", False):
        return
    faiss.omp_set_num_threads(1)
    torch.set_num_threads(1)
    _configured.done = True
