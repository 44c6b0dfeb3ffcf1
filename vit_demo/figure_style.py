"""The figures' shared look: font sizes a projector audience can read, one colour map per
meaning, and the small drawing steps every figure uses (titles, colour bars, mosaics, overlays).
`vit_demo.plots` draws the figures themselves."""

from __future__ import annotations

import math

import matplotlib
import numpy as np
import torch
from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.cm import ScalarMappable
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator
from PIL import Image

SUPTITLE_SIZE = 15
TITLE_SIZE = 13
LABEL_SIZE = 12
TICK_SIZE = 11
NOTE_SIZE = 10
# At 90 dpi the figures (sized in inches, fonts of 10 pt and up) fill the panels of a 1366x768
# projector without being scaled down much, so their text stays readable from the back of a room.
DEFAULT_DPI = 90

ATTENTION_CMAP = matplotlib.colormaps["inferno"].with_extremes(bad=(0, 0, 0, 0))
SIMILARITY_CMAP = matplotlib.colormaps["RdBu_r"].with_extremes(bad=(0, 0, 0, 0))
COUNT_CMAP = matplotlib.colormaps["Blues"]
# Okabe & Ito's palette: told apart with every common colour-vision deficiency. Past eight
# heads the colours repeat with another marker shape (HEAD_MARKERS), so no two heads look alike.
HEAD_PALETTE = ("#0072B2", "#E69F00", "#009E73", "#CC79A7", "#56B4E9", "#D55E00", "#F0E442", "#000000")
HEAD_MARKERS = ("o", "s", "^", "D")
HIGHLIGHT_COLOUR = (0.95, 0.55, 0.1)  # what to look at first: the top prediction, the CLS token, patch borders
OVERLAY_ALPHA = 0.6


def head_colour(head: int) -> str:
    return HEAD_PALETTE[head % len(HEAD_PALETTE)]


