"""A person's own dataset (vit_demo/own_data.py): a zip of class folders or pictures taken in the
page become a small colour dataset with a held-out split; every hostile or unusable zip is refused
with its own sentence naming the file, within bounded memory, and nothing is written anywhere."""

import io
import tempfile
import tracemalloc
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image, ImageDraw

from tools.hostile_files import DATASET_CLASSES, dataset_zip, hostile_dataset_zips, shape_picture
from vit_demo import own_data
from vit_demo.own_data import SOURCE_SIZE, OwnDataError

MB = 2**20


def refusal(source, **kwargs) -> str:
    with pytest.raises(OwnDataError) as raised:
        own_data.read_archive(source, **kwargs)
    return str(raised.value)


def png(image: Image.Image, **kwargs) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG", **kwargs)
    return buffer.getvalue()


def zipped(path: Path, members: dict[str, bytes]) -> Path:
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, content in members.items():
            archive.writestr(name, content)
    return path


def members_of(path: Path) -> dict[str, bytes]:
    with zipfile.ZipFile(path) as archive:
        return {info.filename: archive.read(info) for info in archive.infolist()}


# ================================================================== valid datasets


def test_a_zip_of_class_folders_reads_as_a_dataset_with_a_fifth_held_out(tmp_path):
    dataset = own_data.read_archive(dataset_zip(tmp_path))
    assert dataset.title == "shapes"
    assert dataset.class_names == DATASET_CLASSES
    for split, count in ((dataset.train, 18), (dataset.test, 6)):
        assert split.images.shape == (count, 3, SOURCE_SIZE, SOURCE_SIZE) and split.images.dtype == torch.uint8
        assert split.labels.dtype == torch.int64
        assert torch.bincount(split.labels).tolist() == [count // 3] * 3  # 8 per class: 2 held out
    assert dataset.describe() == (
        "3 classes (circles, squares, triangles): 18 training pictures and 6 held-out test pictures"
    )
    assert len(dataset.digest) == 16
    # the held-out pictures are not among the training ones
    train = {bytes(picture.numpy()) for picture in dataset.train.images}
    assert not train & {bytes(picture.numpy()) for picture in dataset.test.images}


def test_the_same_pictures_give_the_same_split_and_digest_however_they_are_zipped(tmp_path):
    original = own_data.read_archive(dataset_zip(tmp_path))
    from_bytes = own_data.read_archive(dataset_zip(tmp_path).read_bytes(), name="shapes.zip")
    assert (from_bytes.title, from_bytes.digest) == ("shapes", original.digest)
    # no top folder, other file names, reversed order, Windows separators, and what macOS and
    # Windows add to a zip (all skipped)
    renamed = {
        name.replace("shapes/", "").replace("/", "\\").replace(".png", "-copy.png"): content
        for name, content in reversed(members_of(dataset_zip(tmp_path)).items())
    }
    junk = {"__MACOSX/shapes/circles/._0.png": b"\x00\x05\x16\x07", ".DS_Store": b"\x00\x00\x00\x01Bud1"}
    junk |= {"squares/Thumbs.db": b"\xd0\xcf", "circles/.hidden.png": b"x", "squares/": b"", "triangles/.git/x": b"y"}
    again = own_data.read_archive(zipped(tmp_path / "again.zip", {**junk, **renamed}))
    assert (again.digest, again.class_names) == (original.digest, original.class_names)
    assert torch.equal(again.test.images, original.test.images) and again.title == "again"
    # another picture changes it
    members = members_of(dataset_zip(tmp_path))
    members["shapes/circles/0.png"] = shape_picture("circles", 40)
    assert own_data.read_archive(zipped(tmp_path / "changed.zip", members)).digest != original.digest


def test_pictures_of_any_size_and_mode_are_prepared_alike(tmp_path):
    """Grey, RGBA, palette, 16-bit, EXIF-rotated, flat (packs 100s of times smaller), 4x4 and wide."""
    wide = Image.new("RGB", (40, 20), "red")
    wide.paste((0, 0, 255), (20, 0, 40, 20))  # stored: left red, right blue
    exif = Image.Exif()
    exif[0x0112] = 6  # shown rotated 90 degrees clockwise: red on top
    awkward = {
        "grey": png(Image.new("L", (30, 50), 90)),
        "rgba": png(Image.new("RGBA", (32, 32), (10, 200, 10, 128))),
        "palette": png(Image.new("RGB", (20, 20), "green").convert("P")),
        "sixteen": png(Image.fromarray(np.full((24, 24), 40000, dtype=np.uint16))),
        "flat": png(Image.new("RGB", (900, 900), "white"), compress_level=0),
        "small": png(Image.new("RGB", (4, 4), "yellow")),
        "rotated": png(wide, exif=exif),
        "panorama": png(Image.new("RGB", (1000, 60), "purple")),
    }
    members = {f"odd/{i % 2}/{name}.png": content for i, (name, content) in enumerate(awkward.items())}
    dataset = own_data.read_archive(zipped(tmp_path / "odd.zip", members))
    assert dataset.class_names == ("0", "1") and len(dataset.train) + len(dataset.test) == 8
    everything = torch.cat([dataset.train.images, dataset.test.images])
    rotated = next(p for p in everything if p[0, 0, 0] > 200 and p[2, 0, 0] < 50 and p[2, -1, 0] > 200)
    assert rotated[0, -1, 0] < 50  # blue at the bottom: turned upright before it was prepared


def test_pictures_taken_in_the_page_make_a_dataset():
    up = [Image.new("RGB", (48 + i, 40), (200, 10 * i, 0)) for i in range(5)]
    down = [np.full((40, 48, 3), 10 * i, dtype=np.uint8) for i in range(5)]  # as gradio hands them over
    dataset = own_data.from_pictures({"thumbs up": up, "thumbs down": down})
    assert dataset.title == "your pictures" and dataset.class_names == ("thumbs down", "thumbs up")
    assert dataset.describe().endswith("8 training pictures and 2 held-out test pictures")
    assert dataset.train.images.shape == (8, 3, SOURCE_SIZE, SOURCE_SIZE)
    assert own_data.from_pictures({"thumbs down": down[::-1], "thumbs up": up}).digest == dataset.digest
    two = own_data.from_pictures({"a": up[:2], "b": up[2:4]})
    assert (len(two.train), len(two.test)) == (2, 2)  # a class of two: one to learn, one to test


@pytest.mark.parametrize(
    "pictures, phrase",
    [
        ({"up": [Image.new("RGB", (9, 9))] * 3}, "only one class (up)"),
        ({"up": [Image.new("RGB", (9, 9))] * 3, "down": [Image.new("RGB", (9, 9))]}, "down has 1:"),
        ({"up": [Image.new("RGB", (9, 9))] * 3, "down": [Image.new("RGB", (9, 9)), Image.new("L", (2, 9))]},
         "picture 2 of down is 2x9 pixels"),
        ({"up": [Image.new("RGB", (9, 9))] * 3, "down": [Image.new("RGB", (9, 9)), "a.png"]},
         "picture 2 of down is a str, not a picture"),
    ],
)  # fmt: skip
def test_pictures_taken_in_the_page_are_refused_with_a_sentence(pictures, phrase):
    with pytest.raises(OwnDataError) as raised:
        own_data.from_pictures(pictures)
    assert phrase in str(raised.value)


# ================================================================== hostile and unusable zips

# case (tools/hostile_files.py) -> (the file the sentence names, what it says)
HOSTILE = {
    "not a zip": ("notes.zip", "is not a zip file"),
    "a cut-off zip": ("cut.zip", "is cut off: it starts like a zip but its end"),
    "an empty file": ("nothing.zip", "is empty (0 bytes)"),
    "an empty zip": ("an-empty-zip.zip", "has no pictures in it"),
    "a zip bomb": ("pets/circles/bomb.png", "unpacks from 64 KB to 64 MB, far more than a picture with anything in"),
    "bzip2 compression": ("pets/circles/bomb.png", "is packed with bzip2 compression, which this app does not unpack"),
    "a member too big to be a picture": ("pets/circles/big.bmp", "is 24 MB unpacked, over the 20 MB limit for one"),
    "a member lying about its size": ("pets/circles/liar.png", "does not unpack to what the zip's table of contents"),
    "a path with ../": ("../evil.png", "has a path that points outside the zip"),
    "an absolute path": ("/etc/evil.png", "has a path that points outside the zip"),
    "a drive letter": ("C:\\evil.png", "has a path that points outside the zip"),
    "backslashes climbing": ("pets\\..\\..\\evil.png", "has a path that points outside the zip"),
    "a symbolic link": ("pets/circles/link.png", "is a symbolic link, not a picture"),
    "an encrypted picture": ("pets/circles/secret.png", "is encrypted (password-protected)"),
    "text renamed .png": ("pets/circles/notes.png", "is not an image PIL can read"),
    "a cut-off picture": ("pets/circles/cut.png", "the file looks truncated or damaged"),
    "a 2x2 picture": ("pets/circles/dot.png", "is only 2x2 pixels"),
    "a decompression bomb picture": ("pets/circles/huge.png", "is 30000x30000 pixels (900 megapixels), over the"),
    "a picture outside any class": ("pets/stray.png", "is not inside a class folder"),
    "a folder inside a class": ("pets/circles/old/a.png", "is in a folder inside the class folder circles"),
    "one class": ("one-class.zip", "there is only one class (cats) in"),
    "21 classes": ("21-classes.zip", "there are 21 classes in 21-classes.zip, more than the 20"),
    "a lonely class": ("a-lonely-class.zip", "every class needs at least 2 pictures"),
    "a long class name": ("x" * 40 + "…", "is too long or has characters that cannot be shown"),
}


@pytest.fixture(scope="module")
def hostile(tmp_path_factory) -> dict[str, Path]:
    return hostile_dataset_zips(tmp_path_factory.mktemp("hostile"))


def test_every_hostile_zip_made_is_checked_here(hostile):
    assert set(hostile) == set(HOSTILE)


@pytest.mark.parametrize("case", HOSTILE)
def test_a_hostile_zip_is_refused_with_its_own_sentence_in_bounded_memory(hostile, case):
    named, phrase = HOSTILE[case]
    tracemalloc.start()
    try:
        message = refusal(hostile[case])
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 8 * MB  # the bombs inflate to 64 MB and the huge picture to 2.7 GB
    assert named in message and phrase in message and "\n" not in message
    assert hostile[case].name in message  # and the zip it came in


def test_each_hostile_zip_has_a_different_sentence(hostile):
    assert len({refusal(path) for path in hostile.values()}) == len(hostile)


def test_nothing_is_extracted_or_written_anywhere(hostile, tmp_path, monkeypatch):
    work, temporary = tmp_path / "cwd", tmp_path / "tmp"
    work.mkdir(), temporary.mkdir()
    monkeypatch.chdir(work)
    monkeypatch.setenv("TMPDIR", str(temporary))
    monkeypatch.setattr(tempfile, "tempdir", str(temporary))
    for method in ("extract", "extractall"):
        monkeypatch.setattr(zipfile.ZipFile, method, lambda *a, **k: pytest.fail("a zip was extracted"))
    folder = next(iter(hostile.values())).parent
    before = {path: path.stat().st_mtime_ns for path in folder.iterdir()}
    for path in hostile.values():
        refusal(path)
        refusal(path.read_bytes(), name=path.name)
    own_data.read_archive(dataset_zip(tmp_path))
    assert not list(work.iterdir()) and not list(temporary.iterdir())
    assert {path: path.stat().st_mtime_ns for path in folder.iterdir()} == before


def test_a_zip_over_the_size_limit_is_refused_unopened(tmp_path, monkeypatch):
    path = dataset_zip(tmp_path)
    monkeypatch.setattr(own_data, "MAX_ARCHIVE_BYTES", 1000)
    monkeypatch.setattr(zipfile, "ZipFile", lambda *a, **k: pytest.fail("the zip was opened"))
    assert refusal(path).startswith(f"shapes.zip is {path.stat().st_size // 1024} KB, over the 1 KB limit")
    assert refusal(path.read_bytes()).startswith("the zip is")


@pytest.mark.parametrize("limit", ["MAX_ENTRIES", "MAX_DIRECTORY_BYTES"])
def test_a_long_table_of_contents_is_refused_before_zipfile_reads_it(tmp_path, monkeypatch, limit):
    path = dataset_zip(tmp_path)
    monkeypatch.setattr(own_data, limit, 10)
    monkeypatch.setattr(zipfile, "ZipFile", lambda *a, **k: pytest.fail("the table of contents was read"))
    assert "shapes.zip lists 24 files in a 2 KB table of contents, over the limit" in refusal(path)


@pytest.mark.parametrize(
    "limit, value, phrase",
    [
        ("MAX_PICTURES", 10, "shapes.zip has 24 pictures, over the limit of 10"),
        ("MAX_UNPACKED_BYTES", 4096, "shapes.zip unpacks to"),
        ("VIT_DEMO_MAX_UPLOAD_MB", "0.0001", "shapes/circles/0.png in shapes.zip is"),
    ],
)
def test_what_the_table_of_contents_declares_is_refused_before_anything_is_decoded(
    tmp_path, monkeypatch, limit, value, phrase
):
    path = dataset_zip(tmp_path)
    if limit.startswith("VIT_DEMO"):
        monkeypatch.setenv(limit, value)
    else:
        monkeypatch.setattr(own_data, limit, value)
    monkeypatch.setattr(own_data, "open_image", lambda *a, **k: pytest.fail("a picture was decoded"))
    assert phrase in refusal(path)


def test_the_pixels_of_the_whole_dataset_have_a_budget(tmp_path, monkeypatch):
    monkeypatch.setattr(own_data, "MAX_TOTAL_PIXELS", 5000)
    assert "megapixels in all (reached at shapes/circles/" in refusal(dataset_zip(tmp_path))


def test_reading_a_dataset_does_not_import_gradio():
    import subprocess
    import sys

    code = "import sys, vit_demo.own_data; print('gradio' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout == "False\n"


def test_phone_photos_decode_small_so_a_class_of_them_fits_the_pixel_budget(tmp_path, monkeypatch):
    """A JPEG is decoded at a fraction of its size (still sharp at 64x64); a PNG cannot be."""
    photo = Image.new("RGB", (4000, 3000), (200, 180, 160))  # a 12-megapixel phone photo's size
    ImageDraw.Draw(photo).ellipse((1000, 500, 3000, 2500), fill=(30, 60, 200))
    monkeypatch.setattr(own_data, "MAX_TOTAL_PIXELS", 2_000_000)  # under one such photo decoded whole
    members = {}
    for kind, format in (("jpg", "JPEG"), ("png", "PNG")):
        buffer = io.BytesIO()
        photo.save(buffer, format=format)
        members[kind] = {f"{name}/{n}.{kind}": buffer.getvalue() for name in ("a", "b") for n in range(2)}
    dataset = own_data.read_archive(zipped(tmp_path / "photos.zip", members["jpg"]))
    assert dataset.train.images.shape[-2:] == (SOURCE_SIZE, SOURCE_SIZE) and len(dataset.test) == 2
    assert "megapixels in all" in refusal(zipped(tmp_path / "pngs.zip", members["png"]))
