"""The knobs: what a person chooses for a run (the dataset, the model's shape, how to train it),
checked. The Build tab's controls, a lesson's keys, the scripting API's parameters and the
comparison table are all derived from `Knobs`' fields and `RANGES`."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, fields

from .. import validation
from ..data import DATASETS, OWN_PREFIX, DatasetSpec, get_spec
from ..model import SHAPE_FIELDS, ViTConfig
from ..recipes import Preset, recipe_for
from ..summaries import format_bytes
from ..training import TrainConfig, config_for

APP_REPORT_SECONDS = 1.0  # the app's live view: one update a second is live enough, and cheap to draw and send


@dataclass(frozen=True)
class Range:
    """What a number knob accepts (the Build tab's slider shows the same range)."""

    low: float
    high: float
    step: float
    whole: bool
    label: str

    def check(self, name: str, value) -> int | float:
        """`value` as a number of this range, or a ValueError naming the knob, the value and what is allowed."""
        return validation.number(name, value, self.low, self.high, self.whole)


# Every number knob: its range, its step on the page, and its label.
RANGES = {
    "image_size": Range(8, 64, 1, True, "image_size (pixels per side)"),
    "channels": Range(1, 3, 2, True, "channels (1 grey, 3 colour)"),
    "patch_size": Range(2, 32, 1, True, "patch_size (pixels per side)"),
    "dim": Range(8, 512, 8, True, "dim (numbers per token)"),
    "depth": Range(1, 12, 1, True, "depth (blocks)"),
    "heads": Range(1, 16, 1, True, "heads (per block)"),
    "mlp_dim": Range(16, 2048, 16, True, "mlp_dim (MLP width)"),
    "lr": Range(0.0001, 0.01, 0.0001, False, "lr (learning rate)"),
    "batch_size": Range(1, 1024, 1, True, "batch_size (images per step)"),
    # Up to 300: a few dozen pictures of one's own need hundreds of passes (benchmarks/tiny_data.py).
    "epochs": Range(0.5, 300, 0.5, False, "epochs (passes over the training images)"),
    "seed": Range(0, 2**31 - 1, 1, True, "seed (same seed → same start)"),
}


# Pictures a run may hold in memory, prepared at its image_size and channels: MNIST at 64x64 in
# colour would be 0.7 GB in the server's training process.
MAX_PICTURE_BYTES = 320 * 2**20


@dataclass(frozen=True)
class Knobs:
    dataset: str
    image_size: int
    channels: int
    patch_size: int
    dim: int
    depth: int
    heads: int
    mlp_dim: int
    lr: float
    batch_size: int
    epochs: float
    seed: int = 0

    @classmethod
    def read(cls, values: Mapping) -> Knobs:
        """Knobs from named values (a page's controls, a lesson, a script); a ValueError names
        the first knob that does not fit, its value and what is allowed. A missing seed is 0, a
        missing image_size or channels the dataset's own."""
        missing = [name for name in KNOBS if name not in values and name not in OPTIONAL]
        if missing:
            raise ValueError(f"missing: {', '.join(missing)}")
        dataset = values["dataset"]
        if dataset not in DATASETS and not str(dataset).startswith(OWN_PREFIX):
            raise ValueError(f"dataset must be one of {', '.join(DATASETS)} or your own pictures, got {dataset!r}")
        spec = get_spec(dataset)  # a person's own pictures this server no longer holds: a sentence
        given = {"seed": 0, "image_size": spec.image_size, "channels": spec.channels, **values}
        checked = {name: limits.check(name, given[name]) for name, limits in RANGES.items()}
        if checked["channels"] not in (1, 3):
            raise ValueError(f"channels must be 1 (grey) or 3 (colour), got {checked['channels']}")
        knobs = cls(dataset=dataset, **checked)
        knobs.check_pictures_fit()
        return knobs

    def check_pictures_fit(self, train_limit: int | None = None) -> None:
        """A ValueError when the training pictures at this size would not fit in memory."""
        size = self.channels * self.image_size**2 * images_in_split(self.dataset, True, train_limit)
        if size > MAX_PICTURE_BYTES:
            raise ValueError(
                f"{get_spec(self.dataset).title} at {self.image_size}x{self.image_size} in "
                f"{'colour' if self.channels == 3 else 'grey'} would hold {format_bytes(size)} of pictures, over "
                f"the {format_bytes(MAX_PICTURE_BYTES)} a run may: choose a smaller image_size"
                f"{' or channels 1' if self.channels == 3 else ''}"
            )

    @classmethod
    def of_preset(cls, dataset: str, preset: Preset, seed: int = 0) -> Knobs:
        c, spec = preset.candidate, get_spec(dataset)
        return cls(
            dataset,
            spec.image_size,
            spec.channels,
            **c.shape,
            lr=c.lr,
            batch_size=c.batch_size,
            epochs=preset.epochs,
            seed=seed,
        )

    @property
    def shape(self) -> dict:
        return {name: getattr(self, name) for name in SHAPE_FIELDS}

    @property
    def values(self) -> dict:
        return {name: getattr(self, name) for name in KNOBS}

    def model_config(self) -> ViTConfig:
        """The model the knobs describe; a ValueError (the model's own message) when it cannot be built."""
        return config_for(self.spec, self.shape)

    @property
    def spec(self) -> DatasetSpec:
        """The dataset at these knobs' image_size and channels."""
        return get_spec(self.dataset).at(self.image_size, self.channels)

    def train_config(self, data_dir=None, train_limit: int | None = None, test_limit: int | None = None) -> TrainConfig:
        """The run's TrainConfig: the dataset's recipe for everything the page does not show,
        and one live update a second. The plain eager float32 step, exactly: a path chosen by
        timing (step.FastestStep) could differ from one run to the next, and the same knobs
        must train the same model, which sharing runs relies on."""
        extras = {k: v for k, v in recipe_for(self.dataset).training.items() if k not in ("lr", "batch_size")}
        return TrainConfig(
            dataset=get_spec(self.dataset).key,
            image_size=self.image_size,
            channels=self.channels,
            epochs=self.epochs,
            lr=self.lr,
            batch_size=self.batch_size,
            seed=self.seed,
            data_dir=data_dir,
            train_limit=train_limit,
            test_limit=test_limit,
            report_every=APP_REPORT_SECONDS,
            compile=False,
            bf16=False,
            force_step=True,
            **extras,
        )

    @property
    def length_text(self) -> str:
        return f"{self.epochs:g} epoch{'s' if self.epochs != 1 else ''}"


KNOBS = tuple(f.name for f in fields(Knobs))  # the names, in the order the Build tab shows them
OPTIONAL = ("image_size", "channels", "seed")  # knobs a lesson, a script or an older run record may leave out


def images_in_split(dataset: str, train: bool, limit: int | None = None) -> int:
    """How many images a run trains on (or is scored on), the server's limit applied."""
    spec = get_spec(dataset)
    total = spec.train_images if train else spec.test_images
    return min(total, limit) if limit else total
