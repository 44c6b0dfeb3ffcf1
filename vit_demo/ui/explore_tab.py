"""The Explore tab: pick a model and a picture (an example, a drawing or an upload) and
see what the model predicts, what it sees, where it looks, and how far to trust that map.

One forward pass with attention (`explain.explain`) serves the attention views; the
class-specific maps and the faithfulness curves take a few more, batched. Views are drawn
only when they are on screen: a new picture draws the prediction and the open view, and
opening another view draws it from the stored explanation. Figures of the weights alone
(positions, filters, attention distance) are drawn once per model and reused. Every view
has a sentence or two beside its figures (`vit_demo.summaries`): a picture carries no text a
screen reader could use.
"""

from __future__ import annotations

import hashlib
import inspect
import threading
from collections import OrderedDict
from dataclasses import dataclass, fields
from pathlib import Path

import gradio as gr
import torch
from PIL import Image, ImageOps

from .. import checkpoints, experiments, explain, faithfulness, plots, summaries
from ..explain import ATTRIBUTIONS, CLASS_SPECIFIC, HEAD_FUSIONS, Explanation
from ..images import open_image
from ..patch_maths import patch_at, patch_maths
from ..plots import figure_to_image as render
from ..service.library import MINE, UPLOADED, LoadedModel, ModelLibrary, example_images
from .errors import user_errors
from .experiment_tab import ExperimentControls, render_experiment_tab, wire_experiment_tab
from .figures import figure_slot
from .state import SessionState

SEEN_SIDE = 196  # pixels the model's input is blown up to, whole multiples of 28 and 32 or near
ALL_HEADS = "mean"
PREDICTED = "predicted"  # the class menu's first choice: whatever the model predicts
FILTERS_SHOWN = 14
MATHS_SHOWN = 8  # numbers of each vector the "show the maths" table spells out
VIEW_HEIGHT = 470  # pixels of a view's figure: a whole 1366x768 screen with the page's header
# Each view and how many figures it shows, in the order of `ExploreControls.view_images`;
# every view also has one summary (`ExploreControls.view_summaries`), and "maths" a table.
VIEWS = {"where": 2, "heads": 2, "tokens": 1, "positions": 1, "distance": 1, "filters": 1, "maths": 1}


@dataclass(frozen=True)
class ViewChoices:
    """The controls the views read, in `ExploreControls.view_inputs` order."""

    fusion: str = "mean"
    discard: float = 0.0
    layer: int = 1  # 1-based, as on screen
    head: str = ALL_HEADS  # "mean" or a 1-based number
    method: str = "rollout"
    target: str = PREDICTED  # a class name, or PREDICTED
    maths_layer: int = 1
    maths_head: int = 1
    patch: int | None = None  # the patch clicked on "What it sees" (0-based); None: none yet


@dataclass(eq=False)
class Explored:
    """The last picture explored in a session: its model and its one forward pass."""

    loaded: LoadedModel
    explanation: Explanation

    @property
    def config(self):
        return self.loaded.model.config

    @property
    def tensor(self) -> torch.Tensor:
        return self.explanation.preprocessed.tensor

    def target(self, choice: str) -> int:
        """A class menu choice -> the class index (the prediction for PREDICTED or an unknown name)."""
        names = self.explanation.class_names
        return names.index(choice) if choice in names else int(self.explanation.probabilities.argmax())

    def patch(self, chosen: int | None) -> int:
        """The clicked patch, or (none yet, or not one of this model's) the one rollout ranks first."""
        if chosen is not None and 0 <= chosen < self.config.num_patches:
            return chosen
        return int(self.explanation.rollout.flatten().argmax())


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


def class_choices(class_names) -> list[tuple[str, str]]:
    return [("what it predicts", PREDICTED)] + [(name, name) for name in class_names]


def _clamp(value, low: int, high: int) -> int:
    return min(max(int(value), low), high)


