"""What accuracy to expect: test accuracy measured after N training images, per dataset and
candidate (vit_demo/measured/accuracy_vs_images.json, written by
benchmarks/accuracy_vs_images.py). How good a run gets depends mostly on how many images it
sees, which no machine changes; how long those images take is `speed.py`'s business."""

from __future__ import annotations

import json
import math
import os
import statistics
import tempfile
from dataclasses import dataclass
from pathlib import Path

from .data import get_spec
from .recipes import Candidate

ACCURACY_TABLE = Path(__file__).resolve().parent / "measured" / "accuracy_vs_images.json"


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


_default_table: AccuracyTable | None = None


def default_table() -> AccuracyTable:
    """The shipped table, read once per process."""
    global _default_table
    if _default_table is None:
        _default_table = AccuracyTable()
    return _default_table
