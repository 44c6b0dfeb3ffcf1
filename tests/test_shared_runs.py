"""vit_demo.shared_runs: one run per key, followed by any number of pages, replayed from the
start, stopped when nobody follows, and kept within the cache's bounds."""

import threading

import pytest

from vit_demo.service.shared_runs import RunHub, RunKey
from vit_demo.training import TrainConfig


def merge(older: dict, newer: dict) -> dict:
    return {**older, **newer}


def size(item: dict) -> int:
    return item.get("bytes", 0)


@pytest.fixture
def hub(tmp_path):
    return RunHub(tmp_path / "runs", merge, size, max_runs=3, max_bytes=1000)


def key(seed: int = 0, **changes) -> RunKey:
    return RunKey.of({"patch_size": 7, "dim": 32}, TrainConfig(seed=seed, steps=10, **changes), "CPU: test", 600)


def finish_with(run, *items, complete=True):
    for item in items:
        run.publish(item)
    run.finish(complete)


def test_the_key_is_what_shapes_the_result_and_nothing_else():
    assert key() == key(data_dir="/elsewhere", report_every=2.0)  # where the data is, how often it reports
    assert key() != key(seed=1) and key() != key(lr=0.002)
    assert key() != RunKey.of({"patch_size": 7, "dim": 64}, TrainConfig(steps=10), "CPU: test", 600)
    assert key() != RunKey.of({"patch_size": 7, "dim": 32}, TrainConfig(steps=11), "CPU: test", 600)


def test_a_runs_share_of_the_training_process_is_the_pages_following_it(hub):
    run, _ = hub.join(key(), lambda run: None)
    assert run.share() == 1
    hub.join(key(), lambda run: None), hub.attach(run)
    assert run.share() == 3  # the training process reads this file at each of the run's turns
    hub.leave(run)
    assert run.share() == 2


def test_a_second_request_follows_the_first_run_and_sees_it_from_its_start(hub):
    started = []
    first, shared = hub.join(key(), started.append)
    assert not shared and started == [first]
    first.publish({"step": 1})
    second, shared = hub.join(key(), started.append)
    assert shared and second is first and started == [first] and first.followers == 2
    following = second.follow(wait=0.01)
    assert next(following) == {"step": 1}  # what came before it joined
    first.publish({"step": 2})
    assert next(following) == {"step": 2}  # and the news
    finish_with(first)
    assert list(following) == []
    # Once finished, a later request gets it merged, at once, without a new run.
    third, shared = hub.join(key(), started.append)
    assert shared and third is first and list(third.follow()) == [{"step": 2}]
    assert len(started) == 1


def test_a_follower_far_behind_gets_what_it_missed_merged(tmp_path):
    hub = RunHub(tmp_path, merge, size)
    run, _ = hub.join(key(), lambda run: None)
    run._window = 2
    for step in range(5):
        run.publish({"step": step, f"seen at {step}": True})
    follower = run.follow(wait=0.01)
    first = next(follower)
    assert first["step"] == 2 and all(first[f"seen at {s}"] for s in range(3))  # 0..2 merged, then 3 and 4
    assert [next(follower)["step"], next(follower)["step"]] == [3, 4]
    assert next(follower) is None  # no news yet: a moment to check on its own page


def test_a_run_nobody_follows_is_stopped_and_never_shared(hub):
    run, _ = hub.join(key(), lambda run: None)
    assert not run.stop_requested
    assert hub.leave(run) == 0
    assert run.stop_requested  # its training process sees the flag at its next step
    again, shared = hub.join(key(), lambda run: None)
    assert not shared and again is not run and again.folder != run.folder


def test_a_stopped_or_failed_run_is_not_handed_to_the_next_request(hub):
    stopped, _ = hub.join(key(), lambda run: None)
    hub.stop(stopped)
    finish_with(stopped, {"step": 3}, complete=False)
    hub.finished(stopped)
    assert hub.join(key(), lambda run: None)[1] is False
    failed, _ = hub.join(key(seed=1), lambda run: None)
    failed.finish(True, error=ValueError("out of memory"))
    hub.finished(failed)
    with pytest.raises(ValueError, match="out of memory"):
        list(failed.follow())
    assert hub.join(key(seed=1), lambda run: None)[1] is False


def test_finished_runs_stay_within_the_caches_bounds_least_recently_used_first(hub):
    runs = []
    for seed in range(5):
        run, _ = hub.join(key(seed), lambda run: None)
        assert run.folder.is_dir()  # a run's folder holds its share of the training process from the start
        finish_with(run, {"bytes": 300})
        hub.leave(run)
        hub.finished(run)
        runs.append(run)
    kept = hub.runs()
    assert len(kept) == 3 and sum(r.nbytes for r in kept) <= 1000  # three of 300 bytes
    assert kept == runs[2:] and not runs[0].folder.exists() and runs[4].folder.exists()
    hub.join(key(2), lambda run: None)  # used again: now the most recent
    assert hub.runs()[-1] is runs[2]


def test_followers_on_other_threads_all_see_every_item(hub):
    run, _ = hub.join(key(), lambda run: None)
    seen = [[] for _ in range(4)]

    def watch(into):
        into.extend(item["step"] for item in run.follow(wait=0.01) if item is not None)

    threads = [threading.Thread(target=watch, args=(into,)) for into in seen]
    for thread in threads:
        thread.start()
    for step in range(50):
        run.publish({"step": step})
    run.finish(True)
    for thread in threads:
        thread.join(10)
    assert all(into[-1] == 49 and into == sorted(into) for into in seen)
