"""Live training: a generator that trains a ViT and reports progress as it goes.

The UI (or the CLI) iterates over `train(...)`; each yielded `TrainProgress` is a snapshot
of the run, produced at least every `report_every` seconds, so a browser can draw curves
while the model learns. Stopping is cooperative and quick: `should_stop()` is checked
after every optimizer step, and closing the generator (what Gradio does when a user
presses Stop or closes the tab) ends the run after the current step. Either way the
model is left in eval mode with the weights of its last completed step.

The recipe is tuned for very short runs from scratch: AdamW, a short linear warmup,
cosine decay that reaches zero exactly when the budget (epochs or seconds) runs out,
label smoothing, gradient clipping, and light batched augmentation.
"""

from __future__ import annotations

import math
import os
import time
import warnings
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field, replace

import torch
import torch.nn.functional as F
from torch import nn

from .data import DatasetSpec, Split, augment, get_spec, load_split, normalize
from .model import ViT


@dataclass(frozen=True)
class TrainConfig:
    dataset: str = "mnist"
    # How long: a number of epochs, or a wall-clock budget in seconds (the learning-rate
    # schedule then stretches over the budget). Exactly one of them is used; with neither,
    # one epoch.
    epochs: float | None = None
    time_budget: float | None = None
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
    # CPU speed-ups for long or repeated runs (benchmarks/RESULTS.md): compile the training
    # forward and backward with TorchInductor (the first compile of a model shape takes
    # ~20 s; later runs read it from Inductor's on-disk cache), and compute in bfloat16
    # (autocast) where the CPU multiplies bfloat16 natively. bf16 pays only when compiled:
    # eagerly, the casts cost more than the faster matrix products save.
    compile: bool = False
    bf16: bool = False
    seed: int = 0
    data_dir: str | None = None
    train_limit: int | None = None  # use only the first N training images (quick demos, tests)
    test_limit: int | None = None
    eval_subset: int = 2000  # test images scored at each evaluation during the run
    evaluations: int = 10  # evaluation points spread over the run (the full test set is scored at the end)
    report_every: float = 0.4  # seconds between progress reports
    device: str | None = None  # None: CUDA, else Apple MPS, else CPU

    def __post_init__(self) -> None:
        get_spec(self.dataset)
        if self.epochs is not None and self.time_budget is not None:
            raise ValueError("give either epochs or time_budget, not both")
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
        largest_shift = get_spec(self.dataset).image_size // 2 - 1
        if self.augment_shift is not None and not 0 <= self.augment_shift <= largest_shift:
            raise ValueError(f"augment_shift must be 0 to {largest_shift} pixels (2 is typical), got {self.augment_shift}")

    def augmentation(self) -> DatasetSpec:
        """The dataset's spec with this run's augmentation settings in it."""
        spec = get_spec(self.dataset)
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
    elapsed: float
    eta: float
    lr: float
    test_accuracy: float | None = None  # latest evaluation
    test_loss: float | None = None
    evaluated: bool = False  # this report carries a fresh evaluation
    done: bool = False
    stopped: bool = False  # ended early by a stop request
    final_test_images: int = 0  # how many test images the final score used
    confusion: torch.Tensor | None = field(default=None, repr=False)  # (classes, classes), rows = true class

    def to_dict(self) -> dict:
        values = asdict(self)
        values["confusion"] = None if self.confusion is None else self.confusion.tolist()
        return values


def pick_device(preferred: str | None = None) -> torch.device:
    if preferred:
        return torch.device(preferred)
    if torch.cuda.is_available():
        return torch.device("cuda")
    if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
        return torch.device("mps")
    return torch.device("cpu")


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


def create_model(dataset: str, seed: int = 0, **hyperparameters) -> ViT:
    """A fresh ViT shaped for `dataset` (image size, channels and classes come from it)."""
    spec = get_spec(dataset)
    channels = hyperparameters.pop("channels", spec.channels)
    if channels not in (1, 3):
        raise ValueError(f"channels must be 1 (grey) or 3 (RGB) for the bundled datasets, got {channels}")
    hyperparameters.setdefault("image_size", spec.image_size)
    hyperparameters.setdefault("num_classes", spec.num_classes)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = ViT(channels=channels, **hyperparameters)
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


