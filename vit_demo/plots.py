"""Figures for the app, drawn with matplotlib's object-oriented API only.

Every function builds its own `matplotlib.figure.Figure` on an Agg canvas and returns it;
pyplot is never imported, so nothing is registered globally and figures can be drawn from
several server threads at once. Font sizes are passed explicitly (not through rcParams,
which are process-wide) and stay at 10 pt or more so a projector audience can read them.
`figure_to_image` renders a figure to a PIL image and frees it.

Colours mean one thing each: attention and importance are "inferno" from 0 up, cosine
similarity is the diverging "RdBu_r" on -1..1, counts are "Blues", pixels and filters grey
(or their own colours). Layers, heads, patches, rows and columns are numbered from 1 on
screen, as people count; the arguments are Python's 0-based indices, like `vit_demo.explain`.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import torch
from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.patches import Rectangle
from matplotlib.ticker import MaxNLocator
from PIL import Image

from vit_demo.explain import attention_distance
from vit_demo.figure_style import (
    ATTENTION_CMAP,
    DEFAULT_DPI,
    HEAD_PALETTE,
    HIGHLIGHT_COLOUR,
    LABEL_SIZE,
    NOTE_SIZE,
    OVERLAY_ALPHA,
    SIMILARITY_CMAP,
    TICK_SIZE,
    as_numpy,
    as_rgba,
    colourbar,
    corner_label,
    filter_mosaic,
    grey,
    head_colour,
    head_marker,
    label_tiles,
    new_figure,
    overlay,
    show_image,
    similarity_mosaic,
    style,
    tile_mosaic,
)
from vit_demo.model import ViTConfig, patchify


def figure_to_image(figure: Figure, dpi: int = DEFAULT_DPI) -> Image.Image:
    """Render at `dpi` (the pixels `figure.savefig(..., dpi=dpi)` would write to a PNG) as
    an RGB PIL image, then clear the figure so its artists are freed at once."""
    return figure_to_image_and_box(figure, dpi)[0]


def figure_to_image_and_box(figure: Figure, dpi: int = DEFAULT_DPI) -> tuple[Image.Image, tuple[float, ...]]:
    """`figure_to_image`, and where the first axes' data area lies in the picture: (left, top,
    right, bottom) in pixels, so a click on the picture can be told which cell it hit."""
    canvas = figure.canvas if isinstance(figure.canvas, FigureCanvasAgg) else FigureCanvasAgg(figure)
    figure.set_dpi(dpi)
    canvas.draw()
    image = Image.fromarray(np.asarray(canvas.buffer_rgba())).convert("RGB")
    box = figure.axes[0].get_window_extent() if figure.axes else None
    height = image.height
    area = (box.x0, height - box.y1, box.x1, height - box.y0) if box is not None else (0.0, 0.0, 0.0, 0.0)
    figure.clear()
    return image, area


def grid_cell(area: Sequence[float], rows: int, columns: int, x: float, y: float) -> tuple[int, int] | None:
    """The (row, column) of a `rows` x `columns` grid drawn over `area` (left, top, right,
    bottom) under the pixel (x, y); None outside it."""
    left, top, right, bottom = area
    if not (left <= x < right and top <= y < bottom):
        return None
    return int((y - top) / (bottom - top) * rows), int((x - left) / (right - left) * columns)


# --------------------------------------------------------------------------- prediction


def plot_patch_grid(display: np.ndarray, config: ViTConfig) -> Figure:
    """The input cut into patches (numbered as tokens: the CLS token is token 0), and the
    sequence the transformer reads: one row per token, a patch's pixels row by row."""
    p, grid, n = config.patch_size, config.grid_size, config.num_patches
    figure = new_figure(11, 5.2, "How the image becomes a sequence of tokens")
    image_ax, tokens_ax = figure.subplots(1, 2, width_ratios=(1, 1.15))

    show_image(image_ax, display)
    edges = np.arange(0, config.image_size + 1, p) - 0.5
    image_ax.vlines(edges, -0.5, config.image_size - 0.5, colors=HIGHLIGHT_COLOUR, linewidth=1.5)
    image_ax.hlines(edges, -0.5, config.image_size - 0.5, colors=HIGHLIGHT_COLOUR, linewidth=1.5)
    for index in range(n):
        row, col = divmod(index, grid)
        corner_label(image_ax, col * p - 0.5, row * p - 0.5, str(index + 1))
    style(image_ax, f"{grid} × {grid} = {n} patches of {p} × {p} pixels")

    # Row 0 is the CLS token: learned, no pixels of its own. Rows 1.. are the patches'
    # pixels in patchify's order (pixel row by pixel row; colour channels stay together).
    rgba = as_rgba(display)
    patches = patchify(torch.from_numpy(rgba).permute(2, 0, 1)[None], p)[0].reshape(n, p * p, 4).numpy()
    cls_row = np.broadcast_to(np.array([*HIGHLIGHT_COLOUR, 1.0]), (1, p * p, 4))
    tokens_ax.imshow(np.concatenate((cls_row, patches)), aspect="auto", interpolation="nearest")
    label_every = max(1, math.ceil((n + 1) / 17))
    token_ticks = list(range(0, n + 1, label_every))
    tokens_ax.set_yticks(token_ticks, ["CLS" if t == 0 else str(t) for t in token_ticks])
    tokens_ax.set_xticks([0, p * p - 1], ["1", str(p * p)])
    style(
        tokens_ax,
        f"{n + 1} tokens: the learned CLS, then one per patch",
        xlabel=f"the patch's {p} × {p} pixels, row after row",
        ylabel="token",
    )
    figure.supxlabel(
        f"{config.image_size}×{config.image_size} image → {n} patches of {p}×{p}×{config.channels} = "
        f"{config.patch_dim} values → linear layer to dim {config.dim}, "
        f"+ CLS = {config.seq_len} tokens of dim {config.dim}",
        fontsize=LABEL_SIZE,
    )
    return figure


