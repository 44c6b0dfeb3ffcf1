"""Live training: a generator that trains a ViT and reports progress as it goes.

The UI (or the CLI) iterates over `train(...)`; each yielded `TrainProgress` is a snapshot
of the run, produced at least every `report_every` seconds, so a browser can draw curves
while the model learns. Stopping is cooperative and quick: `should_stop()` is checked
before every optimizer step, and closing the generator (what Gradio does when a user
presses Stop or closes the tab) ends the run after the current step. Either way the
model is left in eval mode with the weights of its last completed step.

The recipe is tuned for very short runs from scratch: AdamW, a short linear warmup,
cosine decay that reaches zero exactly when the budget (epochs or seconds) runs out,
label smoothing, gradient clipping, and light batched augmentation. How each step is
taken (eager or compiled, float32 or bfloat16, one batch or split over two threads) is
`step.py`'s business: the fastest path this machine offers.
"""

from __future__ import annotations

import collections
import math
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field, replace

import torch
import torch.nn.functional as F
from torch import nn

from . import checkpoints
from .data import DatasetSpec, Split, augment, get_spec, load_split, normalize
from .forking import ForkSafeLock
from .machine import Machine, pick_device
from .model import ViT, ViTConfig
from .step import BatchSplitter, FastestStep, eager_step_seconds, plan_step

# Test images scored at each evaluation during a run (the full test set scores the end).
EVAL_SUBSET = 2000
STARTING_POINT_IMAGES = 1000  # images of each split scored before the first step (where the curves begin)


@dataclass(frozen=True)
class TrainConfig:
    dataset: str = "mnist"
    # The pictures' size and channels (None: the dataset's own): the dataset is prepared so.
    image_size: int | None = None
    channels: int | None = None
    # How long: a number of epochs, a wall-clock budget in seconds (the learning-rate
    # schedule then stretches over the budget), or a number of steps. At most one of them;
    # with none, one epoch. Steps make a run repeatable: the same settings on the same
    # machine train the same model (the app plans its time budgets as steps, see
    # planning.steps_in, so that identical runs can be shared).
    epochs: float | None = None
    time_budget: float | None = None
    steps: int | None = None
    batch_size: int = 128
    lr: float = 3e-3
    weight_decay: float = 0.05
    warmup: float = 0.05  # fraction of the run spent ramping the learning rate up
    label_smoothing: float = 0.0
    grad_clip: float = 1.0
    augment: bool = True
    # None: the dataset's own augmentation (data.DATASETS); a number or a flag overrides it,
    # e.g. long Fashion-MNIST runs, which do better with shifts and flips than short ones.
    augment_shift: int | None = None
    augment_flip: bool | None = None
    # How to take each step (step.plan_step): compile it with TorchInductor, compute in
    # bfloat16 autocast. None leaves it to the machine: compiled only for long runs, bf16
    # only where it is native. True asks for it, and is still turned down (in one line)
    # where this machine makes it slower, unless `force_step`.
    compile: bool | None = None
    bf16: bool | None = None
    force_step: bool = False
    seed: int = 0
    data_dir: str | None = None
    train_limit: int | None = None  # use only the first N training images (quick demos, tests)
    test_limit: int | None = None
    eval_subset: int = EVAL_SUBSET  # test images scored at each evaluation during the run
    evaluations: int = 10  # evaluation points spread over the run (the full test set is scored at the end)
    report_every: float = 0.4  # seconds between progress reports
    device: str | None = None  # None: CUDA, else Apple MPS, else CPU

    def __post_init__(self) -> None:
        if self.channels not in (None, 1, 3):
            raise ValueError(f"channels must be 1 (grey) or 3 (colour), got {self.channels!r}")
        if self.image_size is not None and not (isinstance(self.image_size, int) and self.image_size >= 1):
            raise ValueError(f"image_size must be a whole number of pixels, got {self.image_size!r}")
        lengths = [name for name in ("epochs", "time_budget", "steps") if getattr(self, name) is not None]
        if len(lengths) > 1:
            raise ValueError(f"give one of epochs, time_budget or steps, not {' and '.join(lengths)}")
        if self.steps is not None and (
            isinstance(self.steps, bool) or not isinstance(self.steps, int) or self.steps < 1
        ):
            raise ValueError(f"steps must be a whole number of at least 1, got {self.steps!r}")
        if self.epochs is not None and not self.epochs > 0:
            raise ValueError(f"epochs must be positive, got {self.epochs}")
        if self.time_budget is not None and not self.time_budget > 0:
            raise ValueError(f"time_budget must be a positive number of seconds, got {self.time_budget}")
        if not isinstance(self.batch_size, int) or self.batch_size < 1:
            raise ValueError(f"batch_size must be a whole number of at least 1, got {self.batch_size!r}")
        if not 0 < self.lr < 1:
            raise ValueError(f"learning rate must be between 0 and 1 (try 1e-3 to 3e-3), got {self.lr}")
        if not 0 <= self.warmup < 1:
            raise ValueError(f"warmup must be a fraction in [0, 1), got {self.warmup}")
        if not 0 <= self.label_smoothing < 1:
            raise ValueError(f"label_smoothing must be in [0, 1), got {self.label_smoothing}")
        largest_shift = self.spec.image_size // 2 - 1
        if self.augment_shift is not None and not 0 <= self.augment_shift <= largest_shift:
            raise ValueError(
                f"augment_shift must be 0 to {largest_shift} pixels (2 is typical), got {self.augment_shift}"
            )

    @property
    def spec(self) -> DatasetSpec:
        """The dataset as this run sees it: at its image_size and channels."""
        return get_spec(self.dataset).at(self.image_size, self.channels)

    def split(self, train: bool, limit: int | None = None) -> Split:
        """The run's training or test pictures, prepared as `spec` says; `limit` caps them further."""
        cap = self.train_limit if train else self.test_limit
        limits = [n for n in (cap, limit) if n is not None]
        return load_split(self.spec, train=train, data_dir=self.data_dir, limit=min(limits) if limits else None)

    def augmentation(self) -> DatasetSpec:
        """The dataset's spec with this run's augmentation settings in it."""
        spec = self.spec
        return replace(
            spec,
            augment_shift=spec.augment_shift if self.augment_shift is None else self.augment_shift,
            augment_flip=spec.augment_flip if self.augment_flip is None else self.augment_flip,
        )

    @property
    def total_epochs(self) -> float:
        return self.epochs if self.epochs is not None else 1.0