class BatchSplitter:
    """Data parallelism inside one training step, for CPUs with cores to spare.

    The app runs every request with one torch thread on a 2-core machine, so that a
    training does not starve everyone's predictions; a plain step would then leave the
    second core idle. The splitter cuts each batch in `workers` slices and runs each
    slice's forward and backward pass on its own thread: both cores train, and when a
    prediction comes in the OS shares the cores out, with no OpenMP team left waiting at
    a barrier for a descheduled thread. (Where one step may use every core, as in the CLI,
    a plain step is as fast: benchmarks/RESULTS.md.)

    PyTorch releases the GIL inside its operators, and autograd adds the slices'
    gradients into the shared `.grad` under a lock. Each slice's loss is weighted by its
    share of the batch, so the gradient is the whole batch's mean, as in a plain step;
    with two workers even the rounding is the same run to run (a + b == b + a).
    """

    def __init__(self, workers: int, threads_per_worker: int = 1):
        self.workers = workers
        self.threads_per_worker = threads_per_worker
        self._pool = ThreadPoolExecutor(workers, thread_name_prefix="vit-train", initializer=self._init_worker)

    def _init_worker(self) -> None:
        # A thread takes the process-wide thread count at its first parallel operation
        # (get_num_threads triggers that), so the worker's own count must be set after it.
        torch.get_num_threads()
        torch.set_num_threads(self.threads_per_worker)

    @classmethod
    def for_device(cls, device: torch.device) -> BatchSplitter | None:
        """Two workers, each with the caller's torch thread count, on a CPU with cores
        enough for both; None (one plain step) when the caller's threads already fill the
        cores, or on a GPU, which runs a whole batch at once."""
        if device.type != "cpu":
            return None
        threads = torch.get_num_threads()
        return cls(workers=2, threads_per_worker=threads) if available_cores() >= 2 * threads else None

    def forward_backward(
        self,
        model: Callable[[torch.Tensor], torch.Tensor],
        images: torch.Tensor,
        targets: torch.Tensor,
        label_smoothing: float = 0.0,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """The batch's logits and mean loss (both detached), the gradients accumulated in
        the model's parameters."""
        total = len(targets)

        def slice_step(part: tuple[torch.Tensor, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
            part_images, part_targets = part
            return _backward_on(model, part_images, part_targets, label_smoothing, len(part_targets) / total)

        parts = zip(images.tensor_split(self.workers), targets.tensor_split(self.workers))
        results = list(self._pool.map(slice_step, [part for part in parts if len(part[1])]))
        return torch.cat([logits for logits, _ in results]), sum(loss for _, loss in results)

    def close(self) -> None:
        self._pool.shutdown(wait=True)


def forward_backward(
    model: Callable[[torch.Tensor], torch.Tensor],
    images: torch.Tensor,
    targets: torch.Tensor,
    label_smoothing: float = 0.0,
    splitter: BatchSplitter | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """One step's forward and backward pass, split across `splitter`'s workers when given:
    (logits, mean loss), detached; the gradients are left in the parameters."""
    if splitter is not None:
        return splitter.forward_backward(model, images, targets, label_smoothing)
    return _backward_on(model, images, targets, label_smoothing)


def _backward_on(
    model: Callable[[torch.Tensor], torch.Tensor],
    images: torch.Tensor,
    targets: torch.Tensor,
    label_smoothing: float,
    share_of_batch: float = 1.0,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Forward and backward on a batch or a slice of one. A slice's loss is weighted by its
    share of the batch, so the slices' gradients add up to the whole batch's mean."""
    logits = model(images)
    loss = F.cross_entropy(logits, targets, label_smoothing=label_smoothing)
    if share_of_batch != 1.0:
        loss = loss * share_of_batch
    loss.backward()
    return logits.detach(), loss.detach()


class TrainingForward:
    """The forward pass the training step takes: the model itself, or compiled, or in
    bfloat16 autocast (logits come back as float32 either way). Evaluation always runs the
    plain model, so no compile is spent on the evaluation batch sizes."""

    def __init__(self, model: nn.Module, device: torch.device, compile: bool = False, bf16: bool = False):
        self.model = model
        self.device = device
        self.bf16 = bf16
        self.compiled = compile
        self._forward = model
        if compile:
            # On a CPU, a C++ wrapper around the generated kernels instead of a Python one:
            # these models run hundreds of tiny kernels per step (measured 16.9 vs 17.8 ms).
            # An option of this compile only, not a change to Inductor's global config.
            options = {"cpp_wrapper": True} if device.type == "cpu" else None
            self._forward = torch.compile(model, dynamic=False, options=options)

    def __call__(self, images: torch.Tensor) -> torch.Tensor:
        with torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self.bf16):
            return self._forward(images).float()

    def warm_up(self, images: torch.Tensor, targets: torch.Tensor) -> str | None:
        """Compile now, on one batch (the gradients are thrown away). If compiling fails
        (no C++ compiler, an unsupported platform), train without it and say why."""
        if not self.compiled:
            return None
        try:
            forward_backward(self, images, targets)
            return None
        except Exception as error:  # noqa: BLE001 - any compiler failure means: run eagerly
            self._forward, self.compiled = self.model, False
            first_line = (str(error).strip().splitlines() or [""])[0][:200]
            return f"could not compile the model ({type(error).__name__}: {first_line}); training without compiling"
        finally:
            self.model.zero_grad(set_to_none=True)


def learning_rate(progress: float, config: TrainConfig) -> float:
    """Linear warmup, then cosine decay reaching 0 exactly at progress 1."""
    progress = min(max(progress, 0.0), 1.0)
    if config.warmup and progress < config.warmup:
        return config.lr * progress / config.warmup
    decayed = (progress - config.warmup) / (1 - config.warmup)
    return config.lr * 0.5 * (1 + math.cos(math.pi * decayed))


@torch.no_grad()
def batched_logits(model: ViT, split: Split, spec: DatasetSpec, batch_size: int = 1000) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
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


def train(
    model: ViT,
    config: TrainConfig,
    should_stop: Callable[[], bool] | None = None,
) -> Iterator[TrainProgress]:
    """Train `model` in place, yielding progress reports; the last one has `done=True`."""
    spec = get_spec(config.dataset)
    augmentation = config.augmentation()
    check_model_fits_dataset(model, spec)
    device = pick_device(config.device)
    train_split = load_split(spec.key, train=True, data_dir=config.data_dir, limit=config.train_limit)
    test_split = load_split(spec.key, train=False, data_dir=config.data_dir, limit=config.test_limit)
    if len(train_split) == 0 or len(test_split) == 0:
        raise ValueError("the training and test sets must each hold at least one image")
    probe_split = evaluation_slice(test_split, config.seed, config.eval_subset)
    generator = torch.Generator().manual_seed(config.seed)

    model.to(device).train()
    images = train_split.images.to(device)
    labels = train_split.labels.to(device)
    optimizer = make_optimizer(model, config, device)
    batch_size = min(config.batch_size, len(train_split))
    # A compiled step has one fixed batch shape: the last, partial batch of each epoch is
    # left out (the order is reshuffled every epoch, so no image is left out for good).
    drop_partial = config.compile
    steps_per_epoch = len(train_split) // batch_size if drop_partial else math.ceil(len(train_split) / batch_size)
    total_steps = None if config.time_budget else max(1, round(config.total_epochs * steps_per_epoch))
    evaluation_points = [(i + 1) / config.evaluations for i in range(config.evaluations)] if config.evaluations else []

    start = time.perf_counter()  # compiling counts against the budget: the user waits for it
    forward = TrainingForward(model, device, compile=config.compile, bf16=config.bf16)
    compile_problem = forward.warm_up(
        normalize(images[:batch_size], spec), labels[:batch_size]
    )
    if compile_problem:
        warnings.warn(compile_problem, RuntimeWarning, stacklevel=2)
    # The two-worker step and a compiled forward do not mix: one compiled graph per thread.
    splitter = None if forward.compiled else BatchSplitter.for_device(device)
    last_report = start
    step = 0
    smooth_loss = smooth_accuracy = None
    test_loss = test_accuracy = None
    stopped = False

    def progress_now() -> float:
        if config.time_budget:
            return (time.perf_counter() - start) / config.time_budget
        return step / total_steps

    def report(evaluated: bool = False, **extra) -> TrainProgress:
        elapsed = time.perf_counter() - start
        fraction = min(progress_now(), 1.0)
        eta = config.time_budget - elapsed if config.time_budget else elapsed / max(fraction, 1e-9) * (1 - fraction)
        return TrainProgress(
            step=step,
            total_steps=total_steps,
            epoch=step / steps_per_epoch,
            fraction=fraction,
            train_loss=smooth_loss if smooth_loss is not None else float("nan"),
            train_accuracy=smooth_accuracy if smooth_accuracy is not None else float("nan"),
            images_per_second=step * batch_size / max(elapsed, 1e-9),
            elapsed=elapsed,
            eta=max(eta, 0.0),
            lr=optimizer.param_groups[0]["lr"],
            test_accuracy=test_accuracy,
            test_loss=test_loss,
            evaluated=evaluated,
            **extra,
        )

    try:
        finished = False
        while not finished:
            order = torch.randperm(len(images), generator=generator).to(device)
            for first in range(0, len(order) - (batch_size - 1 if drop_partial else 0), batch_size):
                if progress_now() >= 1.0:
                    finished = True
                    break
                if should_stop is not None and should_stop():
                    stopped = finished = True
                    break
                for group in optimizer.param_groups:
                    group["lr"] = learning_rate(progress_now(), config)
                index = order[first : first + batch_size]
                batch = images[index]
                if config.augment:
                    batch = augment(batch, augmentation, generator)
                targets = labels[index]
                optimizer.zero_grad(set_to_none=True)
                logits, loss = forward_backward(forward, normalize(batch, spec), targets, config.label_smoothing, splitter)
                if config.grad_clip:
                    nn.utils.clip_grad_norm_(model.parameters(), config.grad_clip)
                optimizer.step()
                step += 1

                # Reading the loss forces a sync on a GPU; on the CPU it is free.
                batch_loss = loss.item()
                batch_accuracy = (logits.argmax(1) == targets).float().mean().item()
                smooth_loss = batch_loss if smooth_loss is None else 0.95 * smooth_loss + 0.05 * batch_loss
                smooth_accuracy = batch_accuracy if smooth_accuracy is None else 0.95 * smooth_accuracy + 0.05 * batch_accuracy

                evaluated = False
                while evaluation_points and progress_now() >= evaluation_points[0] and evaluation_points[0] < 1.0:
                    evaluation_points.pop(0)
                    evaluated = True
                if evaluated:
                    test_loss, test_accuracy, _ = evaluate(model, probe_split, spec)
                now = time.perf_counter()
                if evaluated or now - last_report >= config.report_every:
                    last_report = now
                    yield report(evaluated=evaluated)

        # A stopped run is scored on the quick probe slice so Stop stays quick; a finished
        # run is scored on the whole test set.
        final_split = probe_split if stopped else test_split
        test_loss, test_accuracy, confusion = evaluate(model, final_split, spec, with_confusion=True)
        yield report(
            evaluated=True, done=True, stopped=stopped, final_test_images=len(final_split), confusion=confusion
        )
    finally:
        model.eval()
        if splitter is not None:
            splitter.close()


def run_to_completion(model: ViT, config: TrainConfig, should_stop: Callable[[], bool] | None = None) -> TrainProgress:
    """Train and return only the final report (scripts and tests that need no live view)."""
    last = None
    for last in train(model, config, should_stop):
        pass
    return last


def available_cores() -> int:
    """The cores this process may run on (a container's CPU set, not the host's count)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # macOS and Windows have no affinity call
        return os.cpu_count() or 1


def configure_threads(num_threads: int | None = None) -> None:
    """Use every core for intra-op work and one inter-op thread: these models are too small
    for inter-op parallelism to pay, and a second pool only competes for the two cores."""
    torch.set_num_threads(num_threads or available_cores())
    try:
        torch.set_num_interop_threads(1)
    except RuntimeError:  # already set, or inter-op work already started in this process
        pass


def with_overrides(config: TrainConfig, **overrides) -> TrainConfig:
    return replace(config, **{k: v for k, v in overrides.items() if v is not None})
