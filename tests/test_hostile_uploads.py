"""Hostile and awkward uploads, as a class of 30 would send them: every bad picture and checkpoint
gets a specific message (asserted as the person reads it), nothing in a file runs, limits are
checked before the work they guard, and awkward but valid files are converted and predicted.
Library-level checks of the same inputs live in test_images.py and test_checkpoints.py."""

import html
import io
import json
import pickle
import zipfile
from pathlib import Path

import gradio as gr
import numpy as np
import pytest
import torch
from PIL import Image, ImageDraw
from ui_helpers import EXAMPLE, REPO, TINY, digit, explore_values

from tools.hostile_files import lying_zip, png_claiming_size
from vit_demo import checkpoints
from vit_demo.service.library import UPLOADED, ModelLibrary
from vit_demo.training import create_model

pytestmark = pytest.mark.usefixtures("one_thread")

DIGITS = {str(d) for d in range(10)}


def shown(raised: pytest.ExceptionInfo) -> str:
    """A gr.Error as the person reads it (the page renders the message as HTML)."""
    return html.unescape(str(raised.value.message).replace("<br>", "\n"))


def refused(call, *args, **kwargs) -> str:
    """The message a handler shows instead of an answer."""
    with pytest.raises(gr.Error) as raised:
        call(*args, **kwargs)
    return shown(raised)


def png_bytes(image: Image.Image, **kwargs) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG", **kwargs)
    return buffer.getvalue()


def jpeg_bytes(image: Image.Image, **kwargs) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format="JPEG", **kwargs)
    return buffer.getvalue()


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
def test_bad_uploads_get_a_specific_message_in_explore_and_the_predict_api(explore, tmp_path, name, content, message):
    path = tmp_path / name
    path.write_bytes(content)
    assert message in refused(explore.use_upload, {"upload": str(path)})
    assert message in refused(explore.predict, str(path), "mnist")


def test_a_decompression_bomb_is_refused_before_its_pixels_are_decoded(explore, tmp_path, monkeypatch):
    bomb = tmp_path / "bomb.png"
    bomb.write_bytes(png_claiming_size(30000, 30000))
    assert bomb.stat().st_size < 200  # a few bytes that would inflate to 900 MB
    decoded = []
    monkeypatch.setattr(Image.Image, "load", lambda self: decoded.append(self) or None)
    assert "over the 40-megapixel limit" in refused(explore.predict, str(bomb), "mnist")
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


def test_awkward_but_valid_uploads_are_converted_and_predicted(shipped_explore, tmp_path):
    explore = shipped_explore  # the shipped MNIST model reads each of these 7s as a 7 once it is prepared right
    files = odd_uploads(tmp_path)
    for name, path in files.items():
        picture = explore.use_upload({"upload": str(path)})["image"]
        assert isinstance(picture, Image.Image), name
        probabilities = explore.predict(str(path), "mnist")
        assert set(probabilities) == DIGITS and sum(probabilities.values()) == pytest.approx(1.0, abs=1e-4), name
        if name != "wide.png":  # squeezed 200-fold into a 20-pixel box, it reads as a 1
            assert max(probabilities, key=probabilities.get) == "7", (name, probabilities)
        display = explore.explore(explore_values(image=picture))["explored"].explanation.preprocessed.display
        # The model sees the digit: ink and paper, not a blank page (an RGBA drawing flattened
        # to black, a 16-bit PNG clipped to white would leave one value). The 4000x100 seven
        # shrinks 200-fold to fit 20 pixels: its strokes fade to grey.
        assert int(display.max()) - int(display.min()) > (30 if name == "wide.png" else 100), name
    assert explore.use_upload({"upload": str(files["phone.jpg"])})["image"].size == (64, 48)  # turned upright from EXIF
    assert Image.open(files["animated.gif"]).n_frames == 2
    first = explore.use_upload({"upload": str(files["animated.gif"])})["image"].convert("RGB")
    assert first.getpixel((0, 0)) == (255, 255, 255)  # the first frame (white paper), not the red one
    sixteen_bit = explore.use_upload({"upload": str(files["sixteen-bit.png"])})["image"]
    assert sixteen_bit.mode.startswith("I")  # values kept, not clipped
    assert explore.use_upload({"upload": str(files["wide.png"])})["image"].size == (4000, 100)


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


def test_a_checkpoint_that_would_run_code_is_refused_and_the_code_never_runs(explore, tmp_path, tiny_model):
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
    message = refused(explore.upload_checkpoint, {"checkpoint": str(evil)})
    assert message.startswith(
        "evil.pt was refused: it contains Python objects other than tensors and plain data, "
        "which could run code when loaded."
    )
    assert not marker.exists()


def test_weights_for_another_architecture_name_the_shapes_that_differ(explore, tmp_path, tiny_model):
    folder = checkpoints.save(tiny_model, tmp_path / "other", checkpoints.default_info("mnist"))
    config = json.loads((folder / "config.json").read_text())
    config.update(dim=48, heads=3)
    (folder / "config.json").write_text(json.dumps(config))
    archive = zipped(tmp_path, "other.zip", checkpoint_members(folder))
    message = refused(explore.upload_checkpoint, {"checkpoint": str(archive)})
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
def test_a_bad_config_json_is_explained(explore, tmp_path, tiny_model, edit, message):
    folder = checkpoints.save(tiny_model, tmp_path / "other", checkpoints.default_info("mnist"))
    config = json.loads((folder / "config.json").read_text())
    replaced = edit(config)
    (folder / "config.json").write_text(replaced if isinstance(replaced, str) else json.dumps(config))
    archive = zipped(tmp_path, "other.zip", checkpoint_members(folder))
    assert message in refused(explore.upload_checkpoint, {"checkpoint": str(archive)})


