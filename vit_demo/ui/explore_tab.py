"""The Explore tab: pick a model and a picture (an example, a drawing or an upload) and
see what the model predicts, what it sees, and where it looks.

One forward pass with attention (`explain.explain`) serves every view. Views are drawn
only when they are on screen: a new picture draws the prediction and the open view, and
opening another view draws it from the stored explanation. Figures of the weights alone
(positions, filters, attention distance) are drawn once per model and reused.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import gradio as gr
import torch
from PIL import Image, ImageOps

from .. import checkpoints, explain, plots
from ..explain import HEAD_FUSIONS, Explanation
from ..images import open_image
from .errors import user_errors
from .experiment_tab import ExperimentControls, render_experiment_tab, wire_experiment_tab
from .figures import figure_slot, render
from .models import UPLOADED, LoadedModel, ModelLibrary, example_images
from .state import SessionState

SEEN_SIDE = 196  # pixels the model's input is blown up to, whole multiples of 28 and 32 or near
ALL_HEADS = "mean"
FILTERS_SHOWN = 14
VIEW_HEIGHT = 470  # pixels of a view's figure: a whole 1366x768 screen with the page's header
# Each view and how many figures it shows, in the order of `ExploreControls.view_images`.
VIEWS = {"rollout": 1, "heads": 2, "tokens": 1, "positions": 1, "distance": 1, "filters": 1}


@dataclass(eq=False)
class Explored:
    """The last picture explored in a session: its model and its one forward pass."""

    loaded: LoadedModel
    explanation: Explanation


def _positions_figure(model) -> Image.Image:
    return render(plots.plot_position_similarity(explain.position_similarity(model)))


def _filters_figure(model) -> Image.Image:
    k = min(FILTERS_SHOWN, model.config.dim, model.config.patch_dim)
    return render(plots.plot_embedding_filters(explain.embedding_filters(model, k)))


def _head_index(head: str | None) -> int | None:
    return None if head in (None, ALL_HEADS) else int(head) - 1


def read_picture(path: str | Path) -> Image.Image:
    """An uploaded file as a picture, or an ImageError that says what is wrong with it."""
    return open_image(path)


def drawing_to_image(sketch: dict | Image.Image | None) -> Image.Image | None:
    """A Sketchpad's value -> the picture drawn on it; None when nothing is drawn."""
    image = sketch.get("composite") if isinstance(sketch, dict) else sketch
    if image is None:
        return None
    # Blank: nothing opaque, or every pixel alike (ink can differ from the page in
    # brightness or, on a transparent canvas, only in opacity).
    grey, alpha = image.convert("LA").getextrema()
    if alpha[1] == 0 or (grey[0] == grey[1] and alpha[0] == alpha[1]):
        return None
    # A margin of empty page: explain.preprocess reads the paper's colour from the outermost
    # pixels, and a stroke run into the canvas edge would otherwise be taken for paper.
    page = (0, 0, 0, 0) if alpha[0] < 255 else (255, 255, 255, 255)
    return ImageOps.expand(image.convert("RGBA"), border=max(image.size) // 10, fill=page)


def head_choices(heads: int) -> list[tuple[str, str]]:
    return [("all (mean)", ALL_HEADS)] + [(str(h), str(h)) for h in range(1, heads + 1)]


def seen_image(explanation: Explanation) -> Image.Image:
    """The model's input, blown up with hard pixel edges (what it sees is that coarse)."""
    display = explanation.preprocessed.display
    image = Image.fromarray(display)
    scale = max(1, SEEN_SIDE // image.width)
    return image.resize((image.width * scale, image.height * scale), Image.Resampling.NEAREST)


def label_values(probabilities: torch.Tensor, class_names) -> dict[str, float]:
    """What a gr.Label shows (and the predict API returns): every class with its probability."""
    return {name: float(p) for name, p in zip(class_names, probabilities.tolist())}


class ExploreHandlers:
    def __init__(self, library: ModelLibrary, examples_dir: Path):
        self.library = library
        self.examples_dir = examples_dir

    # ------------------------------------------------------------------ the model

    def examples(self, loaded: LoadedModel) -> list[tuple[str, str]]:
        return example_images(self.examples_dir, loaded.spec.key)

    def choose_model(self, name: str, mine: LoadedModel | None, uploaded: LoadedModel | None) -> list:
        """About the chosen model, its examples, and layer/head choices that fit it."""
        try:
            loaded = self.library.resolve(name, mine, uploaded)
        except ValueError as error:
            return [f"⚠️ {error}", gr.skip(), gr.skip(), gr.skip()]
        depth, heads = loaded.model.config.depth, loaded.model.config.heads
        note = loaded.describe()
        if loaded.spec.channels == 3:
            note += " Drawing works best for the greyscale datasets; try an example or an upload."
        return [
            note,
            gr.Gallery(value=self.examples(loaded)),
            gr.Radio(choices=list(range(1, depth + 1)), value=depth),
            gr.Radio(choices=head_choices(heads), value=ALL_HEADS),
        ]

    @user_errors
    def upload_checkpoint(self, path: str | None) -> tuple:
        """A checkpoint (.zip of a checkpoint folder, or .pt) -> the session's uploaded model."""
        if path is None:
            return gr.skip(), gr.skip()
        model, info = checkpoints.load(path)  # CheckpointError says what is wrong with it
        return LoadedModel(UPLOADED, model, info, f"uploaded ({Path(path).name})"), UPLOADED

    # ------------------------------------------------------------------ the picture

    @user_errors
    def use_upload(self, path: str | None) -> Image.Image:
        if path is None:
            return gr.skip()
        return read_picture(path)

    @user_errors
    def use_drawing(self, sketch) -> Image.Image:
        """The drawing, once something is drawn (a blank canvas leaves the picture as it was)."""
        drawing = drawing_to_image(sketch)
        return gr.skip() if drawing is None else drawing

    @user_errors
    def use_example(self, name: str, mine, uploaded, event: gr.SelectData) -> Image.Image:
        path, _ = self.examples(self.library.resolve(name, mine, uploaded))[event.index]
        return read_picture(path)

    # ------------------------------------------------------------------ the views

    def render_view(self, view: str, explored: Explored, fusion: str, discard: float, layer, head) -> list:
        """The figures of one view (see `VIEWS`) for the explored picture."""
        loaded, explanation = explored.loaded, explored.explanation
        model, config = loaded.model, loaded.model.config
        display = explanation.preprocessed.display
        if view == "rollout":
            rollout = explain.attention_rollout(explanation.attentions, fusion, float(discard))[0]
            return [render(plots.plot_rollout(display, rollout))]
        if view == "heads":
            layer_index = min(max(int(layer), 1), config.depth) - 1
            head_index = _head_index(head)
            if head_index is not None and head_index >= config.heads:
                head_index = None
            attention = explain.cls_attention(explanation.attentions, layer_index, head_index)[0]
            maps = explain.cls_attention_maps(explanation.attentions)[0]
            return [
                render(plots.plot_cls_attention(display, attention, layer_index, head_index)),
                render(plots.plot_attention_overview(display, maps)),
            ]
        if view == "tokens":
            return [render(plots.plot_patch_grid(display, config))]
        if view == "positions":
            return [loaded.cached("positions", lambda: _positions_figure(model))]
        if view == "filters":
            return [loaded.cached("filters", lambda: _filters_figure(model))]
        if view == "distance":
            return [loaded.cached("distance", lambda: self._distance_figure(loaded, explanation))]
        raise ValueError(f"unknown view {view!r}: choose one of {', '.join(VIEWS)}")

    def _distance_figure(self, loaded: LoadedModel, fallback: Explanation) -> Image.Image:
        """Mean attention distance over the dataset's example pictures (the picture at
        hand when the app ships none): a property of the model more than of one image."""
        config = loaded.model.config
        pictures = [read_picture(path) for path, _ in self.examples(loaded)]
        if pictures:
            batch = torch.cat([explain.preprocess(p, loaded.info).tensor for p in pictures])
            with torch.inference_mode():
                _, attentions = loaded.model(batch.to(next(loaded.model.parameters()).device), return_attention=True)
        else:
            attentions = fallback.attentions
        distances = explain.attention_distance(attentions, config.patch_size)
        return render(plots.plot_attention_distance(distances, config.patch_size, config.image_size))

    def _all_views(self, open_view: str, explored: Explored, fusion, discard, layer, head) -> list:
        """Every view's figures: the open one drawn, the others cleared (drawn when opened)."""
        figures = []
        for view, count in VIEWS.items():
            figures += (
                self.render_view(view, explored, fusion, discard, layer, head) if view == open_view else [None] * count
            )
        return figures

    # ------------------------------------------------------------------ events

    @user_errors
    def explore(
        self,
        name: str,
        image: Image.Image | None,
        open_view: str,
        fusion: str,
        discard: float,
        layer,
        head,
        mine: LoadedModel | None,
        uploaded: LoadedModel | None,
    ) -> list:
        """Predict and explain `image` (the dataset's first example when there is none yet)
        with model `name`: [picture, prediction, what the model sees, explanation, *view figures]."""
        loaded = self.library.resolve(name, mine, uploaded)
        if image is None:
            examples = self.examples(loaded)
            if not examples:
                raise ValueError("Choose a picture first: draw one or upload one")
            image = read_picture(examples[0][0])
        explanation = explain.explain(loaded.model, loaded.info, image, fusion, float(discard))
        explored = Explored(loaded, explanation)
        return [
            image,
            label_values(explanation.probabilities, explanation.class_names),
            seen_image(explanation),
            explored,
            *self._all_views(open_view, explored, fusion, discard, layer, head),
        ]

    def open_tab(
        self, name, image, open_view, fusion, discard, layer, head, mine, uploaded, explored: Explored | None
    ) -> list:
        """Opening the tab: explore (the first example, if no picture is chosen) unless
        something is on show already."""
        unchanged = [gr.skip()] * (4 + sum(VIEWS.values()))
        if explored is not None:
            return unchanged
        try:
            self.library.resolve(name, mine, uploaded)
        except ValueError:
            return unchanged  # no model yet: the note under the menu says how to get one
        return self.explore(name, image, open_view, fusion, discard, layer, head, mine, uploaded)

    def view_opener(self, view: str):
        """The handler for opening `view`: draw it for the explored picture."""

        @user_errors
        def open_view(explored: Explored | None, fusion: str, discard: float, layer, head) -> list:
            figures = (
                self.render_view(view, explored, fusion, discard, layer, head)
                if explored
                else [gr.skip()] * VIEWS[view]
            )
            return [view, *figures]

        return open_view

    @user_errors
    def predict(
        self,
        image_file: str | None,
        model_name: str,
        mine: LoadedModel | None = None,
        uploaded: LoadedModel | None = None,
    ) -> dict[str, float]:
        """The predict API: an image file and a model name -> every class's probability."""
        if image_file is None:
            raise ValueError("no image was given: pass an image file")
        loaded = self.library.resolve(model_name, mine, uploaded)
        image = read_picture(image_file)
        predictions = explain.predict(loaded.model, loaded.info, image, top_k=loaded.model.config.num_classes)
        return dict(predictions)


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
    view_tabs: dict[str, gr.Tab]
    fusion: gr.Radio
    discard: gr.Slider
    layer: gr.Radio
    head: gr.Radio
    view_images: dict[str, list[gr.Image]]  # by view, in `VIEWS` order
    image: gr.State
    explored: gr.State
    open_view: gr.State
    uploaded: gr.State
    experiment: ExperimentControls | None = None


BRUSH_JS = (
    """() => setTimeout(() => document.querySelector('#explore-sketch button[aria-label=Brush]')?.click(), 400)"""
)


def render_explore_tab(handlers: ExploreHandlers, library: ModelLibrary) -> ExploreControls:
    """The Explore tab's components (inside an open gr.Tab): the model, the picture and
    the prediction on the left, the views of the model's attention on the right."""
    default = library.models.get(library.default_name())
    depth, heads = (default.model.config.depth, default.model.config.heads) if default else (1, 1)
    with gr.Row(equal_height=False):
        with gr.Column(scale=2, min_width=340):
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
                    upload = gr.File(
                        file_types=["image"], label="Upload a picture", height=110, elem_id="explore-upload"
                    )
            with gr.Row(equal_height=True):
                with gr.Column(scale=2, min_width=120):
                    gr.Markdown("**What it sees**")
                    seen = figure_slot("explore-seen", 130)
                label = gr.Label(
                    num_top_classes=3,
                    label="Prediction",
                    show_heading=False,
                    scale=3,
                    min_width=150,
                    elem_id="explore-label",
                )
            with gr.Accordion("Upload a checkpoint (.zip)", open=False):
                checkpoint = gr.File(
                    file_types=[".zip", ".pt", ".pth"], show_label=False, height=90, elem_id="explore-checkpoint"
                )
        with gr.Column(scale=5):
            view_tabs, images = {}, {}
            with gr.Tabs(elem_id="explore-views"):
                with gr.Tab("Attention rollout", id="rollout") as view_tabs["rollout"]:
                    with gr.Row():
                        fusion = gr.Radio(list(HEAD_FUSIONS), value="mean", label="Head fusion", scale=1)
                        discard = gr.Slider(
                            0.0, 0.95, value=0.0, step=0.05, label="Discard ratio (drop the weakest)", scale=2
                        )
                    images["rollout"] = [figure_slot("explore-rollout", 440)]
                with gr.Tab("Each head", id="heads") as view_tabs["heads"]:
                    with gr.Row():
                        layer = gr.Radio(list(range(1, depth + 1)), value=depth, label="Layer", scale=1)
                        head = gr.Radio(head_choices(heads), value=ALL_HEADS, label="Head", scale=1)
                    with gr.Row():
                        images["heads"] = [figure_slot("explore-cls", 440), figure_slot("explore-overview", 440)]
                with gr.Tab("Patches → tokens", id="tokens") as view_tabs["tokens"]:
                    images["tokens"] = [figure_slot("explore-tokens", VIEW_HEIGHT)]
                with gr.Tab("Positions", id="positions") as view_tabs["positions"]:
                    images["positions"] = [figure_slot("explore-positions", VIEW_HEIGHT)]
                with gr.Tab("Attention distance", id="distance") as view_tabs["distance"]:
                    images["distance"] = [figure_slot("explore-distance", VIEW_HEIGHT)]
                with gr.Tab("Filters", id="filters") as view_tabs["filters"]:
                    images["filters"] = [figure_slot("explore-filters", VIEW_HEIGHT)]
                experiment = render_experiment_tab()
    draw_tab.select(None, js=BRUSH_JS)
    return ExploreControls(
        model,
        model_note,
        checkpoint,
        examples,
        sketch,
        upload,
        label,
        seen,
        view_tabs,
        fusion,
        discard,
        layer,
        head,
        images,
        image=gr.State(None),
        explored=gr.State(None),
        open_view=gr.State("rollout"),
        uploaded=gr.State(None),
        experiment=experiment,
    )


def wire_explore_tab(
    handlers: ExploreHandlers,
    e: ExploreControls,
    tab: gr.Tab,
    state: SessionState,
    new_model_events: list,
    max_explores: int,
) -> None:
    """A model chosen, a picture chosen, a view opened: each explains and draws. The public
    "explore" and "predict" endpoints. `new_model_events`: events after which the session has a
    new model of its own (a training ended), shown like a model chosen in the menu: each is an
    event method (`finished.change`, `event.success`) to attach the same steps to."""
    exploring = {"concurrency_id": "explore", "concurrency_limit": max_explores}
    explore_event = {**exploring, "show_progress": "minimal"}
    private = {"api_visibility": "private", "show_progress": "hidden"}
    inputs = [e.model, e.image, e.open_view, e.fusion, e.discard, e.layer, e.head, state.my_model, e.uploaded]
    outputs = [e.image, e.label, e.seen, e.explored, *(slot for view in VIEWS for slot in e.view_images[view])]
    model_inputs = [e.model, state.my_model, e.uploaded]
    describe_model = (handlers.choose_model, model_inputs, [e.model_note, e.examples, e.layer, e.head])
    # A model chosen in the menu is described, then shown on the current picture: the public
    # "explore" endpoint. Training and checkpoint uploads choose a model too (a value set by
    # the server raises no `input` event, so they chain the same steps).
    e.model.input(*describe_model, **private).success(
        handlers.explore, inputs, outputs, api_name="explore", **explore_event
    )
    uploaded = e.checkpoint.upload(handlers.upload_checkpoint, e.checkpoint, [e.uploaded, e.model], **private)
    described = [listen(*describe_model, **private) for listen in (*new_model_events, uploaded.success)]
    picture_events = [
        e.examples.select(handlers.use_example, model_inputs, e.image, **private),
        e.upload.upload(handlers.use_upload, e.upload, e.image, **private),
        e.sketch.change(handlers.use_drawing, e.sketch, e.image, trigger_mode="always_last", **private),
    ]
    for event in (*described, *picture_events):
        event.success(handlers.explore, inputs, outputs, api_visibility="private", **explore_event)
    tab.select(handlers.open_tab, [*inputs, e.explored], outputs, api_visibility="private", **explore_event)
    view_controls = [e.explored, e.fusion, e.discard, e.layer, e.head]
    # Only a person's own moves redraw (`input`, `release`): a new model resets the layer
    # and head choices, and that must not switch the open view to "Each head".
    redraw_triggers = {"rollout": [e.fusion.input, e.discard.release], "heads": [e.layer.input, e.head.input]}
    for view in VIEWS:
        gr.on(
            [e.view_tabs[view].select, *redraw_triggers.get(view, [])],
            handlers.view_opener(view),
            view_controls,
            [e.open_view, *e.view_images[view]],
            trigger_mode="always_last",
            api_visibility="private",
            **explore_event,
        )
    wire_experiment_tab(e.experiment, e.explored, e.open_view, **explore_event)
    # The scripting API's own inputs: any file (so a bad one gets the app's message rather
    # than a file-type refusal) and a model named as in the Explore menu.
    api_image, api_model, api_label = gr.File(visible=False), gr.Textbox(visible=False), gr.Label(visible=False)
    gr.Button(visible=False).click(
        handlers.predict, [api_image, api_model, state.my_model, e.uploaded], api_label, api_name="predict", **exploring
    )
