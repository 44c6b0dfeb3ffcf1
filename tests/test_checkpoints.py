import json
import os
import zipfile

import pytest
import torch
from conftest import TINY

from vit_demo import checkpoints
from vit_demo.checkpoints import CheckpointError
from vit_demo.training import create_model


@pytest.fixture
def model():
    return create_model("mnist", seed=3, **TINY).eval()


@pytest.fixture
def info():
    values = checkpoints.default_info("mnist")
    values["test_accuracy"] = 0.9876
    return values


@pytest.fixture
def saved(tmp_path, model, info):
    return checkpoints.save(model, tmp_path / "model", info)


def same_logits(a, b):
    images = torch.randn(4, 1, 28, 28, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        torch.testing.assert_close(a(images), b(images), rtol=0, atol=0)


def test_folder_round_trip_gives_identical_logits_and_info(saved, model):
    assert sorted(p.name for p in saved.iterdir()) == ["README.md", "config.json", "model.safetensors"]
    loaded, info = checkpoints.load(saved)
    assert not loaded.training
    same_logits(model, loaded)
    assert info["dataset"] == "mnist" and info["test_accuracy"] == 0.9876
    assert info["class_names"] == [str(d) for d in range(10)]
    assert info["mean"] == [0.1307] and info["std"] == [0.3081]
    assert loaded.config == model.config


def test_the_folder_is_hugging_face_loadable(saved, model):
    from vit_demo.model import ViT

    same_logits(model, ViT.from_pretrained(str(saved)))


def test_zip_round_trip(saved, model, tmp_path):
    archive = checkpoints.zip_checkpoint(saved, tmp_path / "model.zip")
    same_logits(model, checkpoints.load(archive)[0])


def test_a_zip_with_extra_files_still_loads(saved, model, tmp_path):
    archive = tmp_path / "extra.zip"
    with zipfile.ZipFile(archive, "w") as z:
        z.write(saved / "config.json", "run/config.json")
        z.write(saved / "model.safetensors", "run/model.safetensors")
        z.writestr("run/notes.txt", "hello")
        z.writestr("__MACOSX/._config.json", "junk")
    same_logits(model, checkpoints.load(archive)[0])


def test_plain_pt_dict_round_trip(model, info, tmp_path):
    path = tmp_path / "model.pt"
    torch.save({"config": model.config.to_dict(), "state_dict": model.state_dict(), "info": info}, path)
    loaded, loaded_info = checkpoints.load(path)
    same_logits(model, loaded)
    assert loaded_info["test_accuracy"] == 0.9876


class _Exploit:
    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def test_a_pickle_that_would_run_code_is_refused_and_never_runs(model, info, tmp_path):
    marker = tmp_path / "payload-ran"
    path = tmp_path / "evil.pt"
    torch.save(
        {"config": model.config.to_dict(), "state_dict": model.state_dict(), "info": info, "x": _Exploit(marker)}, path
    )
    with pytest.raises(CheckpointError, match="was refused: it contains Python objects other than tensors"):
        checkpoints.load(path)
    assert not marker.exists()


def test_weights_for_another_architecture_name_the_shapes_that_differ(saved, tmp_path):
    config = json.loads((saved / "config.json").read_text())
    config["dim"] = 48
    config["heads"] = 3
    (saved / "config.json").write_text(json.dumps(config))
    with pytest.raises(CheckpointError) as raised:
        checkpoints.load(saved)
    message = str(raised.value)
    assert "do not fit the architecture" in message
    assert "pos_embedding: weights (1, 17, 32) vs config (1, 17, 48)" in message


def test_a_deeper_config_reports_missing_weights(saved):
    config = json.loads((saved / "config.json").read_text())
    config["depth"] = 3
    (saved / "config.json").write_text(json.dumps(config))
    with pytest.raises(CheckpointError, match=r"missing weights — transformer\.layers\.2\."):
        checkpoints.load(saved)


@pytest.mark.parametrize(
    "edit, message",
    [
        (lambda c: c.pop("patch_size"), "config is missing: patch_size"),
        (lambda c: c.pop("class_names"), "config is missing: class_names"),
        (lambda c: c.update(patch_size=5), "image_size 28 is not divisible by patch_size 5"),
        (lambda c: c.update(dim="big"), "dim must be a whole number"),
        (lambda c: c.update(class_names=["a", "b"]), "class_names must be a list of 10 names"),
        (lambda c: c.update(mean=[0.1, 0.2, 0.3]), "mean must be a list of 1 numbers"),
        (lambda c: c.update(dataset="imagenet"), "unknown dataset 'imagenet'"),
        (lambda c: c.update(std=[0]), r"std\[0\] must be a number of at least 1e-06, got 0"),
        (lambda c: c.update(std=[float("nan")]), r"std\[0\] must be a number of at least 1e-06, got nan"),
        (lambda c: c.update(test_accuracy=7), "test_accuracy must be a number from 0 to 1, got 7"),
    ],
)
def test_wrong_config_fields_are_explained(saved, edit, message):
    config = json.loads((saved / "config.json").read_text())
    edit(config)
    (saved / "config.json").write_text(json.dumps(config))
    with pytest.raises(CheckpointError, match=message):
        checkpoints.load(saved)


def test_broken_files_are_explained(saved, tmp_path):
    (saved / "config.json").write_text("{not json")
    with pytest.raises(CheckpointError, match="config.json is not valid JSON"):
        checkpoints.load(saved)
    with pytest.raises(CheckpointError, match="no checkpoint at"):
        checkpoints.load(tmp_path / "nowhere")


def test_a_truncated_weights_file_is_explained(saved):
    weights = saved / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:200])
    with pytest.raises(CheckpointError, match="not a readable safetensors file.*truncated or corrupt"):
        checkpoints.load(saved)