def test_a_zip_with_extra_files_loads_only_the_checkpoint_and_unpacks_nothing(explore, tmp_path):
    members = checkpoint_members(REPO / "checkpoints" / "mnist")  # the shipped model, uploaded
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
    chosen = explore.upload_checkpoint({"checkpoint": str(archive)})
    uploaded, menu_value = chosen["uploaded"], chosen["model"]
    assert menu_value == UPLOADED and uploaded.info["dataset"] == "mnist"
    assert uploaded.origin == "uploaded (with-extras.zip)"
    assert not (tmp_path / "escape.txt").exists() and sorted(p.name for p in (tmp_path / "uploads").iterdir()) == [
        "with-extras.zip"
    ]
    # The uploaded model then answers like any other: it reads the 7 as a 7.
    probabilities = explore.predict(str(EXAMPLE), UPLOADED, None, uploaded)
    assert set(probabilities) == DIGITS and max(probabilities, key=probabilities.get) == "7"


def test_a_zip_without_the_weights_says_what_is_missing(explore, tmp_path):
    archive = zipped(tmp_path, "half.zip", {"model/config.json": b"{}", "model/notes.txt": b"x"})
    assert refused(explore.upload_checkpoint, {"checkpoint": str(archive)}) == (
        "half.zip has no model.safetensors: zip a checkpoint folder made by this app"
    )


def test_checkpoints_over_the_size_limit_are_refused_before_reading(explore, tmp_path, tiny_checkpoints, monkeypatch):
    monkeypatch.setenv("VIT_DEMO_MAX_CHECKPOINT_MB", "0.01")  # 10 KB; the tiny model's zip is ~60 KB
    archive = checkpoints.zip_checkpoint(tiny_checkpoints / "mnist", tmp_path / "big.zip")
    size = archive.stat().st_size / 2**10
    assert refused(explore.upload_checkpoint, {"checkpoint": str(archive)}) == (
        f"big.zip is {size:.0f} KB, over the 10 KB limit for checkpoints (set VIT_DEMO_MAX_CHECKPOINT_MB to allow more)"
    )
    # A small zip that unpacks into something huge (a zip bomb) is caught from the directory.
    monkeypatch.setenv("VIT_DEMO_MAX_CHECKPOINT_MB", "1")
    bomb = tmp_path / "bomb.zip"
    with zipfile.ZipFile(bomb, "w", zipfile.ZIP_DEFLATED) as z:
        z.writestr("m/config.json", "{}")
        z.writestr("m/model.safetensors", b"\x00" * (3 * 2**20))
    assert bomb.stat().st_size < 2**20
    assert refused(explore.upload_checkpoint, {"checkpoint": str(bomb)}).startswith(
        "bomb.zip/model.safetensors is 3 MB unpacked, over the 1 MB limit for checkpoints"
    )


def test_a_text_file_named_like_a_checkpoint_is_explained(explore, tmp_path):
    fake = tmp_path / "model.pt"
    fake.write_text("definitely weights")
    assert "model.pt is not a readable PyTorch file" in refused(explore.upload_checkpoint, {"checkpoint": str(fake)})
    fake_zip = tmp_path / "model.zip"
    fake_zip.write_text("definitely a zip")
    assert "model.zip is not a readable zip file" in refused(explore.upload_checkpoint, {"checkpoint": str(fake_zip)})


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


def test_a_zip_that_lies_about_its_size_is_refused_without_inflating_it(explore, tmp_path):
    import tracemalloc

    bomb = lying_zip(tmp_path / "liar.zip", real_bytes=256 * 2**20, declared=100)
    assert bomb.stat().st_size < 2**20  # 256 MB of zeros, deflated
    tracemalloc.start()
    try:
        message = refused(explore.upload_checkpoint, {"checkpoint": str(bomb)})
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert message.startswith("liar.zip is not a readable zip file") and "model.safetensors" in message
    assert peak < 16 * 2**20  # read as far as it declares, never the 256 MB it holds


def test_a_config_declaring_a_huge_model_is_refused_before_anything_is_built(
    explore, tmp_path, tiny_model, monkeypatch
):
    folder = checkpoints.save(tiny_model, tmp_path / "m", checkpoints.default_info("mnist"))
    config = json.loads((folder / "config.json").read_text())
    config.update(dim=8192, mlp_dim=32768, depth=12, heads=8)  # 37 GB of weights, in a 1 KB file
    (folder / "config.json").write_text(json.dumps(config))
    built = []
    from vit_demo import model as model_module

    original = model_module.ViT.__init__
    monkeypatch.setattr(model_module.ViT, "__init__", lambda self, *a, **k: built.append(1) or original(self, *a, **k))
    huge = checkpoints.zip_checkpoint(folder, tmp_path / "huge.zip")
    message = refused(explore.upload_checkpoint, {"checkpoint": str(huge)})
    assert "declares a model of 9,934,323,722 parameters" in message and "over the 100 MB limit" in message
    assert built == []  # refused from the config alone
