"""Math libraries run single-threaded while the bot serves messages.

The engine already runs one message per core (one model handle per worker thread). faiss (OpenMP) and
numpy's BLAS would otherwise start threads of their own for every tiny search and matrix product; those
threads spin while waiting and take the cores the model handles need (a 0.6 ms search took 30 ms, the
head's 0.06 ms product 16 ms, on a 2-core machine while the model ran).
"""

from __future__ import annotations

import faiss
from threadpoolctl import threadpool_limits


def single_threaded_worker() -> None:
    """Thread initializer for NLU workers: faiss searches in this thread use one core (OpenMP is per thread)."""
    faiss.omp_set_num_threads(1)


def limit_blas_threads() -> threadpool_limits:
    """Limit BLAS to one thread for the whole process (BLAS has no per-thread setting); undo with
    `.restore_original_limits()`, or use it as a context manager. Training the head is faster so too
    (0.6 s instead of 3.2 s on the demo KB: its products are small), and never competes with the model."""
    return threadpool_limits(limits=1, user_api="blas")
