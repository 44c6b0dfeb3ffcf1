"""A run in one file: written beside a checkpoint, read back whole, and refused with a reason
when it is not what it says."""

import json
import zipfile

import numpy as np
import pytest
import torch
from conftest import TINY

from vit_demo import checkpoints, run_record
from vit_demo.timeline import Snapshot
from vit_demo.training import create_model


def snapshot(step: int) -> Snapshot:
    return Snapshot(
        step=step,
        epoch=step / 10,
        fraction=step / 20,
        test_accuracy=None if step == 0 else 0.5,
        position_similarity=torch.rand(4, 4, 4, 4),
        attention_distance=torch.rand(2, 2),
        filters=torch.rand(8, 1, 7, 7),
        probe_rollout=torch.rand(4, 4),
        probe_probabilities=torch.rand(10).softmax(-1),
    )


def record() -> run_record.RunRecord:
    return run_record.RunRecord(
        settings={
            "dataset": "mnist",
            "shape": TINY,
            "lr": 0.003,
            "batch_size": 128,
            "length": "time",
            "seconds": 30.0,
            "epochs": 1.0,
            "seed": 4,
        },
        result={
            "test_accuracy": 0.9,
            "steps": 20,
            "epochs": 2.0,
            "seconds": 3.5,
            "images_per_second": 700.0,
            "stopped": False,
            "test_images": 256,
        },
        loss_rows=[[0, 2.3, "train loss"], [20, 0.4, "train loss"]],
        accuracy_rows=[[0, 10.0, "test accuracy"], [20, 90.0, "test accuracy"]],
        confusion=[[5, 1], [0, 4]],
        snapshots=[snapshot(0), snapshot(20)],
        picture=np.arange(784, dtype=np.uint8).reshape(28, 28),
    )


@pytest.fixture
def saved_run(tmp_path):
    folder = checkpoints.save(create_model("mnist", **TINY), tmp_path / "run", checkpoints.default_info("mnist"))
    run_record.write(folder, record())
    return checkpoints.zip_checkpoint(folder, tmp_path / "run.zip")


def test_a_run_comes_back_as_it_was_saved(saved_run):
    back = run_record.read(saved_run)
    original = record()
    assert (back.settings, back.result, back.confusion) == (original.settings, original.result, original.confusion)
    assert back.loss_rows == original.loss_rows and back.accuracy_rows == original.accuracy_rows
    assert [s.step for s in back.snapshots] == [0, 20] and back.snapshots[0].test_accuracy is None
    assert (back.picture == original.picture).all()
    assert len(back.timeline()) == 2
    model, _ = checkpoints.load(saved_run)  # still a checkpoint Explore can open
    assert model.config.dim == TINY["dim"]


def test_a_checkpoint_alone_has_no_run(tmp_path):
    folder = checkpoints.save(create_model("mnist", **TINY), tmp_path / "plain", checkpoints.default_info("mnist"))
    assert run_record.read(checkpoints.zip_checkpoint(folder, tmp_path / "plain.zip")) is None


def rewritten(saved_run, tmp_path, name: str, data: bytes):
    """`saved_run` with the file `name` replaced by `data`."""
    path = tmp_path / "edited.zip"
    with zipfile.ZipFile(saved_run) as source, zipfile.ZipFile(path, "w") as target:
        for item in source.infolist():
            target.writestr(item, data if item.filename.endswith("/" + name) else source.read(item))
    return path


@pytest.mark.parametrize(
    "change, message",
    [
        (lambda values: values.update(loss_rows=[[0, "NaN", "train loss"]]), "not a number"),
        (lambda values: values.update(confusion=[[1, -2], [0, 1]]), "square table of counts"),
        (lambda values: values.pop("settings"), "does not describe a run"),
    ],
)
def test_a_tampered_record_is_refused_with_the_reason(saved_run, tmp_path, change, message):
    with zipfile.ZipFile(saved_run) as archive:
        values = json.loads(archive.read(f"run/{run_record.RECORD_NAME}"))
    change(values)
    broken = rewritten(saved_run, tmp_path, run_record.RECORD_NAME, json.dumps(values).encode())
    with pytest.raises(checkpoints.CheckpointError, match=message):
        run_record.read(broken)


def test_a_timeline_that_is_not_safetensors_is_refused(saved_run, tmp_path):
    broken = rewritten(saved_run, tmp_path, run_record.TIMELINE_NAME, b"\x80\x04 not a tensor file")
    with pytest.raises(checkpoints.CheckpointError, match="not a readable safetensors file"):
        run_record.read(broken)
