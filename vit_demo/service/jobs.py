"""A training job: what the training process (or a ZeroGPU worker) runs for one run, and
what it reports back.

`run_training` is the library's `train` plus, at every evaluation, the positional-embedding
similarity and the guesses on a few watched test pictures, and at the end the weights as
CPU tensors. Its one argument (`TrainingJob`) is picklable and its stop signal is a file
(`StopFlag`), so the same function runs in the app's training process or in the worker a
ZeroGPU Space forks for it.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import torch

from ..data import DatasetSpec, normalize, register_own
from ..explain import position_similarity
from ..model import ViT
from ..timeline import Snapshot, Timeline, take_snapshot
from ..training import STARTING_POINT_IMAGES, TrainConfig, TrainProgress, create_model, evaluate, train


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


@dataclass(frozen=True)
class TrainingJob:
    """Everything one run needs, in one picklable value: it crosses whole into the training
    process or a ZeroGPU worker, and a ZeroGPU lease is worked out from it alone."""

    shape: dict  # the model's `SHAPE_FIELDS`; the dataset fixes the rest
    config: TrainConfig
    watched: torch.Tensor  # uint8 (N, C, H, W): the test pictures whose guesses the page shows
    stop: StopFlag | None = None
    max_seconds: float | None = None  # the server's cap on the run's own time
    # A person's own pictures (data.own_pictures): the process that trains may not hold them.
    own_pictures: tuple | None = None


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
    guesses: (watched, classes) softmax outputs for the job's watched pictures, likewise.
    state_dict: the final weights on the CPU, with the last update only.
    snapshot: a `timeline.Snapshot` (small tensors) when one was due at this report: the
        first update and regular points of the run, the last report included.
    time_limited: the run was ended by `max_seconds`, not by the person or its budget.
    """

    progress: TrainProgress | None
    start: StartingPoint | None = None
    position_similarity: torch.Tensor | None = None
    guesses: torch.Tensor | None = None
    state_dict: dict[str, torch.Tensor] | None = None
    snapshot: Snapshot | None = None
    time_limited: bool = False


@torch.no_grad()
def guesses(model: ViT, images: torch.Tensor, spec: DatasetSpec) -> torch.Tensor:
    """uint8 (B, C, H, W) -> (B, classes) probabilities, leaving the model's mode as it was."""
    was_training = model.training
    model.eval()
    device = next(model.parameters()).device
    logits = model(normalize(images.to(device), spec))
    model.train(was_training)
    return torch.softmax(logits.float(), dim=-1).cpu()


def starting_point(model: ViT, config: TrainConfig) -> StartingPoint:
    def score(train: bool) -> tuple[float, float, None]:
        return evaluate(model, config.split(train, STARTING_POINT_IMAGES), config.spec)

    (train_loss, train_accuracy, _), (_, test_accuracy, _) = score(True), score(False)
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


def run_training(job: TrainingJob) -> Iterator[TrainingUpdate]:
    """Build the job's model, train it, and report as it goes; see `TrainingUpdate`.

    The stop flag is polled after every step; `max_seconds` caps the run's own time whatever
    its length, so one person cannot hold a shared seat for ever. The first watched picture
    is the timeline's: a snapshot at the start and at regular points (see `Timeline`).
    """
    config = job.config
    if job.own_pictures is not None:
        register_own(*job.own_pictures)
    spec = config.spec
    model = create_model(spec, seed=config.seed, **job.shape)
    # The cap counts this run's own time: the time it waits at a yield while the training
    # process serves other runs (worker.py) is not spent by it.
    clock = _OwnTime()
    hit_time_limit = False

    def should_stop() -> bool:
        nonlocal hit_time_limit
        if job.max_seconds is not None and clock.seconds() >= job.max_seconds:
            hit_time_limit = True
            return True
        return job.stop is not None and job.stop()

    timeline = Timeline()
    timeline_picture = normalize(job.watched[:1], spec)
    # Before the first step: the random starting point the curves and maps move away from.
    first = take_snapshot(model, timeline_picture, step=0, epoch=0.0, fraction=0.0, test_accuracy=None)
    timeline.add(first)
    start = TrainingUpdate(
        None,
        starting_point(model, config),
        position_similarity(model),
        guesses(model, job.watched, spec),
        snapshot=first,
    )
    clock.pause()
    yield start
    clock.resume()
    for progress in train(model, config, should_stop):
        update = TrainingUpdate(progress)
        if timeline.record(model, timeline_picture, progress):
            update.snapshot = timeline[-1]
        if progress.evaluated:
            update.position_similarity = position_similarity(model)
            update.guesses = guesses(model, job.watched, spec)
        if progress.done:
            update.state_dict = {name: tensor.detach().cpu().clone() for name, tensor in model.state_dict().items()}
            update.time_limited = hit_time_limit
        clock.pause()
        yield update
        clock.resume()
