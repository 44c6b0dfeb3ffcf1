"""Per-dataset recipes: the training settings, the model shapes worth training, and the
app's presets.

A preset is a model and a length in epochs: the same model on every machine, so that every
student who picks it trains the same run (and a class shares one), and a ZeroGPU lease costs
what it says. The time it takes is the machine's business: the Build tab shows it beside the
preset, from this machine's speed.

Measured on MNIST at equal images (vit_demo/measured/accuracy_vs_images.json, written by
benchmarks/accuracy_vs_images.py): patch 7 (16 tokens) learns most per second of CPU and
still leaves Explore a 4x4 grid to look at; patch 4 (49 tokens, the shipped models' shape)
costs ~3x the compute per image and draws the finest maps. Only the command line's time
budget also considers patch 14 (4 tokens), the most learning per second and the least to
look at. CIFAR-10 is not available offline on the development machine: its candidates come
from published figures, and no accuracy is promised for them.
"""

from __future__ import annotations

from dataclasses import dataclass

from .model import SHAPE_FIELDS


@dataclass(frozen=True)
class Candidate:
    """A model shape and the batch and learning rate it trains with."""

    patch_size: int
    dim: int
    depth: int
    heads: int
    mlp_dim: int
    batch_size: int = 128
    lr: float = 3e-3

    @property
    def shape(self) -> dict:
        return {name: getattr(self, name) for name in SHAPE_FIELDS}

    @property
    def name(self) -> str:
        """A short unique name: "p7-d64-L2-h4-m128-b128"."""
        return f"p{self.patch_size}-d{self.dim}-L{self.depth}-h{self.heads}-m{self.mlp_dim}-b{self.batch_size}" + (
            "" if self.lr == 3e-3 else f"-lr{self.lr:g}"
        )


@dataclass(frozen=True)
class Preset:
    name: str  # a lesson link's word for it: "quick"
    candidate: Candidate
    epochs: float
    blurb: str

    @property
    def label(self) -> str:
        return f"{self.name.capitalize()}: {self.epochs:g} epochs"


@dataclass(frozen=True)
class Recipe:
    shape: dict  # the model of a command-line run that names no model and no time budget
    training: dict  # TrainConfig settings beyond the shape, batch size and learning rate
    epochs: float
    candidates: tuple[Candidate, ...]  # every shape worth a time-budget run (the command line's choice)
    presets: tuple[Preset, ...]

    def candidate(self, name: str) -> Candidate:
        return next(c for c in self.candidates if c.name == name)

    def preset(self, name: str | None) -> Preset:
        """The preset called `name` (its word, any case); the first one for None or an unknown name."""
        wanted = (name or "").strip().lower()
        return next((p for p in self.presets if p.name == wanted), self.presets[0])


# Label smoothing 0: over a 4.5-epoch MNIST run it scored 98.51% against 98.36% with 0.1
# (benchmarks/RESULTS.md); a short run has no time to overfit, which smoothing guards against.
_TRAINING = {"weight_decay": 0.05, "warmup": 0.05, "label_smoothing": 0.0}
# Fashion-MNIST: smoothing 0.1 helps (88.0% -> 88.3-89.1% in a minute, benchmarks/RESULTS.md).
_FASHION_TRAINING = {**_TRAINING, "label_smoothing": 0.1}

# 16 tokens (a 4x4 grid of patches) at several depths, the app's quick presets' choice.
PATCH7 = tuple(Candidate(7, 64, depth, 4, 128) for depth in (2, 3, 4, 6))
# 4 tokens: the most learning per second on a CPU, the least to look at. With so few tokens a
# step is mostly fixed costs, so batch 256 trains ~1.3x the images a second of batch 128 on
# a slow CPU (benchmarks/RESULTS.md): the planner takes it where that buys more accuracy.
PATCH14 = (Candidate(14, 64, 4, 4, 128), Candidate(14, 96, 4, 4, 192), Candidate(14, 64, 4, 4, 128, 256, 4e-3))
# 49 tokens: finer patches, ~3x the compute per image (the shipped models' shape).
PATCH4 = (Candidate(4, 64, 6, 4, 128),)

_GREY_CANDIDATES = PATCH7 + PATCH14 + PATCH4


def _grey_presets() -> tuple[Preset, ...]:
    # Expected on MNIST (the measured table): 98.4 %, 99.1 %, 98.3 %; on Fashion-MNIST 87.6 %, 88.7 %, 87.7 %.
    return (
        Preset("quick", PATCH7[1], 4, "16 tokens (patch 7) and 3 blocks: the quickest to watch learn"),
        Preset("standard", PATCH7[2], 8, "16 tokens and 4 blocks for twice as long: the most accurate"),
        Preset("finer", PATCH4[0], 4, "49 tokens (patch 4) and 6 blocks: the finest maps, ~6x the work per image"),
    )


_CIFAR_QUICK = Candidate(8, 96, 4, 4, 192, lr=2e-3)
_CIFAR_BETTER = Candidate(8, 128, 6, 4, 256, lr=2e-3)

# A person's own pictures: a few dozen a class. Measured on 10 MNIST digits a class with shifts
# (benchmarks/tiny_data.py): the small model at 300 epochs 80 %, the usual one at 100 epochs 72 % in
# the same time; at equal epochs the usual one is no better for being 7x bigger.
_OWN_SMALL = Candidate(8, 32, 2, 2, 64, batch_size=32)
_OWN_LARGER = Candidate(8, 64, 4, 4, 128, batch_size=32)

RECIPES: dict[str, Recipe] = {
    "mnist": Recipe(
        shape=PATCH7[2].shape,
        training={**_TRAINING, "batch_size": 128, "lr": 3e-3},
        epochs=4,
        candidates=_GREY_CANDIDATES,
        presets=_grey_presets(),
    ),
    "fashion_mnist": Recipe(
        shape=PATCH7[1].shape,
        training={**_FASHION_TRAINING, "batch_size": 128, "lr": 3e-3},
        epochs=4,
        candidates=_GREY_CANDIDATES,
        presets=_grey_presets(),
    ),
    "cifar10": Recipe(
        shape=_CIFAR_BETTER.shape,
        training={**_TRAINING, "batch_size": 128, "lr": 2e-3},
        epochs=10,
        candidates=(_CIFAR_QUICK, _CIFAR_BETTER),
        presets=(
            Preset("quick", _CIFAR_QUICK, 4, "patch 8: 16 tokens of 192 values; CIFAR is hard for a small ViT"),
            Preset("better", _CIFAR_BETTER, 10, "patch 8, 6 blocks, dim 128: wider and deeper, for a GPU or patience"),
        ),
    ),
    "own": Recipe(
        shape=_OWN_SMALL.shape,
        training={**_TRAINING, "batch_size": 32, "lr": 3e-3},
        epochs=300,
        candidates=(_OWN_SMALL, _OWN_LARGER),
        presets=(
            Preset("small", _OWN_SMALL, 300, "a small ViT, many passes over few pictures: the most it learns"),
            Preset("larger", _OWN_LARGER, 100, "7x the numbers for a third of the passes: no better, and slower"),
        ),
    ),
}


def recipe_for(dataset: str) -> Recipe:
    """The recipe of a bundled dataset, or of anyone's own pictures."""
    from .data import OWN_PREFIX, get_spec

    return RECIPES["own" if str(dataset).startswith(OWN_PREFIX) else get_spec(dataset).key]
