"""A ZeroGPU Space forks its GPU worker from the running server (vit_demo/forking.py): a lock
another visitor's thread holds at that instant, or the OpenMP threads the server computed on,
must not leave the worker waiting for ever."""

import multiprocessing
import threading

import pytest
import torch
import torch.nn.functional as F

from vit_demo import data, training


def _child(data_dir: str, results) -> None:
    split = data.load_split("mnist", train=False, data_dir=data_dir, limit=16)
    model = training.create_model("mnist", seed=0, patch_size=7, dim=32, depth=1, heads=2, mlp_dim=64)
    results.put((len(split), model.config.dim))


@pytest.mark.parametrize("lock", [data._cache_lock, training._GLOBAL_GENERATOR], ids=["dataset cache", "seeding"])
def test_a_child_forked_while_another_thread_holds_the_lock_still_gets_its_data_and_model(data_dir, lock):
    context = multiprocessing.get_context("fork")
    results = context.Queue()
    holding, release = threading.Event(), threading.Event()

    def another_visitor() -> None:
        with lock:  # decoding a dataset, or seeding a model, when the fork comes
            holding.set()
            release.wait(60)

    holder = threading.Thread(target=another_visitor)
    holder.start()
    assert holding.wait(30)
    child = context.Process(target=_child, args=(str(data_dir), results))
    child.start()
    try:
        assert results.get(timeout=60) == (16, 32)  # without a fresh lock in the child: a timeout here
    finally:
        release.set()
        holder.join(30)
        child.join(30)
        if child.is_alive():
            child.kill()
    assert child.exitcode == 0


def _parallel_work(results) -> None:
    picture = torch.rand(2000, 2000)
    results.put(bool((F.pad(picture, (2, 2, 2, 2)).sum() + (picture @ picture).sum()) > 0))


def test_a_child_forked_after_the_server_computed_on_several_threads_still_computes():
    threads = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        picture = torch.rand(4000, 4000)
        (picture @ picture).sum(), F.pad(picture, (1, 1, 1, 1))  # the server's OpenMP threads, busy once
        context = multiprocessing.get_context("fork")
        results = context.Queue()
        child = context.Process(target=_parallel_work, args=(results,))
        child.start()
        try:
            assert results.get(timeout=60)  # without one thread per operation in the child: a hang here
        finally:
            child.join(30)
            if child.is_alive():
                child.kill()
    finally:
        torch.set_num_threads(threads)
