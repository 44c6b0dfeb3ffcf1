"""Planning a run before it starts: which shape a time budget buys on this machine, what
accuracy to expect, how long it takes, whether the server can afford it, and the
`TrainConfig` it becomes. The Build tab, the Train tab, the command line and the
benchmarks all plan through here.

Two measurements meet here. One does not depend on the machine: how accurate each
recipe candidate gets after N training images (`AccuracyTable`, recorded by
benchmarks/accuracy_vs_images.py). The other is only true of this machine: how many
images per second it trains each candidate (`ThroughputMeter`, timed by `measure_speeds`
in the process that trains, at start-up and again while the server is idle). A budget
of S seconds buys each candidate about `speed * S` images; `plan` picks the candidate
whose measured accuracy at that many images is highest.
"""

from __future__ import annotations

import json
import math
import os
import statistics
import tempfile
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import torch

from .data import augment, get_spec, normalize
from .model import ViTConfig, divisors, estimated_training_memory_bytes
from .recipes import Candidate, recipe_for
from .sessions import STARTING_POINT_IMAGES
from .step import BatchSplitter, forward_backward, pick_device, synchronize
from .training import TrainConfig, create_model, make_optimizer

TRAINING_FLOPS_PER_FORWARD = 3  # a training step costs about a forward pass and a backward twice as dear
FALLBACK_FLOPS_PER_SECOND = 5e9  # until the measurement is in: a modest 2-core CPU
# The least a run must manage within the server's time limit to show anything: this many
# training steps, plus scoring the starting point and the stopped model.
MIN_USEFUL_STEPS = 20
# Readings of each shape's speed (start-up's the first) the app gathers, re-timing while idle:
# spread over its first minutes, they settle a plan that start-up's few seconds leave to chance
# (`ThroughputMeter`; benchmarks/speed_drift.py).
SPEED_READINGS = 8
RETIME_PAUSE = 1.0  # seconds the cores are left alone between two readings
# A reading counts only if the server used less than this share of a core meanwhile (idle, it
# uses about 2 %): one taken while 30 pages opened read the lesson's model a third slow.
QUIET_SERVER_CORES = 0.25
APP_REPORT_SECONDS = 1.0  # the app's live view: one update a second is live enough, and cheap to draw and send

ACCURACY_TABLE = Path(__file__).resolve().parent / "measured" / "accuracy_vs_images.json"


# ----------------------------------------------------------------------------- accuracy vs images


def read_accuracy_table(path: Path = ACCURACY_TABLE) -> dict:
    if not path.is_file():
        return {"rows": []}
    return json.loads(path.read_text(encoding="utf-8"))


def write_accuracy_table(table: dict, path: Path = ACCURACY_TABLE) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, staging = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    with os.fdopen(fd, "w", encoding="utf-8") as file:
        json.dump(table, file, indent=1)
        file.write("\n")
    os.replace(staging, path)


@dataclass(frozen=True)
class Expectation:
    """What a measured table says a run of `images` images scores."""

    accuracy: float  # on the full test set, averaged over the measured seeds
    images: int  # the images the plan expects the run to see
    measured_images: tuple[int, int]  # the smallest and largest image counts measured for this candidate
    spread: float  # the largest gap between two seeds at one measured point (0 with one seed)

    @property
    def beyond_measured(self) -> bool:
        """More images than the table measured: the accuracy is a floor."""
        return self.images > self.measured_images[1]

    @property
    def below_measured(self) -> bool:
        """Fewer images than the table measured: the accuracy is a ceiling."""
        return self.images < self.measured_images[0]

    def describe(self) -> str:
        if self.below_measured:
            return (
                f"below {self.accuracy:.1%} (it sees about {self.images:,} images, fewer than the "
                f"{self.measured_images[0]:,} measured)"
            )
        if self.beyond_measured:
            return f"at least {self.accuracy:.1%} (about {self.images:,} images)"
        return f"about {self.accuracy:.1%} (about {self.images:,} images)"


