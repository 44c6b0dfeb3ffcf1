"""The Build tab: choose a dataset, a preset, and the ViT's knobs; a summary of shapes,
parameters and training time follows every move, without building the model.

A combination the model refuses (say dim 64 with 3 heads) shows `ViTConfig`'s own
message in the summary; the Start button refuses it the same way.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import gradio as gr

from .. import planning
from ..data import DATASETS, get_spec
from ..model import SHAPE_FIELDS, ViTConfig, divisors, estimated_training_memory_bytes, num_parameters
from ..planning import Plan, ThroughputMeter, format_duration
from ..recipes import Candidate, Preset, recipe_for
from ..training import TrainConfig
from .errors import user_errors
from .learn import LESSON_TITLES, lesson
from .settings import AppSettings

BATCH_SIZES = [16, 32, 64, 128, 256, 512]
DATASET_CHOICES = [
    ("MNIST digits", "mnist"),
    ("Fashion-MNIST clothes", "fashion_mnist"),
    ("CIFAR-10 photos", "cifar10"),
]
TIME = "time"
EPOCHS = "epochs"
# What a preset sets, in `BuildControls.preset_outputs` order.
PRESET_KNOBS = (*SHAPE_FIELDS, "lr", "batch_size", "length", "seconds")


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


@dataclass(frozen=True)
class Knobs:
    """The Build tab's choice as the handlers receive it, checked: the dataset, the model's
    shape (`SHAPE_FIELDS`) and how to train it."""

    dataset: str
    shape: dict
    lr: float
    batch_size: int
    length: str  # TIME or EPOCHS
    seconds: float
    epochs: float
    seed: int = 0

    @classmethod
    def read(
        cls, dataset, patch_size, dim, depth, heads, mlp_dim, lr, batch_size, length, seconds, epochs, seed=0
    ) -> Knobs:
        """The knobs as the Build tab's controls give them; a ValueError names one that does not fit."""
        for name, value, used in (("seconds", seconds, length == TIME), ("epochs", epochs, length == EPOCHS)):
            if used and not float(value) > 0:
                raise ValueError(f"{name} must be more than 0, got {float(value):g}")
        return cls(
            get_spec(dataset).key,
            {name: _whole(name, value) for name, value in zip(SHAPE_FIELDS, (patch_size, dim, depth, heads, mlp_dim))},
            float(lr),
            _whole("batch size", batch_size),
            length,
            float(seconds),
            float(epochs),
            _whole("seed", 0 if seed is None else seed),
        )

    def model_config(self) -> ViTConfig:
        """The ViTConfig the knobs describe; raises the model's own ValueError when it cannot be built."""
        spec = get_spec(self.dataset)
        return ViTConfig(image_size=spec.image_size, num_classes=spec.num_classes, channels=spec.channels, **self.shape)

    def train_config(self, app: AppSettings, meter: ThroughputMeter) -> TrainConfig:
        """The run's TrainConfig (planning.app_train_config adds what the page does not show).
        A time budget becomes the steps this machine takes in that time, at the speed the
        first run of this shape was planned at: the same knobs then always train the same
        model here, so identical runs can be shared (a ZeroGPU Space, never measured, keeps
        the seconds)."""
        steps = None
        if self.length == TIME and not app.zero_gpu:
            speed = meter.settle_planning_speed(self.model_config(), self.batch_size)
            steps = planning.steps_in(self.seconds, speed, self.batch_size)
        return planning.app_train_config(
            self.dataset,
            self.lr,
            self.batch_size,
            self.seed,
            time_budget=self.seconds if self.length == TIME and steps is None else None,
            epochs=self.epochs if self.length == EPOCHS else None,
            steps=steps,
            data_dir=app.data_dir,
            train_limit=app.train_limit,
            test_limit=app.test_limit,
        )

    @property
    def length_text(self) -> str:
        return f"{self.seconds:g} s" if self.length == TIME else f"{self.epochs:g} epochs"


def check_fits_server(config: ViTConfig, batch_size: int, app: AppSettings, meter: ThroughputMeter) -> None:
    planning.check_fits_server(config, batch_size, app.max_train_memory_mb, app.max_train_seconds, meter)


