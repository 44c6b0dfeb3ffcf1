"""A lesson's folder of class folders (vit_demo/own_folder.py) reads as the same pictures zipped
would, within the same limits, each problem one sentence naming the file; and a lesson file's
`dataset_folder` makes it every page's dataset, read once, kept while pages bring their own."""

import os
import zipfile
from pathlib import Path

import pytest

from tools.hostile_files import DATASET_CLASSES, dataset_zip
from vit_demo import data, own_data
from vit_demo.own_data import OwnDataError
from vit_demo.own_folder import list_folder, read_folder
from vit_demo.service import own_sets
from vit_demo.service.lessons import parse_lesson, read_lesson_file


def class_folder(root: Path, per_class: int = 8) -> Path:
    """The pictures of tools/hostile_files.dataset_zip, unpacked: root/shapes/<class>/<n>.png|jpg."""
    with zipfile.ZipFile(dataset_zip(root, per_class=per_class)) as archive:
        archive.extractall(root)
    return root / "shapes"


def refusal(path) -> str:
    with pytest.raises(OwnDataError) as raised:
        read_folder(list_folder(path))
    return str(raised.value)


def test_a_folder_reads_as_the_same_pictures_zipped_do(tmp_path):
    folder = class_folder(tmp_path)
    (folder / "README.txt").write_text("pictures for lesson 3")  # beside the classes: passed over
    (folder / "circles" / ".DS_Store").write_bytes(b"\0junk")
    own = read_folder(list_folder(folder))
    zipped = own_data.read_archive(tmp_path / "shapes.zip")
    assert own.class_names == DATASET_CLASSES and own.title == "shapes"
    assert (len(own.train), len(own.test)) == (18, 6)
    assert own.digest == zipped.digest  # the same pictures, the same split and key


def test_a_changed_file_changes_the_signature(tmp_path):
    folder = class_folder(tmp_path)
    before = list_folder(folder).signature
    picture = folder / "circles" / "0.png"
    os.utime(picture, ns=(1, 1))
    assert list_folder(folder).signature != before


@pytest.mark.parametrize(
    "spoil, says",
    [
        (lambda f: (f / "circles" / "inner").mkdir(), "circles/inner in shapes is a folder inside the class folder"),
        (lambda f: os.mkfifo(f / "circles" / "pipe.png"), "circles/pipe.png in shapes is not a picture file"),
        (lambda f: (f / "squares" / "9.png").write_bytes(b"not a png"), "squares/9.png in shapes"),
        (lambda f: (f / "circles" / "broken.png").symlink_to(f / "nowhere"), "circles/broken.png in shapes is not"),
        (lambda f: [p.unlink() for p in (f / "triangles").iterdir()][0], "triangles has 0"),
    ],
    ids=["nested folder", "a pipe", "not a picture", "broken link", "an empty class"],
)
def test_a_folder_that_cannot_be_used_is_refused_with_the_file_named(tmp_path, spoil, says):
    folder = class_folder(tmp_path)
    spoil(folder)
    assert says in refusal(folder)


@pytest.mark.parametrize(
    "limit, value, says",
    [
        ("MAX_ENTRIES", 10, "shapes holds more than 10 files"),
        ("MAX_PICTURES", 10, "shapes has 24 pictures, over the limit of 10"),
        ("MAX_UNPACKED_BYTES", 4096, "shapes holds"),
    ],
)
def test_the_limits_are_checked_before_any_picture_is_opened(tmp_path, monkeypatch, limit, value, says):
    folder = class_folder(tmp_path)
    monkeypatch.setattr(own_data, limit, value)
    monkeypatch.setattr(own_data, "open_image", lambda *a, **k: pytest.fail("a picture was decoded"))
    with pytest.raises(OwnDataError, match=says):
        list_folder(folder)


def test_a_missing_folder_is_named_without_the_servers_path(tmp_path):
    said = refusal(tmp_path / "secret" / "pets")
    assert "pets was not found" in said and "secret" not in said


# ================================================================== the lesson's dataset


def lesson_in(folder: Path, **values) -> Path:
    import json

    path = folder / "lesson.json"
    path.write_text(json.dumps({"dataset_folder": "shapes", **values}))
    return path


def test_a_lesson_files_folder_becomes_every_pages_dataset_read_once(tmp_path, monkeypatch):
    class_folder(tmp_path)
    reads = []
    monkeypatch.setattr(own_sets, "read_folder", lambda folder: reads.append(folder) or read_folder(folder))
    file = read_lesson_file(lesson_in(tmp_path, preset="larger", lock=["dataset"]))  # relative to the file
    first, second = (parse_lesson(file, {"seed": str(seed)}) for seed in (1, 2))
    key = first.values["dataset"]
    assert key.startswith(data.OWN_PREFIX) and second.values["dataset"] == key and not first.problems
    assert data.get_spec(key).class_names == DATASET_CLASSES and len(reads) == 1
    assert first.values["preset"] == "larger" and first.lock == {"dataset"}
    os.utime(tmp_path / "shapes" / "circles" / "0.png", ns=(1, 1))  # the teacher changed a picture
    assert parse_lesson(file).values["dataset"] == key and len(reads) == 2  # read again; same pixels, same key


def test_the_lessons_dataset_is_kept_while_pages_bring_their_own(tmp_path):
    class_folder(tmp_path)
    key = parse_lesson(read_lesson_file(lesson_in(tmp_path))).values["dataset"]
    spec, train, test = data._held(key)
    for number in range(data.MAX_OWN_DATASETS + 2):
        data.register_own(f"{data.OWN_PREFIX}page{number}", "a page's", spec.class_names, train, test)
    assert data.own_pictures(key) is not None
    assert data.own_pictures(f"{data.OWN_PREFIX}page0") is None  # a page's own is let go, as before


def test_only_the_servers_file_may_name_a_folder_and_a_broken_one_is_said_in_the_banner(tmp_path):
    class_folder(tmp_path)
    linked = parse_lesson({}, {"dataset_folder": str(tmp_path / "shapes")})
    assert "dataset" not in linked.values
    assert "dataset_folder can be set only in the server's lesson file" in " ".join(linked.problems)
    wrong = parse_lesson(read_lesson_file(lesson_in(tmp_path, preset="quick")))
    assert "preset must be one of shapes's presets (small, larger), got 'quick'" in " ".join(wrong.problems)
    (tmp_path / "shapes" / "squares" / "0.png").write_bytes(b"not a png")
    broken = parse_lesson(read_lesson_file(lesson_in(tmp_path, dataset="mnist")))
    assert broken.values["dataset"] == "mnist"  # the file's other values still hold
    assert "dataset_folder cannot be used: squares/0.png in shapes" in " ".join(broken.problems)


def test_the_server_reads_the_lessons_folder_when_it_starts(tmp_path, tiny_checkpoints, monkeypatch):
    import threading

    from ui_helpers import settings_for

    from vit_demo.service.server import Service

    class_folder(tmp_path)
    monkeypatch.setenv("VIT_DEMO_LESSON", str(lesson_in(tmp_path)))
    read = threading.Event()
    monkeypatch.setattr(own_sets, "read_folder", lambda folder: read.set() or read_folder(folder))
    service = Service(settings_for(tmp_path, tiny_checkpoints))
    try:
        service.start()  # before any page asks for the lesson
        assert read.wait(timeout=120), "the lesson's folder was not read when the server started"
    finally:
        service.close()
