"""A whole run in one file, to take home and bring back: the checkpoint (config.json and
model.safetensors, loadable as any checkpoint) plus the run's record, `run.json` (what was
asked, what came out, the curves, the confusion matrix) and `timeline.safetensors` (the
training timeline's snapshots and the picture they were taken on).

Reading is as careful as reading a checkpoint: JSON and safetensors only (no pickle, no
code runs), sizes checked while inflating, and every value checked for its type, its range and
its count against what a run of this app can hold (`Bounds`); a file that does not fit is a
CheckpointError that names the file, the key, the value and what is allowed.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, fields, replace
from pathlib import Path

import numpy as np
import torch
from safetensors.torch import save_file

from . import validation
from .checkpoints import CheckpointError, read_json, read_tensors, read_zip_members
from .model import ViTConfig
from .timeline import CAPACITY, Snapshot, Timeline, snapshot_shapes

RECORD_NAME = "run.json"
TIMELINE_NAME = "timeline.safetensors"
PICTURE_KEY = "probe"  # the timeline's picture, uint8 (H, W) or (H, W, 3); its key in every saved run
SNAPSHOT_TENSORS = tuple(f.name for f in fields(Snapshot) if f.type in ("torch.Tensor", torch.Tensor))
SNAPSHOT_NUMBERS = tuple(f.name for f in fields(Snapshot) if f.name not in SNAPSHOT_TENSORS)


@dataclass
class RunRecord:
    settings: dict  # what the run was asked: the Build tab's knobs
    result: dict  # what came out: test accuracy, steps, epochs, seconds, images per second, stopped
    loss_rows: list  # [step, value, series] of the live curves
    accuracy_rows: list
    confusion: list | None  # counts[true][guessed] of the final score
    snapshots: list  # timeline.Snapshot, oldest first
    picture: object  # uint8 numpy array: the timeline's picture

    def timeline(self) -> Timeline:
        timeline = Timeline()
        for snapshot in self.snapshots:
            timeline.add(snapshot)
        return timeline


def write(folder: str | Path, record: RunRecord) -> None:
    """Add `record` to a checkpoint folder (before it is zipped)."""
    folder = Path(folder)
    fields_ = {k: v for k, v in asdict(record).items() if k not in ("snapshots", "picture")}
    fields_["snapshots"] = [{name: getattr(s, name) for name in SNAPSHOT_NUMBERS} for s in record.snapshots]
    (folder / RECORD_NAME).write_text(json.dumps(fields_, indent=1), encoding="utf-8")
    tensors = {PICTURE_KEY: torch.as_tensor(record.picture).contiguous()}
    for index, snapshot in enumerate(record.snapshots):
        for name in SNAPSHOT_TENSORS:
            tensors[f"{index}.{name}"] = getattr(snapshot, name).contiguous()
    save_file(tensors, str(folder / TIMELINE_NAME))


@dataclass(frozen=True)
class Bounds:
    """What a run of this app can hold: a record beyond it was not written by it, and is refused
    before the work it would cost (drawing a million-cell confusion matrix, say)."""

    config: ViTConfig  # the run's model (its checkpoint's): the timeline's tensors' shapes, the classes
    max_rows: int  # curve points: a run reports at most once a second for at most the server's run time

    @property
    def record_bytes(self) -> int:
        """The most run.json can take: each table full, as `write` lays it out (indent=1), with room."""
        return 2 * self.max_rows * ROW_BYTES + self.config.num_classes**2 * CELL_BYTES + 64 * 2**10


LOSS_SERIES = ("train loss",)
ACCURACY_SERIES = ("train accuracy", "test accuracy")
ROW_BYTES, CELL_BYTES = 96, 16  # one curve point, one confusion count, written with indent=1, with room


def read(path: str | Path, bounds: Bounds) -> RunRecord | None:
    """The record in a run's zip (as the Train tab's download makes it); None for a zip that is
    a checkpoint alone. A CheckpointError that names the file, the key, the value and what is
    allowed, for one that is broken or beyond `bounds`. The zip's checkpoint was read already
    (`checkpoints.load`: its model gives `bounds`), so only the run's own two files are read."""
    path = Path(path)
    raw = read_zip_members(path, (), (RECORD_NAME, TIMELINE_NAME), limits={RECORD_NAME: bounds.record_bytes})
    if RECORD_NAME not in raw:
        return None
    if TIMELINE_NAME not in raw:
        raise CheckpointError(f"{path.name} has {RECORD_NAME} but no {TIMELINE_NAME}: save the run again")
    where = f"{path.name}/{RECORD_NAME}"
    values = read_json(raw[RECORD_NAME], where)
    try:
        record = _record(values, where, bounds)
        tensors = read_tensors(raw[TIMELINE_NAME], f"{path.name}/{TIMELINE_NAME}")
        return _with_timeline(record, values, tensors, f"{path.name}/{TIMELINE_NAME}", bounds.config)
    except ValueError as error:
        raise CheckpointError(str(error)) from error


