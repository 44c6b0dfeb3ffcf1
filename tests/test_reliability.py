"""A class of 30 clicks everything and uploads anything: every bad input gets a specific
message (asserted as the person reads it), nothing in a file runs, and Stop, closed tabs,
double Starts and exploring during a training leave the app consistent.

The handlers are called as plain functions (see test_ui.py for the happy paths); a few
checks go through gradio_client against the app served on 127.0.0.1, to show the message
reaches a client too. Library-level checks of the same inputs live in test_images.py,
test_checkpoints.py and test_data.py.
"""

import html
import io
import json
import os
import pickle
import struct
import threading
import time
import types
import zipfile
import zlib
from pathlib import Path

import gradio as gr
import numpy as np
import pytest
import torch
from gradio_client import Client, handle_file
from gradio_client.exceptions import AppError
from PIL import Image, ImageDraw
from ui_helpers import EXAMPLE, REPO, TINY, as_outputs, serving, settings_for, train_inputs

from vit_demo import checkpoints, data
from vit_demo.training import create_model
from vit_demo.ui import App, AppSettings, build_demo
from vit_demo.ui.models import MINE, UPLOADED, ModelLibrary
from vit_demo.ui.train_tab import _session_key

# As the app on two cores: one torch thread.
pytestmark = pytest.mark.usefixtures("one_thread")

DIGITS = {str(d) for d in range(10)}


def session(name: str):
    """What a gr.Request gives the handlers: the browser session's hash."""
    return types.SimpleNamespace(session_hash=name)


def shown(raised: pytest.ExceptionInfo) -> str:
    """A gr.Error as the person reads it (the page renders the message as HTML)."""
    return html.unescape(str(raised.value.message).replace("<br>", "\n"))


def refused(call, *args, **kwargs) -> str:
    """The message a handler (function or generator) shows instead of an answer."""
    with pytest.raises(gr.Error) as raised:
        result = call(*args, **kwargs)
        if isinstance(result, types.GeneratorType):
            list(result)
    return shown(raised)


def png_bytes(image: Image.Image, **kwargs) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG", **kwargs)
    return buffer.getvalue()


def png_claiming_size(width: int, height: int) -> bytes:
    """A PNG whose header announces width x height pixels, with a few bytes of data: a
    decompression bomb's shape (a real 30000x30000 one inflates to 900 MB)."""

    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body) & 0xFFFFFFFF)

    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(b"\x00" * 64))
        + chunk(b"IEND", b"")
    )


def jpeg_bytes(image: Image.Image, **kwargs) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format="JPEG", **kwargs)
    return buffer.getvalue()


