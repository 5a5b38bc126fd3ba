"""Run the explorers' tiny tensor work on one intra-op thread.

The explorers compute on (2N, 2N) matrices with 2N <= 512 and on a handful of small images. For such
sizes waking torch's intra-op thread pool costs more than the work: on a busy 2-core machine one
``nt_xent`` forward + backward at N = 2 measured ~70 ms with 2 threads and ~0.5 ms with 1. The
previous thread count is restored on exit, so training code elsewhere in the kernel is unaffected.
"""

from __future__ import annotations

from contextlib import contextmanager

import torch

__all__ = ["one_thread"]


@contextmanager
def one_thread():
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(n)
