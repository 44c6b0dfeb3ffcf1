"""Per-dataset recipes: the training settings, the model shapes worth training, and the
app's presets.

How good a run gets depends mostly on how many images it sees, and how many it sees in a
minute depends on the CPU: an AVX2-only 2-core EPYC trains the 16-token, 4-block model at
~2,600 images/s, an AVX-512 Xeon at ~7,000. So a preset is not one model but a time
budget and a few `Candidate` shapes; `planning.plan` picks, on the machine it runs on,
the candidate with the best measured accuracy for the images that budget buys there
(benchmarks/accuracy_vs_images.py measured each candidate at several image counts).

Measured on MNIST at equal time (benchmarks/RESULTS.md): fewer, cheaper steps per image
beat bigger models in short runs; patch 14 (4 tokens) learns most per second but leaves
Explore a 2x2 grid to look at, so the app's quick presets keep patch 7 (16 tokens) and
only the command line also considers patch 14. CIFAR-10 is not available offline on the
development machine: its candidates come from published figures and the measured epoch
time, and no accuracy is promised for them.
"""

from __future__ import annotations

from dataclasses import dataclass

from .model import SHAPE_FIELDS

# The ViT arguments a recipe chooses; the dataset fixes image_size, channels, num_classes.


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
    def model(self) -> dict:
        return {name: getattr(self, name) for name in SHAPE_FIELDS}

    @property
    def name(self) -> str:
        """A short unique name: "p7-d64-L2-h4-m128-b128"."""
        return f"p{self.patch_size}-d{self.dim}-L{self.depth}-h{self.heads}-m{self.mlp_dim}-b{self.batch_size}" + (
            "" if self.lr == 3e-3 else f"-lr{self.lr:g}"
        )


@dataclass(frozen=True)
class Preset:
    label: str
    time_budget: float  # seconds
    candidates: tuple[Candidate, ...]  # what `planning.plan` chooses from, for this machine
    blurb: str


@dataclass(frozen=True)
class Recipe:
    model: dict  # the shape of a run that names no model and no time budget
    training: dict  # TrainConfig settings beyond the shape, batch size and learning rate
    epochs: float
    candidates: tuple[Candidate, ...]  # every shape worth a time-budget run (the command line's choice)
    presets: tuple[Preset, ...]

    def candidate(self, name: str) -> Candidate:
        return next(c for c in self.candidates if c.name == name)


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
    quick = PATCH7[:3]
    better = (PATCH4[0], PATCH7[2], PATCH7[3])
    return (
        Preset(
            "Quick (~30 s)",
            30,
            quick,
            "16 tokens (patch 7), the fastest to watch learn; how many blocks is chosen for this machine's speed",
        ),
        Preset(
            "Standard (~60 s)",
            60,
            quick,
            "16 tokens (patch 7) for a minute; how many blocks is chosen for this machine's speed",
        ),
        Preset(
            "Better (~3 min)",
            180,
            better,
            "finer patches or more blocks, ~3x the compute per image: whichever this machine trains best in 3 minutes",
        ),
    )


_CIFAR_QUICK = Candidate(8, 96, 4, 4, 192, lr=2e-3)
_CIFAR_BETTER = Candidate(8, 128, 6, 4, 256, lr=2e-3)

RECIPES: dict[str, Recipe] = {
    "mnist": Recipe(
        model=PATCH7[2].model,
        training={**_TRAINING, "batch_size": 128, "lr": 3e-3},
        epochs=4,
        candidates=_GREY_CANDIDATES,
        presets=_grey_presets(),
    ),
    "fashion_mnist": Recipe(
        model=PATCH7[1].model,
        training={**_FASHION_TRAINING, "batch_size": 128, "lr": 3e-3},
        epochs=4,
        candidates=_GREY_CANDIDATES,
        presets=_grey_presets(),
    ),
    "cifar10": Recipe(
        model=_CIFAR_BETTER.model,
        training={**_TRAINING, "batch_size": 128, "lr": 2e-3},
        epochs=10,
        candidates=(_CIFAR_QUICK, _CIFAR_BETTER),
        presets=(
            Preset(
                "Quick (~2 min)",
                120,
                (_CIFAR_QUICK,),
                "patch 8: 16 tokens of 192 values; CIFAR is hard for a small ViT on a CPU",
            ),
            Preset(
                "Better (~5 min)",
                300,
                (_CIFAR_BETTER,),
                "patch 8, 6 blocks, dim 128: ~33 s an epoch on 2 AVX-512 cores, far faster on a GPU",
            ),
        ),
    ),
}


def recipe_for(dataset: str) -> Recipe:
    from .data import get_spec

    return RECIPES[get_spec(dataset).key]
