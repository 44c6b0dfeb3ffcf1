"""The Build tab: choose a dataset, a preset, and the ViT's knobs; a summary of shapes,
parameters and training time follows every move, without building the model.

A combination the model refuses (say dim 64 with 3 heads) shows `ViTConfig`'s own
message in the summary; the Start button refuses it the same way.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import gradio as gr

from ..data import DATASETS, get_spec
from ..model import ViTConfig, divisors, estimated_training_memory_bytes, num_parameters
from ..recipes import Preset, recipe_for
from ..training import TrainConfig
from .errors import user_errors
from .estimates import TRAINING_FLOPS_PER_FORWARD, ThroughputMeter
from .learn import LESSON_TITLES, lesson
from .settings import AppSettings

# Images in each training set (the published sizes). The data is not read just to count it.
TRAIN_IMAGES = {"mnist": 60_000, "fashion_mnist": 60_000, "cifar10": 50_000}
TEST_IMAGES = 10_000
BATCH_SIZES = [16, 32, 64, 128, 256, 512]
DATASET_CHOICES = [("MNIST digits", "mnist"), ("Fashion-MNIST clothes", "fashion_mnist"), ("CIFAR-10 photos", "cifar10")]
TIME = "time"
EPOCHS = "epochs"
# What a preset sets, in `BuildControls.preset_outputs` order.
PRESET_KNOBS = ("patch_size", "dim", "depth", "heads", "mlp_dim", "lr", "batch_size", "length", "seconds")


def patch_sizes(dataset: str) -> list[int]:
    """Every patch size that divides the dataset's images, except 1 (a pixel is no patch)."""
    return [d for d in divisors(get_spec(dataset).image_size) if d > 1]


def find_preset(dataset: str, label: str | None) -> Preset:
    """The dataset's preset called `label`; its first preset when it has none of that name."""
    presets = recipe_for(dataset).presets
    return next((p for p in presets if p.label == label), presets[0])


def _whole(name: str, value) -> int:
    if value is None or value == "":
        raise ValueError(f"choose a value for {name}")
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be a whole number, got {value!r}") from None
    if not math.isfinite(number) or number != int(number):
        raise ValueError(f"{name} must be a whole number, got {value}")
    return int(number)


def model_settings(patch_size, dim, depth, heads, mlp_dim) -> dict:
    """The knobs as `create_model` keyword arguments (the dataset fixes the rest)."""
    values = {"patch_size": patch_size, "dim": dim, "depth": depth, "heads": heads, "mlp_dim": mlp_dim}
    return {name: _whole(name, value) for name, value in values.items()}


def model_config(dataset: str, settings: dict) -> ViTConfig:
    """The ViTConfig the knobs describe; raises the model's own ValueError when it cannot be built."""
    spec = get_spec(dataset)
    return ViTConfig(image_size=spec.image_size, num_classes=spec.num_classes, channels=spec.channels, **settings)


def train_config(
    dataset: str, lr, batch_size, length: str, seconds, epochs, seed, app: AppSettings
) -> TrainConfig:
    """The TrainConfig of the knobs: the dataset's recipe for everything the page does not show."""
    extras = {k: v for k, v in recipe_for(dataset).training.items() if k not in ("lr", "batch_size")}
    return TrainConfig(
        dataset=get_spec(dataset).key,
        time_budget=float(seconds) if length == TIME else None,
        epochs=float(epochs) if length == EPOCHS else None,
        lr=float(lr),
        batch_size=_whole("batch size", batch_size),
        seed=_whole("seed", seed if seed is not None else 0),
        data_dir=app.data_dir,
        train_limit=app.train_limit,
        test_limit=app.test_limit,
        **extras,
    )


# The least a run must manage within the server's time limit to show anything: this many
# training steps, plus scoring the starting point and the stopped model (see vit_demo.training).
MIN_USEFUL_STEPS = 20
SCORED_IMAGES = 2 * 1000 + 2000  # the starting point's two 1000-image slices, the stopped run's probe slice


def _what_to_lower(config: ViTConfig, batch_size: int) -> str:
    bigger = [p for p in divisors(config.image_size) if p > config.patch_size]
    raise_patch = (f"raise patch_size (now {config.patch_size}: {config.num_patches} patches; "
                   f"{', '.join(map(str, bigger))} also divide {config.image_size})" if bigger else None)
    knobs = ", ".join(
        f"{name} (now {value})" for name, value in
        (("batch_size", batch_size), ("depth", config.depth), ("dim", config.dim), ("mlp_dim", config.mlp_dim))
    )
    return f"{raise_patch + ', or lower ' if raise_patch else 'lower '}{knobs}"


