"""How fast a machine trains: training images per second for each model shape.

A run's length is its epochs, so the same settings train the same model on any machine; the
speed says only how long that takes (the Build tab's estimate, a queue's wait, whether a run
fits the server's time cap). `measure_speeds` times shapes as the trainer takes its steps;
`ThroughputMeter` keeps what is known and estimates the rest. The command line's
`--time-budget` is the one place where a speed chooses the model (`plan_for_budget`).
"""

from __future__ import annotations

import json
import statistics
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import torch

from .data import augment, get_spec, normalize
from .expectations import AccuracyTable, Expectation, default_table
from .machine import pick_device, synchronize
from .model import ViTConfig
from .recipes import Candidate
from .step import BatchSplitter, forward_backward
from .training import STARTING_POINT_IMAGES, TrainConfig, config_for, create_model, make_optimizer

TRAINING_FLOPS_PER_FORWARD = 3  # a training step costs about a forward pass and a backward twice as dear
# The development machine's speeds (benchmarks/cpu_speed.py): what estimates rest on until this
# machine is timed, so the first page can be served at once.
PRIOR = Path(__file__).resolve().parent / "measured" / "cpu_speed.json"


def _step_on(model, optimizer, pixels, labels, spec, generator, splitter) -> None:
    optimizer.zero_grad(set_to_none=True)
    forward_backward(model, normalize(augment(pixels, spec, generator), spec), labels, splitter=splitter)
    optimizer.step()


def measure_speeds(
    dataset: str,
    candidates: tuple[Candidate, ...],
    seconds: float = 0.4,
    rounds: int = 2,
    device: str | None = None,
) -> Iterator[dict[str, float]]:
    """Training images per second of each candidate, each step taken as the trainer takes it
    (the batch split over two threads where the cores allow, augmentation included).

    Each candidate is timed for about `seconds` in all, over `rounds` turns taken in rotation
    with the others (at least two steps a turn): a shared virtual machine's speed wanders from
    one second to the next, and turns even that out. A generator yielding one dict, so that a
    training process can run it as a job (service/worker.py)."""
    spec = get_spec(dataset)
    device = pick_device(device)
    splitter = BatchSplitter.for_device(device)
    generator = torch.Generator().manual_seed(0)
    images = dict.fromkeys(candidates, 0)
    spent = dict.fromkeys(candidates, 0.0)
    try:
        batches = {}
        for candidate in candidates:
            model = create_model(spec.key, **candidate.shape).to(device).train()
            optimizer = make_optimizer(model, TrainConfig(dataset=spec.key), device)
            shape = (candidate.batch_size, spec.channels, spec.image_size, spec.image_size)
            pixels = torch.randint(0, 256, shape, dtype=torch.uint8, generator=generator).to(device)
            labels = torch.randint(0, spec.num_classes, (candidate.batch_size,), generator=generator).to(device)
            batches[candidate] = (model, optimizer, pixels, labels, spec, generator, splitter)
            _step_on(*batches[candidate])  # the first step pays for allocation and kernel selection
        for _ in range(rounds):
            for candidate, batch in batches.items():
                synchronize(device)
                started = time.perf_counter()
                steps = 0
                while steps < 2 or time.perf_counter() - started < seconds / rounds:
                    _step_on(*batch)
                    synchronize(device)
                    steps += 1
                spent[candidate] += time.perf_counter() - started
                images[candidate] += steps * candidate.batch_size
    finally:
        if splitter is not None:
            splitter.close()
    yield {candidate.name: images[candidate] / spent[candidate] for candidate in candidates}


def read_prior(path: Path = PRIOR) -> dict:
    """The shipped speeds: {"machine", "command", "rows": [{"dataset", "shape", "batch_size", "images_per_second"}]}."""
    if not path.is_file():
        return {"rows": []}
    return json.loads(path.read_text(encoding="utf-8"))


