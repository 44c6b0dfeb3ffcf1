"""Training for many people on one server: seats in a first-come queue, stop requests, and
a training run that reports what a live view draws.

A class shares one machine, so at most `capacity` trainings run at once and everyone
else waits in line, seeing their place (`TrainingQueue`). Each run is `run_training`:
the library's `train` plus, at every evaluation, the positional-embedding similarity and
the predictions on a few fixed test images, and at the end the weights as CPU tensors.
Its arguments are plain picklable values and its stop signal is a file (`StopFlag`), so
the same function runs in a server thread or in a worker process (ZeroGPU runs GPU
functions in one).

Nothing here imports gradio.
"""

from __future__ import annotations

import heapq
import itertools
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import torch

from .data import DatasetSpec, get_spec, load_split, normalize
from .explain import position_similarity
from .model import ViT
from .timeline import Snapshot, Timeline, take_snapshot
from .training import TrainConfig, TrainProgress, create_model, evaluate, train


@dataclass(frozen=True)
class Ticket:
    """One person's request for a training seat."""

    number: int


class TrainingQueue:
    """At most `capacity` trainings at once; the rest wait first come, first served."""

    def __init__(self, capacity: int):
        if capacity < 1:
            raise ValueError(f"at least one training must be allowed at a time, got {capacity}")
        self.capacity = capacity
        self._numbers = itertools.count(1)
        self._condition = threading.Condition()
        self._waiting: list[Ticket] = []
        self._running: dict[Ticket, float | None] = {}  # ticket -> when it expects to end (monotonic)
        self._durations: dict[Ticket, float | None] = {}  # ticket -> the seconds it expects to train

    def join(self, expected_seconds: float | None = None) -> Ticket:
        """A place at the end of the line, for a training expected to take `expected_seconds`
        (which estimates the start of everyone behind it)."""
        with self._condition:
            ticket = Ticket(next(self._numbers))
            self._waiting.append(ticket)
            self._durations[ticket] = expected_seconds
            return ticket

    def wait_turn(self, ticket: Ticket, timeout: float) -> int:
        """Wait up to `timeout` seconds for a seat: 0 once `ticket` holds one, else its
        place in line (1: next to start)."""
        with self._condition:
            self._condition.wait_for(lambda: self._may_start(ticket), timeout)
            if ticket in self._running:
                return 0
            if self._may_start(ticket):
                self._waiting.remove(ticket)
                self._running[ticket] = None
                return 0
            return self._waiting.index(ticket) + 1

    def _may_start(self, ticket: Ticket) -> bool:
        if ticket in self._running:
            return True
        free = self.capacity - len(self._running)
        return ticket in self._waiting[:free]

    def expect_end(self, ticket: Ticket, seconds_left: float) -> None:
        """A running training says how long it still needs (for the people waiting)."""
        with self._condition:
            if ticket in self._running:
                self._running[ticket] = time.monotonic() + max(seconds_left, 0.0)

    def estimated_start(self, ticket: Ticket) -> float | None:
        """Seconds until `ticket` should get a seat: the seats free up as the running trainings
        expect to end, and each one ahead in line then takes its expected time. None while some
        of that is not known yet; 0 once it holds a seat."""
        with self._condition:
            if ticket in self._running:
                return 0.0
            if ticket not in self._waiting:
                return None
            now = time.monotonic()
            free_at = [end for end in self._running.values()]
            free_at += [now] * (self.capacity - len(free_at))
            if any(end is None for end in free_at):
                return None
            heapq.heapify(free_at)
            for ahead in self._waiting:
                start = max(heapq.heappop(free_at), now)
                if ahead == ticket:
                    return start - now
                duration = self._durations.get(ahead)
                if duration is None:
                    return None
                heapq.heappush(free_at, start + duration)
        return None

    def leave(self, ticket: Ticket) -> None:
        """Give up a seat or a place in line (safe to call more than once)."""
        with self._condition:
            self._durations.pop(ticket, None)
            self._running.pop(ticket, None)
            if ticket in self._waiting:
                self._waiting.remove(ticket)
            self._condition.notify_all()

    @property
    def running(self) -> int:
        with self._condition:
            return len(self._running)

    @property
    def waiting(self) -> int:
        with self._condition:
            return len(self._waiting)