@dataclass
class TrainProgress:
    step: int
    total_steps: int | None  # None when training for a time budget
    epoch: float  # epochs completed, fractional
    fraction: float  # of the run, 0..1
    train_loss: float  # exponential moving average over recent steps
    train_accuracy: float  # likewise
    images_per_second: float
    elapsed: float  # seconds since the run started (set-up and compiling included); the final score's time is not
    eta: float
    lr: float
    test_accuracy: float | None = None  # latest evaluation
    test_loss: float | None = None
    evaluated: bool = False  # this report carries a fresh evaluation
    done: bool = False
    stopped: bool = False  # ended early by a stop request
    final_test_images: int = 0  # how many test images the final score used
    confusion: torch.Tensor | None = field(default=None, repr=False)  # (classes, classes), rows = true class
    step_path: str = ""  # how steps are taken ("eager fp32", "compiled bf16", "timing ...")
    notes: tuple[str, ...] = ()  # what the machine decided since the last report, one line each
    step_seconds: float = 0.0  # of `elapsed`, the time spent in training steps (the rest: evaluating, setting up)

    def to_dict(self) -> dict:
        values = asdict(self)
        values["confusion"] = None if self.confusion is None else self.confusion.tolist()
        return values


def check_model_fits_dataset(model: ViT, spec: DatasetSpec) -> None:
    cfg = model.config
    problems = []
    if cfg.channels != spec.channels:
        problems.append(f"channels={cfg.channels} but its images have {spec.channels} (use channels={spec.channels})")
    if cfg.image_size != spec.image_size:
        problems.append(f"image_size={cfg.image_size} but its images are {spec.image_size}x{spec.image_size}")
    if cfg.num_classes != spec.num_classes:
        problems.append(f"num_classes={cfg.num_classes} but it has {spec.num_classes} classes")
    if problems:
        raise ValueError(f"this model does not fit {spec.title}: " + "; ".join(problems))


_GLOBAL_GENERATOR = ForkSafeLock()


@contextmanager
def seeded(seed: int) -> Iterator[None]:
    """Torch's global random generator seeded with `seed` while inside, and as it was after.

    A module's initial weights come from the global generator (nn.Linear takes no other),
    so the seed makes them repeatable; one thread at a time, because two threads seeding
    and drawing at once (two trainings side by side, two explanations being served) would
    each draw some of the other's numbers, and the same seed would build another model."""
    with _GLOBAL_GENERATOR, torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        yield


