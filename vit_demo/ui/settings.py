"""What the app is pointed at and how much it may do at once, read from the environment.

    VIT_DEMO_CHECKPOINTS      folder of shipped checkpoints (default: checkpoints/ beside app.py)
    VIT_DEMO_DATA             datasets folder (read by vit_demo.data)
    VIT_DEMO_MAX_TRAININGS    trainings that run at the same time (default 1: a 2-vCPU Space)
    VIT_DEMO_MAX_TRAIN_SECONDS  longest one training may run (default 600)
    VIT_DEMO_MAX_TRAIN_MEMORY_MB  largest estimated training memory accepted (default 2048:
                              a 2-vCPU / 16 GB Space shared by a class)
    VIT_DEMO_MAX_EXPLORES     Explore requests served at the same time (default 2)
    VIT_DEMO_TRAIN_LIMIT      train on only the first N images (quick demos, tests)
    VIT_DEMO_TEST_LIMIT       score on only the first N test images (tests)
    VIT_DEMO_THREADS          torch CPU threads (default: 1 on 2 cores, else all but one)
"""

from __future__ import annotations

import os
import tempfile
from dataclasses import dataclass
from pathlib import Path

from ..step import available_cores, configure_threads
from .hosting import ZERO_GPU_TRAIN_SECONDS, on_zero_gpu


def _env_number(name: str, kind: type, default):
    raw = os.environ.get(name, "").strip()
    if not raw:
        return default
    try:
        value = kind(raw)
    except ValueError:
        raise ValueError(f"{name} must be a {kind.__name__}, got {raw!r}") from None
    if value <= 0:
        raise ValueError(f"{name} must be positive, got {raw!r}")
    return value


@dataclass(frozen=True)
class AppSettings:
    checkpoint_dir: Path
    examples_dir: Path
    data_dir: str | None = None  # None: vit_demo.data's default ($VIT_DEMO_DATA or a cache folder)
    max_trainings: int = 1
    max_train_seconds: float = 600.0
    max_train_memory_mb: float = 2048.0
    max_explores: int = 2
    train_limit: int | None = None
    test_limit: int | None = None
    threads: int | None = None
    work_dir: Path = Path(tempfile.gettempdir()) / "vit_demo"  # checkpoints to download, stop flags
    zero_gpu: bool = False  # a ZeroGPU Space: trainings run on a GPU lent per run (hosting.py)

    @classmethod
    def from_env(cls, root: Path) -> AppSettings:
        """Settings for an app whose checkpoints/ and examples/ folders sit in `root`. On a
        ZeroGPU Space a run is capped at what one GPU lease allows."""
        zero_gpu = on_zero_gpu()
        max_train_seconds = _env_number("VIT_DEMO_MAX_TRAIN_SECONDS", float, 600.0)
        if zero_gpu:
            max_train_seconds = min(max_train_seconds, ZERO_GPU_TRAIN_SECONDS)
        return cls(
            checkpoint_dir=Path(os.environ.get("VIT_DEMO_CHECKPOINTS") or root / "checkpoints"),
            examples_dir=root / "examples",
            max_trainings=_env_number("VIT_DEMO_MAX_TRAININGS", int, 1),
            max_train_seconds=max_train_seconds,
            max_train_memory_mb=_env_number("VIT_DEMO_MAX_TRAIN_MEMORY_MB", float, 2048.0),
            max_explores=_env_number("VIT_DEMO_MAX_EXPLORES", int, 2),
            train_limit=_env_number("VIT_DEMO_TRAIN_LIMIT", int, None),
            test_limit=_env_number("VIT_DEMO_TEST_LIMIT", int, None),
            threads=_env_number("VIT_DEMO_THREADS", int, None),
            zero_gpu=zero_gpu,
        )


def configure_torch_threads(settings: AppSettings) -> None:
    """On two cores one thread per operation leaves the other core to Explore requests
    while someone trains: the training then runs faster than with two threads fighting
    the predictions for both cores (measured on a 2-vCPU machine)."""
    cores = available_cores()
    configure_threads(settings.threads or (1 if cores <= 2 else cores - 1))
