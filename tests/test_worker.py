"""Trainings in a spawned process: what they yield comes back, a stop crosses over, and a
process that dies is reported and replaced."""

import collections
import itertools
import os
import signal
import threading

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


@pytest.mark.slow
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


# The jobs below run in the training process, and meet there through this module's state (the
# process imports this module to run them). They wait on events, never on the clock: each wait
# has a deadline only so that a scheduler that never lets the event happen fails the test.
DEADLINE_SECONDS = 60.0
_events = threading.Condition()
_arrived: set[str] = set()  # jobs whose start has reached the process
_in_turn: collections.Counter = collections.Counter()  # jobs in a turn now, by name (2: a job in two lanes)
_order = itertools.count()  # turns in the order they were taken
_met: dict[str, int] = {"seen": 0, "single turns": 0, "missed": 0}


def _wait(condition) -> bool:
    """Until `condition()` holds (under `_events`); False, and no waiting from then on, if the deadline passed."""
    met = _events.wait_for(lambda: _met["missed"] or condition(), DEADLINE_SECONDS) and not _met["missed"]
    _met["missed"] += not met
    return met


def turns(name: str, count: int, after: str | None = None):
    """A job of `count` turns, each yielding its place in the order of all turns. Called when
    its start reaches the process; `after`: a job it waits for after its first turn (so both
    are there before either has run far)."""
    with _events:
        _arrived.add(name)
        _events.notify_all()
    return _turns(count, after)


def _turns(count: int, after: str | None):
    for turn in range(count):
        if after and turn == 1:
            with _events:
                assert _wait(lambda: after in _arrived), f"{after} never started"
        yield next(_order)


@pytest.fixture(scope="module")
def one_lane():
    worker = TrainingProcess(threads=1, lanes=1)
    yield worker
    worker.close()


def test_a_jobs_turns_are_weighted_by_its_share_after_its_first_reports(one_lane, tmp_path):
    followed = Followers(tmp_path / "followers")
    followed.set(3)  # three pages follow this run, one the other
    shared = one_lane.run(turns, "shared", 200, after="alone", share=followed)
    alone = one_lane.run(turns, "alone", 200)
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


def _enter(name: str) -> bool:
    """Into a turn of `name` (under `_events`); whether that job was in a turn already."""
    _in_turn[name] += 1
    _events.notify_all()
    return _in_turn[name] > 1


def class_turns(count: int, single_turns: int):
    """The class's run: each turn lasts until a single student's run has found it there, in a
    turn beside it (or until all `single_turns` of theirs are done)."""
    for _ in range(count):
        with _events:
            twice = _enter("class")
            seen = _met["seen"]
            met = _wait(lambda seen=seen: _met["seen"] > seen or _met["single turns"] == single_turns)
            _in_turn["class"] -= 1
        yield met, twice, None


def single_turns(name: str, count: int):
    """A run one student follows: from its first turn after the newcomers' head start, each
    turn waits until the class's run is in a turn too, and counts the trainings side by side."""
    from vit_demo.service.worker import FIRST_REPORTS
    from vit_demo.step import trainings_side_by_side

    for turn in range(count):
        with _events:
            twice, met, beside = _enter(name), True, None
            # A newcomer's first reports go first, and its next turn may still come before the
            # class's (its turns count from the class's level when it started).
            if turn > FIRST_REPORTS:
                met = _wait(lambda: _in_turn["class"] > 0)
                beside = trainings_side_by_side()
                _met["seen"] += 1
            _in_turn[name] -= 1
            _met["single turns"] += 1
            _events.notify_all()
        yield met, twice, beside


def read_at_once(jobs: dict) -> dict[str, list]:
    """Every value of each job, the jobs started and read at once, each on a thread of its own
    (a job's start reaches the process when its reader first asks)."""
    values: dict[str, list] = {}
    readers = [threading.Thread(target=lambda n=n, j=j: values.update({n: list(j)})) for n, j in jobs.items()]
    [reader.start() for reader in readers]
    [reader.join(timeout=4 * DEADLINE_SECONDS) for reader in readers]
    assert len(values) == len(jobs), f"only {sorted(values)} ended"
    return {name: values[name] for name in jobs}


def test_two_lanes_run_two_jobs_side_by_side_and_the_class_run_keeps_a_lane(tmp_path):
    worker = TrainingProcess(threads=1, lanes=2)
    try:
        followed = Followers(tmp_path / "followers")
        followed.set(24)  # a class's run
        jobs = {"class": worker.run(class_turns, 60, 40, share=followed)}
        jobs |= {name: worker.run(single_turns, name, 20) for name in ("first", "second")}
        turns_of = read_at_once(jobs)
    finally:
        worker.close()
    assert [len(taken) for taken in turns_of.values()] == [60, 20, 20]
    assert not any(twice for taken in turns_of.values() for _, twice, _ in taken)  # never a job in two lanes
    # Each of the single students' runs found the class's run in a turn beside it, every time:
    # the class's run keeps a lane to itself and they share the other (in one lane, or with
    # the lanes given to the two of them, these waits would end at their deadline).
    assert all(met for taken in turns_of.values() for met, _, _ in taken)
    besides = [beside for name in ("first", "second") for _, _, beside in turns_of[name] if beside is not None]
    assert besides == [2] * 34  # two trainings side by side, each knowing the other is there
