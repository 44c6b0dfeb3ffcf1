"""What a forked child of the server needs to run at all.

A ZeroGPU Space forks its GPU worker from the running server (spaces/zero/wrappers.py), and a
fork copies the process as it is at that instant, threads left behind:

- a lock that another thread of the server holds (decoding a dataset for another visitor,
  seeding a model) stays held in the child, where that thread does not exist to release it,
  and the run would wait there until its lease ran out: a `ForkSafeLock` is a fresh, free lock
  in every forked child;
- torch's CPU kernels run on GNU OpenMP, whose thread pool a fork does not carry over: once the
  server has used it, a child's first parallel operation waits for ever (seen here: a matrix
  product of the parent's, then a padding in the child). So a forked child computes on one
  thread per operation (a GPU worker's work is on the GPU anyway)."""

from __future__ import annotations

import os
import threading


def _one_thread_per_operation() -> None:
    import torch

    torch.set_num_threads(1)  # only sets OpenMP's count: no pool is started, and none is used at 1


if hasattr(os, "register_at_fork"):  # Unix: the only place there is a fork
    os.register_at_fork(after_in_child=_one_thread_per_operation)


class ForkSafeLock:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        if hasattr(os, "register_at_fork"):  # Unix: the only place there is a fork
            os.register_at_fork(after_in_child=self._renew)

    def _renew(self) -> None:
        self._lock = threading.Lock()

    def __enter__(self) -> ForkSafeLock:
        self._lock.acquire()
        return self

    def __exit__(self, *exc) -> None:
        try:
            self._lock.release()
        except RuntimeError:  # taken before a fork in this very thread, renewed in the child since
            pass