class AccuracyTable:
    """Measured (images, accuracy) points per dataset and candidate."""

    def __init__(self, table: dict | None = None):
        table = read_accuracy_table() if table is None else table
        points: dict[tuple[str, str], dict[int, list[float]]] = {}
        for row in table.get("rows", []):
            points.setdefault((row["dataset"], row["candidate"]), {}).setdefault(row["images"], []).append(
                row["test_accuracy"]
            )
        self._points = {key: sorted(by_images.items()) for key, by_images in points.items()}

    def measured(self, dataset: str, candidate: Candidate) -> bool:
        return (get_spec(dataset).key, candidate.name) in self._points

    def expect(self, dataset: str, candidate: Candidate, images: float) -> Expectation | None:
        """Interpolated linearly in log(images) between the measured points; held at the
        nearest end outside them. None where this candidate was never measured."""
        points = self._points.get((get_spec(dataset).key, candidate.name))
        if not points:
            return None
        xs = [n for n, _ in points]
        ys = [statistics.fmean(accuracies) for _, accuracies in points]
        spread = max(max(a) - min(a) for _, a in points)
        images = max(int(images), 1)
        if images <= xs[0]:
            accuracy = ys[0]
        elif images >= xs[-1]:
            accuracy = ys[-1]
        else:
            upper = next(i for i, n in enumerate(xs) if n >= images)
            x0, x1 = math.log(xs[upper - 1]), math.log(xs[upper])
            weight = (math.log(images) - x0) / (x1 - x0)
            accuracy = ys[upper - 1] + weight * (ys[upper] - ys[upper - 1])
        return Expectation(accuracy, images, (xs[0], xs[-1]), spread)


# ----------------------------------------------------------------------------- this machine's speed


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
    with the others (at least two steps a turn). A step's time on a shared virtual machine
    wanders by ±15 % from one second to the next: four steps of the lesson's model, timed
    once, read 5,700-8,300 images/s on this CPU against 5,900 sustained over 200 steps, and a
    "30 s" run planned on the high figure would take 42 s. Timed in turns, a reading evens out
    that jitter; the machine's speed also drifts over tens of seconds, which no one reading
    sees, so the app plans on the mean of readings taken over minutes (`ThroughputMeter`).

    A generator yielding one dict, so a training process can run it as a job (worker.py)."""
    spec = get_spec(dataset)
    device = pick_device(device)
    splitter = BatchSplitter.for_device(device)
    generator = torch.Generator().manual_seed(0)
    images = dict.fromkeys(candidates, 0)
    spent = dict.fromkeys(candidates, 0.0)
    try:
        batches = {}
        for candidate in candidates:
            model = create_model(spec.key, **candidate.model).to(device).train()
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


class ThroughputMeter:
    """How fast this machine trains: images per second per candidate shape, timed at
    start-up and again while the server is idle, and as the last real run of each shape
    achieved; for any other shape, an estimate from its FLOPs.

    Small models on a CPU are not FLOP-bound: a step has fixed costs (kernel launches, the
    optimizer, Python), so an image's time is a fixed part plus a part per FLOP. The timed
    candidates, which differ in FLOPs by 10x, are fitted to that line (`_fit`); a shape
    nobody timed is estimated from it. (By FLOPs alone a model of half the FLOPs would be
    twice as fast: a time budget planned that way ran half again as long.)

    A shared virtual machine's speed wanders over tens of seconds. On this project's 2-vCPU
    machine, timing the lesson's model for five minutes, one reading (all a plan from the
    start-up timing has) was off the five minutes' mean by -18 % to +21 % (5th-95th
    percentile), and the mean of eight readings 15 s apart by -5 % to +12 %
    (benchmarks/speed_drift.py), which is what the app gathers by re-timing while idle
    (`readings`). Plans use the mean of the readings (`planning_speed`), and the first run of
    a shape fixes its speed (`settle_planning_speed`) for the server's life, so every student
    who picks the same settings gets the same model. Time estimates use the freshest figure
    (`images_per_second`), a real run's when there is one."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        # (shape, batch size) -> its readings, in training images per second, each timed alike
        self._readings: dict[tuple, list[float]] = {}
        self._flops: dict[tuple, float] = {}  # (shape, batch size) -> training FLOPs per image
        self._line: tuple[float, float] | None = None  # seconds per image = line[0] + line[1] * FLOPs
        self._settled: dict[tuple, float] = {}  # the speed a shape's first run was planned at
        self._runs: dict[tuple, float] = {}
        self._flops_per_second: float | None = None
        self._source = "a first guess while this machine is being measured"

    def record_speeds(self, speeds: dict[str, float], candidates: tuple[Candidate, ...], dataset: str) -> None:
        """Readings from `measure_speeds` (one per candidate timed): each shape's figure, the
        line they lie on, and, at the first, the machine's FLOP/s from the fastest."""
        spec = get_spec(dataset)
        measured = [c for c in candidates if c.name in speeds]
        with self._lock:
            flops_per_second = []
            for candidate in measured:
                config, speed = _config(spec.key, candidate), speeds[candidate.name]
                key = _speed_key(config, candidate.batch_size)
                self._readings.setdefault(key, []).append(speed)
                self._flops[key] = _training_flops(config)
                flops_per_second.append(self._flops[key] * speed)
            self._line = _fit([(self._flops[key], 1.0 / statistics.fmean(r)) for key, r in self._readings.items()])
            if self._flops_per_second is None and measured:
                self._flops_per_second = max(flops_per_second)
                self._source = "measured by a short benchmark at start-up"

    def readings(self, dataset: str, candidate: Candidate) -> int:
        """How many times this candidate's shape was timed."""
        key = _speed_key(_config(dataset, candidate), candidate.batch_size)
        with self._lock:
            return len(self._readings.get(key, ()))

    def record_run(self, config: ViTConfig, batch_size: int, images_per_second: float) -> None:
        """A real run's speed: for its own shape, and as this machine's FLOP/s."""
        if images_per_second <= 0:
            return
        with self._lock:
            self._runs[_speed_key(config, batch_size)] = images_per_second
            self._flops_per_second = _training_flops(config) * images_per_second
            self._source = "measured in the last training run"

    @property
    def flops_per_second(self) -> float:
        with self._lock:
            return self._flops_per_second or FALLBACK_FLOPS_PER_SECOND

    @property
    def source(self) -> str:
        """Where the figures come from, as words for the page."""
        with self._lock:
            return self._source

    def images_per_second(self, config: ViTConfig, batch_size: int) -> float:
        """The last run's speed for this shape, else the planning one."""
        with self._lock:
            measured = self._runs.get(_speed_key(config, batch_size))
        return measured or self.planning_speed(config, batch_size)

    def planning_speed(self, config: ViTConfig, batch_size: int) -> float:
        """The speed a run of this shape is planned at: the one its first run was planned at,
        else the mean of its readings, else the line's estimate (from FLOPs alone until the
        machine is measured)."""
        with self._lock:
            return self._planning_speed(_speed_key(config, batch_size), _training_flops(config))

    def settle_planning_speed(self, config: ViTConfig, batch_size: int) -> float:
        """The planning speed, kept for this shape from now on: a run is planned at it, and a
        later student's identical settings must plan the identical run."""
        key = _speed_key(config, batch_size)
        with self._lock:
            return self._settled.setdefault(key, self._planning_speed(key, _training_flops(config)))

    def _planning_speed(self, key: tuple, flops: float) -> float:
        if key in self._settled:
            return self._settled[key]
        if key in self._readings:
            return statistics.fmean(self._readings[key])
        if self._line is not None:
            return 1.0 / (self._line[0] + self._line[1] * flops)
        return FALLBACK_FLOPS_PER_SECOND / flops

    def seconds_per_epoch(self, config: ViTConfig, batch_size: int, images: int) -> float:
        return images / self.images_per_second(config, batch_size)

    def seconds_to_score(self, config: ViTConfig, images: int) -> float:
        return config.forward_flops() * images / self.flops_per_second