def config_for(dataset: str | DatasetSpec, shape: dict) -> ViTConfig:
    """The ViTConfig of a model of `shape` (`SHAPE_FIELDS`) for `dataset` (a name, or a spec at
    its image_size and channels), which fixes the rest; a ValueError (the model's own message)
    when the shape cannot be built."""
    spec = get_spec(dataset)
    return ViTConfig(image_size=spec.image_size, num_classes=spec.num_classes, channels=spec.channels, **shape)


def create_model(dataset: str | DatasetSpec, seed: int = 0, **hyperparameters) -> ViT:
    """A fresh ViT shaped for `dataset` (classes come from it; image size and channels too,
    unless given: the dataset is then prepared at them)."""
    channels = hyperparameters.pop("channels", None)
    if channels not in (None, 1, 3):
        raise ValueError(f"channels must be 1 (grey) or 3 (RGB), got {channels}")
    spec = get_spec(dataset).at(hyperparameters.pop("image_size", None), channels)
    hyperparameters.setdefault("num_classes", spec.num_classes)
    with seeded(seed):
        model = ViT(ViTConfig(image_size=spec.image_size, channels=spec.channels, **hyperparameters))
    check_model_fits_dataset(model, spec)
    return model


def _parameter_groups(model: nn.Module, weight_decay: float) -> list[dict]:
    # Decay shrinks weights toward zero; norms, biases and the learned embeddings/tokens
    # are offsets and scales, and decaying them only hurts short runs.
    decay, no_decay = [], []
    for name, parameter in model.named_parameters():
        if parameter.ndim < 2 or name in ("pos_embedding", "cls_token"):
            no_decay.append(parameter)
        else:
            decay.append(parameter)
    return [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}]


def make_optimizer(model: nn.Module, config: TrainConfig, device: torch.device) -> torch.optim.Optimizer:
    groups = _parameter_groups(model, config.weight_decay)
    # One fused kernel for all parameters instead of a dozen small ops each.
    fused = device.type in ("cpu", "cuda")
    return torch.optim.AdamW(groups, lr=config.lr, betas=(0.9, 0.999), fused=fused)


def learning_rate(progress: float, config: TrainConfig) -> float:
    """Linear warmup, then cosine decay reaching 0 exactly at progress 1."""
    progress = min(max(progress, 0.0), 1.0)
    if config.warmup and progress < config.warmup:
        return config.lr * progress / config.warmup
    decayed = (progress - config.warmup) / (1 - config.warmup)
    return config.lr * 0.5 * (1 + math.cos(math.pi * decayed))


@torch.no_grad()
def batched_logits(
    model: ViT, split: Split, spec: DatasetSpec, batch_size: int = 1000
) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """(logits, labels) for `split`, a batch at a time, on the model's device. The caller
    puts the model in eval mode."""
    device = next(model.parameters()).device
    for start in range(0, len(split), batch_size):
        images = normalize(split.images[start : start + batch_size].to(device), spec)
        yield model(images), split.labels[start : start + batch_size].to(device)


@torch.no_grad()
def evaluate(
    model: ViT, split: Split, spec: DatasetSpec, batch_size: int = 1000, with_confusion: bool = False
) -> tuple[float, float, torch.Tensor | None]:
    """Mean cross-entropy, accuracy and (optionally) the confusion matrix on `split`."""
    was_training = model.training
    model.eval()
    total_loss, correct = 0.0, 0
    confusion = torch.zeros(spec.num_classes, spec.num_classes, dtype=torch.long) if with_confusion else None
    for logits, labels in batched_logits(model, split, spec, batch_size):
        total_loss += F.cross_entropy(logits, labels, reduction="sum").item()
        predictions = logits.argmax(1)
        correct += (predictions == labels).sum().item()
        if confusion is not None:
            pairs = labels.cpu() * spec.num_classes + predictions.cpu()
            confusion += torch.bincount(pairs, minlength=spec.num_classes**2).view_as(confusion)
    model.train(was_training)
    n = max(len(split), 1)
    return total_loss / n, correct / n, confusion


def evaluation_slice(test_split: Split, seed: int, size: int) -> Split:
    """The fixed, shuffled slice of the test set scored during a run (and at the end of a
    stopped one): quick to score, and the same images at every evaluation."""
    chosen = torch.randperm(len(test_split), generator=torch.Generator().manual_seed(seed))[:size]
    return Split(test_split.images[chosen], test_split.labels[chosen])