def check_fits_server(config: ViTConfig, batch_size: int, app: AppSettings, meter: ThroughputMeter) -> None:
    """Refuse, with a ValueError that says how big and what to lower, a model this server
    cannot train: estimated memory over `app.max_train_memory_mb`, or so slow that not even
    a few steps and their scoring fit in `app.max_train_seconds`."""
    memory_mb = estimated_training_memory_bytes(config, batch_size) / 2**20
    if memory_mb > app.max_train_memory_mb:
        raise ValueError(
            f"This model is too big for this server: training it with batch_size {batch_size} needs about "
            f"{_size(memory_mb)} of memory, over the {_size(app.max_train_memory_mb)} limit "
            f"(VIT_DEMO_MAX_TRAIN_MEMORY_MB). To fit, {_what_to_lower(config, batch_size)}."
        )
    flops = config.forward_flops() * (TRAINING_FLOPS_PER_FORWARD * MIN_USEFUL_STEPS * batch_size + SCORED_IMAGES)
    seconds = flops / meter.flops_per_second
    if seconds > app.max_train_seconds:
        raise ValueError(
            f"This model is too slow for this server: {MIN_USEFUL_STEPS} training steps with batch_size {batch_size} "
            f"and a first score would take about {_duration(seconds)} ({config.forward_flops() / 1e6:,.0f} MFLOP per "
            f"image), over the {_duration(app.max_train_seconds)} limit of one run (VIT_DEMO_MAX_TRAIN_SECONDS). "
            f"To fit, {_what_to_lower(config, batch_size)}."
        )


def _size(megabytes: float) -> str:
    return f"{megabytes / 1024:,.1f} GB" if megabytes >= 1024 else f"{megabytes:,.0f} MB"


def train_images(dataset: str, app: AppSettings) -> int:
    total = TRAIN_IMAGES[get_spec(dataset).key]
    return min(total, app.train_limit) if app.train_limit else total


def _duration(seconds: float) -> str:
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 5400:
        return f"{seconds / 60:.1f} min"
    return f"{seconds / 3600:.1f} h"


@dataclass
class BuildControls:
    dataset: gr.Radio
    preset: gr.Radio
    patch_size: gr.Dropdown
    dim: gr.Slider
    depth: gr.Slider
    heads: gr.Slider
    mlp_dim: gr.Slider
    fixed_by_dataset: gr.Markdown
    lr: gr.Slider
    batch_size: gr.Dropdown
    length: gr.Radio
    seconds: gr.Slider
    epochs: gr.Slider
    seed: gr.Number
    summary: gr.Markdown
    start: gr.Button

    def model_inputs(self) -> list:
        return [self.dataset, self.patch_size, self.dim, self.depth, self.heads, self.mlp_dim]

    def training_inputs(self) -> list:
        return [self.lr, self.batch_size, self.length, self.seconds, self.epochs, self.seed]

    def preset_outputs(self) -> list:
        return [getattr(self, name) for name in PRESET_KNOBS]


