"""A run in one file: written beside a checkpoint, read back whole, and refused with a reason
when it is not what it says."""

import numpy as np
import pytest
import torch
from conftest import TINY

from tools.hostile_files import RUN_EDITS, edited_json, rewritten
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
        settings={"dataset": "mnist", **TINY, "lr": 0.003, "batch_size": 128, "epochs": 1.0, "seed": 4},
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
        confusion=[[25 if i == j else 0 for j in range(10)] for i in range(10)],
        snapshots=[snapshot(0), snapshot(20)],
        picture=np.arange(784, dtype=np.uint8).reshape(28, 28),
    )


@pytest.fixture
def saved_run(tmp_path):
    folder = checkpoints.save(create_model("mnist", **TINY), tmp_path / "run", checkpoints.default_info("mnist"))
    run_record.write(folder, record())
    return checkpoints.zip_checkpoint(folder, tmp_path / "run.zip")


BOUNDS = run_record.Bounds(create_model("mnist", **TINY).config, max_rows=1200)


def test_a_run_comes_back_as_it_was_saved(saved_run):
    back = run_record.read(saved_run, BOUNDS)
    original = record()
    assert (back.settings, back.result, back.confusion) == (original.settings, original.result, original.confusion)
    assert back.loss_rows == original.loss_rows and back.accuracy_rows == original.accuracy_rows
    assert [s.step for s in back.snapshots] == [0, 20] and back.snapshots[0].test_accuracy is None
    assert (back.picture == original.picture).all()
    assert len(back.timeline()) == 2
    model, _ = checkpoints.load(saved_run)  # still a checkpoint Explore can open
    assert model.config.dim == TINY["dim"]


def test_the_longest_run_the_app_can_write_fits_its_bounds(tmp_path):
    """The byte bound on run.json is derived from the row bound: a record with every table full
    (steps and values as long as they get) must still come back."""
    full = record()
    full.loss_rows = [[10**9 - i, 2.302585092994046, "train loss"] for i in range(BOUNDS.max_rows)]
    full.accuracy_rows = [[10**9 - i, 99.12345678901234, "test accuracy"] for i in range(BOUNDS.max_rows)]
    full.result["test_images"] = 10**7
    full.confusion = [[10**7 - i - j for j in range(10)] for i in range(10)]
    folder = checkpoints.save(create_model("mnist", **TINY), tmp_path / "full", checkpoints.default_info("mnist"))
    run_record.write(folder, full)
    back = run_record.read(checkpoints.zip_checkpoint(folder, tmp_path / "full.zip"), BOUNDS)
    assert len(back.loss_rows) == len(back.accuracy_rows) == BOUNDS.max_rows


def test_a_checkpoint_alone_has_no_run(tmp_path):
    folder = checkpoints.save(create_model("mnist", **TINY), tmp_path / "plain", checkpoints.default_info("mnist"))
    assert run_record.read(checkpoints.zip_checkpoint(folder, tmp_path / "plain.zip"), BOUNDS) is None


@pytest.mark.parametrize(
    "change, message",
    [
        (
            lambda v: v.update(loss_rows=[[0, "NaN", "train loss"]]),
            "run.json: loss_rows[0] value must be a number of at least 0, got 'NaN'",
        ),
        (
            lambda v: v.update(loss_rows=[[0, 1.0, "train loss"]] * 1_201),
            "holds 1,201 items, more than the 1,200",
        ),
        (
            lambda v: v.update(loss_rows=[[0, 1.0, "train loss"]] * 1_000_000),
            "run.json is 22.9 MB unpacked, over the 291 KB limit for that file",
        ),
        (
            lambda v: v.update(accuracy_rows=[[5, 250.0, "test accuracy"]]),
            "accuracy_rows[0] value must be a number from 0 to 100, got 250.0",
        ),
        (
            lambda v: v.update(accuracy_rows=[[5, 50.0, "<b>bold</b>"]]),
            "series must be one of train accuracy, test accuracy",
        ),
        (lambda v: v.update(confusion=[[1] * 1000] * 1000), "run.json is 2.9 MB unpacked, over the 291 KB limit"),
        (lambda v: v.update(confusion=[[1] * 40] * 40), "confusion holds 40 items, more than the 10"),
        (lambda v: v.update(confusion=[[1] * 40] * 10), "confusion must be a 10x10 table of counts"),
        (
            lambda v: v["confusion"][0].__setitem__(1, -2),
            "confusion[0][1] must be a whole number from 0 to 256, got -2",
        ),
        (lambda v: v["result"].update(steps=-567), "result.steps must be a whole number from 0 to"),
        (
            lambda v: v["result"].update(test_accuracy=float("nan")),
            "result.test_accuracy must be a number from 0 to 1, got nan",
        ),
        (lambda v: v["result"].update(seconds=float("inf")), "result.seconds must be a number from 0 to"),
        (lambda v: v["result"].update(epochs="two"), "result.epochs must be a number from 0 to 1,000,000, got 'two'"),
        (lambda v: v["result"].pop("steps"), "run.json: result has no steps"),
        (lambda v: v["result"].update(stopped="no"), "result.stopped must be true or false, got 'no'"),
        (lambda v: v.pop("settings"), "run.json has no settings"),
        (lambda v: v.update(snapshots=[v["snapshots"][0]] * 41), "snapshots holds 41 items, more than the 40"),
        (lambda v: v["snapshots"][0].update(fraction=3), "snapshots[0].fraction must be a number from 0 to 1, got 3"),
    ],
)
def test_a_tampered_record_is_refused_with_the_file_the_key_the_value_and_what_is_allowed(
    saved_run, tmp_path, change, message
):
    broken = edited_json(saved_run, tmp_path / "edited.zip", run_record.RECORD_NAME, change)
    with pytest.raises(checkpoints.CheckpointError) as refused:
        run_record.read(broken, BOUNDS)
    assert message in str(refused.value) and str(refused.value).startswith("edited.zip/")


def test_a_timeline_that_is_not_safetensors_is_refused(saved_run, tmp_path):
    broken = rewritten(saved_run, tmp_path / "edited.zip", run_record.TIMELINE_NAME, b"\x80\x04 not a tensor file")
    with pytest.raises(checkpoints.CheckpointError, match="not a readable safetensors file"):
        run_record.read(broken, BOUNDS)


def test_a_timeline_of_another_model_is_refused(saved_run):
    other = run_record.Bounds(create_model("mnist", **{**TINY, "patch_size": 4}).config, max_rows=1200)
    with pytest.raises(checkpoints.CheckpointError, match=r"0\.position_similarity must be \(7, 7, 7, 7\) finite"):
        run_record.read(saved_run, other)


@pytest.mark.parametrize("edit", RUN_EDITS, ids=list(RUN_EDITS))
def test_every_hostile_run_edit_the_benchmark_sends_is_refused_with_its_words(saved_run, tmp_path, edit):
    change, words = RUN_EDITS[edit]
    with pytest.raises(checkpoints.CheckpointError, match=None) as refused:
        run_record.read(edited_json(saved_run, tmp_path / "edited.zip", run_record.RECORD_NAME, change), BOUNDS)
    assert words in str(refused.value)
