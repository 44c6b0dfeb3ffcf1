"""What the app is pointed at and how much it may do at once: the app's share of the
environment variables declared in vit_demo/settings.py, read when the app starts."""

from __future__ import annotations

import tempfile
from dataclasses import dataclass
from pathlib import Path

from ..settings import VARIABLES, read
from ..step import configure_threads, server_threads
from .hosting import ZERO_GPU_TRAIN_SECONDS, on_zero_gpu


@dataclass(frozen=True)
class AppSettings:
    checkpoint_dir: Path
    examples_dir: Path
    data_dir: str | None = None  # None: vit_demo.data's default ($VIT_DEMO_DATA or a cache folder)
    max_trainings: int = VARIABLES["VIT_DEMO_MAX_TRAININGS"].default
    max_train_seconds: float = VARIABLES["VIT_DEMO_MAX_TRAIN_SECONDS"].default
    max_train_memory_mb: float = VARIABLES["VIT_DEMO_MAX_TRAIN_MEMORY_MB"].default
    max_explores: int = VARIABLES["VIT_DEMO_MAX_EXPLORES"].default
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
        max_train_seconds = read("VIT_DEMO_MAX_TRAIN_SECONDS")
        if zero_gpu:
            max_train_seconds = min(max_train_seconds, ZERO_GPU_TRAIN_SECONDS)
        return cls(
            checkpoint_dir=read("VIT_DEMO_CHECKPOINTS") or root / "checkpoints",
            examples_dir=root / "examples",
            max_trainings=read("VIT_DEMO_MAX_TRAININGS"),
            max_train_seconds=max_train_seconds,
            max_train_memory_mb=read("VIT_DEMO_MAX_TRAIN_MEMORY_MB"),
            max_explores=read("VIT_DEMO_MAX_EXPLORES"),
            train_limit=read("VIT_DEMO_TRAIN_LIMIT"),
            test_limit=read("VIT_DEMO_TEST_LIMIT"),
            threads=read("VIT_DEMO_THREADS"),
            zero_gpu=zero_gpu,
        )


def configure_torch_threads(settings: AppSettings) -> None:
    configure_threads(server_threads(settings.threads))