def head_marker(head: int) -> str:
    return HEAD_MARKERS[(head // len(HEAD_PALETTE)) % len(HEAD_MARKERS)]


def new_figure(width: float, height: float, title: str) -> Figure:
    figure = Figure(figsize=(width, height), layout="constrained")
    FigureCanvasAgg(figure)
    figure.suptitle(title, fontsize=SUPTITLE_SIZE)
    return figure


def as_numpy(values) -> np.ndarray:
    if isinstance(values, torch.Tensor):
        return values.detach().float().cpu().numpy()
    return np.asarray(values)


def style(ax: Axes, title: str | None = None, xlabel: str | None = None, ylabel: str | None = None) -> None:
    if title:
        ax.set_title(title, fontsize=TITLE_SIZE)
    if xlabel:
        ax.set_xlabel(xlabel, fontsize=LABEL_SIZE)
    if ylabel:
        ax.set_ylabel(ylabel, fontsize=LABEL_SIZE)
    ax.tick_params(labelsize=TICK_SIZE)


def colourbar(figure: Figure, mappable, ax, label: str) -> None:
    # A fresh, opaque mappable: the bar of a see-through overlay would look washed out.
    bar = figure.colorbar(ScalarMappable(mappable.norm, mappable.cmap), ax=ax, shrink=0.9)
    bar.locator = MaxNLocator(nbins=4)  # a few round values read faster than nine, and draw faster
    bar.set_label(label, fontsize=LABEL_SIZE)
    bar.ax.tick_params(labelsize=TICK_SIZE)


def as_rgba(display: np.ndarray) -> np.ndarray:
    """uint8 (S, S) grey or (S, S, 3) colour -> float RGBA in [0, 1]."""
    colour = display if display.ndim == 3 else np.repeat(display[..., None], 3, axis=-1)
    return np.concatenate((colour / 255.0, np.ones((*display.shape[:2], 1))), axis=-1)


def tile_mosaic(tiles: np.ndarray, columns: int, gap: int, fill: float) -> np.ndarray:
    """(n, h, w[, k]) -> one array of `columns` tiles per row, `gap` pixels of `fill` between.

    Drawing many small maps as one image keeps a figure to one axes: every extra axes
    brings its own ticks, spines and layout work, which dominate the drawing time.
    """
    n, h, w = tiles.shape[:3]
    rows = math.ceil(n / columns)
    mosaic = np.full((rows * (h + gap) - gap, columns * (w + gap) - gap, *tiles.shape[3:]), fill, dtype=float)
    for index, tile in enumerate(tiles):
        r, c = divmod(index, columns)
        mosaic[r * (h + gap) : r * (h + gap) + h, c * (w + gap) : c * (w + gap) + w] = tile
    return mosaic


def tile_centres(count: int, size: int, gap: int) -> np.ndarray:
    return np.arange(count) * (size + gap) + (size - 1) / 2


def label_tiles(ax: Axes, rows: int, columns: int, size: int, gap: int, row_names, column_names) -> None:
    ax.set_xticks(tile_centres(columns, size, gap), column_names)
    ax.set_yticks(tile_centres(rows, size, gap), row_names)
    ax.tick_params(length=0, labelsize=TICK_SIZE)
    ax.spines[:].set_visible(False)


def corner_label(ax: Axes, x: float, y: float, label: str) -> None:
    """A number in a tile's top-left corner, legible on any pixels below it."""
    ax.text(
        x,
        y,
        label,
        ha="left",
        va="top",
        fontsize=NOTE_SIZE,
        color="white",
        bbox=dict(boxstyle="square,pad=0.15", facecolor="black", alpha=0.6, linewidth=0),
    )


def show_image(ax: Axes, display: np.ndarray) -> None:
    ax.imshow(as_rgba(display), interpolation="nearest")
    ax.set_xticks([])
    ax.set_yticks([])


def grey(display: np.ndarray) -> np.ndarray:
    """The image without its colours, under a heatmap: then every colour is the heatmap's."""
    return display if display.ndim == 2 else np.asarray(Image.fromarray(display).convert("L"))


def overlay(ax: Axes, display: np.ndarray, heatmap: np.ndarray, vmax: float):
    """The image, in grey, with a patch-level heatmap stretched over it (each patch one
    block: the model has no finer resolution than a patch)."""
    show_image(ax, grey(display))
    size = display.shape[0]
    return ax.imshow(
        heatmap,
        cmap=ATTENTION_CMAP,
        vmin=0.0,
        vmax=vmax,
        alpha=OVERLAY_ALPHA,
        extent=(-0.5, size - 0.5, size - 0.5, -0.5),
        interpolation="nearest",
    )


def similarity_mosaic(ax: Axes, similarity: np.ndarray):
    """Each patch position's (grid, grid) map of cosine similarities, laid out where that patch
    sits: (the image drawn, grid, gap)."""
    grid = similarity.shape[0]
    gap = max(1, grid // 4)
    mosaic = tile_mosaic(similarity.reshape(grid * grid, grid, grid), columns=grid, gap=gap, fill=np.nan)
    return ax.imshow(mosaic, cmap=SIMILARITY_CMAP, vmin=-1, vmax=1, interpolation="nearest"), grid, gap


def filter_mosaic(filters: np.ndarray, columns: int) -> tuple[np.ndarray, int]:
    """(k, C, p, p) filters -> one RGBA mosaic of `columns` per row, each filter stretched to
    its own range (only the pattern matters, not the scale); and the gap between tiles."""
    k, channels, p = filters.shape[:3]
    low = filters.min(axis=(1, 2, 3), keepdims=True)
    high = filters.max(axis=(1, 2, 3), keepdims=True)
    stretched = (filters - low) / np.where(high > low, high - low, 1.0)
    colour = stretched.transpose(0, 2, 3, 1)
    if channels == 1:
        colour = np.repeat(colour, 3, axis=-1)
    tiles = np.concatenate((colour, np.ones((k, p, p, 1))), axis=-1)
    gap = max(1, p // 4)
    return tile_mosaic(tiles, columns, gap, fill=0.0), gap