def maths_table(maths) -> str:
    """The patch's numbers step by step (the first MATHS_SHOWN of each), and its attention row."""

    def numbers(values: torch.Tensor) -> str:
        shown = ", ".join(f"{v:+.2f}" for v in values[:MATHS_SHOWN].tolist())
        return shown + (", …" if values.numel() > MATHS_SHOWN else "")

    steps = (
        ("pixels, flattened", maths.vector),
        ("× `patch_to_embedding`", maths.embedding),
        ("+ its row of `pos_embedding`", maths.position),
        ("= the token", maths.token),
        (f"layer {maths.layer + 1}'s input, after LayerNorm", maths.normed),
        (f"query q (head {maths.head + 1})", maths.query),
        ("head output Σ weight × v", maths.output),
    )
    rows = "\n".join(f"| {name} | {values.numel()} | {numbers(values)} |" for name, values in steps)
    order = torch.sort(maths.weights, descending=True, stable=True).indices[:MATHS_SHOWN].tolist()
    attention = "\n".join(
        f"| {'CLS' if t == 0 else f'patch {t}'}{' (itself)' if t == maths.token_index else ''} | "
        f"{float(maths.scores[t]):+.3f} | {float(maths.weights[t]):.3f} |"
        for t in order
    )
    return (
        f"| step | numbers | first {MATHS_SHOWN} |\n|---|---:|---|\n{rows}\n\n"
        f"**Its attention, strongest first** (of {maths.weights.numel()} tokens; the weights are the softmax of "
        f"the scores and sum to 1):\n\n| token | q·k/√{maths.query.numel()} | weight |\n|---|---:|---:|\n{attention}"
    )