def digit(mode: str = "L", size=(64, 64)) -> Image.Image:
    """A black 7 on white paper."""
    image = Image.new(mode, size, "white")
    ImageDraw.Draw(image).line(
        [(size[0] // 4, size[1] // 5), (3 * size[0] // 4, size[1] // 5), (size[0] // 2, 4 * size[1] // 5)],
        fill="black",
        width=max(2, min(size) // 10),
    )
    return image


# ================================================================== hyperparameters

HUGE_CIFAR = dict(dataset="cifar10", patch_size=1, dim=256, depth=12, heads=16, mlp_dim=1024)


@pytest.mark.parametrize(
    "changes, message",
    [
        (
            dict(patch_size=5),
            "image_size 28 is not divisible by patch_size 5: choose a patch_size that divides 28: 1, 2, 4, 7, 14, 28",
        ),
        (dict(patch_size=56), "patch_size 56 is larger than image_size 28"),
        (dict(dim=64, heads=3), "dim 64 is not divisible by heads 3: choose heads from 1, 2, 4, 8, 16, 32, 64"),
        (dict(dim=0), "dim must be at least 1, got 0"),
        (dict(depth=-2), "depth must be at least 1, got -2"),
        (dict(heads=0), "heads must be at least 1, got 0"),
        (dict(mlp_dim=2.5), "mlp_dim must be a whole number, got 2.5"),
        (dict(dim=float("inf")), "dim must be a whole number, got inf"),
        (dict(depth="many"), "depth must be a whole number, got 'many'"),
        (dict(dim=None), "choose a value for dim"),
        (dict(batch_size=0), "batch_size must be a whole number of at least 1, got 0"),
        (dict(lr=-1), "learning rate must be between 0 and 1"),
        (dict(length="time", seconds=-5), "seconds must be more than 0, got -5"),
    ],
)
def test_bad_hyperparameters_are_refused_with_the_reason(app, changes, message):
    assert message in refused(app.train.train, **train_inputs(**changes))


@pytest.mark.parametrize(
    "changes, message",
    [
        (dict(patch_size=5), "image_size 28 is not divisible by patch_size 5"),
        (dict(dim=64, heads=3), "dim 64 is not divisible by heads 3"),
        (dict(depth=0), "depth must be at least 1, got 0"),
    ],
)
def test_the_build_summary_shows_the_same_reason(app, changes, message):
    inputs = train_inputs(**changes)
    del inputs["seed"]
    summary, *lessons = app.build.describe(**inputs)
    assert "cannot be built" in summary and message in summary
    assert all(update == gr.skip() for update in lessons)


def test_a_model_too_big_for_the_servers_memory_says_how_big_and_what_to_lower(app):
    # patch_size 1 on CIFAR with depth 12: 1,025 tokens, attention maps of 1025² per head.
    message = refused(app.train.train, **train_inputs(**HUGE_CIFAR))
    assert message == (
        "This model is too big for this server: training it with batch_size 128 needs about 228.6 GB of memory, "
        "over the 2.0 GB limit (VIT_DEMO_MAX_TRAIN_MEMORY_MB). To fit, raise patch_size (now 1: 1024 patches; "
        "2, 4, 8, 16, 32 also divide 32), or lower batch_size (now 128), depth (now 12), dim (now 256), "
        "mlp_dim (now 1024)."
    )
    inputs = train_inputs(**HUGE_CIFAR)
    del inputs["seed"]
    summary, *_ = app.build.describe(**inputs)
    assert "cannot be trained here" in summary and "228.6 GB of memory" in summary


def test_absurd_sizes_hit_the_memory_cap_before_anything_is_built(app):
    message = refused(app.train.train, **train_inputs(dim=100_000, heads=1, mlp_dim=100_000))
    assert "too big for this server" in message and "lower batch_size (now 128)" in message
    assert "too big for this server" in refused(app.train.train, **train_inputs(batch_size=10**9))


def test_the_memory_cap_comes_from_the_environment(monkeypatch, tmp_path, tiny_checkpoints):
    monkeypatch.setenv("VIT_DEMO_MAX_TRAIN_MEMORY_MB", "100")
    settings = AppSettings.from_env(tmp_path)
    assert settings.max_train_memory_mb == 100
    small = App(settings_for(tmp_path, tiny_checkpoints, max_train_memory_mb=settings.max_train_memory_mb))
    # The "Better" MNIST preset (patch 4, depth 6) needs about 231 MB.
    message = refused(small.train.train, **train_inputs(patch_size=4, dim=64, depth=6, heads=4, mlp_dim=128))
    assert "needs about 231 MB of memory, over the 100 MB limit" in message
    assert "raise patch_size (now 4: 49 patches; 7, 14, 28 also divide 28)" in message


def test_a_model_too_slow_for_the_time_limit_says_how_long_and_what_to_lower(tmp_path, tiny_checkpoints):
    hurried = App(settings_for(tmp_path, tiny_checkpoints, max_train_seconds=30))
    # 405 MFLOP per image: 611 MB fits in memory, but 20 steps (3 forward passes' worth each,
    # the last block for the CLS token alone) and a first score need about 6.6 min at the
    # meter's first guess of 5 GFLOP/s.
    slow = train_inputs(dataset="cifar10", patch_size=2, dim=64, depth=12, heads=4, mlp_dim=128, batch_size=16)
    message = refused(hurried.train.train, **slow)
    assert message.startswith(
        "This model is too slow for this server: 20 training steps with batch_size 16 "
        "and a first score would take about 6.6 min (405 MFLOP per image)"
    )
    assert "over the 30 s limit of one run (VIT_DEMO_MAX_TRAIN_SECONDS)" in message
    assert "raise patch_size (now 2: 256 patches" in message


# ================================================================== uploads

BAD_UPLOADS = [
    ("empty.png", b"", "empty.png is empty (0 bytes): choose an image file such as a PNG or JPEG"),
    ("cut.png", png_bytes(Image.effect_noise((64, 64), 60))[:300], "the file looks truncated or damaged"),
    (
        "cut.jpg",
        jpeg_bytes(Image.effect_noise((64, 64), 60).convert("RGB"))[:400],
        "the file looks truncated or damaged",
    ),
    ("notes.png", b"these are my notes, not pixels\n" * 10, "notes.png is not an image PIL can read"),
    ("dot.png", png_bytes(Image.new("L", (1, 1))), "dot.png is only 1x1 pixels: upload an image at least 4x4"),
    (
        "bomb.png",
        png_claiming_size(30000, 30000),
        "bomb.png is 30000x30000 pixels (900 megapixels), over the 40-megapixel limit",
    ),
]


@pytest.mark.parametrize("name, content, message", BAD_UPLOADS, ids=[u[0] for u in BAD_UPLOADS])
def test_bad_uploads_get_a_specific_message_in_explore_and_the_predict_api(app, tmp_path, name, content, message):
    path = tmp_path / name
    path.write_bytes(content)
    assert message in refused(app.explore.use_upload, str(path))
    assert message in refused(app.explore.predict, str(path), "mnist")


def test_a_decompression_bomb_is_refused_before_its_pixels_are_decoded(app, tmp_path, monkeypatch):
    bomb = tmp_path / "bomb.png"
    bomb.write_bytes(png_claiming_size(30000, 30000))
    assert bomb.stat().st_size < 200  # a few bytes that would inflate to 900 MB
    decoded = []
    monkeypatch.setattr(Image.Image, "load", lambda self: decoded.append(self) or None)
    assert "over the 40-megapixel limit" in refused(app.explore.predict, str(bomb), "mnist")
    assert decoded == []


def odd_uploads(tmp_path: Path) -> dict[str, Path]:
    """Valid but awkward pictures of a digit, each in a format a phone or an editor makes."""
    files = {}

    def save(name, image, **kwargs):
        files[name] = tmp_path / name
        image.save(files[name], **kwargs)

    grey = digit("L")
    save("sixteen-bit.png", Image.fromarray(np.asarray(grey, dtype=np.uint16) * 257).convert("I;16"))
    save("cmyk.jpg", digit("RGB").convert("CMYK"), quality=95)
    save("palette.gif", digit("RGB").convert("P"))
    frames = [digit("RGB").convert("P"), Image.new("RGB", (64, 64), "red").convert("P")]
    save("animated.gif", frames[0], save_all=True, append_images=frames[1:], duration=100, loop=0)
    transparent = Image.new("RGBA", (64, 64), (0, 0, 0, 0))
    ImageDraw.Draw(transparent).line([(16, 12), (48, 12), (32, 52)], fill=(0, 0, 0, 255), width=6)
    save("transparent.png", transparent)
    lying = digit("RGB", size=(64, 48)).rotate(90, expand=True)  # stored on its side, 48 wide and 64 high
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90° clockwise to view"
    save("phone.jpg", lying, exif=exif.tobytes(), quality=95)
    save("wide.png", digit("L", size=(4000, 100)))
    return files


def test_awkward_but_valid_uploads_are_converted_and_predicted(app, tmp_path):
    files = odd_uploads(tmp_path)
    for name, path in files.items():
        picture = app.explore.use_upload(str(path))
        assert isinstance(picture, Image.Image), name
        probabilities = app.explore.predict(str(path), "mnist")
        assert set(probabilities) == DIGITS and sum(probabilities.values()) == pytest.approx(1.0, abs=1e-4), name
        _, label, seen, explored, *_ = app.explore.explore(
            "mnist", picture, "where", "mean", 0.0, 2, "mean", None, None
        )
        display = explored.explanation.preprocessed.display
        # The model sees the digit: ink and paper, not a blank page (an RGBA drawing flattened
        # to black, a 16-bit PNG clipped to white would leave one value). The 4000x100 seven
        # shrinks 200-fold to fit 20 pixels: its strokes fade to grey.
        assert int(display.max()) - int(display.min()) > (30 if name == "wide.png" else 100), name
    assert app.explore.use_upload(str(files["phone.jpg"])).size == (64, 48)  # turned upright from EXIF
    assert Image.open(files["animated.gif"]).n_frames == 2
    first = app.explore.use_upload(str(files["animated.gif"])).convert("RGB")
    assert first.getpixel((0, 0)) == (255, 255, 255)  # the first frame (white paper), not the red one
    assert app.explore.use_upload(str(files["sixteen-bit.png"])).mode.startswith("I")  # values kept, not clipped
    assert app.explore.use_upload(str(files["wide.png"])).size == (4000, 100)


# ================================================================== checkpoints


@pytest.fixture
def tiny_model():
    return create_model("mnist", seed=0, **TINY)


def zipped(tmp_path: Path, name: str, members: dict[str, bytes]) -> Path:
    path = tmp_path / name
    with zipfile.ZipFile(path, "w") as archive:
        for member, content in members.items():
            archive.writestr(member, content)
    return path


def checkpoint_members(folder: Path) -> dict[str, bytes]:
    return {f"{folder.name}/{file.name}": file.read_bytes() for file in folder.iterdir()}


class WouldRunCode:
    """Unpickled, this creates `marker`: the proof a loader ran code from the file."""

    def __init__(self, marker: Path):
        self.marker = str(marker)

    def __reduce__(self):
        return (open, (self.marker, "w"))


def test_a_checkpoint_that_would_run_code_is_refused_and_the_code_never_runs(app, tmp_path, tiny_model):
    marker = tmp_path / "payload-ran.txt"
    # The payload is live: plain unpickling runs it.
    pickle.loads(pickle.dumps(WouldRunCode(marker))).close()
    assert marker.exists()
    marker.unlink()

    evil = tmp_path / "evil.pt"
    torch.save(
        {
            "config": tiny_model.config.to_dict(),
            "state_dict": tiny_model.state_dict(),
            "info": checkpoints.default_info("mnist"),
            "gift": WouldRunCode(marker),
        },
        evil,
    )
    message = refused(app.explore.upload_checkpoint, str(evil))
    assert message.startswith(
        "evil.pt was refused: it contains Python objects other than tensors and plain data, "
        "which could run code when loaded."
    )
    assert not marker.exists()


def test_weights_for_another_architecture_name_the_shapes_that_differ(app, tmp_path, tiny_model):
    folder = checkpoints.save(tiny_model, tmp_path / "other", checkpoints.default_info("mnist"))
    config = json.loads((folder / "config.json").read_text())
    config.update(dim=48, heads=3)
    (folder / "config.json").write_text(json.dumps(config))
    archive = zipped(tmp_path, "other.zip", checkpoint_members(folder))
    message = refused(app.explore.upload_checkpoint, str(archive))
    assert message.startswith("the weights do not fit the architecture in the config: shapes differ — ")
    assert "pos_embedding: weights (1, 17, 32) vs config (1, 17, 48)" in message
    assert "cls_token: weights (1, 1, 32) vs config (1, 1, 48)" in message


@pytest.mark.parametrize(
    "edit, message",
    [
        (lambda c: c.pop("dim"), "the checkpoint's config is missing: dim"),
        (lambda c: [c.pop("depth"), c.pop("class_names")], "the checkpoint's config is missing: depth, class_names"),
        (lambda c: c.update(heads=3), "the checkpoint's config is invalid: dim 32 is not divisible by heads 3"),
        (
            lambda c: c.update(depth="two"),
            "the checkpoint's config is invalid: depth must be a whole number, got 'two'",
        ),
        (lambda c: c.update(dataset="imagenet"), "unknown dataset 'imagenet'"),
        (lambda c: "[1, 2, 3]", "other.zip/config.json must hold a JSON object"),
        (lambda c: "{not json", "other.zip/config.json is not valid JSON"),
    ],
)
def test_a_bad_config_json_is_explained(app, tmp_path, tiny_model, edit, message):
    folder = checkpoints.save(tiny_model, tmp_path / "other", checkpoints.default_info("mnist"))
    config = json.loads((folder / "config.json").read_text())
    replaced = edit(config)
    (folder / "config.json").write_text(replaced if isinstance(replaced, str) else json.dumps(config))
    archive = zipped(tmp_path, "other.zip", checkpoint_members(folder))
    assert message in refused(app.explore.upload_checkpoint, str(archive))


def test_a_zip_with_extra_files_loads_only_the_checkpoint_and_unpacks_nothing(app, tmp_path, tiny_checkpoints):
    members = checkpoint_members(tiny_checkpoints / "mnist")
    members.update(
        {
            "mnist/README.md": b"hello",
            "mnist/run.sh": b"touch pwned",
            "../../escape.txt": b"zip slip",
            "__MACOSX/._config.json": b"\x00\x05\x16\x07",
        }
    )
    (tmp_path / "uploads").mkdir()
    archive = zipped(tmp_path / "uploads", "with-extras.zip", members)
    uploaded, menu_value = app.explore.upload_checkpoint(str(archive))
    assert menu_value == UPLOADED and uploaded.info["dataset"] == "mnist"
    assert uploaded.origin == "uploaded (with-extras.zip)"
    assert not (tmp_path / "escape.txt").exists() and sorted(p.name for p in (tmp_path / "uploads").iterdir()) == [
        "with-extras.zip"
    ]
    # The uploaded model then answers like any other.
    assert set(app.explore.predict(str(EXAMPLE), UPLOADED, None, uploaded)) == DIGITS


def test_a_zip_without_the_weights_says_what_is_missing(app, tmp_path):
    archive = zipped(tmp_path, "half.zip", {"model/config.json": b"{}", "model/notes.txt": b"x"})
    assert refused(app.explore.upload_checkpoint, str(archive)) == (
        "half.zip has no model.safetensors: zip a checkpoint folder made by this app"
    )


def test_checkpoints_over_the_size_limit_are_refused_before_reading(app, tmp_path, tiny_checkpoints, monkeypatch):
    monkeypatch.setenv("VIT_DEMO_MAX_CHECKPOINT_MB", "0.01")  # 10 KB; the tiny model's zip is ~60 KB
    archive = checkpoints.zip_checkpoint(tiny_checkpoints / "mnist", tmp_path / "big.zip")
    size = archive.stat().st_size / 2**20
    assert refused(app.explore.upload_checkpoint, str(archive)) == (
        f"big.zip is {size:.1f} MB, over the 0 MB limit for checkpoints (set VIT_DEMO_MAX_CHECKPOINT_MB to allow more)"
    )
    # A small zip that unpacks into something huge (a zip bomb) is caught from the directory.
    monkeypatch.setenv("VIT_DEMO_MAX_CHECKPOINT_MB", "1")
    bomb = tmp_path / "bomb.zip"
    with zipfile.ZipFile(bomb, "w", zipfile.ZIP_DEFLATED) as z:
        z.writestr("m/config.json", "{}")
        z.writestr("m/model.safetensors", b"\x00" * (3 * 2**20))
    assert bomb.stat().st_size < 2**20
    assert refused(app.explore.upload_checkpoint, str(bomb)).startswith(
        "bomb.zip (unpacked) is 3.0 MB, over the 1 MB limit for checkpoints"
    )


def test_a_text_file_named_like_a_checkpoint_is_explained(app, tmp_path):
    fake = tmp_path / "model.pt"
    fake.write_text("definitely weights")
    assert "model.pt is not a readable PyTorch file" in refused(app.explore.upload_checkpoint, str(fake))
    fake_zip = tmp_path / "model.zip"
    fake_zip.write_text("definitely a zip")
    assert "model.zip is not a readable zip file" in refused(app.explore.upload_checkpoint, str(fake_zip))


def test_half_written_checkpoints_are_never_loaded(tmp_path, tiny_checkpoints, tiny_model):
    shelf = tmp_path / "shelf"
    checkpoints.save(tiny_model, shelf / "mnist", checkpoints.default_info("mnist"))

    # A save that dies half-way leaves the old checkpoint whole and nothing else behind.
    def crash(self, folder, config=None):
        (Path(folder) / "model.safetensors").write_bytes(b"half")
        raise OSError("disk full")

    bigger = create_model("mnist", seed=1, **{**TINY, "dim": 48, "heads": 4})
    original = type(bigger).save_pretrained
    type(bigger).save_pretrained = crash
    try:
        with pytest.raises(OSError, match="disk full"):
            checkpoints.save(bigger, shelf / "mnist", checkpoints.default_info("mnist"))
    finally:
        type(bigger).save_pretrained = original
    assert sorted(p.name for p in shelf.iterdir()) == ["mnist"]
    # What a crash at a worse moment would leave: a staging folder and a partial zip. The
    # app loads neither; the finished checkpoint loads as it was.
    (shelf / ".mnist.abc123").mkdir()
    (shelf / ".mnist.abc123" / "config.json").write_text("{}")
    (shelf / "fashion_mnist.zip.partial").write_bytes(b"PK\x03\x04")
    library = ModelLibrary(shelf)
    assert list(library.models) == ["mnist"] and library.problems == []
    assert library.models["mnist"].model.config.dim == 32


# ================================================================== data


def test_a_missing_dataset_names_the_files_and_the_folder(tmp_path, tiny_checkpoints):
    empty = tmp_path / "no-data"
    no_data = App(settings_for(tmp_path, tiny_checkpoints, data_dir=empty))
    message = refused(no_data.train.train, **train_inputs())
    assert message.startswith(
        f"MNIST (handwritten digits) is not in {empty} (downloads are switched off).\nMissing files:\n"
    )
    for name in (
        "train-images-idx3-ubyte",
        "train-labels-idx1-ubyte",
        "t10k-images-idx3-ubyte",
        "t10k-labels-idx1-ubyte",
    ):
        assert f"  - {empty / 'MNIST' / 'raw' / name}\n" in message
    assert f"Put them in {empty / 'MNIST'} (torchvision's layout)" in message
    assert message.endswith("`export VIT_DEMO_DATA=/path/to/data` or `--data-dir /path/to/data`.")


def test_no_network_is_reported_with_the_download_error(tmp_path, tiny_checkpoints, monkeypatch):
    monkeypatch.setenv("VIT_DEMO_DOWNLOAD", "1")

    def offline(spec, root):
        raise OSError("<urlopen error [Errno -3] Temporary failure in name resolution>")

    monkeypatch.setattr(data, "_download", offline)
    empty = tmp_path / "offline"
    no_network = App(settings_for(tmp_path, tiny_checkpoints, data_dir=empty))
    message = refused(no_network.train.train, **train_inputs(dataset="fashion_mnist"))
    assert "the download failed: <urlopen error [Errno -3] Temporary failure in name resolution>" in message
    assert f"  - {empty / 'FashionMNIST' / 'raw' / 'train-images-idx3-ubyte'}" in message


def test_a_half_downloaded_dataset_is_detected_not_crashed_on(tmp_path, tiny_checkpoints, data_dir):
    raw = tmp_path / "data" / "MNIST" / "raw"
    raw.mkdir(parents=True)
    for name in ("train-labels-idx1-ubyte", "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"):
        (raw / name).symlink_to(data_dir / "MNIST" / "raw" / name)
    (raw / "train-images-idx3-ubyte").write_bytes(
        (data_dir / "MNIST" / "raw" / "train-images-idx3-ubyte").read_bytes()[:5000]
    )
    broken = App(settings_for(tmp_path, tiny_checkpoints, data_dir=tmp_path / "data"))
    message = refused(broken.train.train, **train_inputs())
    assert message.startswith(f"MNIST (handwritten digits) in {raw.parent} could not be read (")
    assert message.endswith(
        "A file may be half-downloaded or damaged: delete the folder's files and download them again."
    )
    # The app keeps serving: the next person's Explore still answers.
    assert set(broken.explore.predict(str(EXAMPLE), "mnist")) == DIGITS


# ================================================================== faults during training


def wait_for(condition, timeout: float = 60.0) -> None:
    """Until `condition()` holds; a test failure if it never does."""
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "it never happened"
        time.sleep(0.05)


# The tests below call the Train handler as a page's own Start does (`pace=0.0`: every frame);
# a script streaming "/train" gets them paced, as the next test checks.


def test_a_script_streaming_a_run_gets_an_update_at_most_every_pace_seconds_and_the_end_at_once(trainer):
    pace = 1.0
    frames, times = [], []
    for frame in trainer.train.train(
        **train_inputs(length="time", seconds=4, seed=21), request=session("a"), pace=pace
    ):
        frames.append(as_outputs(frame))
        times.append(time.monotonic())
    assert len(times[1:]) >= 3  # after "Getting ready": the run's frames, the first at once
    # The first training step goes out at once too; from there, one frame per `pace`.
    first_step = next(i for i, f in enumerate(frames) if str(f["metrics"]).startswith("Step **"))
    stepping = times[first_step:]
    assert all(later - earlier >= pace for earlier, later in zip(stepping, stepping[1:-1]))
    assert "Test accuracy" in frames[-1]["status"]  # the end is not held back
    assert frames[-1]["loss"] is not None
    every = list(trainer.train.train(pace=0.0, **train_inputs(length="time", seconds=4, seed=22), request=session("b")))
    assert len(every) > len(frames)


def run_until_training(run) -> list[dict]:
    """Frames of `run` until the first one reporting a step past 0."""
    frames = []
    for frame in run:
        frames.append(as_outputs(frame))
        if str(frames[-1]["metrics"]).startswith("Step **"):
            return frames
    raise AssertionError("the run ended before it reported a step")


def test_stop_mid_epoch_keeps_a_usable_model(trainer):
    run = trainer.train.train(pace=0.0, **train_inputs(length="time", seconds=60), request=session("stopper"))
    run_until_training(run)
    assert "Stopping" in trainer.train.stop(session("stopper"))
    last = as_outputs(list(run)[-1])
    assert "Stopped early" in last["status"]
    mine = last["my_model"]
    # Usable in Explore, and its download is a whole checkpoint.
    _, label, *_ = trainer.explore.explore(MINE, None, "where", "mean", 0.0, 2, "mean", mine, None)
    assert set(label) == DIGITS
    model, info = checkpoints.load(last["download"].value["path"])
    assert info["training"]["stopped_early"] is True and model.config == mine.model.config
    assert not [
        p for p in trainer.settings.work_dir.rglob("*") if p.name.endswith(".partial") or p.name.startswith(".")
    ]
    assert (trainer.trainings.running, trainer.trainings.waiting) == (0, 0)


def test_a_closed_tab_ends_its_training_and_frees_the_seat(trainer):
    run = trainer.train.train(pace=0.0, **train_inputs(length="time", seconds=60), request=session("leaver"))
    run_until_training(run)
    assert trainer.trainings.running == 1
    run.close()  # what Gradio does when the browser tab goes away
    wait_for(lambda: (trainer.trainings.running, trainer.trainings.waiting) == (0, 0))  # the run stops at its next step
    # ... and so does a tab closed while waiting in line.
    someone = trainer.trainings.join()
    assert trainer.trainings.wait_turn(someone, 0) == 0
    queued = trainer.train.train(pace=0.0, **train_inputs(), request=session("impatient"))
    assert "number 1 in line" in [as_outputs(next(queued)) for _ in range(2)][-1]["status"]
    queued.close()
    wait_for(lambda: (trainer.trainings.running, trainer.trainings.waiting) == (1, 0))  # it left the line
    trainer.trainings.leave(someone)


def test_two_starts_clicked_quickly_both_finish_one_after_the_other(trainer):
    same_tab = session("double-click")
    first = trainer.train.train(pace=0.0, **train_inputs(epochs=0.5), request=same_tab)
    second = trainer.train.train(pace=0.0, **train_inputs(epochs=0.5, seed=1), request=same_tab)
    next(first), next(first)  # the first holds the seat
    waiting = [as_outputs(next(second)) for _ in range(2)][-1]
    assert "number 1 in line" in waiting["status"]
    done_first = as_outputs(list(first)[-1])
    done_second = as_outputs(list(second)[-1])
    assert "Test accuracy" in done_first["status"] and "Test accuracy" in done_second["status"]
    # The page keeps the last one; its download is whole and is that model.
    model, info = checkpoints.load(done_second["download"].value["path"])
    assert info["training"]["seed"] == 1 and done_second["my_model"].model.config == model.config
    assert (trainer.trainings.running, trainer.trainings.waiting) == (0, 0)


def test_start_while_exploring_keeps_the_old_model_until_the_new_one_is_ready(trainer):
    explore_args = ("where", "mean", 0.0, 2, "mean")
    old = as_outputs(list(trainer.train.train(pace=0.0, **train_inputs(epochs=0.5), request=session("curious")))[-1])[
        "my_model"
    ]
    before = trainer.explore.explore(MINE, None, *explore_args, old, None)[1]
    finished = []
    thread = threading.Thread(
        target=lambda: finished.extend(
            trainer.train.train(pace=0.0, **train_inputs(epochs=0.5, seed=3), request=session("curious"))
        )
    )
    thread.start()
    answers = []
    while thread.is_alive() and len(answers) < 20:
        answers.append(trainer.explore.explore(MINE, None, *explore_args, old, None)[1])
    thread.join(timeout=120)
    assert not thread.is_alive() and answers
    assert all(answer == pytest.approx(before) for answer in answers)  # the old model, unchanged
    new = as_outputs(finished[-1])["my_model"]
    assert new is not old and new.info["training"]["seed"] == 3
    assert set(trainer.explore.explore(MINE, None, *explore_args, new, None)[1]) == DIGITS


def test_sessions_never_see_each_others_models(trainer):
    alice = as_outputs(
        list(trainer.train.train(pace=0.0, **train_inputs(epochs=0.5, seed=5), request=session("alice")))[-1]
    )
    bob = as_outputs(
        list(trainer.train.train(pace=0.0, **train_inputs(epochs=0.5, seed=6), request=session("bob")))[-1]
    )
    assert alice["my_model"].files != bob["my_model"].files
    assert Path(alice["download"].value["path"]).is_file() and Path(bob["download"].value["path"]).is_file()
    # A session without a model of its own gets the message, not someone else's model.
    assert "have not trained a model yet" in refused(trainer.explore.predict, str(EXAMPLE), MINE, None, None)


def test_pages_that_ask_for_the_same_settings_share_one_run_and_get_the_same_model(trainer):
    first = trainer.train.train(pace=0.0, **train_inputs(epochs=0.5, seed=7), request=session("carol"))
    run_until_training(first)
    # Dave asks for the same settings while Carol's run trains: he follows it, no second run starts.
    dave_frames = [
        as_outputs(f)
        for f in trainer.train.train(pace=0.0, **train_inputs(epochs=0.5, seed=7), request=session("dave"))
    ]
    carol = as_outputs(list(first)[-1])
    dave = dave_frames[-1]
    assert "Same settings as a run already on this server: sharing its result" in dave["status"]
    assert "Test accuracy" in dave["status"] and "Same settings" not in carol["status"]
    for name, tensor in carol["my_model"].model.state_dict().items():
        assert torch.equal(tensor, dave["my_model"].model.state_dict()[name]), name
    # Each keeps a copy of its own: one session's end cannot take the other's files.
    assert carol["my_model"].files != dave["my_model"].files
    assert Path(carol["download"].value["path"]).is_file() and Path(dave["download"].value["path"]).is_file()
    assert len(trainer.train.hub.runs()) == 1
    # Later, a third page gets the finished run at once: the whole curve and the model.
    erin = [
        as_outputs(f)
        for f in trainer.train.train(pace=0.0, **train_inputs(epochs=0.5, seed=7), request=session("erin"))
    ]
    assert len(erin) == 2 and erin[-1]["status"].startswith("**Same settings") and erin[-1]["loss"] is not None
    assert len(trainer.train.hub.runs()) == 1


def test_a_shared_runs_stop_leaves_it_to_the_others_and_the_last_ones_stop_keeps_the_model(trainer):
    settings = train_inputs(length="time", seconds=60, seed=8)
    frank = trainer.train.train(pace=0.0, **settings, request=session("frank"))
    run_until_training(frank)
    grace = trainer.train.train(pace=0.0, **settings, request=session("grace"))
    next(grace), next(grace)
    trainer.train.stop(session("frank"))
    left = as_outputs(list(frank)[-1])
    assert "You stopped watching. The run goes on for the 1 other page" in left["status"]
    assert left["my_model"] == gr.skip()
    trainer.train.stop(session("grace"))  # the last one watching: the run stops, its model is kept
    kept = as_outputs(list(grace)[-1])
    assert "Stopped early" in kept["status"] and kept["my_model"].model is not None
    assert trainer.train.hub.runs() == []  # a stopped run is never handed to anyone else


def test_a_class_run_started_by_the_teacher_shows_on_every_lesson_page_and_its_model_is_theirs(trainer):
    student = session("student")
    timer, watch = trainer.train.watch_class_run(True, None, student)
    assert timer == gr.skip() and watch.active  # nothing to show yet: it keeps looking
    assert trainer.train.watch_class_run(False, None, student)[1].active is False  # not a class run's page
    teacher = trainer.train.train(
        pace=0.0, **train_inputs(epochs=0.5, seed=9), class_lesson=True, request=session("teacher")
    )
    run_until_training(teacher)
    live, watch = trainer.train.watch_class_run(True, None, student)
    assert live.active and not watch.active
    watching = trainer.train._live[_session_key(student)]
    watching.join(120)
    changes, finished = watching.take()
    seen = as_outputs(changes)
    assert finished and "Test accuracy" in seen["status"] and seen["my_model"].model is not None
    taught = as_outputs(list(teacher)[-1])
    for name, tensor in taught["my_model"].model.state_dict().items():
        assert torch.equal(tensor, seen["my_model"].model.state_dict()[name]), name


def test_a_downloaded_run_brings_back_its_curves_timeline_and_model(trainer, tiny_checkpoints, tmp_path):
    original = as_outputs(
        list(trainer.train.train(pace=0.0, **train_inputs(epochs=0.5, seed=11), request=session("hana")))[-1]
    )
    saved = original["download"].value["path"]
    back = as_outputs(trainer.train.restore(saved, None, session("ivan"))[:-1])
    assert back["status"].startswith("### Restored: test accuracy")
    assert back["loss"].equals(original["loss"]) and back["accuracy"].equals(original["accuracy"])
    assert len(back["timeline"]) == len(original["timeline"]) and isinstance(back["timeline_frame"], Image.Image)
    for name, tensor in original["my_model"].model.state_dict().items():
        assert torch.equal(tensor, back["my_model"].model.state_dict()[name]), name
    assert back["explore_model"] == MINE and back["runs"][-1].steps == original["runs"][-1].steps
    assert back["confusion_cells"] == original["confusion_cells"]
    # A plain checkpoint is a model without its run: Explore opens it, this says where.
    plain = checkpoints.zip_checkpoint(tiny_checkpoints / "mnist", tmp_path / "plain.zip")
    with pytest.raises(gr.Error, match="a model without its run: open it in ③ Explore"):
        trainer.train.restore(str(plain), None, session("ivan"))


# ================================================================== through gradio_client


@pytest.fixture(scope="module")
def served(tiny_checkpoints, tmp_path_factory):
    settings = AppSettings(
        checkpoint_dir=tiny_checkpoints,
        examples_dir=REPO / "examples",
        data_dir=str(tmp_path_factory.mktemp("no-data")),
        train_limit=512,
        test_limit=256,
        work_dir=tmp_path_factory.mktemp("work"),
    )
    with serving(settings) as address:
        assert address.startswith("http://127.0.0.1:")
        yield Client(address, verbose=False)


def test_a_client_sees_the_upload_messages(served, tmp_path):
    bomb = tmp_path / "bomb.png"
    bomb.write_bytes(png_claiming_size(30000, 30000))
    with pytest.raises(AppError, match="bomb.png is 30000x30000 pixels \\(900 megapixels\\), over the 40-megapixel"):
        served.predict(handle_file(str(bomb)), "mnist", api_name="/predict")
    text = tmp_path / "photo.png"
    text.write_text("not a photo")
    with pytest.raises(AppError, match="photo.png is not an image PIL can read"):
        served.predict(handle_file(str(text)), "mnist", api_name="/predict")
    files = odd_uploads(tmp_path)
    for name in ("cmyk.jpg", "sixteen-bit.png", "animated.gif", "transparent.png", "phone.jpg"):
        result = served.predict(handle_file(str(files[name])), "mnist", api_name="/predict")
        assert result["label"] in DIGITS, name


def test_a_client_sees_the_hyperparameter_messages_and_the_server_keeps_serving(served):
    common = dict(lr=0.003, batch_size=128, length="time", seconds=5, epochs=1, seed=0)
    with pytest.raises(AppError, match="too big for this server: training it with batch_size 128 needs about 228.6 GB"):
        served.predict(**HUGE_CIFAR, **common, api_name="/train")
    with pytest.raises(AppError, match="image_size 28 is not divisible by patch_size 5"):
        served.predict(**{**TINY, "patch_size": 5}, dataset="mnist", **common, api_name="/train")
    # A CIFAR patch size the MNIST-first page does not list reaches the app's own checks
    # (here: no CIFAR data on this server), not Gradio's "not in the list of choices".
    with pytest.raises(AppError, match=r"CIFAR-10 .* is not in .*no-data"):
        served.predict(
            dataset="cifar10", patch_size=8, dim=96, depth=4, heads=4, mlp_dim=192, **common, api_name="/train"
        )
    assert served.predict(handle_file(str(EXAMPLE)), "mnist", api_name="/predict")["label"] in DIGITS


def test_pictures_in_gradios_cache_are_written_once_and_whole(app, tmp_path):
    from gradio import processing_utils

    build_demo(app.settings, app)  # installs the app's cache writer
    picture = digit("RGB")
    first = processing_utils.save_pil_to_cache(picture, str(tmp_path / "cache"), format="png")
    inode, written = os.stat(first).st_ino, os.stat(first).st_mtime_ns
    time.sleep(0.02)
    with open(first, "rb") as being_served:
        # The same picture again (another student, the same example): the file a browser is
        # downloading is left alone, not truncated and rewritten under it.
        again = processing_utils.save_pil_to_cache(picture, str(tmp_path / "cache"), format="png")
        assert again == first and (os.stat(again).st_ino, os.stat(again).st_mtime_ns) == (inode, written)
        assert Image.open(io.BytesIO(being_served.read())).size == (64, 64)
    assert [p.name for p in Path(first).parent.iterdir()] == ["image.png"]  # no staging files left


def test_skipped_outputs_reach_the_page_as_gradio_would_send_them_without_its_work(app):
    import asyncio

    from gradio.blocks import Blocks
    from gradio.state_holder import SessionState

    from vit_demo.ui.train_tab import frame

    demo = build_demo(app.settings, app)
    train = next(fn for fn in demo.fns.values() if fn.api_name == "train")
    patched = Blocks.postprocess_data
    assert patched.vit_demo_skips
    frames = [frame(status="**Training**", metrics="Step **3**"), frame(status="one output"), frame()]
    for values in frames:
        ours = asyncio.run(patched(demo, train, list(values), SessionState(demo)))
        gradios = asyncio.run(patched.original(demo, train, list(values), SessionState(demo)))
        assert ours == gradios


def test_a_picture_shown_to_a_whole_class_is_encoded_once(app, tmp_path, monkeypatch):
    from gradio import processing_utils

    build_demo(app.settings, app)
    encoded = []
    real = processing_utils.encode_pil_to_bytes
    monkeypatch.setattr(processing_utils, "encode_pil_to_bytes", lambda *a, **k: encoded.append(1) or real(*a, **k))
    shared = digit("RGB")  # one frame of a shared run, sent to thirty pages
    paths = {processing_utils.save_pil_to_cache(shared, str(tmp_path / "cache"), format="png") for _ in range(30)}
    assert len(paths) == 1 and len(encoded) == 1
    twin = digit("RGB")  # another picture that happens to look the same: encoded, and the same file
    assert processing_utils.save_pil_to_cache(twin, str(tmp_path / "cache"), format="png") in paths
    assert len(encoded) == 2