class _Run:
    """The state of one training run; `train` drives it."""

    def __init__(self, model: ViT, config: TrainConfig):
        spec = config.spec
        check_model_fits_dataset(model, spec)
        self.model, self.config, self.spec = model, config, spec
        self.augmentation = config.augmentation()
        self.device = pick_device(config.device)
        train_split, self.test_split = config.split(train=True), config.split(train=False)
        if len(train_split) == 0 or len(self.test_split) == 0:
            raise ValueError("the training and test sets must each hold at least one image")
        self.evaluation_split = evaluation_slice(self.test_split, config.seed, config.eval_subset)
        self.generator = torch.Generator().manual_seed(config.seed)  # the epochs' orders
        self.augment_generator = (
            self.generator
            if self.device.type == "cpu"
            else (torch.Generator(device=self.device).manual_seed(config.seed))
        )

        model.to(self.device).train()
        # The whole training set lives on the device, so a GPU step never waits for a copy.
        self.images = train_split.images.to(self.device)
        self.labels = train_split.labels.to(self.device)
        self.optimizer = make_optimizer(model, config, self.device)
        self.batch_size = min(config.batch_size, len(train_split))
        self.started = time.perf_counter()  # compiling counts against the budget: the user waits for it
        first_images, first_targets = normalize(self.images[: self.batch_size], spec), self.labels[: self.batch_size]
        splitter = BatchSplitter.for_device(self.device)
        n = len(train_split)
        machine = Machine.detect(self.device)
        expected_seconds = config.time_budget
        if expected_seconds is None and config.compile is None and machine.compiler:
            # Whether a compile would pay depends on how long the run is in seconds.
            steps = config.steps or config.total_epochs * n / self.batch_size
            expected_seconds = steps * eager_step_seconds(model, first_images, first_targets, splitter)
        candidates, self.notes = plan_step(machine, config.compile, config.bf16, config.force_step, expected_seconds)
        self.stepper = FastestStep.for_paths(model, self.device, candidates, splitter)
        self.stepper.prepare(first_images, first_targets)
        # A compiled step has one fixed batch shape: the last, partial batch of each epoch is
        # left out (the order is reshuffled every epoch, so no image is left out for good).
        self.drop_partial = any(forward.compiled for forward in self.stepper.forwards)
        self.steps_per_epoch = n // self.batch_size if self.drop_partial else math.ceil(n / self.batch_size)
        if config.time_budget:
            self.total_steps = None
        else:
            self.total_steps = config.steps or max(1, round(config.total_epochs * self.steps_per_epoch))
        self.evaluation_points = [(i + 1) / config.evaluations for i in range(config.evaluations)]
        self.step = 0
        self.step_seconds = 0.0
        # Running averages stay on the device: reading a number each step would make a GPU
        # wait for every step to finish before queueing the next.
        self.smooth_loss = self.smooth_accuracy = None
        self.test_loss = self.test_accuracy = None
        # The first step is reported at once: the curve starts the moment the model learns,
        # which in a busy class is the difference between seconds and a wait for the first turn.
        self.last_report = -math.inf
        self.stopped = False

    def progress(self) -> float:
        if self.config.time_budget:
            return (time.perf_counter() - self.started) / self.config.time_budget
        return self.step / self.total_steps

    def batches(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        """Normalised, augmented batches and their labels, epoch after epoch, until the budget is spent."""
        last_start = len(self.images) - (self.batch_size - 1 if self.drop_partial else 0)
        while True:
            order = torch.randperm(len(self.images), generator=self.generator).to(self.device)
            for first in range(0, last_start, self.batch_size):
                if self.progress() >= 1.0:
                    return
                index = order[first : first + self.batch_size]
                batch = self.images[index]
                if self.config.augment:
                    batch = augment(batch, self.augmentation, self.augment_generator)
                yield normalize(batch, self.spec), self.labels[index]

    def take_step(self, images: torch.Tensor, targets: torch.Tensor) -> None:
        started = time.perf_counter()
        for group in self.optimizer.param_groups:
            group["lr"] = learning_rate(self.progress(), self.config)
        self.optimizer.zero_grad(set_to_none=True)
        logits, loss = self.stepper(images, targets, self.config.label_smoothing)
        if self.config.grad_clip:
            nn.utils.clip_grad_norm_(self.model.parameters(), self.config.grad_clip)
        self.optimizer.step()
        self.step += 1
        accuracy = (logits.argmax(1) == targets).float().mean()
        if self.smooth_loss is None:
            self.smooth_loss, self.smooth_accuracy = loss, accuracy
        else:
            self.smooth_loss = 0.95 * self.smooth_loss + 0.05 * loss
            self.smooth_accuracy = 0.95 * self.smooth_accuracy + 0.05 * accuracy
        self.step_seconds += time.perf_counter() - started

    def evaluate_if_due(self) -> bool:
        """Score the evaluation slice when the run passes one of its evaluation points (the last
        point, the end, is the final report's)."""
        due = False
        while (
            self.evaluation_points and self.evaluation_points[0] < 1.0 and self.progress() >= self.evaluation_points[0]
        ):
            self.evaluation_points.pop(0)
            due = True
        if due:
            self.test_loss, self.test_accuracy, _ = evaluate(self.model, self.evaluation_split, self.spec)
        return due

    def report_due(self) -> bool:
        return time.perf_counter() - self.last_report >= self.config.report_every

    def resume_reporting(self) -> None:
        """Back from a report: the next one is due after `report_every` seconds of this run's
        own work. Its reader may hold it at a report for a while (the training process takes
        turns with other runs); counted from the report itself, every step after such a wait
        would be a report of its own, and a run would spend its turns reporting."""
        self.last_report = time.perf_counter()

    def report(self, evaluated: bool = False, ended_at: float | None = None, **extra) -> TrainProgress:
        """`ended_at`: when the training ended, for the final report (its scoring is not training time)."""
        now = time.perf_counter()
        elapsed = (ended_at or now) - self.started
        fraction = min(self.progress(), 1.0)
        eta = (
            self.config.time_budget - elapsed
            if self.config.time_budget
            else elapsed / max(fraction, 1e-9) * (1 - fraction)
        )
        notes, self.notes = (*self.notes, *self.stepper.notes), []
        self.stepper.notes = []
        return TrainProgress(
            step=self.step,
            total_steps=self.total_steps,
            epoch=self.step / self.steps_per_epoch,
            fraction=fraction,
            train_loss=float(self.smooth_loss) if self.smooth_loss is not None else float("nan"),
            train_accuracy=float(self.smooth_accuracy) if self.smooth_accuracy is not None else float("nan"),
            images_per_second=self.step * self.batch_size / max(elapsed, 1e-9),
            elapsed=elapsed,
            eta=max(eta, 0.0),
            lr=self.optimizer.param_groups[0]["lr"],
            test_accuracy=self.test_accuracy,
            test_loss=self.test_loss,
            evaluated=evaluated,
            step_path=self.stepper.path,
            notes=notes,
            step_seconds=self.step_seconds,
            **extra,
        )

    def final_report(self) -> TrainProgress:
        # A stopped run is scored on the quick evaluation slice so Stop stays quick; a finished
        # run is scored on the whole test set.
        ended_at = time.perf_counter()
        final_split = self.evaluation_split if self.stopped else self.test_split
        self.test_loss, self.test_accuracy, confusion = evaluate(
            self.model, final_split, self.spec, with_confusion=True
        )
        return self.report(
            evaluated=True,
            ended_at=ended_at,
            done=True,
            stopped=self.stopped,
            final_test_images=len(final_split),
            confusion=confusion,
        )

    def close(self) -> None:
        self.model.eval()
        if self.stepper.splitter is not None:
            self.stepper.splitter.close()


def train(
    model: ViT,
    config: TrainConfig,
    should_stop: Callable[[], bool] | None = None,
) -> Iterator[TrainProgress]:
    """Train `model` in place, yielding progress reports; the last one has `done=True`."""
    run = _Run(model, config)
    try:
        for images, targets in run.batches():
            if should_stop is not None and should_stop():
                run.stopped = True
                break
            run.take_step(images, targets)
            evaluated = run.evaluate_if_due()
            if evaluated or run.report_due():
                yield run.report(evaluated)
                run.resume_reporting()
        yield run.final_report()
    finally:
        run.close()


def checkpoint_info(config: TrainConfig, final: TrainProgress, **overrides) -> dict:
    """What a checkpoint records (`checkpoints.save`'s `info`): the dataset's class names and
    normalisation, the test score, and how the run went; `overrides` replace or add entries
    of the training record (the CLI's whole-process seconds and command line)."""
    info = checkpoints.default_info(config.spec)
    info["test_accuracy"] = final.test_accuracy
    info["training"] = {
        **{k: v for k, v in vars(config).items() if k not in ("data_dir", "device")},
        "step_path": final.step_path,
        "steps": final.step,
        "epochs_completed": round(final.epoch, 3),
        "seconds": round(final.elapsed, 1),
        "images_per_second": round(final.images_per_second),
        "test_images": final.final_test_images,
        "stopped_early": final.stopped,
        **overrides,
    }
    return info


def run_to_completion(model: ViT, config: TrainConfig, should_stop: Callable[[], bool] | None = None) -> TrainProgress:
    """Train and return only the final report (scripts and tests that need no live view)."""
    (last,) = collections.deque(train(model, config, should_stop), maxlen=1)
    return last