class BuildHandlers:
    def __init__(self, app: AppSettings, meter: ThroughputMeter):
        self.app = app
        self.meter = meter

    def knob_values(self, dataset: str, preset_label: str | None) -> list:
        """The knobs of a preset, in `BuildControls.preset_outputs` order (the dataset's first
        preset when `preset_label` is not one of its own)."""
        recipe = recipe_for(dataset)
        preset = find_preset(dataset, preset_label)
        model = {**recipe.model, **preset.model}
        return [
            model["patch_size"], model["dim"], model["depth"], model["heads"], model["mlp_dim"],
            recipe.training["lr"], recipe.training["batch_size"], TIME, min(preset.time_budget, self.app.max_train_seconds),
        ]

    @staticmethod
    def fixed_by_dataset(dataset: str) -> str:
        """The model group's heading, with what the dataset decides."""
        spec = get_spec(dataset)
        return (
            f"**The model** · set by the dataset: `image_size` {spec.image_size}, `channels` {spec.channels}, "
            f"`num_classes` {spec.num_classes}"
        )

    def dataset_settings(self, dataset: str, preset_label: str | None = None) -> dict[str, dict]:
        """What choosing `dataset` and one of its presets (the first when `preset_label` is not
        one of them) sets, as update keywords per control: the preset menu, the patch sizes
        that divide the images, and the preset's knobs."""
        presets = recipe_for(dataset).presets
        preset = find_preset(dataset, preset_label)
        settings = {name: {"value": value} for name, value in zip(PRESET_KNOBS, self.knob_values(dataset, preset.label))}
        settings["patch_size"]["choices"] = patch_sizes(dataset)
        settings["preset"] = {"choices": [p.label for p in presets], "value": preset.label, "info": preset.blurb}
        return settings

    def choose_dataset(self, dataset: str) -> list:
        """New dataset: its presets, its patch sizes, the first preset's knobs."""
        settings = self.dataset_settings(dataset)
        return [
            gr.update(**settings["preset"]), self.fixed_by_dataset(dataset),
            *(gr.update(**settings[name]) for name in PRESET_KNOBS),
        ]

    def choose_preset(self, dataset: str, preset_label: str | None) -> list:
        return [gr.Radio(info=find_preset(dataset, preset_label).blurb), *self.knob_values(dataset, preset_label)]

    @staticmethod
    def show_length(length: str) -> list:
        return [gr.Slider(visible=length == TIME), gr.Slider(visible=length == EPOCHS)]

    @user_errors
    def describe(self, dataset, patch_size, dim, depth, heads, mlp_dim, lr, batch_size, length, seconds, epochs) -> list:
        """The summary beside the knobs and every Learn section, for the model they describe.

        A model that cannot be built shows why in the summary and leaves the lessons as they were.
        """
        try:
            config = model_config(dataset, model_settings(patch_size, dim, depth, heads, mlp_dim))
            batch = _whole("batch size", batch_size)
        except ValueError as error:
            warning = f"### ⚠️ This model cannot be built\n\n{error}"
            return [warning] + [gr.skip()] * len(LESSON_TITLES)
        try:
            check_fits_server(config, batch, self.app, self.meter)
        except ValueError as error:
            warning = f"### ⚠️ This model cannot be trained here\n\n{error}"
            return [warning] + [gr.skip()] * len(LESSON_TITLES)
        spec = get_spec(dataset)
        images = train_images(dataset, self.app)
        return [self.summary(config, spec.key, batch, length, seconds, epochs, images),
                *lesson(config, spec, batch, float(lr), images)]

    def summary(self, config: ViTConfig, dataset: str, batch_size: int, length, seconds, epochs, images: int) -> str:
        counts = config.parameter_counts()
        rows = "\n".join(f"| `{name}` | {count:,} |" for name, count in counts.items())
        epoch_seconds = self.meter.seconds_per_epoch(config, images)
        test_images = min(TEST_IMAGES, self.app.test_limit or TEST_IMAGES)
        scoring = self.meter.seconds_to_score(config, test_images)
        if length == TIME:
            run = (f"In **{_duration(float(seconds))}** it sees about **{float(seconds) / epoch_seconds:.1f} epochs**, "
                   f"then scores {test_images:,} test images (≈ {_duration(scoring)}).")
            run_seconds = float(seconds)
        else:
            run_seconds = float(epochs) * epoch_seconds + scoring
            run = f"**{float(epochs):g} epochs** take about **{_duration(run_seconds)}**, testing included."
        if run_seconds > self.app.max_train_seconds:
            run += f" ⚠️ Runs stop at the {_duration(self.app.max_train_seconds)} limit of this server."
        memory = estimated_training_memory_bytes(config, batch_size) / 2**20
        return f"""### Your ViT
**({config.channels}, {config.image_size}, {config.image_size}) → {config.num_patches} patches of \
{config.patch_size}×{config.patch_size}×{config.channels} = {config.patch_dim} values → \
{config.seq_len} tokens of {config.dim}**

{config.grid_size}×{config.grid_size} patches · sequence length {config.seq_len} (CLS + {config.num_patches}) · \
`patch_dim` {config.patch_dim} · head size {config.head_dim}

| part | learned numbers |
|---|---:|
{rows}
| **total** | **{num_parameters(counts):,}** |

**Speed on this machine:** one epoch ({images:,} images) ≈ **{_duration(epoch_seconds)}** \
({config.forward_flops() / 1e6:.1f} MFLOP per image, {self.meter.flops_per_second / 1e9:.1f} GFLOP/s \
{self.meter.source}). {run} Memory ≈ {memory:.0f} MB.
"""