def matching_candidate(dataset: str, config: ViTConfig, batch_size: int, lr: float) -> Candidate | None:
    """The recipe candidate the knobs describe, if they describe one."""
    knobs = Candidate(config.patch_size, config.dim, config.depth, config.heads, config.mlp_dim, batch_size, lr)
    return next((c for c in recipe_for(dataset).candidates if c == knobs), None)


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

    def preset_plan(self, dataset: str, preset_label: str | None) -> Plan:
        """The preset's candidate this machine trains best in the preset's time (capped by the server's limit)."""
        preset = find_preset(dataset, preset_label)
        seconds = min(preset.time_budget, self.app.max_train_seconds)
        return planning.plan(dataset, seconds, preset.candidates, self.meter)

    def knob_values(self, dataset: str, preset_label: str | None) -> list:
        """The knobs of a preset, in `BuildControls.preset_outputs` order (the dataset's first
        preset when `preset_label` is not one of its own)."""
        plan = self.preset_plan(dataset, preset_label)
        c = plan.candidate
        return [c.patch_size, c.dim, c.depth, c.heads, c.mlp_dim, c.lr, c.batch_size, TIME, plan.seconds]

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
        settings = {
            name: {"value": value} for name, value in zip(PRESET_KNOBS, self.knob_values(dataset, preset.label))
        }
        settings["patch_size"]["choices"] = patch_sizes(dataset)
        settings["preset"] = {"choices": [p.label for p in presets], "value": preset.label, "info": preset.blurb}
        return settings

    def choose_dataset(self, dataset: str) -> list:
        """New dataset: its presets, its patch sizes, the first preset's knobs."""
        settings = self.dataset_settings(dataset)
        return [
            gr.update(**settings["preset"]),
            self.fixed_by_dataset(dataset),
            *(gr.update(**settings[name]) for name in PRESET_KNOBS),
        ]

    def choose_preset(self, dataset: str, preset_label: str | None) -> list:
        return [gr.Radio(info=find_preset(dataset, preset_label).blurb), *self.knob_values(dataset, preset_label)]

    @staticmethod
    def show_length(length: str) -> list:
        return [gr.Slider(visible=length == TIME), gr.Slider(visible=length == EPOCHS)]

    @user_errors
    def describe(
        self, dataset, patch_size, dim, depth, heads, mlp_dim, lr, batch_size, length, seconds, epochs
    ) -> list:
        """The summary beside the knobs and every Learn section, for the model they describe.

        A model that cannot be built shows why in the summary and leaves the lessons as they were.
        """
        try:
            knobs = Knobs.read(dataset, patch_size, dim, depth, heads, mlp_dim, lr, batch_size, length, seconds, epochs)
            config = knobs.model_config()
        except ValueError as error:
            warning = f"### ⚠️ This model cannot be built\n\n{error}"
            return [warning] + [gr.skip()] * len(LESSON_TITLES)
        try:
            check_fits_server(config, knobs.batch_size, self.app, self.meter)
        except ValueError as error:
            warning = f"### ⚠️ This model cannot be trained here\n\n{error}"
            return [warning] + [gr.skip()] * len(LESSON_TITLES)
        images = planning.train_images(dataset, self.app.train_limit)
        return [
            self.summary(knobs, config, images),
            *lesson(config, get_spec(dataset), knobs.batch_size, knobs.lr, images),
        ]

    def summary(self, knobs: Knobs, config: ViTConfig, images: int) -> str:
        counts = config.parameter_counts()
        rows = "\n".join(f"| `{name}` | {count:,} |" for name, count in counts.items())
        epoch_seconds = self.meter.seconds_per_epoch(config, knobs.batch_size, images)
        spec = get_spec(knobs.dataset)
        test_images = min(spec.test_images, self.app.test_limit or spec.test_images)
        scoring = self.meter.seconds_to_score(config, test_images)
        if knobs.length == TIME:
            run = (
                f"In **{format_duration(knobs.seconds)}** it sees about "
                f"**{knobs.seconds / epoch_seconds:.1f} epochs**, "
                f"then scores {test_images:,} test images (≈ {format_duration(scoring)})."
            )
            run_seconds = knobs.seconds
            seen = planning.images_in(
                knobs.seconds,
                self.meter.images_per_second(config, knobs.batch_size),
                TrainConfig().evaluations,
                TrainConfig().eval_subset,
            )
        else:
            run_seconds = knobs.epochs * epoch_seconds + scoring
            run = f"**{knobs.epochs:g} epochs** take about **{format_duration(run_seconds)}**, testing included."
            seen = knobs.epochs * images
        if run_seconds > self.app.max_train_seconds:
            run += f" ⚠️ Runs stop at the {format_duration(self.app.max_train_seconds)} limit of this server."
        if self.app.zero_gpu:
            run += (
                f" This Space trains on a GPU that Hugging Face ZeroGPU lends for one run at a time, for at most "
                f"{format_duration(self.app.max_train_seconds)} of training: a free account has 5 GPU minutes a "
                f"day. Explore runs on the CPU and costs none of them."
            )
        memory = estimated_training_memory_bytes(config, knobs.batch_size) / 2**20
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

**Speed on this machine:** one epoch ({images:,} images) ≈ **{format_duration(epoch_seconds)}** \
({config.forward_flops() / 1e6:.1f} MFLOP per image, {self.meter.flops_per_second / 1e9:.1f} GFLOP/s \
{self.meter.source}). {run} Memory ≈ {memory:.0f} MB.

