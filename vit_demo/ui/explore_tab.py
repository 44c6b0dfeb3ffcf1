"""The Explore tab's layout: pick a model and a picture (an example, a drawing or an upload)
and see what the model predicts, what it sees, where it looks, and how far to trust that map.
What each view draws is `vit_demo.views`; the events are `explore_events.py`."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import gradio as gr
from gradio.components import Component

from ..explain import ATTRIBUTIONS, HEAD_FUSIONS
from ..service.library import ModelLibrary
from ..views import ALL_HEADS, PREDICTED, VIEWS, Drawing
from .experiment_tab import ExperimentControls, render_experiment_tab
from .figures import figure_slot

if TYPE_CHECKING:
    from .explore_events import ExploreHandlers

VIEW_HEIGHT = 470  # pixels of a view's figure: a whole 1366x768 screen with the page's header


def head_choices(heads: int) -> list[tuple[str, str]]:
    return [("all (mean)", ALL_HEADS)] + [(str(h), str(h)) for h in range(1, heads + 1)]


def class_choices(class_names) -> list[tuple[str, str]]:
    return [("what it predicts", PREDICTED)] + [(name, name) for name in class_names]


@dataclass
class ExploreControls:
    model: gr.Dropdown
    model_note: gr.Markdown
    checkpoint: gr.File
    examples: gr.Gallery
    sketch: gr.Sketchpad
    upload: gr.File
    label: gr.Label
    seen: gr.Image
    views: gr.Tabs
    view_tabs: dict[str, gr.Tab]
    fusion: gr.Radio
    discard: gr.Slider
    layer: gr.Radio
    head: gr.Radio
    method: gr.Radio
    target: gr.Dropdown
    maths_layer: gr.Radio
    maths_head: gr.Radio
    show_cls: gr.Button
    view_images: dict[str, list[gr.Image]]  # by view, in `VIEWS` order
    view_summaries: dict[str, gr.Markdown]
    experiment: ExperimentControls
    image: gr.State
    explored: gr.State
    open_view: gr.State
    uploaded: gr.State
    patch: gr.State  # the patch clicked on "What it sees"; None: none yet
    mine: gr.State  # the page's own model (SessionState.my_model)

    def component(self, name: str) -> Component:
        return getattr(self, name)

    def outputs(self, names: tuple[str, ...]) -> list:
        """The components of `names`: a component's own name, or a view's (its figures and summary)."""
        return [c for name in names for c in (self._view(name) if name in VIEWS else [self.component(name)])]

    def _view(self, view: str) -> list:
        return [*self.view_images[view], self.view_summaries[view]]

    def updates(self, changes: dict) -> dict:
        """A handler's named changes as updates of this tab's components: a view's `Drawing`
        fills its figures and summary, None clears them (drawn when the view is opened)."""
        placed = {}
        for name, value in changes.items():
            if name in VIEWS:
                drawing = value or Drawing((None,) * VIEWS[name], "")
                placed.update(zip(self._view(name), (*drawing.figures, drawing.summary)))
            else:
                placed[self.component(name)] = value
        return placed


BRUSH_JS = (
    """() => setTimeout(() => document.querySelector('#explore-sketch button[aria-label=Brush]')?.click(), 400)"""
)
# What the first choice of the method menu says about each method, below the menu.
METHOD_CHOICES = [(title.split(" (")[0], key) for key, title in ATTRIBUTIONS.items()]


def _summary(view: str) -> gr.Markdown:
    return gr.Markdown(elem_id=f"explore-{view}-summary", latex_delimiters=[])


def render_explore_tab(handlers: ExploreHandlers, library: ModelLibrary, mine: gr.State) -> ExploreControls:
    """The Explore tab's components (inside an open gr.Tab): the model, the picture and
    the prediction on the left, the views of the model's attention on the right. `mine`: the
    page's own model."""
    default = library.models.get(library.default_name())
    with gr.Row(equal_height=False):
        with gr.Column(scale=2, min_width=340):
            left = _model_and_picture(handlers, library, default)
        with gr.Column(scale=5):
            right = _views(default)
    return ExploreControls(
        **left,
        **right,
        image=gr.State(None),
        explored=gr.State(None),
        open_view=gr.State("where"),
        uploaded=gr.State(None),
        patch=gr.State(None),
        mine=mine,
    )