def _rows(where: str, values, series: tuple[str, ...], top: float | None, bounds: Bounds) -> list:
    rows = []
    for index, row in enumerate(validation.sequence(where, values, bounds.max_rows)):
        at = f"{where}[{index}]"
        if not isinstance(row, list) or len(row) != 3:
            raise ValueError(f"{at} must be [step, value, series], got {row!r:.40}")
        if row[2] not in series:
            raise ValueError(f"{at}'s series must be one of {', '.join(series)}, got {row[2]!r:.40}")
        rows.append(
            [
                validation.number(f"{at} step", row[0], 0, whole=True),
                validation.number(f"{at} value", row[1], 0, top),
                row[2],
            ]
        )
    return rows


def _record(values: dict, where: str, bounds: Bounds) -> RunRecord:
    config = bounds.config
    result = validation.mapping(f"{where}: result", validation.field(where, values, "result"))
    numbers = {  # each result's range: what a run of this app can report
        "test_accuracy": (0, 1, False), "steps": (0, 10**9, True), "epochs": (0, 10**6, False),
        "seconds": (0, 10**7, False), "images_per_second": (0, 10**9, False), "test_images": (0, 10**7, True),
    }  # fmt: skip
    checked = {
        key: validation.number(
            f"{where}: result.{key}", validation.field(f"{where}: result", result, key), low, high, whole
        )
        for key, (low, high, whole) in numbers.items()
    }
    checked["stopped"] = validation.flag(
        f"{where}: result.stopped", validation.field(f"{where}: result", result, "stopped")
    )
    confusion = values.get("confusion")
    if confusion is not None:
        k = config.num_classes
        cells = validation.sequence(f"{where}: confusion", confusion, k)
        if len(cells) != k or not all(isinstance(row, list) and len(row) == k for row in cells):
            raise ValueError(f"{where}: confusion must be a {k}x{k} table of counts (this model has {k} classes)")
        confusion = [
            [
                validation.number(f"{where}: confusion[{i}][{j}]", count, 0, checked["test_images"], whole=True)
                for j, count in enumerate(row)
            ]
            for i, row in enumerate(cells)
        ]
    return RunRecord(
        settings=validation.mapping(f"{where}: settings", validation.field(where, values, "settings")),
        result=checked,
        loss_rows=_rows(f"{where}: loss_rows", validation.field(where, values, "loss_rows"), LOSS_SERIES, None, bounds),
        accuracy_rows=_rows(
            f"{where}: accuracy_rows", validation.field(where, values, "accuracy_rows"), ACCURACY_SERIES, 100, bounds
        ),
        confusion=confusion,
        snapshots=[],
        picture=None,
    )


def _with_timeline(record: RunRecord, values: dict, tensors: dict, where: str, config: ViTConfig) -> RunRecord:
    """The record with its timeline's snapshots and picture, each checked against the model."""
    numbers = validation.sequence(f"{where}: snapshots", validation.field(where, values, "snapshots"), CAPACITY)
    shapes = snapshot_shapes(config)
    snapshots = []
    for index, entry in enumerate(numbers):
        entry = validation.mapping(f"{where}: snapshots[{index}]", entry)
        at = f"{where}: snapshots[{index}]"
        parts = {
            "step": validation.number(f"{at}.step", validation.field(at, entry, "step"), 0, whole=True),
            "epoch": validation.number(f"{at}.epoch", validation.field(at, entry, "epoch"), 0),
            "fraction": validation.number(f"{at}.fraction", validation.field(at, entry, "fraction"), 0, 1),
            "test_accuracy": None
            if entry.get("test_accuracy") is None
            else validation.number(f"{at}.test_accuracy", entry["test_accuracy"], 0, 1),
        }
        for name, shape in shapes.items():
            tensor = validation.field(where, tensors, f"{index}.{name}")
            if tuple(tensor.shape) != shape or not np.isfinite(tensor.float().numpy()).all():
                raise ValueError(f"{where}: {index}.{name} must be {shape} finite numbers, got {tuple(tensor.shape)}")
            parts[name] = tensor.float()
        snapshots.append(Snapshot(**parts))
    picture = validation.field(where, tensors, PICTURE_KEY)
    size = config.image_size
    wanted = (size, size) if config.channels == 1 else (size, size, 3)
    if picture.dtype != torch.uint8 or tuple(picture.shape) != wanted:
        raise ValueError(f"{where}: the timeline's picture must be a {'x'.join(map(str, wanted))} image of bytes")
    return replace(record, snapshots=snapshots, picture=picture.numpy())


__all__ = ["RECORD_NAME", "TIMELINE_NAME", "Bounds", "RunRecord", "read", "write"]