{self.expected_accuracy(config, knobs, seen)}
"""

    def expected_accuracy(self, config: ViTConfig, knobs: Knobs, images: float) -> str:
        """What the measured table says this run will score, in one line."""
        dataset = knobs.dataset
        candidate = matching_candidate(dataset, config, knobs.batch_size, knobs.lr)
        expected = planning.default_table().expect(dataset, candidate, images) if candidate else None
        if expected is None or self.app.train_limit:
            return (
                "**Expected test accuracy:** not measured for these settings: train it and see, "
                "then compare runs below the Train tab's curves."
            )
        spread = (
            f"; runs with other seeds differed by up to {100 * expected.spread:.1f} points" if expected.spread else ""
        )
        return (
            f"**Expected test accuracy:** {expected.describe()}, from runs of this shape measured on "
            f"{get_spec(dataset).title.split(' (')[0]} at "
            f"{expected.measured_images[0]:,}–{expected.measured_images[1]:,} images{spread}."
        )


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
            preset = gr.Radio(
                [p.label for p in recipe_for(first).presets],
                value=first_preset.label,
                info=first_preset.blurb,
                label="Preset",
                elem_id="build-preset",
            )
            fixed = gr.Markdown(handlers.fixed_by_dataset(first))
            with gr.Row():
                with gr.Column(min_width=240):
                    # Custom values are let through (typed, or from the API, or a CIFAR
                    # size on a page that still lists MNIST's): the handlers check them
                    # and say what would fit, where Gradio would only say "not in the list".
                    patch_size = gr.Dropdown(
                        patch_sizes(first),
                        value=patch_value,
                        allow_custom_value=True,
                        label="patch_size (pixels per side)",
                        info="only sizes that divide the image",
                        elem_id="build-patch-size",
                    )
                    dim = gr.Slider(16, 256, value=dim_value, step=8, label="dim (numbers per token)")
                    depth = gr.Slider(1, 12, value=depth_value, step=1, label="depth (blocks)", elem_id="build-depth")
                    heads = gr.Slider(1, 16, value=heads_value, step=1, label="heads (per block)")
                    mlp_dim = gr.Slider(32, 1024, value=mlp_value, step=32, label="mlp_dim (MLP width)")
                with gr.Column(min_width=240):
                    lr = gr.Slider(
                        0.0001, 0.01, value=lr_value, step=0.0001, label="lr (learning rate)", elem_id="build-lr"
                    )
                    batch_size = gr.Dropdown(
                        BATCH_SIZES, value=batch_value, allow_custom_value=True, label="batch_size (images per step)"
                    )
                    length = gr.Radio(
                        [("Time budget", TIME), ("Epochs", EPOCHS)], value=length_value, label="Train for"
                    )
                    seconds = gr.Slider(
                        5, app.max_train_seconds, value=seconds_value, step=5, label="seconds", elem_id="build-seconds"
                    )
                    epochs = gr.Slider(0.5, 30, value=1, step=0.5, label="epochs", visible=False)
                    seed = gr.Number(0, precision=0, label="seed (same seed → same start)", elem_id="build-seed")
        with gr.Column(scale=2):
            summary = gr.Markdown(elem_id="build-summary")
            start = gr.Button("Train this model →", variant="primary", elem_id="build-start")
    return BuildControls(
        dataset,
        preset,
        patch_size,
        dim,
        depth,
        heads,
        mlp_dim,
        fixed,
        lr,
        batch_size,
        length,
        seconds,
        epochs,
        seed,
        summary,
        start,
    )


def wire_build_tab(
    handlers: BuildHandlers, demo: gr.Blocks, controls: BuildControls, lessons: list[gr.Markdown]
) -> None:
    """A person's dataset or preset choice sets the knobs; any change of a knob (and the page's
    load) redraws the summary and the Learn tab's lessons: the public "describe" endpoint."""
    c = controls
    private = {"api_visibility": "private", "show_progress": "hidden", "queue": False}
    # `input`, not `change`: only a person's choice resets the knobs to the dataset's first
    # preset. A lesson link sets the dataset and its own knobs in one step (teacher.py).
    c.dataset.input(handlers.choose_dataset, c.dataset, [c.preset, c.fixed_by_dataset, *c.preset_outputs()], **private)
    c.preset.input(handlers.choose_preset, [c.dataset, c.preset], [c.preset, *c.preset_outputs()], **private)
    c.length.change(handlers.show_length, c.length, [c.seconds, c.epochs], **private)
    describe_inputs = [*c.model_inputs(), c.lr, c.batch_size, c.length, c.seconds, c.epochs]
    gr.on(
        [demo.load, *(control.change for control in describe_inputs)],
        handlers.describe,
        describe_inputs,
        [c.summary, *lessons],
        api_name="describe",
        show_progress="hidden",
        trigger_mode="always_last",
        concurrency_limit=None,
        concurrency_id="describe",
    )
