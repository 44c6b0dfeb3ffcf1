"""One training step, and how to take it fastest on the machine it runs on (`machine.py`).

A step is forward, backward and the optimizer. The app always takes the plain step, eager
and in float32 (`forward_backward`, split over two worker threads by `BatchSplitter` where
cores are spare), so that the same knobs train the same run on every machine. The command
line may take a faster one: compiled by TorchInductor, in bfloat16 autocast, or both. Which
is fastest depends on the machine, and getting it wrong is expensive: bfloat16 trains these
models ~10x *slower* on a CPU without native bfloat16 units (an AVX2-only AMD EPYC), while a
compiled bf16 step is 1.4x faster on one with AMX (benchmarks/RESULTS.md). So:

- `plan_step` turns what was asked for (`compile`/`bf16`: True, False or None for
  "decide") into candidate paths, leaving out the ones this machine cannot run well and
  saying why in one line each;
- `FastestStep` takes the first real training steps on each candidate in turn, times
  them, and keeps the fastest, so a run never ends up slower than the plain eager step.
"""

from __future__ import annotations

import statistics
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from .machine import CXX, Machine, available_cores, synchronize, use_threads_on_this_thread

_side_by_side_lock = threading.Lock()
_side_by_side = 0


@contextmanager
def training_on_this_thread() -> Iterator[None]:
    """Count the calling thread as one of the trainings this process runs side by side, while
    inside (the training process's lanes take each turn of a training inside one, worker.py)."""
    global _side_by_side
    with _side_by_side_lock:
        _side_by_side += 1
    try:
        yield
    finally:
        with _side_by_side_lock:
            _side_by_side -= 1


def trainings_side_by_side() -> int:
    """Trainings this process is taking turns of right now, each on a thread of its own."""
    return _side_by_side


class BatchSplitter:
    """Data parallelism inside one training step, for CPUs with cores to spare.

    Where each operation runs on one torch thread (the app's trainings, so that a training
    never makes everyone's predictions wait for both cores), a plain step would leave the
    other cores idle. The splitter cuts each batch in `workers` slices and runs each slice's
    forward and backward pass on its own thread: every core trains, and when other work
    comes in the OS shares the cores out, with no OpenMP team left waiting at a barrier
    for a descheduled thread. (Where one step may use every core, as in the CLI, a plain
    step is as fast: benchmarks/RESULTS.md.)

    PyTorch releases the GIL inside its operators, and autograd adds the slices'
    gradients into the shared `.grad` under a lock. Each slice's loss is weighted by its
    share of the batch, so the gradient is the whole batch's mean, as in a plain step;
    with two workers even the rounding is the same run to run (a + b == b + a).

    A training with another beside it (the training process runs one per core, each inside
    `training_on_this_thread`) has no core to spare: its slices run one after the other on the calling
    thread, the same slices summed the same way, so the numbers are bit for bit those of
    the split step, and a run trained alone or in a busy class ends with the same model.
    """

    def __init__(self, workers: int, threads_per_worker: int = 1):
        self.workers = workers
        self.threads_per_worker = threads_per_worker
        self._pool = ThreadPoolExecutor(workers, thread_name_prefix="vit-train", initializer=self._init_worker)

    def _init_worker(self) -> None:
        use_threads_on_this_thread(self.threads_per_worker)

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

        slices = zip(images.tensor_split(self.workers), targets.tensor_split(self.workers))
        parts = [part for part in slices if len(part[1])]
        if trainings_side_by_side() > 1:
            results = [slice_step(part) for part in parts]
        else:
            results = list(self._pool.map(slice_step, parts))
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
    """The forward pass a training step takes: the model itself, or compiled, or in
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
            # Not with bfloat16: in torch 2.14.1 that step corrupts the heap and aborts the
            # process on an AMX Xeon (benchmarks/RESULTS.md). An option of this compile only,
            # not a change to Inductor's global config.
            options = {"cpp_wrapper": True} if device.type == "cpu" and not bf16 else None
            self._forward = torch.compile(model, dynamic=False, options=options)

    @property
    def name(self) -> str:
        return f"{'compiled' if self.compiled else 'eager'} {'bf16' if self.bf16 else 'fp32'}"

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


# ----------------------------------------------------------------------------- choosing the path

# A compile costs ~20 s the first time a model shape is seen (~2 s from Inductor's cache)
# and gains 0-40 % per step (benchmarks/RESULTS.md): only a run this long is sure to win it back.
COMPILE_PAYS_AFTER_SECONDS = 300.0


@dataclass(frozen=True)
class StepPath:
    compile: bool
    bf16: bool

    @property
    def name(self) -> str:
        return f"{'compiled' if self.compile else 'eager'} {'bf16' if self.bf16 else 'fp32'}"


EAGER_FP32 = StepPath(compile=False, bf16=False)


def plan_step(
    machine: Machine,
    compile: bool | None,
    bf16: bool | None,
    force: bool = False,
    expected_seconds: float | None = None,
) -> tuple[list[StepPath], list[str]]:
    """The paths worth timing for this request on this machine, and one line per request
    that this machine turns down.

    `compile`/`bf16`: True asks for it, False refuses it, None leaves it to the machine
    (compile only for runs of `COMPILE_PAYS_AFTER_SECONDS` or more; bfloat16 only where it
    is native: whether it beats float32 there depends on the CPU, so both are timed).
    `force`: take exactly what was asked, whatever the machine says (no timing, no notes).
    The plain eager fp32 step is always among the candidates unless forced, so the timed
    choice can never be slower than it.
    """
    if force:
        return [StepPath(bool(compile), bool(bf16))], []
    notes = []
    long_run = expected_seconds is None or expected_seconds >= COMPILE_PAYS_AFTER_SECONDS
    want_compile = compile if compile is not None else long_run
    if want_compile and not machine.compiler:
        if compile:
            notes.append(
                f"--compile: no compiler for TorchInductor here ({CXX if machine.device.type == 'cpu' else 'triton'}"
                " not found); training without compiling"
            )
        want_compile = False
    want_bf16 = bf16 if bf16 is not None else machine.native_bf16
    if want_bf16 and not machine.native_bf16:
        if bf16:
            notes.append(
                f"--bf16: this {machine.device.type.upper()} has no native bfloat16 "
                f"(capability {machine.cpu_capability}, no AVX512-BF16 or AMX), where bfloat16 trains up to "
                "10x slower; training in float32 (--force-step to use bf16 anyway)"
            )
        want_bf16 = False
    # Measured: an eager bfloat16 step beat float32 by ~14 % on a Zen 4 EPYC (AVX512-BF16) and
    # lost to it on a Sapphire Rapids Xeon (AMX); only timing on the machine itself can tell.
    candidates = [EAGER_FP32]
    if want_bf16:
        candidates.append(StepPath(compile=False, bf16=True))
    if want_compile:
        candidates.append(StepPath(compile=True, bf16=False))
        if want_bf16:
            candidates.append(StepPath(compile=True, bf16=True))
    return candidates, notes


def eager_step_seconds(
    model: nn.Module, images: torch.Tensor, targets: torch.Tensor, splitter: BatchSplitter | None = None, steps: int = 2
) -> float:
    """Seconds per forward-backward of the plain eager step, after one untimed warm-up step
    (the gradients are thrown away): what a run's length in steps is worth in time."""
    device = images.device
    try:
        forward_backward(model, images, targets, splitter=splitter)
        synchronize(device)
        started = time.perf_counter()
        for _ in range(steps):
            forward_backward(model, images, targets, splitter=splitter)
        synchronize(device)
        return (time.perf_counter() - started) / steps
    finally:
        model.zero_grad(set_to_none=True)


