"""The Train tab's figures: the confusion matrix a run ends with, and one frame of its
training timeline. Drawn as `vit_demo.plots` draws (one Figure each, no pyplot)."""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
from matplotlib.figure import Figure

from vit_demo.figure_style import (
    COUNT_CMAP,
    HEAD_PALETTE,
    LABEL_SIZE,
    NOTE_SIZE,
    as_numpy,
    colourbar,
    filter_mosaic,
    head_colour,
    head_marker,
    new_figure,
    overlay,
    similarity_mosaic,
    style,
)
from vit_demo.model import ViTConfig


def plot_confusion_matrix(counts, class_names: Sequence[str]) -> Figure:
    """counts[true, predicted] -> a K x K table of counts, coloured by count."""
    counts = as_numpy(counts).astype(int)
    total = counts.sum()
    accuracy = 100.0 * np.trace(counts) / total if total else 0.0
    # Sized for the Train tab's side column, shown at its own size: every count stays readable.
    figure = new_figure(5.4, 5.0, f"Confusion matrix: {accuracy:.1f}% right")
    ax = figure.add_subplot()
    image = ax.imshow(counts, cmap=COUNT_CMAP, vmin=0)
    threshold = counts.max() / 2
    for (true, predicted), count in np.ndenumerate(counts):
        ax.text(
            predicted,
            true,
            str(count),
            ha="center",
            va="center",
            fontsize=NOTE_SIZE,
            color="white" if count > threshold else "black",
        )
    k = len(class_names)
    slanted = max(map(len, class_names)) > 2  # words, not digits: slant them so they do not collide
    ax.set_xticks(
        range(k),
        class_names,
        rotation=45 if slanted else 0,
        ha="right" if slanted else "center",
        rotation_mode="anchor",
    )
    ax.set_yticks(range(k), class_names)
    style(ax, xlabel="predicted class", ylabel="true class")
    colourbar(figure, image, ax, "number of images")
    return figure


def plot_timeline_frame(snapshot, probe_display: np.ndarray, config: ViTConfig) -> Figure:
    """One `timeline.Snapshot`: positional-embedding similarity, the rollout on the probe
    image, the first layer's filters and how far each head looks, as they were at that
    point of training."""
    accuracy = "" if snapshot.test_accuracy is None else f" · test accuracy {snapshot.test_accuracy:.1%}"
    figure = new_figure(15, 4.4, f"Step {snapshot.step} · epoch {snapshot.epoch:.2f}{accuracy}")
    similarity_ax, rollout_ax, filters_ax, distance_ax = figure.subplots(
        1, 4, gridspec_kw={"width_ratios": [1.1, 1, 1, 1.2]}
    )

    image, _, _ = similarity_mosaic(similarity_ax, as_numpy(snapshot.position_similarity))
    similarity_ax.set_xticks([])
    similarity_ax.set_yticks([])
    similarity_ax.spines[:].set_visible(False)
    style(similarity_ax, "position similarity")
    colourbar(figure, image, similarity_ax, "cosine")

    heat = overlay(rollout_ax, probe_display, as_numpy(snapshot.probe_rollout), vmax=1.0)
    style(rollout_ax, "rollout on a test image")
    del heat  # the same 0..1 scale as the rollout figure; its colour bar would crowd the frame

    filters = as_numpy(snapshot.filters)
    mosaic, _ = filter_mosaic(filters, columns=math.ceil(len(filters) / 2))
    filters_ax.imshow(mosaic, interpolation="nearest")
    filters_ax.set_xticks([])
    filters_ax.set_yticks([])
    filters_ax.spines[:].set_visible(False)
    style(filters_ax, "first-layer filters")

    distances = as_numpy(snapshot.attention_distance)
    layers, heads = distances.shape
    for head in range(heads):
        distance_ax.scatter(
            np.arange(1, layers + 1),
            distances[:, head],
            s=40,
            color=head_colour(head),
            marker=head_marker(head),
            zorder=3,
        )
    distance_ax.set_xticks(range(1, layers + 1))
    distance_ax.set_xlim(0.5, layers + 0.5)
    distance_ax.set_ylim(0, config.patch_size * (config.grid_size - 1) * math.sqrt(2))
    distance_ax.grid(alpha=0.3)
    style(distance_ax, "how far each head looks", xlabel="layer", ylabel="pixels")
    return figure


def plot_class_knob(points: Sequence[tuple], knob: str) -> Figure:
    """The teacher's "what did this knob do?": one dot per finished student run, test accuracy
    against `knob`, a bar at each value's mean; a guessed accuracy is a hollow diamond joined to
    its run's dot. `points`: (knob value, accuracy %, student, guess % or None)."""
    figure = new_figure(6.4, 4.4, f"Test accuracy against {knob}")
    ax = figure.add_subplot()
    values = sorted({value for value, *_ in points})
    if not values:
        ax.text(0.5, 0.5, "No finished runs yet", ha="center", va="center", fontsize=LABEL_SIZE, transform=ax.transAxes)
        ax.set_axis_off()
        return figure
    position = {value: i for i, value in enumerate(values)}  # evenly spaced: lr and depth alike
    counts: dict = {}
    for value, accuracy, name, guess in points:
        # Runs of one value side by side, not on top of each other: 24 identical runs are 24 dots.
        seen = counts[value] = counts.get(value, 0) + 1
        x = position[value] + 0.08 * ((seen // 2) * (1 if seen % 2 else -1))
        ax.plot(x, accuracy, "o", color=HEAD_PALETTE[0], markersize=9, alpha=0.8)
        if guess is not None:
            ax.plot([x, x], [guess, accuracy], color=HEAD_PALETTE[1], linewidth=1, alpha=0.7)
            ax.plot(x, guess, "D", markerfacecolor="none", markeredgecolor=HEAD_PALETTE[1], markersize=8)
        if len(points) <= 10:
            ax.annotate(name.replace("$", r"\$"), (x, accuracy), (6, 4), textcoords="offset points", fontsize=NOTE_SIZE)
    for value in values:
        mean = float(np.mean([a for v, a, *_ in points if v == value]))
        ax.hlines(mean, position[value] - 0.3, position[value] + 0.3, color="black", linewidth=2.5)
        # Beside the bar's end, clear of the dots and their names.
        ax.annotate(f"{mean:.1f}% (n={counts[value]})", (position[value] + 0.3, mean), (4, 0),
                    textcoords="offset points", va="center", fontsize=NOTE_SIZE)  # fmt: skip
    ax.set_xticks(range(len(values)), [f"{v:g}" for v in values])
    ax.set_xlim(-0.6, len(values) - 0.05)
    accuracies = [a for _, a, *_ in points] + [g for *_, g in points if g is not None]
    ax.set_ylim(max(0.0, min(accuracies) - 8), min(100.0, max(accuracies) + 4))
    ax.grid(axis="y", alpha=0.3)
    if any(g is not None for *_, g in points):
        ax.plot([], [], "o", color=HEAD_PALETTE[0], label="a run's result")
        ax.plot([], [], "D", markerfacecolor="none", markeredgecolor=HEAD_PALETTE[1], label="its student's guess")
        ax.legend(fontsize=NOTE_SIZE, loc="best")
    style(ax, xlabel=knob, ylabel="test accuracy (%)")
    return figure
