"""Explore's views: what each one draws, in figures and in words, for a picture a model has
explained. No Gradio here: `ui/explore_tab.py` places these on the page.

One forward pass with attention (`explain.explain`) serves the attention views; the
class-specific maps and the faithfulness curves take a few more, batched. Figures of the
weights alone (positions, filters, attention distance) are drawn once per model and reused.
Every view has a sentence or two beside its figures (`vit_demo.summaries`): a picture carries
no text a screen reader could use.
"""

from __future__ import annotations

import hashlib
import threading
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass

import torch
from PIL import Image, ImageOps

from . import experiments, explain, faithfulness, pictures, plots, summaries
from .explain import ATTRIBUTIONS, CLASS_SPECIFIC, Explanation
from .images import open_image
from .patch_maths import patch_maths
from .plots import figure_to_image as render
from .service.library import LoadedModel

SEEN_SIDE = 196  # pixels the model's input is blown up to, whole multiples of 28 and 32 or near
ALL_HEADS = "mean"
PREDICTED = "predicted"  # the class menu's first choice: whatever the model predicts
FILTERS_SHOWN = 14
MATHS_SHOWN = 8  # numbers of each vector the "show the maths" table spells out
# Each view and how many figures it draws; every view also has a summary (and "maths" a table in it).
VIEWS = {"where": 2, "heads": 2, "tokens": 1, "positions": 1, "distance": 1, "filters": 1, "maths": 1}


@dataclass(frozen=True)
class ViewChoices:
    """The controls the views read, each named as its control on the page."""

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


@dataclass(frozen=True)
class Drawing:
    """One view, drawn: its figures (as many as `VIEWS` says) and the words beside them."""

    figures: tuple
    summary: str


def _filters_figure(model) -> Image.Image:
    k = min(FILTERS_SHOWN, model.config.dim, model.config.patch_dim)
    return render(plots.plot_embedding_filters(explain.embedding_filters(model, k)))


def _head_index(head: str | None) -> int | None:
    return None if head in (None, ALL_HEADS) else int(head) - 1


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


def fingerprint(image: Image.Image) -> tuple:
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


def draw(view: str, explored: Explored, choices: ViewChoices, examples: Callable[[], list[str]]) -> Drawing:
    """One view (see `VIEWS`) of the explored picture. `examples()`: the dataset's example
    pictures, listed only when the attention distance is first measured over them."""
    loaded, explanation, config = explored.loaded, explored.explanation, explored.config
    model, display = loaded.model, explanation.preprocessed.display
    if view == "where":
        return _where_it_looks(explored, choices)
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
        text = f"{summaries.head_attention(attention, layer, head, patch)} {summaries.attention_overview(maps, patch)}"
        return Drawing(
            (
                render(plots.plot_token_attention(display, attention, layer, head, patch)),
                render(plots.plot_attention_overview(display, maps, patch)),
            ),
            text + click,
        )
    if view == "tokens":
        return Drawing((render(plots.plot_patch_grid(display, config)),), summaries.patch_grid(config))
    if view == "positions":
        similarity = explain.position_similarity(model)
        figure = loaded.cached("positions", lambda: render(plots.plot_position_similarity(similarity)))
        return Drawing((figure,), summaries.position_similarity(similarity))
    if view == "filters":
        count = min(FILTERS_SHOWN, config.dim, config.patch_dim)
        figure = loaded.cached("filters", lambda: _filters_figure(model))
        return Drawing((figure,), summaries.filters(count, config.patch_size))
    if view == "distance":
        distances = loaded.cached("distances", lambda: _distances(loaded, explanation, examples))
        figure = loaded.cached(
            "distance",
            lambda: render(plots.plot_attention_distance(distances, config.patch_size, config.image_size)),
        )
        return Drawing((figure,), summaries.attention_distance(distances))
    if view == "maths":
        maths = patch_maths(
            model,
            explored.tensor,
            explored.patch(choices.patch),
            _clamp(choices.maths_layer, 1, config.depth) - 1,
            _clamp(choices.maths_head, 1, config.heads) - 1,
        )
        chosen = "the patch you clicked" if choices.patch is not None else "the patch rollout ranks first"
        return Drawing(
            (render(plots.plot_patch_maths(maths)),),
            f"{summaries.patch_maths(maths)} Showing {chosen}; click another on *What it sees*.\n\n"
            f"{maths_table(maths)}",
        )
    raise ValueError(f"unknown view {view!r}: choose one of {', '.join(VIEWS)}")


def _where_it_looks(explored: Explored, choices: ViewChoices) -> Drawing:
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
    return Drawing(
        (
            render(plots.plot_attribution(explanation.preprocessed.display, saliency, ATTRIBUTIONS[method], about)),
            render(plots.plot_faithfulness(result, class_name)),
        ),
        f"{summaries.prediction(explanation.probabilities, explanation.class_names)} "
        f"{summaries.attribution(saliency, ATTRIBUTIONS[method], class_name, specific)}\n\n"
        f"{summaries.faithfulness(result, class_name)}",
    )


def _distances(loaded: LoadedModel, fallback: Explanation, examples: Callable[[], list[str]]) -> torch.Tensor:
    """Mean attention distance over the dataset's example pictures (the picture at hand
    when the app ships none): a property of the model more than of one image."""
    examples_seen = [open_image(path) for path in examples()]
    if examples_seen:
        batch = torch.cat([pictures.preprocess(p, loaded.info).tensor for p in examples_seen])
        with torch.inference_mode():
            _, attentions = loaded.model(batch.to(next(loaded.model.parameters()).device), return_attention=True)
    else:
        attentions = fallback.attentions
    return explain.attention_distance(attentions, loaded.model.config.patch_size)