class FastestStep:
    """Trains on each candidate path in turn for the first steps of a run, times them, then
    keeps the fastest for the rest of the run. The timed steps are real training steps:
    nothing is thrown away, and a run on one candidate pays nothing.

    Compiling happens in `prepare` (its time is the run's, the person waits for it); a
    path whose compile fails is dropped with the compiler's reason.
    """

    ROUNDS = 3  # rounds of STEPS_PER_ROUND steps on every candidate, alternating
    STEPS_PER_ROUND = 2

    def __init__(self, forwards: list[TrainingForward], device: torch.device, splitter: BatchSplitter | None = None):
        self.device = device
        self.splitter = splitter
        self.forwards = list(forwards)
        self.notes: list[str] = []
        self._times: dict[int, list[float]] = {}
        self._steps = 0
        self.chosen: TrainingForward | None = self.forwards[0] if len(self.forwards) == 1 else None

    @classmethod
    def for_paths(
        cls, model: nn.Module, device: torch.device, paths: list[StepPath], splitter: BatchSplitter | None = None
    ) -> FastestStep:
        return cls([TrainingForward(model, device, compile=p.compile, bf16=p.bf16) for p in paths], device, splitter)

    def prepare(self, images: torch.Tensor, targets: torch.Tensor) -> None:
        kept = []
        for forward in self.forwards:
            problem = forward.warm_up(images, targets)
            if problem:  # it fell back to eager: a twin of the eager candidate, unless it is the only one
                self.notes.append(problem)
                if kept:
                    continue
            kept.append(forward)
        self.forwards = kept
        self._times = {index: [] for index in range(len(kept))}
        if len(kept) == 1:
            self.chosen = kept[0]

    def _splitter_for(self, forward: TrainingForward) -> BatchSplitter | None:
        # One compiled graph per thread: the two-worker split is an eager path's.
        return None if forward.compiled else self.splitter

    @property
    def path(self) -> str:
        """The chosen path's name, or "timing ..." while the candidates are being timed."""
        if self.chosen is not None:
            return self.chosen.name
        return "timing " + " / ".join(f.name for f in self.forwards)

    def __call__(
        self, images: torch.Tensor, targets: torch.Tensor, label_smoothing: float
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Forward and backward (the caller zeroes gradients and steps the optimizer)."""
        if self.chosen is not None:
            return forward_backward(self.chosen, images, targets, label_smoothing, self._splitter_for(self.chosen))
        index = (self._steps // self.STEPS_PER_ROUND) % len(self.forwards)
        forward = self.forwards[index]
        synchronize(self.device)
        started = time.perf_counter()
        result = forward_backward(forward, images, targets, label_smoothing, self._splitter_for(forward))
        synchronize(self.device)
        self._times[index].append(time.perf_counter() - started)
        self._steps += 1
        if self._steps == self.ROUNDS * self.STEPS_PER_ROUND * len(self.forwards):
            self._choose()
        return result

    def _choose(self) -> None:
        medians = {index: statistics.median(times) for index, times in self._times.items()}
        best = min(medians, key=medians.get)
        self.chosen = self.forwards[best]
        if len(medians) > 1:
            timings = ", ".join(f"{self.forwards[i].name} {1 / medians[i]:,.1f} steps/s" for i in medians)
            self.notes.append(f"fastest step here: {self.chosen.name} ({timings})")
