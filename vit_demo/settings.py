"""Every environment variable ViT Playground reads, declared once, one way to read them, and
the app's settings made from them (`AppSettings`).

`read(name)` checks a value against its declaration and, when it does not fit, raises a
`SettingError` that names the variable and what it accepts, so a typo in a Space's settings
is reported as such instead of surfacing as a bare `ValueError` deep in an upload. The
README's table of settings is checked against `VARIABLES` (tests/test_readme.py).
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path


class SettingError(ValueError):
    """An environment variable whose value the project cannot use."""


@dataclass(frozen=True)
class Variable:
    name: str
    kind: type  # int, float, bool, Path, str
    default: object  # what an unset or empty variable means; None: nothing set
    meaning: str

    def parse(self, raw: str):
        raw = raw.strip()
        if not raw:
            return self.default
        if self.kind is Path:
            return Path(raw).expanduser()
        if self.kind is str:
            return raw
        if self.kind is bool:
            if raw.lower() in ("1", "true", "yes"):
                return True
            if raw.lower() in ("0", "false", "no"):
                return False
            raise SettingError(f"{self.name} must be 1 or 0 (true/false, yes/no), got {raw!r}")
        try:
            value = self.kind(raw)
        except ValueError:
            what = "whole number" if self.kind is int else "number"
            raise SettingError(f"{self.name} must be a {what} greater than 0, got {raw!r}") from None
        if not value > 0:
            raise SettingError(f"{self.name} must be greater than 0, got {raw!r}")
        return value


VARIABLES = {
    variable.name: variable
    for variable in (
        Variable("VIT_DEMO_DATA", Path, None, "the datasets folder"),
        Variable("VIT_DEMO_DOWNLOAD", bool, True, "`0` forbids downloading a missing dataset"),
        Variable("VIT_DEMO_CHECKPOINTS", Path, None, "the folder of shipped models"),
        Variable(
            "VIT_DEMO_MAX_TRAININGS",
            int,
            8,
            "trainings that run at once, taking turns report by report; the rest wait in line and see their place",
        ),
        Variable("VIT_DEMO_MAX_TRAIN_SECONDS", float, 600.0, "the longest one training may run"),
        Variable("VIT_DEMO_MAX_TRAIN_MEMORY_MB", float, 2048.0, "the largest estimated training memory accepted"),
        Variable("VIT_DEMO_MAX_EXPLORES", int, 2, "Explore requests served at once"),
        Variable("VIT_DEMO_TRAIN_LIMIT", int, None, "train on only the first N images"),
        Variable("VIT_DEMO_TEST_LIMIT", int, None, "score on only the first N test images"),
        Variable("VIT_DEMO_THREADS", int, None, "torch CPU threads"),
        Variable("VIT_DEMO_MAX_UPLOAD_MB", float, 20.0, "the largest image upload"),
        Variable(
            "VIT_DEMO_MAX_IMAGE_MEGAPIXELS",
            float,
            40.0,
            "the most pixels an upload may claim (checked before decoding)",
        ),
        Variable("VIT_DEMO_MAX_CHECKPOINT_MB", float, 100.0, "the largest checkpoint upload"),
        Variable("VIT_DEMO_LESSON", Path, None, "a lesson file every visitor starts from (see Teaching with it)"),
        Variable(
            "VIT_DEMO_TEACHER_KEY",
            str,
            None,
            "the secret that opens the teacher's view (`/?teacher=KEY`); else the lesson file's `teacher_key`",
        ),
        Variable("VIT_DEMO_WORK_DIR", Path, None, "the app's own folder: runs, downloads, stop flags"),
        Variable(
            "VIT_DEMO_MAX_WORK_MB", float, 2048.0, "the most the app's own folder may hold; the oldest files go first"
        ),
    )
}


def read(name: str, environ: Mapping[str, str] | None = None):
    """The value of the declared variable `name` in `environ` (default: the process's)."""
    variable = VARIABLES[name]
    return variable.parse((os.environ if environ is None else environ).get(name, ""))


def megabytes(name: str) -> int:
    """A variable given in MB, in bytes."""
    return int(read(name) * 1024 * 1024)


ZERO_GPU_ENV = "SPACES_ZERO_GPU"  # set by Hugging Face on a ZeroGPU Space


def on_zero_gpu(environ: Mapping[str, str] | None = None) -> bool:
    """The app is a ZeroGPU Space: the variable `spaces` itself reads, read as it reads it
    (spaces/config.py)."""
    return (os.environ if environ is None else environ).get(ZERO_GPU_ENV, "").strip().lower() in ("1", "t", "true")


@dataclass(frozen=True)
class AppSettings:
    """What the app is pointed at and how much it may do at once."""

    checkpoint_dir: Path
    examples_dir: Path
    data_dir: str | None = None  # None: vit_demo.data's default ($VIT_DEMO_DATA or a cache folder)
    max_trainings: int = VARIABLES["VIT_DEMO_MAX_TRAININGS"].default
    max_train_seconds: float = VARIABLES["VIT_DEMO_MAX_TRAIN_SECONDS"].default
    max_train_memory_mb: float = VARIABLES["VIT_DEMO_MAX_TRAIN_MEMORY_MB"].default
    max_explores: int = VARIABLES["VIT_DEMO_MAX_EXPLORES"].default
    max_work_mb: float = VARIABLES["VIT_DEMO_MAX_WORK_MB"].default
    train_limit: int | None = None
    test_limit: int | None = None
    threads: int | None = None
    work_dir: Path = Path(tempfile.gettempdir()) / "vit_demo"  # the app's own folder: runs, downloads, stop flags
    zero_gpu: bool = False  # a ZeroGPU Space: trainings run on a GPU lent per run (service/zerogpu.py)

    @classmethod
    def from_env(cls, root: Path) -> AppSettings:
        """Settings for an app whose checkpoints/ and examples/ folders sit in `root`."""
        return cls(
            checkpoint_dir=read("VIT_DEMO_CHECKPOINTS") or root / "checkpoints",
            examples_dir=root / "examples",
            max_trainings=read("VIT_DEMO_MAX_TRAININGS"),
            max_train_seconds=read("VIT_DEMO_MAX_TRAIN_SECONDS"),
            max_train_memory_mb=read("VIT_DEMO_MAX_TRAIN_MEMORY_MB"),
            max_explores=read("VIT_DEMO_MAX_EXPLORES"),
            max_work_mb=read("VIT_DEMO_MAX_WORK_MB"),
            train_limit=read("VIT_DEMO_TRAIN_LIMIT"),
            test_limit=read("VIT_DEMO_TEST_LIMIT"),
            threads=read("VIT_DEMO_THREADS"),
            work_dir=read("VIT_DEMO_WORK_DIR") or cls.work_dir,
            zero_gpu=on_zero_gpu(),
        )