def seen_image(explanation: Explanation) -> Image.Image:
    """The model's input, blown up with hard pixel edges (what it sees is that coarse)."""
    display = explanation.preprocessed.display
    image = Image.fromarray(display)
    scale = max(1, SEEN_SIDE // image.width)
    return image.resize((image.width * scale, image.height * scale), Image.Resampling.NEAREST)


def label_values(probabilities: torch.Tensor, class_names) -> dict[str, float]:
    """What a gr.Label shows (and the predict API returns): every class with its probability."""
    return {name: float(p) for name, p in zip(class_names, probabilities.tolist())}


def _fingerprint(image: Image.Image) -> tuple:
    return image.mode, image.size, hashlib.blake2b(image.tobytes(), digest_size=16).hexdigest()


class RecentlyShown:
    """The last `size` explorations of the shipped models, least recently used out first."""

    def __init__(self, size: int = 64):
        self.size = size
        self._lock = threading.Lock()
        self._entries: OrderedDict = OrderedDict()

    def get(self, key):
        with self._lock:
            if key not in self._entries:
                return None
            self._entries.move_to_end(key)
            return self._entries[key]

    def put(self, key, value) -> None:
        with self._lock:
            self._entries[key] = value
            self._entries.move_to_end(key)
            while len(self._entries) > self.size:
                self._entries.popitem(last=False)


class ExploreHandlers:
    def __init__(self, library: ModelLibrary, examples_dir: Path):
        self.library = library
        self.examples_dir = examples_dir
        self._shown = RecentlyShown()

    # ------------------------------------------------------------------ the model

    def examples(self, loaded: LoadedModel) -> list[tuple[str, str]]:
        return example_images(self.examples_dir, loaded.spec.key)

    def choose_model(self, name: str, mine: LoadedModel | None, uploaded: LoadedModel | None) -> list:
        """About the chosen model, its examples, and layer, head and class choices that fit it
        (in `ExploreControls.model_outputs` order)."""
        try:
            loaded = self.library.resolve(name, mine, uploaded)
        except ValueError as error:
            return [f"⚠️ {error}", *([gr.skip()] * 6)]
        depth, heads = loaded.model.config.depth, loaded.model.config.heads
        note = loaded.describe()
        if loaded.spec.channels == 3:
            note += " Drawing works best for the greyscale datasets; try an example or an upload."
        return [
            note,
            gr.Gallery(value=self.examples(loaded)),
            gr.Radio(choices=list(range(1, depth + 1)), value=depth),
            gr.Radio(choices=head_choices(heads), value=ALL_HEADS),
            gr.Dropdown(choices=class_choices(loaded.info["class_names"]), value=PREDICTED),
            gr.Radio(choices=list(range(1, depth + 1)), value=1),
            gr.Radio(choices=list(range(1, heads + 1)), value=1),
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

    def render_view(self, view: str, explored: Explored, choices: ViewChoices) -> list:
        """One view (see `VIEWS`) for the explored picture: its figures, then its summary."""
        loaded, explanation, config = explored.loaded, explored.explanation, explored.config
        model, display = loaded.model, explanation.preprocessed.display
        if view == "where":
            return self._where_it_looks(explored, choices)
        if view == "heads":
            layer = _clamp(choices.layer, 1, config.depth) - 1
            head = _head_index(choices.head)
            head = None if head is None or head >= config.heads else head
            patch = None if choices.patch is None else explored.patch(choices.patch)
            token = 0 if patch is None else patch + 1
            attention = explain.token_attention(explanation.attentions, layer, head, token)[0]
            maps = explain.attention_maps(explanation.attentions, token)[0]
            click = (
                " Click a patch on *What it sees* to see where that patch looks."
                if patch is None
                else " **Show the CLS token** brings its attention back."
            )
            text = (
                f"{summaries.head_attention(attention, layer, head, patch)} {summaries.attention_overview(maps, patch)}"
            )
            return [
                render(plots.plot_token_attention(display, attention, layer, head, patch)),
                render(plots.plot_attention_overview(display, maps, patch)),
                text + click,
            ]
        if view == "tokens":
            return [render(plots.plot_patch_grid(display, config)), summaries.patch_grid(config)]
        if view == "positions":
            similarity = explain.position_similarity(model)
            figure = loaded.cached("positions", lambda: render(plots.plot_position_similarity(similarity)))
            return [figure, summaries.position_similarity(similarity)]
        if view == "filters":
            count = min(FILTERS_SHOWN, config.dim, config.patch_dim)
            figure = loaded.cached("filters", lambda: _filters_figure(model))
            return [figure, summaries.filters(count, config.patch_size)]
        if view == "distance":
            distances = loaded.cached("distances", lambda: self._distances(loaded, explanation))
            figure = loaded.cached(
                "distance",
                lambda: render(plots.plot_attention_distance(distances, config.patch_size, config.image_size)),
            )
            return [figure, summaries.attention_distance(distances)]
        if view == "maths":
            maths = patch_maths(
                model,
                explored.tensor,
                explored.patch(choices.patch),
                _clamp(choices.maths_layer, 1, config.depth) - 1,
                _clamp(choices.maths_head, 1, config.heads) - 1,
            )
            chosen = "the patch you clicked" if choices.patch is not None else "the patch rollout ranks first"
            return [
                render(plots.plot_patch_maths(maths)),
                f"{summaries.patch_maths(maths)} Showing {chosen}; click another on *What it sees*.\n\n"
                f"{maths_table(maths)}",
            ]
        raise ValueError(f"unknown view {view!r}: choose one of {', '.join(VIEWS)}")

    @staticmethod
    def _where_it_looks(explored: Explored, choices: ViewChoices) -> list:
        """The chosen map for the chosen class, and how well it predicts what deleting or
        inserting patches does to that class."""
        loaded, explanation = explored.loaded, explored.explanation
        method = choices.method if choices.method in ATTRIBUTIONS else "rollout"
        target = explored.target(choices.target)
        class_name = explanation.class_names[target]
        fill = experiments.background_value(loaded.info)
        saliency = explain.attribution(
            loaded.model,
            explored.tensor,
            method,
            target,
            fill,
            attentions=explanation.attentions,
            head_fusion=choices.fusion,
            discard_ratio=float(choices.discard),
        )
        result = faithfulness.faithfulness(loaded.model, explored.tensor, target, saliency, fill)
        specific = method in CLASS_SPECIFIC
        about = f"for class {class_name}" if specific else "the same for every class"
        return [
            render(plots.plot_attribution(explanation.preprocessed.display, saliency, ATTRIBUTIONS[method], about)),
            render(plots.plot_faithfulness(result, class_name)),
            f"{summaries.prediction(explanation.probabilities, explanation.class_names)} "
            f"{summaries.attribution(saliency, ATTRIBUTIONS[method], class_name, specific)}\n\n"
            f"{summaries.faithfulness(result, class_name)}",
        ]

    def _distances(self, loaded: LoadedModel, fallback: Explanation) -> torch.Tensor:
        """Mean attention distance over the dataset's example pictures (the picture at hand
        when the app ships none): a property of the model more than of one image."""
        pictures = [read_picture(path) for path, _ in self.examples(loaded)]
        if pictures:
            batch = torch.cat([explain.preprocess(p, loaded.info).tensor for p in pictures])
            with torch.inference_mode():
                _, attentions = loaded.model(batch.to(next(loaded.model.parameters()).device), return_attention=True)
        else:
            attentions = fallback.attentions
        return explain.attention_distance(attentions, loaded.model.config.patch_size)

    def _all_views(self, open_view: str, explored: Explored, choices: ViewChoices) -> list:
        """Every view's outputs: the open one drawn, the others cleared (drawn when opened)."""
        outputs = []
        for view, count in VIEWS.items():
            outputs += self.render_view(view, explored, choices) if view == open_view else [None] * count + [""]
        return outputs

    # ------------------------------------------------------------------ events

    @user_errors
    def explore(
        self,
        name: str,
        image: Image.Image | None,
        open_view: str,
        fusion: str = "mean",
        discard: float = 0.0,
        layer=1,
        head=ALL_HEADS,
        mine: LoadedModel | None = None,
        uploaded: LoadedModel | None = None,
        method: str = "rollout",
        target: str = PREDICTED,
        maths_layer=1,
        maths_head=1,
        patch: int | None = None,
    ) -> list:
        """Predict and explain `image` (the dataset's first example when there is none yet)
        with model `name`: [picture, prediction, what the model sees, explanation, the patch
        chosen, *each view's figures and summary]. A new picture clears the chosen patch."""
        loaded = self.library.resolve(name, mine, uploaded)
        if image is None:
            examples = self.examples(loaded)
            if not examples:
                raise ValueError("Choose a picture first: draw one or upload one")
            image = read_picture(examples[0][0])
        choices = ViewChoices(fusion, discard, layer, head, method, target, maths_layer, maths_head, patch=None)
        # A class explores the shipped models on the same examples: each is explained and drawn once.
        key = (name, _fingerprint(image), open_view, choices) if loaded is self.library.models.get(name) else None
        shown = self._shown.get(key) if key else None
        if shown is None:
            explanation = explain.explain(loaded.model, loaded.info, image, fusion, float(discard))
            explored = Explored(loaded, explanation)
            shown = [
                label_values(explanation.probabilities, explanation.class_names),
                seen_image(explanation),
                explored,
                None,
                *self._all_views(open_view, explored, choices),
            ]
            if key:
                self._shown.put(key, shown)
        return [image, *shown]

    def open_tab(self, explored: Explored | None, *explore_inputs) -> list:
        """Opening the tab: explore (the first example, if no picture is chosen) unless
        something is on show already, or there is no model to show yet (the note under the
        menu says how to get one)."""
        unchanged = [gr.skip()] * (5 + sum(VIEWS.values()) + len(VIEWS))
        if explored is not None:
            return unchanged
        called = inspect.signature(self.explore).bind(*explore_inputs).arguments
        try:
            self.library.resolve(called["name"], called.get("mine"), called.get("uploaded"))
        except ValueError:
            return unchanged
        return self.explore(*explore_inputs)

    def view_opener(self, view: str):
        """The handler for opening `view`: draw it for the explored picture."""

        @user_errors
        def open_view(explored: Explored | None, *choices) -> list:
            if explored is None:
                return [view, *([gr.skip()] * (VIEWS[view] + 1))]
            return [view, *self.render_view(view, explored, ViewChoices(*choices))]

        return open_view

    @user_errors
    def show_cls(self, explored: Explored | None, *choices) -> list:
        """Back from a clicked patch to the CLS token in "Each head": [no patch, its outputs].
        `choices`: the view controls but the patch."""
        if explored is None:
            return [None, *([gr.skip()] * (VIEWS["heads"] + 1))]
        return [None, *self.render_view("heads", explored, ViewChoices(*choices, patch=None))]

    @user_errors
    def choose_patch(
        self,
        explored: Explored | None,
        open_view: str,
        fusion,
        discard,
        layer,
        head,
        method,
        target,
        maths_layer,
        maths_head,
        event: gr.SelectData,
    ) -> list:
        """A click on *What it sees*: [that patch, the view shown, the views' tabs, the "Each head"
        and "The maths" outputs]. The open view stays if it is one of those two, else
        "Each head" opens."""
        if explored is None or not isinstance(event.index, (list, tuple)):
            return [gr.skip()] * (3 + VIEWS["heads"] + VIEWS["maths"] + 2)
        x, y = event.index
        patch = patch_at(x, y, seen_image(explored.explanation).width, explored.config.grid_size)
        choices = ViewChoices(fusion, discard, layer, head, method, target, maths_layer, maths_head, patch)
        shown = open_view if open_view in ("heads", "maths") else "heads"
        return [
            patch,
            shown,
            gr.Tabs(selected=shown),
            *self.render_view("heads", explored, choices),
            *self.render_view("maths", explored, choices),
        ]

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

    def view_inputs(self) -> list:
        """The controls the views read, in `ViewChoices` order."""
        return [getattr(self, f.name) for f in fields(ViewChoices)]

    def view_outputs(self, view: str) -> list:
        return [*self.view_images[view], self.view_summaries[view]]

    def model_outputs(self) -> list:
        """What choosing a model resets, in `ExploreHandlers.choose_model` order."""
        return [
            self.model_note,
            self.examples,
            self.layer,
            self.head,
            self.target,
            self.maths_layer,
            self.maths_head,
        ]


BRUSH_JS = (
    """() => setTimeout(() => document.querySelector('#explore-sketch button[aria-label=Brush]')?.click(), 400)"""
)
# What the first choice of the method menu says about each method, below the menu.
METHOD_CHOICES = [(title.split(" (")[0], key) for key, title in ATTRIBUTIONS.items()]


def _summary(view: str) -> gr.Markdown:
    return gr.Markdown(elem_id=f"explore-{view}-summary", latex_delimiters=[])


def render_explore_tab(handlers: ExploreHandlers, library: ModelLibrary) -> ExploreControls:
    """The Explore tab's components (inside an open gr.Tab): the model, the picture and
    the prediction on the left, the views of the model's attention on the right."""
    default = library.models.get(library.default_name())
    depth, heads = (default.model.config.depth, default.model.config.heads) if default else (1, 1)
    class_names = default.info["class_names"] if default else []
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
                    gr.Markdown("**What it sees** · click a patch", elem_id="explore-seen-title")
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
            view_tabs, images, summaries_md = {}, {}, {}
            with gr.Tabs(elem_id="explore-views") as views:
                with gr.Tab("Where it looks", id="where") as view_tabs["where"]:
                    with gr.Row():
                        method = gr.Radio(
                            METHOD_CHOICES, value="rollout", label="Map", scale=3, elem_id="explore-method"
                        )
                        target = gr.Dropdown(
                            class_choices(class_names),
                            value=PREDICTED,
                            label="Why this class",
                            scale=1,
                            min_width=140,
                            elem_id="explore-target",
                        )
                    with gr.Accordion("Rollout settings", open=False):
                        with gr.Row():
                            fusion = gr.Radio(list(HEAD_FUSIONS), value="mean", label="Head fusion", scale=1)
                            discard = gr.Slider(
                                0.0, 0.95, value=0.0, step=0.05, label="Discard ratio (drop the weakest)", scale=2
                            )
                    with gr.Row():
                        images["where"] = [figure_slot("explore-map", 420), figure_slot("explore-faithfulness", 420)]
                    summaries_md["where"] = _summary("where")
                with gr.Tab("Each head", id="heads") as view_tabs["heads"]:
                    with gr.Row():
                        layer = gr.Radio(list(range(1, depth + 1)), value=depth, label="Layer", scale=1)
                        head = gr.Radio(head_choices(heads), value=ALL_HEADS, label="Head", scale=1)
                        show_cls = gr.Button("Show the CLS token", size="sm", scale=0, min_width=150)
                    # One above the other: side by side, the every-head mosaic would be too small to read.
                    images["heads"] = [figure_slot("explore-cls", 400), figure_slot("explore-overview", 420)]
                    summaries_md["heads"] = _summary("heads")
                with gr.Tab("Tokens", id="tokens") as view_tabs["tokens"]:
                    images["tokens"] = [figure_slot("explore-tokens", VIEW_HEIGHT)]
                    summaries_md["tokens"] = _summary("tokens")
                with gr.Tab("Positions", id="positions") as view_tabs["positions"]:
                    images["positions"] = [figure_slot("explore-positions", VIEW_HEIGHT)]
                    summaries_md["positions"] = _summary("positions")
                with gr.Tab("Distance", id="distance") as view_tabs["distance"]:
                    images["distance"] = [figure_slot("explore-distance", VIEW_HEIGHT)]
                    summaries_md["distance"] = _summary("distance")
                with gr.Tab("Filters", id="filters") as view_tabs["filters"]:
                    images["filters"] = [figure_slot("explore-filters", VIEW_HEIGHT)]
                    summaries_md["filters"] = _summary("filters")
                with gr.Tab("The maths", id="maths") as view_tabs["maths"]:
                    with gr.Row():
                        maths_layer = gr.Radio(list(range(1, depth + 1)), value=1, label="Layer", scale=1)
                        maths_head = gr.Radio(list(range(1, heads + 1)), value=1, label="Head", scale=1)
                    images["maths"] = [figure_slot("explore-maths", VIEW_HEIGHT)]
                    summaries_md["maths"] = _summary("maths")
                experiment = render_experiment_tab()
    draw_tab.select(None, js=BRUSH_JS)
    return ExploreControls(
        model=model,
        model_note=model_note,
        checkpoint=checkpoint,
        examples=examples,
        sketch=sketch,
        upload=upload,
        label=label,
        seen=seen,
        views=views,
        view_tabs=view_tabs,
        fusion=fusion,
        discard=discard,
        layer=layer,
        head=head,
        method=method,
        target=target,
        maths_layer=maths_layer,
        maths_head=maths_head,
        show_cls=show_cls,
        view_images=images,
        view_summaries=summaries_md,
        experiment=experiment,
        image=gr.State(None),
        explored=gr.State(None),
        open_view=gr.State("where"),
        uploaded=gr.State(None),
        patch=gr.State(None),
    )


def wire_explore_tab(
    handlers: ExploreHandlers,
    e: ExploreControls,
    tab: gr.Tab,
    state: SessionState,
    new_model_events: list,
    max_explores: int,
) -> None:
    """A model chosen, a picture chosen, a view opened, a patch clicked: each explains and
    draws. The public "explore" and "predict" endpoints. `new_model_events`: events after
    which the session has a new model of its own (a training ended), shown like a model
    chosen in the menu: each is an event method (`finished.change`, `event.success`) to
    attach the same steps to."""
    exploring = {"concurrency_id": "explore", "concurrency_limit": max_explores}
    explore_event = {**exploring, "show_progress": "minimal"}
    private = {"api_visibility": "private", "show_progress": "hidden"}
    # `explore`'s parameters: the public API's (model, fusion, discard, layer, head, method,
    # target, maths layer and head) among the session's states.
    inputs = [
        e.model,
        e.image,
        e.open_view,
        e.fusion,
        e.discard,
        e.layer,
        e.head,
        state.my_model,
        e.uploaded,
        e.method,
        e.target,
        e.maths_layer,
        e.maths_head,
    ]
    outputs = [e.image, e.label, e.seen, e.explored, e.patch, *(c for view in VIEWS for c in e.view_outputs(view))]
    model_inputs = [e.model, state.my_model, e.uploaded]
    describe_model = (handlers.choose_model, model_inputs, e.model_outputs())
    # A model chosen in the menu is described, then shown on the current picture: the public
    # "explore" endpoint. Training and checkpoint uploads choose a model too (a value set by
    # the server raises no `input` event, so they chain the same steps).
    e.model.input(*describe_model, **private).success(
        handlers.explore, inputs, outputs, api_name="explore", **explore_event
    )
    uploaded = e.checkpoint.upload(handlers.upload_checkpoint, e.checkpoint, [e.uploaded, e.model], **private)
    # A new model of the page's own: the menu moves to it, then it is described and shown.
    trained = [listen(lambda: MINE, None, e.model, queue=False, **private) for listen in new_model_events]
    described = [event.then(*describe_model, **private) for event in trained]
    described.append(uploaded.success(*describe_model, **private))
    picture_events = [
        e.examples.select(handlers.use_example, model_inputs, e.image, **private),
        e.upload.upload(handlers.use_upload, e.upload, e.image, **private),
        e.sketch.change(handlers.use_drawing, e.sketch, e.image, trigger_mode="always_last", **private),
    ]
    for event in (*described, *picture_events):
        event.success(handlers.explore, inputs, outputs, api_visibility="private", **explore_event)
    tab.select(handlers.open_tab, [e.explored, *inputs], outputs, api_visibility="private", **explore_event)
    view_inputs = [e.explored, *e.view_inputs()]
    # Only a person's own moves redraw (`input`, `release`): a new model resets the layer
    # and head choices, and that must not switch the open view.
    redraw_triggers = {
        "where": [e.method.input, e.target.input, e.fusion.input, e.discard.release],
        "heads": [e.layer.input, e.head.input],
        "maths": [e.maths_layer.input, e.maths_head.input],
    }
    for view in VIEWS:
        gr.on(
            [e.view_tabs[view].select, *redraw_triggers.get(view, [])],
            handlers.view_opener(view),
            view_inputs,
            [e.open_view, *e.view_outputs(view)],
            trigger_mode="always_last",
            api_visibility="private",
            **explore_event,
        )
    e.seen.select(
        handlers.choose_patch,
        [e.explored, e.open_view, *e.view_inputs()[:-1]],
        [e.patch, e.open_view, e.views, *e.view_outputs("heads"), *e.view_outputs("maths")],
        trigger_mode="always_last",
        api_visibility="private",
        **explore_event,
    )
    e.show_cls.click(
        handlers.show_cls,
        [e.explored, *e.view_inputs()[:-1]],
        [e.patch, *e.view_outputs("heads")],
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