def plot_position_similarity(similarity) -> Figure:
    """`explain.position_similarity` (grid, grid, grid, grid) -> one small map per patch
    position, laid out where that patch sits, on one -1..1 colour scale."""
    figure = new_figure(7, 6.2, "Which positions the model learned are alike")
    ax = figure.add_subplot()
    image, grid, gap = similarity_mosaic(ax, as_numpy(similarity))
    numbers = [str(i + 1) for i in range(grid)]
    label_tiles(ax, grid, grid, grid, gap, numbers, numbers)
    style(
        ax,
        "Each small map: one patch's positional embedding\ncompared with every patch's",
        xlabel="input patch column",
        ylabel="input patch row",
    )
    colourbar(figure, image, ax, "cosine similarity")
    return figure


def plot_embedding_filters(filters) -> Figure:
    """`explain.embedding_filters` (k, C, p, p) -> the components as small images."""
    filters = as_numpy(filters)
    k, p = filters.shape[0], filters.shape[2]
    columns = min(k, 7)
    rows = math.ceil(k / columns)
    mosaic, gap = filter_mosaic(filters, columns)
    figure = new_figure(1.3 * columns + 0.6, 1.3 * rows + 1.4, "What the first layer looks for in a patch")
    ax = figure.add_subplot()
    ax.imshow(mosaic, interpolation="nearest")
    ax.set_xticks([])
    ax.set_yticks([])
    ax.spines[:].set_visible(False)
    for index in range(k):
        r, c = divmod(index, columns)
        corner_label(ax, c * (p + gap) - 0.5, r * (p + gap) - 0.5, str(index + 1))
    style(ax, f"Top {k} principal components of the patch-embedding filters")
    ax.set_xlabel("dark = low, light = high; component 1 explains the most", fontsize=LABEL_SIZE)
    return figure


# --------------------------------------------------------------------------- attention


def plot_attribution(display: np.ndarray, saliency, method: str, about: str) -> Figure:
    """A (grid, grid) map of how much each patch mattered (any of `explain.ATTRIBUTIONS`)
    over the input, scaled so the strongest patch is 1; negative values (occlusion: hiding
    the patch made the class likelier) show as 0. `about`: what the map is of. Sized for half
    of Explore's view, beside `plot_faithfulness`."""
    values = np.clip(as_numpy(saliency), 0.0, None)
    values = values / max(float(values.max()), 1e-12)
    figure = new_figure(4.8, 4.6, method)
    ax = figure.add_subplot()
    heat = overlay(ax, display, values, vmax=1.0)
    style(ax, about)
    colourbar(figure, heat, ax, "share of the strongest patch")
    return figure


