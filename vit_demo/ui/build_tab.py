"""The Build tab: choose a dataset, a preset, and the ViT's knobs; a summary of shapes,
parameters, time and expected accuracy follows every move, without building the model.

A combination the model refuses (say dim 64 with 3 heads) shows `ViTConfig`'s own message in
the summary; the Start button refuses it the same way. What a run will take is the service's
(service/estimates.py); this module lays out the controls and words the estimate.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import gradio as gr

from ..data import DATASETS, OWN_PREFIX, get_spec
from ..model import SHAPE_FIELDS, divisors, num_parameters
from ..recipes import recipe_for
from ..service.estimates import Estimate
from ..service.knobs import KNOBS, RANGES, Knobs
from ..service.lessons import server_lesson
from ..service.zerogpu import quota_words
from ..summaries import format_duration
from .endpoints import named
from .learn import lesson
from .own_panel import OwnPanel, added, opened, render_own_panel

BATCH_SIZES = [16, 32, 64, 128, 256, 512]
IMAGE_SIZES = [14, 16, 24, 28, 32, 48, 56, 64]  # offered; any size in RANGES may be typed
DATASET_CHOICES = [
    ("MNIST digits", "mnist"),
    ("Fashion-MNIST clothes", "fashion_mnist"),
    ("CIFAR-10 photos", "cifar10"),
]


def dataset_choices(lesson: str, own: tuple[str, str] | None = None) -> list[tuple[str, str]]:
    """The bundled sets; the lesson's folder of pictures when `lesson` (the lesson's dataset) is
    one, on every page of the lesson; and this page's `own` pictures."""
    shared = [(f"The class's pictures: {get_spec(lesson).title}", lesson)] if lesson.startswith(OWN_PREFIX) else []
    return [*DATASET_CHOICES, *shared, *([own] if own else [])]


def patch_sizes(image_size: int) -> list[int]:
    """Every patch size that divides the pictures, except 1 (a pixel is no patch)."""
    return [d for d in divisors(int(image_size)) if d > 1]


def knob_control(name: str, value, image_size: int):
    """The control of one knob (not the dataset), its range from `RANGES`."""
    r = RANGES[name]
    elem = {"elem_id": f"build-{name.replace('_', '-')}"}
    if name == "patch_size":
        # Custom values are let through (typed, or from the API): the knobs check them and say
        # what would fit, where Gradio would only say "not in the list".
        return gr.Dropdown(
            patch_sizes(image_size),
            value=value,
            allow_custom_value=True,
            label=r.label,
            info="only sizes that divide the image",
            **elem,
        )
    if name == "image_size":
        return gr.Dropdown(
            IMAGE_SIZES, value=value, allow_custom_value=True, label=r.label, info="the pictures are resized", **elem
        )
    if name == "channels":
        return gr.Radio([("1 grey", 1), ("3 colour", 3)], value=value, label=r.label, **elem)
    if name == "batch_size":
        return gr.Dropdown(BATCH_SIZES, value=value, allow_custom_value=True, label=r.label, **elem)
    if name == "seed":
        return gr.Number(value, precision=0, label=r.label, **elem)
    return gr.Slider(r.low, r.high, value=value, step=r.step, label=r.label, **elem)


@dataclass
class BuildTab:
    dataset: gr.Radio
    preset: gr.Radio
    fixed_by_dataset: gr.Markdown
    knobs: dict  # knob name (`KNOBS`) -> its control; "dataset" is `dataset`
    summary: gr.Markdown
    start: gr.Button
    own: OwnPanel


def fixed_by_dataset(dataset: str) -> str:
    """The model group's heading, with what the dataset decides."""
    spec = get_spec(dataset)
    return (
        f"**The model** · set by the dataset: `num_classes` {spec.num_classes}. Its pictures are "
        f"{spec.image_size}×{spec.image_size} in {'grey' if spec.channels == 1 else 'colour'}: change "
        "`image_size` or `channels` and they are resized or recoloured for the run."
    )


def preset_choices(dataset: str) -> list[tuple[str, str]]:
    return [(p.label, p.name) for p in recipe_for(dataset).presets]