def _config(dataset: str, candidate: Candidate) -> ViTConfig:
    spec = get_spec(dataset)
    return ViTConfig(
        image_size=spec.image_size, num_classes=spec.num_classes, channels=spec.channels, **candidate.model
    )


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


def _training_flops(config: ViTConfig) -> float:
    return TRAINING_FLOPS_PER_FORWARD * config.forward_flops(cls_only=True)


def _speed_key(config: ViTConfig, batch_size: int) -> tuple:
    return (
        config.image_size,
        config.channels,
        config.num_classes,
        config.patch_size,
        config.dim,
        config.depth,
        config.heads,
        config.mlp_dim,
        batch_size,
    )


# ----------------------------------------------------------------------------- plans


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


def steps_in(seconds: float, images_per_second: float, batch_size: int) -> int:
    """The training steps a time budget buys at this speed, its evaluations left out: how the
    app turns "about S seconds" into a repeatable length (`TrainConfig.steps`)."""
    defaults = TrainConfig()
    images = images_in(seconds, images_per_second, defaults.evaluations, defaults.eval_subset)
    return max(1, images // batch_size)


def plan(
    dataset: str,
    seconds: float,
    candidates: tuple[Candidate, ...],
    meter: ThroughputMeter,
    table: AccuracyTable | None = None,
    evaluations: int | None = None,
) -> Plan:
    """The candidate with the best measured accuracy for what `seconds` buy on this machine
    (the first candidate when none was measured)."""
    table = table or default_table()
    defaults = TrainConfig(dataset=get_spec(dataset).key)
    evaluations = defaults.evaluations if evaluations is None else evaluations
    plans = []
    for candidate in candidates:
        speed = meter.planning_speed(_config(dataset, candidate), candidate.batch_size)
        images = images_in(seconds, speed, evaluations, defaults.eval_subset)
        plans.append(Plan(get_spec(dataset).key, seconds, candidate, speed, table.expect(dataset, candidate, images)))

    def merit(p: Plan) -> tuple[float, float]:
        if p.expected is None:
            return (-1.0, 0.0)
        # Below the measured range the figure is a ceiling: rank by how near the range it gets.
        if p.expected.below_measured:
            return (0.0, p.expected.images / p.expected.measured_images[0])
        return (1.0 + p.expected.accuracy, 0.0)

    return max(plans, key=merit)


_default_table: AccuracyTable | None = None


def default_table() -> AccuracyTable:
    """The shipped table, read once per process."""
    global _default_table
    if _default_table is None:
        _default_table = AccuracyTable()
    return _default_table


# ----------------------------------------------------------------------------- what the server allows


def format_duration(seconds: float) -> str:
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 5400:
        return f"{seconds / 60:.1f} min"
    return f"{seconds / 3600:.1f} h"


def format_size(megabytes: float) -> str:
    return f"{megabytes / 1024:,.1f} GB" if megabytes >= 1024 else f"{megabytes:,.0f} MB"


def _what_to_lower(config: ViTConfig, batch_size: int) -> str:
    bigger = [p for p in divisors(config.image_size) if p > config.patch_size]
    raise_patch = (
        f"raise patch_size (now {config.patch_size}: {config.num_patches} patches; "
        f"{', '.join(map(str, bigger))} also divide {config.image_size})"
        if bigger
        else None
    )
    knobs = ", ".join(
        f"{name} (now {value})"
        for name, value in (
            ("batch_size", batch_size),
            ("depth", config.depth),
            ("dim", config.dim),
            ("mlp_dim", config.mlp_dim),
        )
    )
    return f"{raise_patch + ', or lower ' if raise_patch else 'lower '}{knobs}"


def check_fits_server(
    config: ViTConfig, batch_size: int, max_memory_mb: float, max_seconds: float, meter: ThroughputMeter
) -> None:
    """Refuse, with a ValueError that says how big and what to lower, a model this server
    cannot train: estimated memory over `max_memory_mb`, or so slow that not even a few
    steps and their scoring fit in `max_seconds`."""
    memory_mb = estimated_training_memory_bytes(config, batch_size) / 2**20
    if memory_mb > max_memory_mb:
        raise ValueError(
            f"This model is too big for this server: training it with batch_size {batch_size} needs about "
            f"{format_size(memory_mb)} of memory, over the {format_size(max_memory_mb)} limit "
            f"(VIT_DEMO_MAX_TRAIN_MEMORY_MB). To fit, {_what_to_lower(config, batch_size)}."
        )
    scored = 2 * STARTING_POINT_IMAGES + TrainConfig().eval_subset  # the starting point, the stopped run's slice
    seconds = MIN_USEFUL_STEPS * batch_size / meter.images_per_second(config, batch_size) + meter.seconds_to_score(
        config, scored
    )
    if seconds > max_seconds:
        raise ValueError(
            f"This model is too slow for this server: {MIN_USEFUL_STEPS} training steps with batch_size {batch_size} "
            f"and a first score would take about {format_duration(seconds)} ({config.forward_flops() / 1e6:,.0f} MFLOP "
            f"per image), over the {format_duration(max_seconds)} limit of one run (VIT_DEMO_MAX_TRAIN_SECONDS). "
            f"To fit, {_what_to_lower(config, batch_size)}."
        )


def app_train_config(
    dataset: str,
    lr: float,
    batch_size: int,
    seed: int,
    *,
    time_budget: float | None = None,
    epochs: float | None = None,
    steps: int | None = None,
    data_dir: str | None = None,
    train_limit: int | None = None,
    test_limit: int | None = None,
) -> TrainConfig:
    """The TrainConfig of a run the app starts: the dataset's recipe for everything the page
    does not show, and one live update a second.

    A run of so many steps or epochs takes the plain eager float32 step, exactly: timing the
    candidate paths in its first steps (step.FastestStep) could pick another path in the next
    run of the same settings, and then the same settings would not train the same model, which
    sharing runs relies on. (Measured, the only faster path an app run could get is eager
    bfloat16 on a Zen 4 EPYC, +14 %; a run too short to compile gets nothing else.) A time
    budget (a ZeroGPU Space's) is not repeatable anyway and keeps the machine's choice."""
    extras = {k: v for k, v in recipe_for(dataset).training.items() if k not in ("lr", "batch_size")}
    repeatable = time_budget is None
    pinned = {"compile": False, "bf16": False, "force_step": True} if repeatable else {}
    return TrainConfig(
        dataset=get_spec(dataset).key,
        time_budget=time_budget,
        epochs=epochs,
        steps=steps,
        lr=lr,
        batch_size=batch_size,
        seed=seed,
        data_dir=data_dir,
        train_limit=train_limit,
        test_limit=test_limit,
        report_every=APP_REPORT_SECONDS,
        **extras,
        **pinned,
    )


def train_images(dataset: str, train_limit: int | None = None) -> int:
    total = get_spec(dataset).train_images
    return min(total, train_limit) if train_limit else total
