"""Every environment variable ViT Playground reads, declared once, and one way to read them.

`read(name)` checks a value against its declaration and, when it does not fit, raises a
`SettingError` that names the variable and what it accepts, so a typo in a Space's settings
is reported as such instead of surfacing as a bare `ValueError` deep in an upload. The
README's table of settings is checked against `VARIABLES` (tests/test_readme.py).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path


class SettingError(ValueError):
    """An environment variable whose value the project cannot use."""


@dataclass(frozen=True)
class Variable:
    name: str
    kind: type  # int, float, bool, Path
    default: object  # what an unset or empty variable means; None: nothing set
    meaning: str

    def parse(self, raw: str):
        raw = raw.strip()
        if not raw:
            return self.default
        if self.kind is Path:
            return Path(raw).expanduser()
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
    )
}


def read(name: str, environ: Mapping[str, str] | None = None):
    """The value of the declared variable `name` in `environ` (default: the process's)."""
    variable = VARIABLES[name]
    return variable.parse((os.environ if environ is None else environ).get(name, ""))


def megabytes(name: str) -> int:
    """A variable given in MB, in bytes."""
    return int(read(name) * 1024 * 1024)
