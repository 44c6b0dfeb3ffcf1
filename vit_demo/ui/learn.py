"""The Learn tab: what each part of a ViT does, written for students, with the shapes and
parameter counts of the model on the Build tab filled in as its sliders move.

The lessons are Markdown files in `vit_demo/learn/` (a title line, then the text, with
`{name}` where a value of `values` goes and `{{`/`}}` for a literal brace); `lesson` fills
them in. The page shows each in its own fold so a student reads one idea at a time.
"""

from __future__ import annotations

from pathlib import Path

from .. import faithfulness
from ..data import DatasetSpec, get_spec
from ..explain import ATTRIBUTIONS
from ..model import ViTConfig, num_parameters

LESSON_FOLDER = Path(__file__).resolve().parent.parent / "learn"


def _read(path: Path) -> tuple[str, str]:
    title, _, body = path.read_text(encoding="utf-8").partition("\n")
    return title.removeprefix("# "), body


# (title, Markdown with {names} to fill in), in the order the page shows them.
LESSONS = tuple(_read(path) for path in sorted(LESSON_FOLDER.glob("*.md")))
LESSON_TITLES = tuple(title for title, _ in LESSONS)


def _n(value: int) -> str:
    return f"{value:,}"


def _augmentation(spec: DatasetSpec) -> str:
    """What the training does to each image of `spec`, as a clause ending in ", "."""
    changes = []
    if spec.augment_shift:
        changes.append(
            f"shifts each training image by up to {spec.augment_shift} pixel{'s' * (spec.augment_shift > 1)}"
        )
    if spec.augment_flip:
        changes.append("mirrors half of them left to right")
    return f"{' and '.join(changes)} so the model cannot memorise exact positions, " if changes else ""


def faithfulness_table(spec: DatasetSpec) -> str:
    """What the faithfulness benchmark measured over real test images (for this dataset's
    shipped model, else MNIST's), as a table and a sentence."""
    measured = faithfulness.measured(spec.key) or faithfulness.measured("mnist")
    if measured is None:
        return "*(The faithfulness benchmark has not been run here: `benchmarks/explanation_faithfulness.py`.)*"
    rows = "\n".join(
        f"| {ATTRIBUTIONS.get(method, 'random order (the baseline)')} | {row['deletion']:.2f} | "
        f"{row['insertion']:.2f} | **{row['score']:+.2f}** | "
        + ("" if method == "random" else f"{row['beats_random']:.0%}")
        + " |"
        for method, row in measured["methods"].items()
    )
    best = max((m for m in measured["methods"] if m != "random"), key=lambda m: measured["methods"][m]["score"])
    return f"""Measured over **{measured["images"]:,} test images** of {get_spec(measured["dataset"]).title} with the
shipped model ({measured["patches"]} patches), each map made for the class the model predicted:

| map | deletion area (lower is better) | insertion area (higher is better) | score | beats random on |
|---|---:|---:|---:|---:|
{rows}

Here **{ATTRIBUTIONS[best].split(" (")[0]}** is the most faithful on average; no map is right for every
image, which is why Explore scores the one you are looking at."""


def values(config: ViTConfig, spec: DatasetSpec, batch_size: int, lr: float, train_images: int) -> dict:
    """Every number and phrase the lessons' Markdown fills in, by the name it uses there."""
    c, counts = config, config.parameter_counts()
    return {
        "image_size": c.image_size, "patch_size": c.patch_size, "channels": c.channels, "grid": c.grid_size,
        "patches": c.num_patches, "patch_dim": c.patch_dim, "dim": c.dim, "tokens": c.seq_len, "heads": c.heads,
        "head_dim": c.head_dim, "mlp_dim": c.mlp_dim, "classes": c.num_classes, "depth": c.depth,
        "token_pairs": _n(c.seq_len**2), "attention_weights": _n(c.heads * c.seq_len**2),
        **{f"n_{part}": _n(count) for part, count in counts.items()},
        "n_block": _n(counts["transformer"] // c.depth), "n_total": _n(num_parameters(counts)),
        "batch_size": batch_size, "lr": f"{lr:g}", "train_images": _n(train_images),
        "steps_per_epoch": _n(-(-train_images // batch_size)), "augmentation": _augmentation(spec),
        "dataset": spec.title, "class_list": ", ".join(spec.class_names),
        "colour": (
            "grey (one brightness value per pixel)" if c.channels == 1 else "colour (red, green and blue per pixel)"
        ),
        "grey_or_colour": "grey" if c.channels == 1 else "colour", "channel_plural": "s" if c.channels > 1 else "",
        "faithfulness_table": faithfulness_table(spec),
    }  # fmt: skip


def lesson(config: ViTConfig, spec: DatasetSpec, batch_size: int, lr: float, train_images: int) -> list[str]:
    """The Markdown of every section of `LESSON_TITLES`, for this model and training."""
    filled = values(config, spec, batch_size, lr, train_images)
    return [body.format_map(filled) for _, body in LESSONS]