def render_build_tab(handlers: BuildHandlers, app: AppSettings) -> BuildControls:
    """The Build tab's components (inside an open gr.Tab), showing the first dataset's first preset."""
    first = next(iter(DATASETS))
    first_preset = recipe_for(first).presets[0]
    patch_value, dim_value, depth_value, heads_value, mlp_value, lr_value, batch_value, length_value, seconds_value = (
        handlers.knob_values(first, first_preset.label)
    )
    with gr.Row(equal_height=False):
        with gr.Column(scale=3):
            dataset = gr.Radio(DATASET_CHOICES, value=first, label="Dataset", elem_id="build-dataset")
            preset = gr.Radio([p.label for p in recipe_for(first).presets], value=first_preset.label,
                              info=first_preset.blurb, label="Preset", elem_id="build-preset")
            fixed = gr.Markdown(handlers.fixed_by_dataset(first))
            with gr.Row():
                with gr.Column(min_width=240):
                    # Custom values are let through (typed, or from the API, or a CIFAR
                    # size on a page that still lists MNIST's): the handlers check them
                    # and say what would fit, where Gradio would only say "not in the list".
                    patch_size = gr.Dropdown(patch_sizes(first), value=patch_value, allow_custom_value=True,
                                             label="patch_size (pixels per side)",
                                             info="only sizes that divide the image", elem_id="build-patch-size")
                    dim = gr.Slider(16, 256, value=dim_value, step=8, label="dim (numbers per token)")
                    depth = gr.Slider(1, 12, value=depth_value, step=1, label="depth (blocks)", elem_id="build-depth")
                    heads = gr.Slider(1, 16, value=heads_value, step=1, label="heads (per block)")
                    mlp_dim = gr.Slider(32, 1024, value=mlp_value, step=32,
                                        label="mlp_dim (MLP width)")
                with gr.Column(min_width=240):
                    lr = gr.Slider(0.0001, 0.01, value=lr_value, step=0.0001, label="lr (learning rate)",
                                   elem_id="build-lr")
                    batch_size = gr.Dropdown(BATCH_SIZES, value=batch_value, allow_custom_value=True,
                                             label="batch_size (images per step)")
                    length = gr.Radio([("Time budget", TIME), ("Epochs", EPOCHS)], value=length_value,
                                      label="Train for")
                    seconds = gr.Slider(5, app.max_train_seconds, value=seconds_value, step=5, label="seconds",
                                        elem_id="build-seconds")
                    epochs = gr.Slider(0.5, 30, value=1, step=0.5, label="epochs", visible=False)
                    seed = gr.Number(0, precision=0, label="seed (same seed → same start)", elem_id="build-seed")
        with gr.Column(scale=2):
            summary = gr.Markdown(elem_id="build-summary")
            start = gr.Button("Train this model →", variant="primary", elem_id="build-start")
    return BuildControls(dataset, preset, patch_size, dim, depth, heads, mlp_dim, fixed, lr, batch_size, length,
                         seconds, epochs, seed, summary, start)


def wire_build_tab(handlers: BuildHandlers, controls: BuildControls, lessons: list[gr.Markdown]) -> None:
    c = controls
    private = {"api_visibility": "private", "show_progress": "hidden", "queue": False}
    # `input`, not `change`: only a person's choice resets the knobs to the dataset's first
    # preset. A lesson link sets the dataset and its own knobs in one step (teacher.py).
    c.dataset.input(handlers.choose_dataset, c.dataset, [c.preset, c.fixed_by_dataset, *c.preset_outputs()], **private)
    c.preset.input(handlers.choose_preset, [c.dataset, c.preset], [c.preset, *c.preset_outputs()], **private)
    c.length.change(handlers.show_length, c.length, [c.seconds, c.epochs], **private)
    describe_inputs = [*c.model_inputs(), c.lr, c.batch_size, c.length, c.seconds, c.epochs]
    gr.on(
        [c.dataset.change, c.patch_size.change, c.dim.change, c.depth.change, c.heads.change, c.mlp_dim.change,
         c.lr.change, c.batch_size.change, c.length.change, c.seconds.change, c.epochs.change],
        handlers.describe, describe_inputs, [c.summary, *lessons],
        api_name="describe", show_progress="hidden", trigger_mode="always_last", concurrency_limit=None,
        concurrency_id="describe",
    )