def plot_faithfulness(result, class_name: str) -> Figure:
    """`faithfulness.Faithfulness` curves: the class's probability as the map's top patches
    are deleted (top) or inserted into an empty picture (bottom), beside random orders."""
    figure = new_figure(4.8, 4.6, f"Can the map be trusted? ({class_name})")
    axes = figure.subplots(2, 1, sharex=True)
    panels = (
        (axes[0], result.deletion, result.random_deletion, "deleting its top patches first: lower is better"),
        (axes[1], result.insertion, result.random_insertion, "inserting its top patches first: higher is better"),
    )
    for ax, curve, random, title in panels:
        fractions = as_numpy(curve.fractions) * 100
        ax.plot(
            fractions,
            as_numpy(curve.probabilities),
            color=HEAD_PALETTE[0],
            linewidth=2.4,
            marker="o",
            markersize=3,
            label=f"map ({curve.area:.2f})",
        )
        ax.plot(
            fractions,
            as_numpy(random.probabilities),
            color="0.35",
            linewidth=1.8,
            linestyle="--",
            label=f"random ({random.area:.2f})",
        )
        ax.fill_between(fractions, as_numpy(curve.probabilities), color=HEAD_PALETTE[0], alpha=0.12)
        ax.set_ylim(0, 1.05)
        ax.set_xlim(0, 100)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=NOTE_SIZE, loc="best", frameon=False, title="area", title_fontsize=NOTE_SIZE)
        style(ax, title, ylabel="probability")
    axes[1].set_xlabel("% of patches", fontsize=LABEL_SIZE)
    return figure


def plot_token_attention(display: np.ndarray, attention_map, layer: int, head: int | None, patch: int | None) -> Figure:
    """`explain.token_attention` for one image (grid, grid) over the input; `layer`, `head`
    and `patch` are 0-based (head None: the mean of the heads; patch None: the CLS token's
    attention, else that patch's, outlined)."""
    who = "all heads (mean)" if head is None else f"head {head + 1}"
    whose = "CLS attention" if patch is None else f"Patch {patch + 1}'s attention"
    figure = new_figure(5.6, 4.8, f"{whose}, layer {layer + 1}, {who}")
    ax = figure.add_subplot()
    values = as_numpy(attention_map)
    heat = overlay(ax, display, values, vmax=max(float(values.max()), 1e-6))
    if patch is not None:
        grid = values.shape[0]
        scale = display.shape[0] // grid
        row, column = divmod(patch, grid)
        ax.add_patch(
            Rectangle(
                (column * scale - 0.5, row * scale - 0.5),
                scale,
                scale,
                fill=False,
                edgecolor=HIGHLIGHT_COLOUR,
                linewidth=2.5,
            )
        )
    colourbar(figure, heat, ax, "attention weight")
    return figure