def render_build_tab() -> BuildTab:
    """The Build tab's components (inside an open gr.Tab), showing the first dataset's first preset."""
    first = next(iter(DATASETS))
    preset = recipe_for(first).presets[0]
    values = Knobs.of_preset(first, preset).values
    with gr.Row(equal_height=False):
        with gr.Column(scale=3):
            dataset = gr.Radio(DATASET_CHOICES, value=first, label="Dataset", elem_id="build-dataset")
            own = render_own_panel()
            preset_radio = gr.Radio(
                preset_choices(first), value=preset.name, info=preset.blurb, label="Preset", elem_id="build-preset"
            )
            fixed = gr.Markdown(fixed_by_dataset(first))
            controls = {"dataset": dataset}
            model_knobs = [n for n in KNOBS if n in ("image_size", "channels", *SHAPE_FIELDS)]
            with gr.Row():
                for group in (model_knobs, [n for n in KNOBS if n not in model_knobs and n != "dataset"]):
                    with gr.Column(min_width=240):
                        controls.update(
                            {name: knob_control(name, values[name], values["image_size"]) for name in group}
                        )
        with gr.Column(scale=2):
            summary = gr.Markdown(elem_id="build-summary")
            start = gr.Button("Train this model →", variant="primary", elem_id="build-start")
    return BuildTab(dataset, preset_radio, fixed, controls, summary, start, own)


class BuildHandlers:
    def __init__(self, service, tab: BuildTab, lessons: list[gr.Markdown]):
        self.service = service
        self.tab = tab
        self.lessons = lessons

    def preset_knobs(self, dataset: str, preset_name: str | None) -> dict:
        """The controls a preset sets, as updates."""
        preset = recipe_for(dataset).preset(preset_name)
        values = Knobs.of_preset(dataset, preset).values
        return {self.tab.knobs[n]: values[n] for n in KNOBS if n not in ("dataset", "seed")}

    def choose_dataset(self, values: dict) -> dict:
        """New dataset: its presets, its patch sizes, the first preset's knobs."""
        tab = self.tab
        dataset = values[tab.dataset]
        preset = recipe_for(dataset).presets[0]
        return {
            **self.preset_knobs(dataset, preset.name),
            tab.preset: gr.Radio(choices=preset_choices(dataset), value=preset.name, info=preset.blurb),
            tab.fixed_by_dataset: fixed_by_dataset(dataset),
            tab.knobs["patch_size"]: gr.Dropdown(
                choices=patch_sizes(get_spec(dataset).image_size), value=preset.candidate.patch_size
            ),
        }

    def choose_image_size(self, values: dict) -> dict:
        """New image_size: the patch sizes that divide it (a typed size that is not a number offers none)."""
        try:
            return {
                self.tab.knobs["patch_size"]: gr.Dropdown(choices=patch_sizes(values[self.tab.knobs["image_size"]]))
            }
        except (TypeError, ValueError):
            return {}

    def use_own(self, source) -> dict:
        """A zip or the page's collection as the Dataset: offered beside the bundled sets (on
        this page only) and chosen, as a person's choice of dataset would be; or why not."""
        choice, said = opened(source)
        own = self.tab.own
        if choice is None:
            return {own.status: said}
        chosen = self.choose_dataset({self.tab.dataset: choice[1]})
        lesson = str(server_lesson().values.get("dataset", ""))  # a folder lesson's choice stays
        return {
            **chosen,
            self.tab.dataset: gr.Radio(choices=dataset_choices(lesson, choice), value=choice[1]),
            own.status: said,
        }

    def use_archive(self, values: dict) -> dict:
        """The zip read (or refused) and let go: the box is ready for the next one."""
        return {**self.use_own(values[self.tab.own.archive]), self.tab.own.archive: None}

    def use_collected(self, values: dict) -> dict:
        return self.use_own(values[self.tab.own.collected])

    def choose_preset(self, values: dict) -> dict:
        dataset, name = values[self.tab.dataset], values[self.tab.preset]
        return {
            **self.preset_knobs(dataset, name),
            self.tab.preset: gr.Radio(info=recipe_for(dataset).preset(name).blurb),
        }

    def describe(self, values: dict) -> dict:
        """The summary beside the knobs and every Learn section, for the model they describe.
        A run that cannot be built (or trained here) shows why, and leaves the lessons as they were."""
        try:
            estimate = self.service.estimate(Knobs.read(values))
        except ValueError as error:
            return {self.tab.summary: f"### ⚠️ This model cannot be trained here\n\n{error}"}
        sections = lesson(
            estimate.config,
            estimate.knobs.spec,
            estimate.knobs.batch_size,
            estimate.knobs.lr,
            estimate.train_images,
        )
        return {self.tab.summary: summary(estimate, self.service.settings), **dict(zip(self.lessons, sections))}


