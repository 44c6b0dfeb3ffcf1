"""The models Explore looks inside: the checkpoints shipped in checkpoints/, the one a
person just trained, and one they uploaded, plus the example pictures for each dataset.

Shipped models are loaded once at start-up and shared by every session; nothing changes
them after that (predictions run in inference mode), so many requests can use one at once.
"""

from __future__ import annotations

import shutil
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from .. import checkpoints
from ..data import DATASETS, DatasetSpec, get_spec, own_pictures, spec_of, to_picture
from ..model import ViT, num_parameters

MINE = "mine"
UPLOADED = "uploaded"
CHECKPOINT_SUFFIXES = (".zip", ".pt", ".pth")


@dataclass(eq=False)
class LoadedModel:
    name: str  # how the Explore menu and the predict API call it
    model: ViT
    info: dict
    origin: str  # "pretrained", "trained here" or "uploaded"
    files: Path | None = None  # this person's checkpoint and zip, removed with their session
    _cache: dict = field(default_factory=dict, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    @property
    def spec(self) -> DatasetSpec:
        return spec_of(self.info)

    def cached(self, key: str, build: Callable):
        """`build()` once per model: figures of the weights do not change with the input."""
        with self._lock:
            if key not in self._cache:
                self._cache[key] = build()
            return self._cache[key]

    def accuracy(self) -> str:
        accuracy = self.info.get("test_accuracy")
        return f"{accuracy:.1%}" if isinstance(accuracy, (int, float)) else "unknown"

    def menu_label(self) -> str:
        short = self.spec.title.split(" (")[0]
        named = short if self.name == self.spec.key else f"{self.name}: {short}"
        return f"{named} ({self.origin}, {self.accuracy()})"

    def describe(self) -> str:
        c = self.model.config
        return (
            f"**{self.spec.title}**, {self.origin}, {self.accuracy()} test accuracy: {c.num_patches} patches of "
            f"{c.patch_size}×{c.patch_size}, {c.depth} blocks × {c.heads} heads, dim {c.dim}, "
            f"{num_parameters(c.parameter_counts()):,} parameters."
        )


def remove_files(loaded: LoadedModel | None) -> None:
    """When a session ends: delete the files made for its model (a gr.State delete_callback)."""
    if loaded is not None and loaded.files is not None:
        shutil.rmtree(loaded.files, ignore_errors=True)


def _checkpoint_paths(folder: Path) -> list[Path]:
    """Checkpoint folders and files in `folder`, the datasets' own names first."""
    if not folder.is_dir():
        return []
    found = [
        path
        for path in folder.iterdir()
        if not path.name.startswith(".")
        and (
            (path.is_dir() and (path / checkpoints.CONFIG_NAME).is_file()) or path.suffix.lower() in CHECKPOINT_SUFFIXES
        )
    ]
    order = list(DATASETS)
    return sorted(found, key=lambda p: (order.index(p.stem) if p.stem in order else len(order), p.name))


class ModelLibrary:
    """The shipped checkpoints, by name (a checkpoint's folder or file name)."""

    def __init__(self, folder: Path):
        self.folder = folder
        self.models: dict[str, LoadedModel] = {}
        self.problems: list[str] = []  # checkpoints that could not be loaded, and why
        for path in _checkpoint_paths(folder):
            if path.stem in (MINE, UPLOADED) or path.stem in self.models:
                self.problems.append(f"{path.name}: the name is taken, rename the checkpoint")
                continue
            try:
                model, info = checkpoints.load(path)
            except checkpoints.CheckpointError as error:
                self.problems.append(f"{path.name}: {error}")
            else:
                self.models[path.stem] = LoadedModel(path.stem, model, info, "pretrained")

    def menu(self) -> list[tuple[str, str]]:
        """(label, value) pairs for the Explore menu: shipped models, then this person's own."""
        return [(loaded.menu_label(), name) for name, loaded in self.models.items()] + [
            ("The model I just trained (Train tab)", MINE),
            ("A checkpoint I upload (.zip)", UPLOADED),
        ]

    def default_name(self) -> str:
        return next(iter(self.models), MINE)

    def status(self) -> str:
        """What a person should know about the shipped models (Markdown; empty when all is well)."""
        lines = []
        if not self.models:
            lines.append(
                f"No pretrained model was found in `{self.folder}`: train one on the **Train** tab, "
                f"or upload a checkpoint, to explore it."
            )
        lines += [f"Could not load {problem}" for problem in self.problems]
        return "\n\n".join(lines)

    def resolve(self, name: str, mine: LoadedModel | None, uploaded: LoadedModel | None) -> LoadedModel:
        """The model called `name`, or a ValueError that says how to get one."""
        if name == MINE:
            if mine is None:
                raise ValueError("You have not trained a model yet: press Start on the Train tab, then come back")
            return mine
        if name == UPLOADED:
            if uploaded is None:
                raise ValueError("No checkpoint uploaded yet: upload a .zip from the Train tab's download button")
            return uploaded
        if name not in self.models:
            known = ", ".join([*self.models, MINE, UPLOADED])
            raise ValueError(f"there is no model called {name!r}: choose one of {known}")
        return self.models[name]


def held_out_examples(loaded: LoadedModel, count: int = 12) -> list[tuple[str, str]]:
    """(path, caption) of a person's own held-out pictures, as files in their page's folder (the
    examples gallery shows files); none for a model of another page's pictures or none held."""
    own = own_pictures(loaded.spec.key)
    if own is None or loaded.files is None:
        return []
    _, _, class_names, _, test = own
    folder = loaded.files / "examples"
    folder.mkdir(parents=True, exist_ok=True)
    examples = []
    for index in range(min(count, len(test))):
        path = folder / f"{index}.png"
        to_picture(test.images[index]).save(path)
        examples.append((str(path), class_names[int(test.labels[index])]))
    return examples


def example_images(examples_dir: Path, dataset: str) -> list[tuple[str, str]]:
    """(path, caption) of the example pictures shipped for `dataset`, named by
    tools/make_examples.py as `<class index>-<class name>-<test index>.png`."""
    folder = examples_dir / dataset  # none for a person's own pictures
    if not folder.is_dir():
        return []
    spec = get_spec(dataset)
    examples = []
    for path in sorted(folder.glob("*.png")):
        class_index = int(path.name.split("-", 1)[0])
        examples.append((str(path), spec.class_names[class_index]))
    return examples