def plot_attention_overview(display: np.ndarray, maps, patch: int | None = None) -> Figure:
    """`explain.attention_maps` for one image (layers, heads, grid, grid): every head of every
    layer over the input, on one colour scale. `patch` (0-based): whose attention it is,
    outlined in every tile; None: the CLS token's."""
    maps = as_numpy(maps)
    layers, heads, grid = maps.shape[:3]
    size = display.shape[0]
    scale = size // grid
    blocks = np.repeat(np.repeat(maps.reshape(layers * heads, grid, grid), scale, axis=1), scale, axis=2)
    gap = max(1, size // 14)
    who = "the CLS token" if patch is None else f"patch {patch + 1}"
    figure = new_figure(1.7 * heads + 1.8, 1.7 * layers + 1.0, f"Where {who} looks, every layer and head")
    ax = figure.add_subplot()
    backdrop = as_rgba(grey(display))
    ax.imshow(
        tile_mosaic(np.broadcast_to(backdrop, (layers * heads, *backdrop.shape)), heads, gap, fill=0.0),
        interpolation="nearest",
    )
    heat = ax.imshow(
        tile_mosaic(blocks, heads, gap, fill=np.nan),
        cmap=ATTENTION_CMAP,
        vmin=0,
        vmax=max(float(maps.max()), 1e-6),
        alpha=OVERLAY_ALPHA,
        interpolation="nearest",
    )
    label_tiles(
        ax, layers, heads, size, gap, [f"layer {i + 1}" for i in range(layers)], [f"head {i + 1}" for i in range(heads)]
    )
    if patch is not None:
        row, column = divmod(patch, grid)
        for tile in range(layers * heads):
            top = (tile // heads) * (size + gap) + row * scale - 0.5
            left = (tile % heads) * (size + gap) + column * scale - 0.5
            ax.add_patch(Rectangle((left, top), scale, scale, fill=False, edgecolor=HIGHLIGHT_COLOUR, linewidth=1.6))
    colourbar(figure, heat, ax, "attention weight")
    return figure


def plot_attention_distance(distances, patch_size: int, image_size: int) -> Figure:
    """`explain.attention_distance` (layers, heads) as dots per head over depth (ViT paper,
    Fig. 7 right), with the distance uniform attention would give for scale."""
    distances = as_numpy(distances)
    layers, heads = distances.shape
    grid = image_size // patch_size
    uniform = torch.full((1, 1, grid * grid + 1, grid * grid + 1), 1.0)
    uniform_distance = float(attention_distance([uniform], patch_size)[0, 0])
    figure = new_figure(7.5, 4.8, "How far each head looks, layer by layer")
    ax = figure.add_subplot()
    offsets = (np.arange(heads) - (heads - 1) / 2) * min(0.08, 0.6 / heads)  # side by side, not on top
    for head in range(heads):
        ax.scatter(
            np.arange(1, layers + 1) + offsets[head],
            distances[:, head],
            s=55,
            color=head_colour(head),
            marker=head_marker(head),
            label=f"head {head + 1}",
            zorder=3,
        )
    ax.axhline(uniform_distance, color="0.4", linestyle="--", linewidth=1.2, label="attention\nspread evenly")
    ax.set_xticks(range(1, layers + 1))
    ax.set_xlim(0.5, layers + 0.5)
    farthest = patch_size * (grid - 1) * math.sqrt(2)  # between opposite corner patches
    ax.set_ylim(0, max(farthest, float(distances.max()), 1.0))
    ax.grid(alpha=0.3)
    ax.legend(fontsize=NOTE_SIZE, loc="upper left", bbox_to_anchor=(1.01, 1.0), frameon=False)
    style(ax, xlabel="layer (depth in the network)", ylabel="mean attention distance (pixels)")
    return figure


def _strip(ax: Axes, values, title: str) -> None:
    """Numbers as one row of coloured cells (red above 0, blue below, white at 0)."""
    values = as_numpy(values).reshape(1, -1)
    limit = max(float(np.abs(values).max()), 1e-6)
    ax.imshow(values, cmap=SIMILARITY_CMAP, vmin=-limit, vmax=limit, aspect="auto", interpolation="nearest")
    ax.set_yticks([])
    ax.xaxis.set_major_locator(MaxNLocator(integer=True, nbins=6))
    ax.set_xticks(ax.get_xticks()[(ax.get_xticks() >= 0) & (ax.get_xticks() < values.shape[1])])
    ax.set_xticklabels([str(int(t) + 1) for t in ax.get_xticks()])
    ax.tick_params(labelsize=TICK_SIZE)
    ax.set_title(f"{title}  (±{limit:.2f})", fontsize=LABEL_SIZE, loc="left")


def plot_patch_maths(maths) -> Figure:
    """`patch_maths.PatchMaths`: one patch's numbers from pixels to one head's output, each
    step a strip of coloured cells (left: becoming a token; right: attending)."""
    n = maths.vector.numel()
    dim, head_dim, tokens = maths.embedding.numel(), maths.query.numel(), maths.weights.numel()
    figure = new_figure(
        12, 7.4, f"Patch {maths.patch + 1}, layer {maths.layer + 1}, head {maths.head + 1}: the model's own numbers"
    )
    grid = figure.add_gridspec(6, 2, height_ratios=(2.2, 1, 1, 1, 1, 1))
    pixels_ax = figure.add_subplot(grid[0, 0])
    pixels = as_numpy(maths.pixels)
    shown = (
        pixels[0] if pixels.shape[0] == 1 else (pixels.transpose(1, 2, 0) - pixels.min()) / max(np.ptp(pixels), 1e-6)
    )
    pixels_ax.imshow(shown, cmap="gray", interpolation="nearest")
    pixels_ax.set_xticks([])
    pixels_ax.set_yticks([])
    pixels_ax.set_title("1. its pixels, as the model reads them (normalised)", fontsize=LABEL_SIZE, loc="left")
    left = (
        (maths.vector, f"2. flattened: {n} numbers (patch_dim)"),
        (maths.embedding, f"3. × patch_to_embedding → {dim} numbers"),
        (maths.position, "4. its row of pos_embedding"),
        (maths.token, "5. sum: the token"),
        (maths.normed, f"6. layer {maths.layer + 1}'s LayerNorm of its input"),
    )
    for row, (values, title) in enumerate(left, start=1):
        _strip(figure.add_subplot(grid[row, 0]), values, title)
    _strip(figure.add_subplot(grid[1, 1]), maths.query, f"7. query q: {head_dim} numbers of head {maths.head + 1}")
    token_names = ["CLS", *(str(i) for i in range(1, tokens))]
    for row, values, title, colour in (
        (slice(2, 4), maths.scores, f"8. q·k / √{head_dim} with every token's key", HEAD_PALETTE[5]),
        (slice(4, 5), maths.weights, "9. softmax: the attention weights (sum 1)", HEAD_PALETTE[0]),
    ):
        ax = figure.add_subplot(grid[row, 1])
        colours = [HIGHLIGHT_COLOUR if i == maths.token_index else colour for i in range(tokens)]
        ax.bar(range(tokens), as_numpy(values), color=colours, width=0.8)
        ax.axhline(0, color="0.3", linewidth=0.8)
        labels_every = max(1, math.ceil(tokens / 17))
        ax.set_xticks(range(0, tokens, labels_every), token_names[::labels_every])
        ax.tick_params(labelsize=TICK_SIZE)
        ax.set_xlim(-0.6, tokens - 0.4)
        ax.set_title(title, fontsize=LABEL_SIZE, loc="left")
    _strip(figure.add_subplot(grid[5, 1]), maths.output, f"10. Σ weight × value: the head's {head_dim} outputs")
    return figure


# --------------------------------------------------------------------------- experiments and timeline


def plot_patch_experiment(
    original,
    changed,
    class_names: Sequence[str],
    original_display: np.ndarray,
    changed_display: np.ndarray,
    top_k: int = 3,
) -> Figure:
    """Two `experiments.ExperimentView`s side by side: what the model read, its rollout,
    and its top guesses, so the effect of shuffling, hiding or removing position shows."""
    figure = new_figure(10, 6.4, "Same model, changed input: what moves?")
    axes = figure.subplots(2, 3, gridspec_kw={"width_ratios": [1, 1, 1.25]})
    for row, (view, display) in enumerate(((original, original_display), (changed, changed_display))):
        image_ax, rollout_ax, bars_ax = axes[row]
        show_image(image_ax, display)
        style(image_ax, view.title.replace(", ", ",\n"))  # one change per line: the axis is narrow
        heat = overlay(rollout_ax, display, as_numpy(view.rollout), vmax=1.0)
        style(rollout_ax, "attention rollout")
        probabilities = as_numpy(view.probabilities)
        order = np.argsort(probabilities)[::-1][:top_k][::-1]
        bars_ax.barh(range(len(order)), probabilities[order] * 100, color="0.6")
        bars_ax.patches[-1].set_color(HIGHLIGHT_COLOUR)
        bars_ax.set_yticks(range(len(order)), [class_names[i] for i in order])
        bars_ax.set_xlim(0, 100)
        for y, i in enumerate(order):
            bars_ax.text(
                min(probabilities[i] * 100 + 2, 80), y, f"{probabilities[i]:.0%}", va="center", fontsize=NOTE_SIZE
            )
        style(bars_ax, "top guesses", xlabel="probability (%)")
    colourbar(figure, heat, axes[:, 1], "share of the strongest patch")
    return figure


__all__ = [
    "figure_to_image",
    "figure_to_image_and_box",
    "grid_cell",
    "plot_patch_experiment",
    "plot_patch_maths",
    "plot_attention_distance",
    "plot_attention_overview",
    "plot_embedding_filters",
    "plot_patch_grid",
    "plot_position_similarity",
    "plot_token_attention",
    "plot_attribution",
    "plot_faithfulness",
]
