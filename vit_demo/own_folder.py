"""A folder of class folders on the server (`pets/cats/1.jpg`, `pets/dogs/7.png`): the dataset a
teacher's lesson file ships to the whole class (`dataset_folder`, service/lessons.py).

The folder is the server owner's, but it is read within the same limits as a person's zip
(own_data.py): a count of files listed before any is opened, each picture's size and the whole
folder's bytes and pixels bounded, only regular files read (a pipe would never end), and each
problem one sentence naming the picture. Files beside the class folders (a README, the lesson
file itself) are not pictures of any class and are passed over.

Nothing here imports gradio or writes anything.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from . import own_data
from .images import max_upload_bytes
from .own_data import OwnDataError, OwnDataset
from .summaries import format_bytes


@dataclass(frozen=True, eq=False)
class Folder:
    """A listed folder: class name -> [(path shown, file)], and a signature of every file's
    name, size and time of change (the same signature, the same pictures)."""

    label: str
    classes: dict
    signature: tuple


def list_folder(path: str | os.PathLike) -> Folder:
    """The class folders of `path` and their pictures, checked against the limits; nothing is
    opened yet."""
    root = Path(path)
    label = root.name or str(root)
    if not root.is_dir():
        raise OwnDataError(f"the dataset folder {label} was not found on the server: check its name and place")
    try:
        classes, signature = _listed(root, label)
    except OSError as error:
        raise OwnDataError(
            f"{label} could not be listed ({error.strerror or error}): let the server read its class folders"
        ) from error
    _check_totals(classes, signature, label)
    return Folder(label, classes, tuple(signature))


def _listed(root: Path, label: str) -> tuple[dict[str, list], list]:
    classes: dict[str, list] = {}
    signature = []
    top = _entries(root, label, 0)
    for folder in top:
        if not folder.is_dir():
            continue  # a README or the lesson file beside the class folders
        classes[folder.name] = []
        for entry in _entries(Path(folder.path), label, len(top) + len(signature)):
            where = f"{folder.name}/{entry.name}"
            if entry.is_dir():
                raise OwnDataError(
                    f"{where} in {label} is a folder inside the class folder {folder.name}: a class folder holds "
                    f"pictures only, so move its pictures up or make it a class of its own"
                )
            if not entry.is_file():
                raise OwnDataError(
                    f"{where} in {label} is not a picture file (a broken link, a pipe or a device?): remove it"
                )
            info = entry.stat()
            if info.st_size > max_upload_bytes():
                raise OwnDataError(
                    f"{where} in {label} is {format_bytes(info.st_size)}, over the "
                    f"{format_bytes(max_upload_bytes())} limit for one picture: save a smaller copy"
                )
            classes[folder.name].append((where, Path(entry.path)))
            signature.append((where, info.st_size, info.st_mtime_ns))
    return classes, signature


def read_folder(folder: Folder) -> OwnDataset:
    """The listed folder's pictures, decoded within the budgets and prepared, as a dataset."""
    return own_data.dataset_of(folder.label, own_data.read_pictures(folder.classes, folder.label, _read_file))


def _entries(folder: Path, label: str, listed: int) -> list[os.DirEntry]:
    """`folder`'s entries by name, junk and dot-files left out; a folder with more entries than a
    dataset may hold is refused before they are all listed."""
    found = []
    with os.scandir(folder) as scan:
        for entry in scan:
            if entry.name.startswith(".") or entry.name in own_data.SKIPPED:
                continue
            found.append(entry)
            if listed + len(found) > own_data.MAX_ENTRIES:
                raise OwnDataError(
                    f"{label} holds more than {own_data.MAX_ENTRIES:,} files: a dataset here holds at most "
                    f"{own_data.MAX_PICTURES:,} pictures, so make a smaller copy of the folder"
                )
    return sorted(found, key=lambda entry: entry.name)


def _check_totals(classes: dict[str, list], signature: list, label: str) -> None:
    own_data.check_classes({name: len(pictures) for name, pictures in classes.items()}, label)
    if len(signature) > own_data.MAX_PICTURES:
        raise OwnDataError(
            f"{label} has {len(signature):,} pictures, over the limit of {own_data.MAX_PICTURES:,}: use fewer"
        )
    total = sum(size for _, size, _ in signature)
    if total > own_data.MAX_UNPACKED_BYTES:
        raise OwnDataError(
            f"{label} holds {format_bytes(total)} of pictures, over the "
            f"{format_bytes(own_data.MAX_UNPACKED_BYTES)} limit for a dataset: use fewer or smaller pictures"
        )


def _read_file(path: Path, where: str, budget: int) -> bytes:
    """A picture's bytes, never more than its cap (it may have grown since it was listed)."""
    cap = min(max_upload_bytes(), budget)
    try:
        with open(path, "rb") as file:
            raw = file.read(cap + 1)
    except OSError as error:
        raise OwnDataError(f"{where} could not be read ({error.strerror or error}): check the file") from error
    if len(raw) > cap:
        raise OwnDataError(f"{where} is over the {format_bytes(cap)} it may be: save a smaller copy")
    return raw
