"""A person's own pictures on this server: read safely (own_data.py), kept in memory under a key
made from their content (no page can list another's, and none can guess the key), and offered
on the Build tab of the page that brought them only. A lesson's folder (own_folder.py) is the
exception: read once for the whole class and offered on every page of the lesson.

Pictures taken or drawn in the page are collected one by one, each prepared at once (64x64), so
a page holds a few kilobytes a picture, never a camera's full frames.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Mapping

from PIL import Image

from ..data import OWN_PREFIX, own_pictures, register_own
from ..own_data import MAX_NAME_CHARS, MAX_PICTURES, SOURCE_SIZE, OwnDataError, OwnDataset, from_pictures
from ..own_folder import list_folder, read_folder
from ..pictures import prepare

MAX_COLLECTED = 400  # pictures one page may take or draw before it turns them into a dataset
MAX_CLASSES = 20

# What a handful of pictures can teach, measured (benchmarks/tiny_data.py, benchmarks/RESULTS.md).
TINY_DATA = (
    "**What a handful of pictures can teach.** With 10 pictures of each digit, a small ViT scored 100 % on its "
    "own pictures but only 64 % on digits it had never seen: it memorised its pictures instead of learning what "
    "a digit looks like. Shifting each picture by a couple of pixels at every step (this app does) and training "
    "three times as long (300 epochs) raised that to 80 %. More pictures help most of all: with 40 of each digit "
    "it reached 92 %. A model seven times bigger did no better (83 % against 80 %) and took three times as long."
)


def keep(own: OwnDataset, lesson: bool = False) -> str:
    """Hold `own` in this server's memory (for good if it is the lesson's); its dataset key for the knobs."""
    key = OWN_PREFIX + own.digest
    register_own(key, own.title, own.class_names, own.train, own.test, lesson=lesson)
    return key


_folder_lock = threading.Lock()
_folders: dict[str, tuple[tuple, str | OwnDataError]] = {}  # folder -> (its signature, its key or why not)


def lesson_dataset(path: str | os.PathLike) -> str:
    """The dataset key of a lesson's folder of class folders, read once for the whole class (and
    again when its files change); an OwnDataError says why it cannot be used."""
    folder = list_folder(path)
    with _folder_lock:  # thirty pages opening the lesson at once: one reads, the others wait for it
        signature, outcome = _folders.get(str(path), ((), None))
        usable = isinstance(outcome, OwnDataError) or (outcome is not None and own_pictures(outcome) is not None)
        if signature != folder.signature or not usable:
            try:
                outcome = keep(read_folder(folder), lesson=True)
            except OwnDataError as error:  # kept too: a broken folder is not read again for every page
                outcome = error
            _folders[str(path)] = (folder.signature, outcome)
    if isinstance(outcome, OwnDataError):
        raise outcome
    return outcome


def collect(collected: Mapping[str, list], class_name: str, picture: Image.Image | None) -> dict:
    """`collected` (class name -> prepared pictures) with `picture` added to `class_name`'s; an
    OwnDataError says what to do when the picture, the name or the count does not fit."""
    name = (class_name or "").strip()
    if picture is None:
        raise OwnDataError("Take a picture (or draw or upload one) first, then press Add")
    if not name or len(name) > MAX_NAME_CHARS or not name.isprintable() or name.startswith("."):
        raise OwnDataError(f"Name the picture's class: 1 to {MAX_NAME_CHARS} letters, digits or spaces")
    if name not in collected and len(collected) >= MAX_CLASSES:
        raise OwnDataError(f"You have {MAX_CLASSES} classes already, the most a dataset may have")
    if sum(len(p) for p in collected.values()) >= min(MAX_COLLECTED, MAX_PICTURES):
        raise OwnDataError(f"You have {MAX_COLLECTED} pictures already: train on them, or start again")
    prepared = Image.fromarray(prepare(picture, "natural", SOURCE_SIZE, 3))
    return {**collected, name: [*collected.get(name, []), prepared]}


def counted(collected: Mapping[str, list]) -> str:
    """What has been collected, in a line."""
    if not collected:
        return "No pictures yet: take one, name its class, press **Add**."
    return " · ".join(f"**{name}** {len(pictures)}" for name, pictures in sorted(collected.items()))


def from_collected(collected: Mapping[str, list]) -> OwnDataset:
    return from_pictures(collected, title="your pictures")
