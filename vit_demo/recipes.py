"""Per-dataset defaults and the presets the app offers.

The numbers come from runs on a 2-core CPU, recorded in benchmarks/RESULTS.md: small
patches cost ~3x more compute than patch 7 on 28x28 images, so the quick presets keep
patch 7 and spend the budget on more steps, and only the slow presets go finer. The
CIFAR-10 presets are designed from published figures and the measured epoch time (CIFAR-10
is not available offline on the development machine), so their blurbs promise no accuracy.
"""

from __future__ import annotations

from dataclasses import dataclass, field

MODEL_FIELDS_IN_RECIPES = ("patch_size", "dim", "depth", "heads", "mlp_dim")


@dataclass(frozen=True)
class Preset:
    label: str
    model: dict
    time_budget: float  # seconds on a 2-core CPU
    blurb: str


@dataclass(frozen=True)
class Recipe:
    model: dict
    training: dict
    epochs: float
    presets: tuple[Preset, ...] = field(default_factory=tuple)


# Label smoothing 0: over a 4.5-epoch MNIST run it scored 98.51% against 98.36% with 0.1
# (benchmarks/RESULTS.md); a short run has no time to overfit, which smoothing guards against.
_TRAINING = {"batch_size": 128, "lr": 3e-3, "weight_decay": 0.05, "warmup": 0.05, "label_smoothing": 0.0}
_SMALL = {"patch_size": 7, "dim": 64, "depth": 4, "heads": 4, "mlp_dim": 128}
# Fashion-MNIST in a minute: 3 blocks instead of 4 buy a third more epochs, which pay more
# than the fourth block does, and smoothing 0.1 helps here (88.0% -> 88.3-89.1% eagerly, 89.0%
# compiled in bf16; benchmarks/RESULTS.md).
_FASHION = {**_SMALL, "depth": 3}
_FASHION_TRAINING = {**_TRAINING, "label_smoothing": 0.1}

RECIPES: dict[str, Recipe] = {
    "mnist": Recipe(
        model=_SMALL,
        training=_TRAINING,
        epochs=4,
        presets=(
            Preset("Quick (~30 s)", _SMALL, 30, "patch 7, 4 blocks: 16 tokens, the fastest to watch learn"),
            Preset("Standard (~60 s)", _SMALL, 60, "the same model for a minute: 98.5-98.9% from the command line on 2 cores"),
            Preset("Better (~3 min)", {**_SMALL, "patch_size": 4, "depth": 6}, 180, "patch 4, 6 blocks: 49 finer tokens, ~3x the compute per image"),
        ),
    ),
    "fashion_mnist": Recipe(
        model=_FASHION,
        training=_FASHION_TRAINING,
        epochs=4,
        presets=(
            Preset("Quick (~30 s)", _FASHION, 30, "patch 7, 3 blocks: 16 tokens, the fastest to watch learn"),
            Preset("Standard (~60 s)", _FASHION, 60, "the same model for a minute: 88.3-89.1% from the command line on 2 cores"),
            Preset("Better (~3 min)", {**_SMALL, "patch_size": 4, "depth": 6}, 180, "patch 4, 6 blocks: 49 finer tokens, ~3x the compute per image"),
        ),
    ),
    "cifar10": Recipe(
        model={"patch_size": 8, "dim": 128, "depth": 6, "heads": 4, "mlp_dim": 256},
        training={**_TRAINING, "batch_size": 128, "lr": 2e-3},
        epochs=10,
        presets=(
            Preset(
                "Quick (~2 min)",
                {"patch_size": 8, "dim": 96, "depth": 4, "heads": 4, "mlp_dim": 192},
                120,
                "patch 8: 16 tokens of 192 values; CIFAR is hard for a small ViT on a CPU",
            ),
            Preset(
                "Better (~5 min)",
                {"patch_size": 8, "dim": 128, "depth": 6, "heads": 4, "mlp_dim": 256},
                300,
                "patch 8, 6 blocks, dim 128: ~33 s an epoch on 2 cores, far faster on a GPU",
            ),
        ),
    ),
}


def recipe_for(dataset: str) -> Recipe:
    from .data import get_spec

    return RECIPES[get_spec(dataset).key]