@dataclass(frozen=True)
class StopFlag:
    """A stop request as a file: it reaches a run in another thread or another process."""

    path: Path

    def request(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.path.touch()

    def clear(self) -> None:
        self.path.unlink(missing_ok=True)

    def __call__(self) -> bool:
        return self.path.exists()


@dataclass(frozen=True)
class Followers:
    """How many pages follow a run, as a file the training process reads: a run that thirty
    students share gets thirty students' share of the machine (worker.py)."""

    path: Path

    def set(self, count: int) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        written = self.path.with_suffix(".new")
        written.write_text(str(count))
        written.replace(self.path)  # a reader sees the old count or the new, never half a file

    def __call__(self) -> int:
        try:
            return max(int(self.path.read_text()), 1)
        except (OSError, ValueError):  # not written yet: one page
            return 1


STARTING_POINT_IMAGES = 1000  # images of each split scored before the first step


@dataclass(frozen=True)
class StartingPoint:
    """The untrained model's scores (chance level): where the curves begin."""

    train_loss: float
    train_accuracy: float
    test_accuracy: float


@dataclass
class TrainingUpdate:
    """One report of `run_training`.

    progress: None only for the first update, sent before the first step, which carries
        the `start` scores instead.
    position_similarity: (grid, grid, grid, grid), with the first update and every evaluation.
    probe_probabilities: (probes, classes) softmax outputs for the probe images, likewise.
    state_dict: the final weights on the CPU, with the last update only.
    snapshot: a `timeline.Snapshot` (small tensors) when one was due at this report: the
        first update and regular points of the run, the last report included.
    time_limited: the run was ended by `max_seconds`, not by the person or its budget.
    """

    progress: TrainProgress | None
    start: StartingPoint | None = None
    position_similarity: torch.Tensor | None = None
    probe_probabilities: torch.Tensor | None = None
    state_dict: dict[str, torch.Tensor] | None = None
    snapshot: Snapshot | None = None
    time_limited: bool = False


@torch.no_grad()
def probe_probabilities(model: ViT, images: torch.Tensor, spec: DatasetSpec) -> torch.Tensor:
    """uint8 (B, C, H, W) -> (B, classes) probabilities, leaving the model's mode as it was."""
    was_training = model.training
    model.eval()
    device = next(model.parameters()).device
    logits = model(normalize(images.to(device), spec))
    model.train(was_training)
    return torch.softmax(logits.float(), dim=-1).cpu()


def starting_point(model: ViT, config: TrainConfig) -> StartingPoint:
    spec = get_spec(config.dataset)

    def score(train: bool, limit: int | None) -> tuple[float, float, None]:
        split = load_split(spec.key, train=train, data_dir=config.data_dir, limit=limit)
        return evaluate(model, split.subset(STARTING_POINT_IMAGES), spec)

    (train_loss, train_accuracy, _), (_, test_accuracy, _) = (
        score(True, config.train_limit),
        score(False, config.test_limit),
    )
    return StartingPoint(train_loss, train_accuracy, test_accuracy)


class _OwnTime:
    """Seconds a generator has spent running: `pause()` before each `yield`, `resume()` after."""

    def __init__(self) -> None:
        self._spent = 0.0
        self._resumed = time.monotonic()

    def seconds(self) -> float:
        return self._spent + time.monotonic() - self._resumed

    def pause(self) -> None:
        self._spent = self.seconds()

    def resume(self) -> None:
        self._resumed = time.monotonic()


def run_training(
    model_settings: dict,
    config: TrainConfig,
    probe_images: torch.Tensor,
    stop: Callable[[], bool] | None = None,
    max_seconds: float | None = None,
    timeline_capacity: int = 40,
) -> Iterator[TrainingUpdate]:
    """Build a model from `model_settings` (ViT arguments beyond what the dataset fixes),
    train it with `config`, and report as it goes; see `TrainingUpdate`.

    `stop` is polled after every step; `max_seconds` caps the run's wall time whatever
    its budget, so one person cannot hold a shared seat for ever. The first probe image
    is the timeline's: a snapshot at the start and at regular points (see `Timeline`).
    """
    spec = get_spec(config.dataset)
    model = create_model(spec.key, seed=config.seed, **model_settings)
    # The cap counts this run's own time: the time it waits at a yield while the training
    # process serves other runs (worker.py) is not spent by it.
    clock = _OwnTime()
    hit_time_limit = False

    def should_stop() -> bool:
        nonlocal hit_time_limit
        if max_seconds is not None and clock.seconds() >= max_seconds:
            hit_time_limit = True
            return True
        return stop is not None and stop()

    timeline = Timeline(capacity=timeline_capacity)
    timeline_probe = normalize(probe_images[:1], spec)
    # Before the first step: the random starting point the curves and maps move away from.
    first = take_snapshot(model, timeline_probe, step=0, epoch=0.0, fraction=0.0, test_accuracy=None)
    timeline.add(first)
    start = TrainingUpdate(
        None,
        starting_point(model, config),
        position_similarity(model),
        probe_probabilities(model, probe_images, spec),
        snapshot=first,
    )
    clock.pause()
    yield start
    clock.resume()
    for progress in train(model, config, should_stop):
        update = TrainingUpdate(progress)
        if timeline.record(model, timeline_probe, progress):
            update.snapshot = timeline[-1]
        if progress.evaluated:
            update.position_similarity = position_similarity(model)
            update.probe_probabilities = probe_probabilities(model, probe_images, spec)
        if progress.done:
            update.state_dict = {name: tensor.detach().cpu().clone() for name, tensor in model.state_dict().items()}
            update.time_limited = hit_time_limit
        clock.pause()
        yield update
        clock.resume()


__all__ = [
    "StartingPoint",
    "StopFlag",
    "Ticket",
    "TrainingQueue",
    "TrainingUpdate",
    "probe_probabilities",
    "run_training",
    "starting_point",
]
