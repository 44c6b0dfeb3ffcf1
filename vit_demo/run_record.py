"""A whole run in one file, to take home and bring back: the checkpoint (config.json and
model.safetensors, loadable as any checkpoint) plus the run's record, `run.json` (what was
asked, what came out, the curves, the confusion matrix) and `timeline.safetensors` (the
training timeline's snapshots and the picture they were taken on).

Reading is as careful as reading a checkpoint: JSON and safetensors only (no pickle, no
code runs), sizes checked before inflating, and every value checked for its type and shape;
a file that does not fit is a CheckpointError that says what is wrong.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, fields
from pathlib import Path

import torch
from safetensors.torch import save_file

from .checkpoints import CONFIG_NAME, WEIGHTS_NAME, CheckpointError, read_json, read_tensors, read_zip_members
from .timeline import Snapshot, Timeline

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


def read(path: str | Path) -> RunRecord | None:
    """The record in a run's zip (as the Train tab's download makes it); None for a zip that is
    a checkpoint alone. A CheckpointError for one that is broken or is no checkpoint at all."""
    path = Path(path)
    raw = read_zip_members(path, (CONFIG_NAME, WEIGHTS_NAME), (RECORD_NAME, TIMELINE_NAME))
    if RECORD_NAME not in raw:
        return None
    if TIMELINE_NAME not in raw:
        raise CheckpointError(f"{path.name} has {RECORD_NAME} but no {TIMELINE_NAME}: save the run again")
    values = read_json(raw[RECORD_NAME], f"{path.name}/{RECORD_NAME}")
    tensors = read_tensors(raw[TIMELINE_NAME], f"{path.name}/{TIMELINE_NAME}")
    try:
        return _record(values, tensors)
    except (KeyError, TypeError, ValueError) as error:
        raise CheckpointError(f"{path.name}/{RECORD_NAME} does not describe a run ({error})") from error


def _rows(values) -> list:
    rows = [[int(step), float(value), str(series)] for step, value, series in values]
    if not all(math.isfinite(value) for _, value, _ in rows):
        raise ValueError("a curve holds a value that is not a number")
    return rows


def _record(values: dict, tensors: dict[str, torch.Tensor]) -> RunRecord:
    snapshots = []
    for index, numbers in enumerate(values["snapshots"]):
        parts = {name: numbers[name] for name in SNAPSHOT_NUMBERS}
        parts.update({name: tensors[f"{index}.{name}"].float() for name in SNAPSHOT_TENSORS})
        snapshots.append(Snapshot(**parts))
    confusion = values.get("confusion")
    if confusion is not None:
        counts = torch.tensor(confusion, dtype=torch.long)
        if counts.ndim != 2 or counts.shape[0] != counts.shape[1] or (counts < 0).any():
            raise ValueError("the confusion matrix is not a square table of counts")
    picture = tensors[PICTURE_KEY]
    if picture.dtype != torch.uint8 or picture.ndim not in (2, 3):
        raise ValueError("the timeline's picture is not an image")
    return RunRecord(
        settings=dict(values["settings"]),
        result=dict(values["result"]),
        loss_rows=_rows(values["loss_rows"]),
        accuracy_rows=_rows(values["accuracy_rows"]),
        confusion=confusion,
        snapshots=snapshots,
        picture=picture.numpy(),
    )


__all__ = ["RECORD_NAME", "TIMELINE_NAME", "RunRecord", "read", "write"]