def test_a_missing_weights_file_is_explained(saved):
    (saved / "model.safetensors").unlink()
    with pytest.raises(CheckpointError, match="has no model.safetensors"):
        checkpoints.load(saved)


def test_files_over_the_size_limit_are_refused_before_reading(saved, monkeypatch):
    monkeypatch.setenv("VIT_DEMO_MAX_CHECKPOINT_MB", "0.01")
    with pytest.raises(CheckpointError, match=r"model.safetensors is \d+ KB, over the 10 KB limit"):
        checkpoints.load(saved)


def test_other_files_are_not_checkpoints(tmp_path, saved):
    text = tmp_path / "notes.txt"
    text.write_text("hi")
    with pytest.raises(CheckpointError, match="notes.txt is not a checkpoint"):
        checkpoints.load(text)
    with pytest.raises(CheckpointError, match="holds only weights"):
        checkpoints.load(saved / "model.safetensors")
    fake_zip = tmp_path / "fake.zip"
    fake_zip.write_text("not a zip")
    with pytest.raises(CheckpointError, match="not a readable zip file"):
        checkpoints.load(fake_zip)


def test_saving_over_a_checkpoint_replaces_it_whole(saved, tmp_path, info):
    other = create_model("mnist", seed=99, **TINY).eval()
    checkpoints.save(other, saved, info)
    same_logits(other, checkpoints.load(saved)[0])
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model"]  # no temporary folders left behind


def test_saving_with_only_the_dataset_fills_in_what_it_implies(model, tmp_path):
    path = checkpoints.save(model, tmp_path / "model", {"dataset": "mnist"})
    loaded, info = checkpoints.load(path)
    same_logits(model, loaded)
    assert info["class_names"] == checkpoints.default_info("mnist")["class_names"]
    assert (info["mean"], info["std"]) == ([0.1307], [0.3081])


@pytest.mark.parametrize(
    "info, message",
    [
        ({}, "the checkpoint's config is missing: dataset, class_names, mean, std"),
        ({"dataset": "imagenet"}, "the checkpoint's config names"),
        ({"dataset": "mnist", "class_names": ["zero", "one"]}, "class_names must be a list of 10 names"),
        ({"dataset": "mnist", "mean": [0.1, 0.2, 0.3]}, "mean must be a list of 1 numbers"),
    ],
)
def test_saving_what_load_would_refuse_is_refused_before_writing(model, tmp_path, info, message):
    with pytest.raises(CheckpointError, match=message):
        checkpoints.save(model, tmp_path / "model", info)
    assert not any(tmp_path.iterdir())
