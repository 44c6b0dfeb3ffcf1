"""Trainings in a spawned process: what they yield comes back, a stop crosses over, and a
process that dies is reported and replaced."""

import os
import signal
import time

import pytest
import torch
from conftest import TINY

from vit_demo.data import load_split
from vit_demo.service.jobs import Followers, StopFlag, TrainingJob, run_training
from vit_demo.service.worker import NICENESS, TrainingProcess, TrainingProcessDied
from vit_demo.training import TrainConfig, create_model


@pytest.fixture(scope="module")
def process():
    worker = TrainingProcess(threads=1)
    yield worker
    worker.close()


def config(folder, **changes) -> TrainConfig:
    values = dict(dataset="mnist", epochs=1, train_limit=1024, test_limit=256, data_dir=str(folder))
    return TrainConfig(**{**values, **changes})


LONG = 1000  # epochs of 8 steps: minutes of training, stopped long before its end


def job(folder, watched, stop=None, **changes) -> TrainingJob:
    return TrainingJob(TINY, config(folder, **changes), watched, stop=stop)


def test_a_run_in_the_process_streams_its_updates_and_returns_its_weights(process, data_dir, tmp_path):
    watched = load_split("mnist", train=False, data_dir=str(data_dir), limit=4).images
    updates = list(process.run(run_training, job(data_dir, watched, StopFlag(tmp_path / "stop"))))
    assert updates[0].progress is None and updates[-1].progress.done and len(updates) >= 3
    weights = updates[-1].state_dict
    model = create_model("mnist", **TINY)
    model.load_state_dict(weights)  # the weights of the model trained over there
    assert not torch.equal(model.pos_embedding, create_model("mnist", **TINY).pos_embedding)
    assert process.alive  # warm for the next run


@pytest.mark.skipif(not hasattr(os, "getpriority"), reason="Unix priorities")
def test_the_training_process_gives_way_to_the_server(process):
    process.start()
    ours = os.getpriority(os.PRIO_PROCESS, 0)
    assert os.getpriority(os.PRIO_PROCESS, process.pid) == min(ours + NICENESS, 19) > ours


def test_a_stop_reaches_the_process_before_its_next_report(process, data_dir, tmp_path):
    watched = load_split("mnist", train=False, data_dir=str(data_dir), limit=4).images
    stop = StopFlag(tmp_path / "stop")
    run = process.run(run_training, job(data_dir, watched, stop, epochs=LONG))
    for update in run:
        if update.progress is not None:
            break
    stop.request()
    last = list(run)[-1]
    # The run checks the flag before every step: it ends with its model so far, long before its end.
    assert last.progress.stopped and last.state_dict is not None and last.progress.step < last.progress.total_steps


def test_errors_come_back_as_themselves(process, data_dir):
    bad = config(data_dir / "nowhere")
    with pytest.raises(Exception, match="Missing files") as error:
        list(process.run(run_training, TrainingJob(TINY, bad, torch.zeros(1, 1, 28, 28, dtype=torch.uint8))))
    assert type(error.value).__name__ == "DatasetNotFoundError"


def test_a_reader_that_leaves_early_ends_its_job_at_once_and_the_process_serves_on(process, data_dir, tmp_path):
    watched = load_split("mnist", train=False, data_dir=str(data_dir), limit=4).images
    run = process.run(run_training, job(data_dir, watched, epochs=LONG))
    next(run), next(run)
    run.close()  # the browser tab was closed
    assert process.jobs == 0 and process.alive
    updates = list(process.run(run_training, job(data_dir, watched, epochs=0.1)))
    assert updates[-1].progress.done


def test_runs_in_one_process_take_turns_report_by_report(process, data_dir):
    watched = load_split("mnist", train=False, data_dir=str(data_dir), limit=4).images
    first = process.run(run_training, job(data_dir, watched, seed=1))
    second = process.run(run_training, job(data_dir, watched, seed=2))
    both = [next(first), next(second)]  # each has reported before either has finished
    assert all(update.progress is None for update in both)
    assert process.jobs == 2
    rest_first, rest_second = list(first), list(second)
    assert rest_first[-1].progress.done and rest_second[-1].progress.done
    assert not torch.equal(rest_first[-1].state_dict["pos_embedding"], rest_second[-1].state_dict["pos_embedding"])