def _model_and_picture(handlers: ExploreHandlers, library: ModelLibrary, default) -> dict:
    model = gr.Dropdown(library.menu(), value=library.default_name(), label="Model", elem_id="explore-model")
    model_note = gr.Markdown(
        "\n\n".join(filter(None, [default.describe() if default else "", library.status()])),
        elem_id="explore-model-note",
    )
    with gr.Tabs():
        with gr.Tab("Examples"):
            examples = gr.Gallery(
                handlers.examples(default) if default else [],
                columns=5,
                height=160,
                allow_preview=False,
                object_fit="contain",
                format="png",
                interactive=False,
                show_label=False,
                buttons=[],
                elem_id="explore-examples",
                elem_classes=["pixelated"],
            )
        with gr.Tab("Draw") as draw_tab:
            sketch = gr.Sketchpad(
                type="pil",
                image_mode="RGBA",
                canvas_size=(280, 280),
                fixed_canvas=True,
                layers=False,
                brush=gr.Brush(default_size=22, colors=["#000000"], color_mode="fixed"),
                show_label=False,
                height=210,
                elem_id="explore-sketch",
            )
        with gr.Tab("Upload"):
            upload = gr.File(file_types=["image"], label="Upload a picture", height=110, elem_id="explore-upload")
    draw_tab.select(None, js=BRUSH_JS)
    with gr.Row(equal_height=True):
        with gr.Column(scale=2, min_width=120):
            gr.Markdown("**What it sees** · click a patch", elem_id="explore-seen-title")
            seen = figure_slot("explore-seen", 130)
        label = gr.Label(
            num_top_classes=3, label="Prediction", show_heading=False, scale=3, min_width=150, elem_id="explore-label"
        )
    with gr.Accordion("Upload a checkpoint (.zip)", open=False):
        checkpoint = gr.File(
            file_types=[".zip", ".pt", ".pth"], show_label=False, height=90, elem_id="explore-checkpoint"
        )
    return dict(
        model=model, model_note=model_note, examples=examples, sketch=sketch, upload=upload, seen=seen, label=label,
        checkpoint=checkpoint,
    )  # fmt: skip


def _views(default) -> dict:
    depth, heads = (default.model.config.depth, default.model.config.heads) if default else (1, 1)
    view_tabs, images, summaries = {}, {}, {}
    with gr.Tabs(elem_id="explore-views") as views:
        with gr.Tab("Where it looks", id="where") as view_tabs["where"]:
            where = _where_controls(default.info["class_names"] if default else [])
            images["where"] = [figure_slot("explore-map", 420), figure_slot("explore-faithfulness", 420)]
            summaries["where"] = _summary("where")
        with gr.Tab("Each head", id="heads") as view_tabs["heads"]:
            with gr.Row():
                layer = gr.Radio(list(range(1, depth + 1)), value=depth, label="Layer", scale=1)
                head = gr.Radio(head_choices(heads), value=ALL_HEADS, label="Head", scale=1)
                show_cls = gr.Button("Show the CLS token", size="sm", scale=0, min_width=150)
            # One above the other: side by side, the every-head mosaic would be too small to read.
            images["heads"] = [figure_slot("explore-cls", 400), figure_slot("explore-overview", 420)]
            summaries["heads"] = _summary("heads")
        for view, title in (("tokens", "Tokens"), ("positions", "Positions"), ("distance", "Distance"),
                            ("filters", "Filters")):  # fmt: skip
            with gr.Tab(title, id=view) as view_tabs[view]:
                images[view] = [figure_slot(f"explore-{view}", VIEW_HEIGHT)]
                summaries[view] = _summary(view)
        with gr.Tab("The maths", id="maths") as view_tabs["maths"]:
            with gr.Row():
                maths_layer = gr.Radio(list(range(1, depth + 1)), value=1, label="Layer", scale=1)
                maths_head = gr.Radio(list(range(1, heads + 1)), value=1, label="Head", scale=1)
            images["maths"] = [figure_slot("explore-maths", VIEW_HEIGHT)]
            summaries["maths"] = _summary("maths")
        experiment = render_experiment_tab()
    return dict(
        **where, views=views, view_tabs=view_tabs, layer=layer, head=head, show_cls=show_cls,
        maths_layer=maths_layer, maths_head=maths_head, view_images=images, view_summaries=summaries,
        experiment=experiment,
    )  # fmt: skip


def _where_controls(class_names) -> dict:
    with gr.Row():
        method = gr.Radio(METHOD_CHOICES, value="rollout", label="Map", scale=3, elem_id="explore-method")
        target = gr.Dropdown(
            class_choices(class_names), value=PREDICTED, label="Why this class", scale=1, min_width=140,
            elem_id="explore-target",
        )  # fmt: skip
    with gr.Accordion("Rollout settings", open=False):
        with gr.Row():
            fusion = gr.Radio(list(HEAD_FUSIONS), value="mean", label="Head fusion", scale=1)
            discard = gr.Slider(0.0, 0.95, value=0.0, step=0.05, label="Discard ratio (drop the weakest)", scale=2)
    return dict(method=method, target=target, fusion=fusion, discard=discard)