class ThroughputMeter:
    """Images per second per shape: the development machine's figures (the prior) until this
    machine is timed, then this machine's timings and the speeds its real runs reached; any
    other shape estimated from its FLOPs.

    Small models on a CPU are not FLOP-bound: a step has fixed costs (kernel launches, the
    optimizer, Python), so an image's time is a fixed part plus a part per FLOP. The known
    shapes, which differ in FLOPs by 10x, are fitted to that line (`_fit`), and a shape
    nobody timed is estimated from it (by FLOPs alone, half the FLOPs would read twice as
    fast, and a patch-14 model is not)."""

    def __init__(self, prior: dict | None = None) -> None:
        self._lock = threading.Lock()
        self._speeds: dict[tuple, float] = {}  # (shape, batch size) -> images per second
        self._flops: dict[tuple, float] = {}  # (shape, batch size) -> training FLOPs per image
        self._line: tuple[float, float] | None = None  # seconds per image = line[0] + line[1] * FLOPs
        self._timed = False
        prior = read_prior() if prior is None else prior
        self._prior_machine = prior.get("machine", "")
        for row in prior.get("rows", []):
            self._set(config_for(row["dataset"], row["shape"]), row["batch_size"], row["images_per_second"])
        self._refit()

    def _set(self, config: ViTConfig, batch_size: int, images_per_second: float) -> None:
        key = _speed_key(config, batch_size)
        self._speeds[key] = images_per_second
        self._flops[key] = training_flops(config)

    def _refit(self) -> None:
        self._line = _fit([(self._flops[key], 1.0 / speed) for key, speed in self._speeds.items()])

    def record_speeds(self, speeds: dict[str, float], candidates: tuple[Candidate, ...], dataset: str) -> None:
        """A timing of this machine (`measure_speeds`): it replaces the prior."""
        with self._lock:
            if not self._timed:
                self._speeds.clear()
                self._timed = True
            for candidate in candidates:
                if candidate.name in speeds:
                    self._set(config_for(dataset, candidate.shape), candidate.batch_size, speeds[candidate.name])
            self._refit()

    def record_run(self, config: ViTConfig, batch_size: int, images_per_second: float) -> None:
        """A real run's speed on this machine, for its own shape."""
        if images_per_second > 0:
            with self._lock:
                self._set(config, batch_size, images_per_second)
                self._refit()

    @property
    def timed(self) -> bool:
        with self._lock:
            return self._timed

    @property
    def source(self) -> str:
        """Where the figures come from, as words for the page."""
        with self._lock:
            if self._timed:
                return "timed on this machine"
            machine = f" ({self._prior_machine})" if self._prior_machine else ""
            return f"measured on the project's development machine{machine}, until this machine is timed"

    def images_per_second(self, config: ViTConfig, batch_size: int) -> float:
        with self._lock:
            known = self._speeds.get(_speed_key(config, batch_size))
            if known:
                return known
            if self._line is None:
                raise ValueError("no speed is known for any model: the meter needs a prior or a timing")
            return 1.0 / (self._line[0] + self._line[1] * training_flops(config))

    def seconds_to_score(self, config: ViTConfig, images: int) -> float:
        """Scoring an image costs about a forward pass: a third of training on it."""
        per_image = 1.0 / (TRAINING_FLOPS_PER_FORWARD * self.images_per_second(config, 128))
        return images * per_image

    def run_seconds(self, config: ViTConfig, training: TrainConfig, train_images: int, test_images: int) -> float:
        """About how long a run of `training` takes here: its training images, the evaluations
        during the run, the starting point and the final score."""
        seen = training.total_epochs * train_images
        scored = training.evaluations * training.eval_subset + 2 * STARTING_POINT_IMAGES + test_images
        return seen / self.images_per_second(config, training.batch_size) + self.seconds_to_score(config, scored)


def _fit(points: list[tuple[float, float]]) -> tuple[float, float] | None:
    """The least-squares line seconds = a + b * FLOPs through (FLOPs, seconds) points; through
    the origin (a = 0) where the points cannot place a fixed part: one FLOP count, or a fit with
    a negative fixed part or a slope that is not positive. None without points."""
    if not points:
        return None
    xs, ys = [flops for flops, _ in points], [seconds for _, seconds in points]
    if len(set(xs)) >= 2:
        mean_x, mean_y = statistics.fmean(xs), statistics.fmean(ys)
        slope = sum((x - mean_x) * (y - mean_y) for x, y in zip(xs, ys)) / sum((x - mean_x) ** 2 for x in xs)
        fixed = mean_y - slope * mean_x
        if slope > 0 and fixed >= 0:
            return fixed, slope
    return 0.0, sum(x * y for x, y in zip(xs, ys)) / sum(x * x for x in xs)


def training_flops(config: ViTConfig) -> float:
    return TRAINING_FLOPS_PER_FORWARD * config.forward_flops(cls_only=True)


def _speed_key(config: ViTConfig, batch_size: int) -> tuple:
    return (config.image_size, config.channels, config.num_classes, *(config.shape.values()), batch_size)


# ----------------------------------------------------------------------------- the command line's time budget


@dataclass(frozen=True)
class Plan:
    dataset: str
    seconds: float
    candidate: Candidate
    images_per_second: float
    expected: Expectation | None  # None: this candidate's accuracy was never measured

    @property
    def images(self) -> int:
        return self.expected.images if self.expected else 0


def images_in(seconds: float, images_per_second: float, evaluations: int, eval_images: int) -> int:
    """Training images a time budget buys: the budget less the evaluations during the run
    (scoring an image costs about a third of training on it)."""
    return max(int(images_per_second * seconds - evaluations * eval_images / TRAINING_FLOPS_PER_FORWARD), 0)


def plan(
    dataset: str,
    seconds: float,
    candidates: tuple[Candidate, ...],
    meter: ThroughputMeter,
    table: AccuracyTable | None = None,
) -> Plan:
    """The candidate with the best measured accuracy for what `seconds` buy on this machine
    (the first candidate when none was measured)."""
    table = table or default_table()
    defaults = TrainConfig(dataset=get_spec(dataset).key)
    plans = []
    for candidate in candidates:
        speed = meter.images_per_second(config_for(dataset, candidate.shape), candidate.batch_size)
        images = images_in(seconds, speed, defaults.evaluations, defaults.eval_subset)
        plans.append(Plan(get_spec(dataset).key, seconds, candidate, speed, table.expect(dataset, candidate, images)))

    def merit(p: Plan) -> tuple[float, float]:
        if p.expected is None:
            return (-1.0, 0.0)
        # Below the measured range the figure is a ceiling: rank by how near the range it gets.
        if p.expected.below_measured:
            return (0.0, p.expected.images / p.expected.measured_images[0])
        return (1.0 + p.expected.accuracy, 0.0)

    return max(plans, key=merit)


def plan_for_budget(dataset: str, seconds: float, candidates: tuple[Candidate, ...], device: str | None) -> Plan:
    """Time every candidate here, then `plan`: which one this machine trains best in `seconds`."""
    meter = ThroughputMeter(prior={})
    for speeds in measure_speeds(dataset, candidates, device=device):
        meter.record_speeds(speeds, candidates, dataset)
    return plan(dataset, seconds, candidates, meter)