def test_a_process_killed_mid_run_is_reported_and_replaced(data_dir, tmp_path):
    worker = TrainingProcess(threads=1)
    try:
        watched = load_split("mnist", train=False, data_dir=str(data_dir), limit=4).images
        run = worker.run(run_training, job(data_dir, watched, StopFlag(tmp_path / "stop"), epochs=LONG))
        beside = worker.run(run_training, job(data_dir, watched, StopFlag(tmp_path / "x"), epochs=LONG))
        next(run), next(beside)
        os.kill(worker.pid, signal.SIGKILL)  # as the kernel's out-of-memory killer would
        for listener in (run, beside):  # every job it ran hears of it
            with pytest.raises(TrainingProcessDied, match="SIGKILL, most likely for lack of memory"):
                list(listener)
        updates = list(worker.run(run_training, job(data_dir, watched, epochs=0.1)))
        assert updates[-1].progress.done
    finally:
        worker.close()


def turns(count: int):
    """A job of `count` turns of 2 ms, each yielding when it was taken (the process's clock)."""
    for _ in range(count):
        time.sleep(0.002)
        yield time.perf_counter_ns()


@pytest.fixture(scope="module")
def one_lane():
    worker = TrainingProcess(threads=1, lanes=1)
    yield worker
    worker.close()


def test_a_jobs_turns_are_weighted_by_its_share_after_its_first_reports(one_lane, tmp_path):
    followed = Followers(tmp_path / "followers")
    followed.set(3)  # three pages follow this run, one the other
    shared = one_lane.run(turns, 200, share=followed)
    alone = one_lane.run(turns, 200)
    firsts = [(next(shared), "shared"), (next(alone), "alone")]  # both running
    taken = sorted(firsts + [(when, "shared") for when in shared] + [(when, "alone") for when in alone])
    order = [name for _, name in taken]
    # From the newcomer's third turn (its first two go first) until the shared job ends, the
    # shared job takes three turns for each of the other's.
    start = [i for i, name in enumerate(order) if name == "alone"][2]
    end = max(i for i, name in enumerate(order) if name == "shared")
    window = order[start:end]
    assert len(window) > 40
    assert abs(window.count("shared") - 3 * window.count("alone")) <= 3, "".join(n[0] for n in window)


def timed_turns(count: int):
    """A job of `count` turns of 20 ms, each yielding (start, end, trainings side by side in it)."""
    from vit_demo.step import trainings_side_by_side

    for _ in range(count):
        started = time.perf_counter_ns()
        time.sleep(0.01)
        beside = trainings_side_by_side()
        time.sleep(0.01)
        yield started, time.perf_counter_ns(), beside


def test_two_lanes_run_two_jobs_side_by_side_and_each_knows_the_other_is_there(tmp_path):
    worker = TrainingProcess(threads=1, lanes=2)
    try:
        followed = Followers(tmp_path / "followers")
        followed.set(24)  # a class's run
        jobs = {"class": worker.run(timed_turns, 60, share=followed)}
        jobs |= {name: worker.run(timed_turns, 20) for name in ("first", "second")}
        firsts = {name: next(job) for name, job in jobs.items()}  # all three running
        turns_of = {name: [firsts[name], *job] for name, job in jobs.items()}
    finally:
        worker.close()
    assert all(len(taken) == n for taken, n in zip(turns_of.values(), (60, 20, 20)))
    everyone = sorted((start, end, name) for name, taken in turns_of.items() for start, end, _ in taken)
    overlapping = [(a, b) for a, b in zip(everyone, everyone[1:]) if b[0] < a[1]]
    assert overlapping and all(a[2] != b[2] for a, b in overlapping)  # side by side, never a job twice at once
    assert all(beside <= 2 for taken in turns_of.values() for _, _, beside in taken)
    assert any(beside == 2 for taken in turns_of.values() for _, _, beside in taken)
    # The class's run keeps a lane to itself, and the two others share the other: they end
    # before it (their 40 turns against its 60). In one lane they would get a turn for each 24
    # of the class's, and end after it.
    ends = {name: taken[-1][1] for name, taken in turns_of.items()}
    assert max(ends["first"], ends["second"]) < ends["class"]