def summary(e: Estimate, settings) -> str:
    config, knobs = e.config, e.knobs
    counts = config.parameter_counts()
    rows = "\n".join(f"| `{name}` | {count:,} |" for name, count in counts.items())
    run = (
        f"**{knobs.length_text}** = {e.images:,} training images ≈ **{format_duration(e.seconds)}** on this machine, "
        f"testing included ({e.images_per_second:,.0f} images/s, {e.speed_source})."
    )
    if e.seconds > settings.max_train_seconds:
        run += f" ⚠️ Runs stop at the {format_duration(settings.max_train_seconds)} limit of this server."
    if e.lease_seconds is not None:
        run += (
            "\n\n**On this Space** the run trains on a GPU that Hugging Face ZeroGPU lends for one run: it needs "
            f"about "
            f"{format_duration(e.gpu_seconds)} of GPU and asks for **{e.lease_seconds} s of your daily GPU quota** "
            f"({quota_words()}). Without quota left it trains on the Space's CPU instead. Explore costs none."
        )
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

{run} Memory ≈ {e.memory_mb:.0f} MB.

{expected_accuracy(e)}
"""


def expected_accuracy(e: Estimate) -> str:
    """What the measured table says this run will score, in one line."""
    if e.expected is None:
        return (
            "**Expected test accuracy:** not measured for these settings: train it and see, "
            "then compare runs below the Train tab's curves."
        )
    x = e.expected
    spread = f"; runs with other seeds differed by up to {100 * x.spread:.1f} points" if x.spread else ""
    return (
        f"**Expected test accuracy:** {x.describe()}, from runs of this shape measured on "
        f"{get_spec(e.knobs.dataset).title.split(' (')[0]} at {x.measured_images[0]:,}–{x.measured_images[1]:,} "
        f"images{spread}."
    )


def wire_own_panel(handlers: BuildHandlers, knob_outputs: set, private: dict) -> None:
    """A zip dropped or a collection used becomes the Dataset; each picture taken is collected."""
    tab, own = handlers.tab, handlers.tab.own
    chosen = {tab.dataset, tab.preset, tab.fixed_by_dataset, own.status, *knob_outputs}
    own.archive.upload(handlers.use_archive, {own.archive}, {*chosen, own.archive}, **private)
    own.use.click(handlers.use_collected, {own.collected}, chosen, **private)
    own.add.click(
        functools.partial(added, own),
        {own.collected, own.class_name, own.camera},
        {own.collected, own.counts, own.status, own.camera},
        **private,
    )


def wire_build_tab(handlers: BuildHandlers, demo: gr.Blocks) -> None:
    """A person's dataset or preset choice sets the knobs; any change of a knob (and the page's
    load) redraws the summary and the Learn tab's lessons: the public "describe" endpoint."""
    tab = handlers.tab
    private = {"api_visibility": "private", "show_progress": "hidden", "queue": False}
    knob_outputs = {c for n, c in tab.knobs.items() if n not in ("dataset", "seed")}
    # `input`, not `change`: only a person's choice resets the knobs to the dataset's first
    # preset. A lesson link sets the dataset and its own knobs in one step (teacher.py).
    tab.dataset.input(
        handlers.choose_dataset, {tab.dataset}, {tab.preset, tab.fixed_by_dataset, *knob_outputs}, **private
    )
    tab.knobs["image_size"].change(
        handlers.choose_image_size, {tab.knobs["image_size"]}, {tab.knobs["patch_size"]}, **private
    )
    wire_own_panel(handlers, knob_outputs, private)
    tab.preset.input(handlers.choose_preset, {tab.dataset, tab.preset}, {tab.preset, *knob_outputs}, **private)
    controls = [tab.knobs[n] for n in KNOBS]
    gr.on(
        [demo.load, *(control.change for control in controls)],
        named(KNOBS, handlers.describe),
        controls,
        {tab.summary, *handlers.lessons},
        api_name="describe",
        show_progress="hidden",
        trigger_mode="always_last",
        concurrency_limit=None,
        concurrency_id="describe",
    )
