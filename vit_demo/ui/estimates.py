"""How long training will take on this machine, before anything is built.

The cost of a model is `ViTConfig.forward_flops()` (a training step costs about three
forward passes: forward, and a backward pass twice as dear). What this machine does per
second is measured once on a small model in a background thread, and re-measured from
every real training run, so estimates follow the load the server is actually under.
"""

from __future__ import annotations

import threading
import time

import torch

from ..model import ViTConfig
from ..recipes import recipe_for
from ..training import BatchSplitter, TrainConfig, create_model, forward_backward, make_optimizer, pick_device

TRAINING_FLOPS_PER_FORWARD = 3
FALLBACK_FLOPS_PER_SECOND = 5e9  # until the measurement is in: a modest 2-core CPU


def _synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    elif device.type == "mps":
        torch.mps.synchronize()


def measure_training_flops(steps: int = 5, batch_size: int = 64) -> float:
    """Training FLOP/s of the default MNIST model on the device training would use."""
    device = pick_device()
    model = create_model("mnist", **recipe_for("mnist").model).to(device).train()
    optimizer = make_optimizer(model, TrainConfig(), device)
    images = torch.randn(batch_size, 1, 28, 28, device=device)
    labels = torch.randint(0, 10, (batch_size,), device=device)

    splitter = BatchSplitter.for_device(device)  # the step exactly as the trainer takes it

    def step() -> None:
        optimizer.zero_grad(set_to_none=True)
        forward_backward(model, images, labels, splitter=splitter)
        optimizer.step()

    try:
        step()  # the first step pays for allocation and kernel selection
        _synchronize(device)
        start = time.perf_counter()
        for _ in range(steps):
            step()
        _synchronize(device)
        elapsed = time.perf_counter() - start
    finally:
        if splitter is not None:
            splitter.close()
    return TRAINING_FLOPS_PER_FORWARD * model.config.forward_flops() * batch_size * steps / elapsed


class ThroughputMeter:
    """Training FLOP/s of this machine: measured in the background, refined by real runs."""

    def __init__(self) -> None:
        self._flops_per_second: float | None = None
        self._source = "a first guess while this machine is being measured"
        self._lock = threading.Lock()

    def start_measuring(self) -> None:
        # Not a daemon: torch must not be torn down under a running measurement at exit.
        threading.Thread(target=self._measure, name="vit-demo-throughput").start()

    def _measure(self) -> None:
        rate = measure_training_flops()
        with self._lock:
            if self._flops_per_second is None:  # a real run may already have reported
                self._flops_per_second, self._source = rate, "measured by a short benchmark at start-up"

    def record_run(self, config: ViTConfig, images_per_second: float) -> None:
        if images_per_second > 0:
            with self._lock:
                self._flops_per_second = TRAINING_FLOPS_PER_FORWARD * config.forward_flops() * images_per_second
                self._source = "measured in the last training run"

    @property
    def flops_per_second(self) -> float:
        with self._lock:
            return self._flops_per_second or FALLBACK_FLOPS_PER_SECOND

    @property
    def source(self) -> str:
        """Where `flops_per_second` comes from, as words for the page."""
        with self._lock:
            return self._source

    def seconds_per_epoch(self, config: ViTConfig, images: int) -> float:
        return TRAINING_FLOPS_PER_FORWARD * config.forward_flops() * images / self.flops_per_second

    def seconds_to_score(self, config: ViTConfig, images: int) -> float:
        return config.forward_flops() * images / self.flops_per_second
