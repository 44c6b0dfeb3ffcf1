"""One sentence (or two) for each figure the app draws, from the numbers the figure draws.

A picture in a browser carries no alt text a screen reader could use, and a projector's
back row may not make out a heatmap: the app puts these beside every figure. Patches,
layers, heads and rows are counted from 1 here, as on screen; the arguments are the
library's 0-based values.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

TOP = 3  # how many patches a sentence names


def format_duration(seconds: float) -> str:
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 5400:
        return f"{seconds / 60:.1f} min"
    return f"{seconds / 3600:.1f} h"


def format_bytes(count: float) -> str:
    """A size as people say it: 291 KB, 22.9 MB, 231 MB, 2 GB (a decimal only below 100 of a unit)."""
    for unit, size in (("GB", 2**30), ("MB", 2**20)):
        if count >= size:
            value = count / size
            return (f"{value:,.1f}".removesuffix(".0") if value < 100 else f"{value:,.0f}") + f" {unit}"
    return f"{count / 2**10:,.0f} KB"


def _where(patch: int, grid: int) -> str:
    row, column = divmod(patch, grid)
    return f"patch {patch + 1} (row {row + 1}, column {column + 1})"


def top_patches(values: torch.Tensor, count: int = TOP) -> str:
    """The strongest patches of a (grid, grid) map with their share of the strongest."""
    flat = values.detach().float().flatten()
    grid = values.shape[-1]
    strongest = float(flat.max())
    order = torch.sort(flat, descending=True, stable=True).indices[:count].tolist()
    if strongest <= 0:
        return "no patch stands out"
    return ", ".join(f"{_where(i, grid)} {float(flat[i]) / strongest:.2f}" for i in order)


def prediction(probabilities: torch.Tensor, class_names: Sequence[str]) -> str:
    values, indices = probabilities.topk(min(3, len(class_names)))
    first, *rest = [(class_names[i], float(p)) for p, i in zip(values.tolist(), indices.tolist())]
    others = "; ".join(f"{name} {p:.0%}" for name, p in rest)
    return f"The model predicts **{first[0]}** with {first[1]:.0%} (next: {others})."


def attribution(values: torch.Tensor, method: str, class_name: str, class_specific: bool) -> str:
    of = f"for class **{class_name}**" if class_specific else "(the same for every class)"
    grid = values.shape[-1]
    return f"{method} {of}: the strongest patches are {top_patches(values)} of a {grid}×{grid} grid."


def faithfulness(result, class_name: str) -> str:
    """What the deletion and insertion areas say, against random orders."""
    verdict = (
        "This map finds what the model uses better than chance."
        if result.beats_random
        else "**This map does no better than a random order here: do not read much into it.**"
    )
    start = float(result.deletion.probabilities[0])
    return (
        f"Deleting the map's top patches first takes **{class_name}** from {start:.0%} down with an area of "
        f"{result.deletion.area:.2f} (random order: {result.random_deletion.area:.2f}; lower is better); inserting "
        f"them first into an empty picture gives an area of {result.insertion.area:.2f} (random: "
        f"{result.random_insertion.area:.2f}; higher is better). Score (insertion − deletion): "
        f"**{result.score:+.2f}** against {result.random_score:+.2f} for random orders. {verdict}"
    )


def head_attention(values: torch.Tensor, layer: int, head: int | None, patch: int | None = None) -> str:
    who = "the mean of its heads" if head is None else f"head {head + 1}"
    whose = "the CLS token" if patch is None else _where(patch, values.shape[-1])
    return f"Layer {layer + 1}, {who}: {whose} attends most to {top_patches(values)}."


def attention_overview(maps: torch.Tensor, patch: int | None) -> str:
    """(layers, heads, grid, grid) -> which layer and head look where, most narrowly."""
    layers, heads, grid, _ = maps.shape
    flat = maps.reshape(layers, heads, -1)
    peak = flat.amax(dim=-1)
    layer, head = divmod(int(peak.argmax()), heads)
    strongest = int(flat[layer, head].argmax())
    who = "the CLS token" if patch is None else _where(patch, grid)
    return (
        f"Where {who} looks in each of {layers} layers × {heads} heads. The most focused is layer {layer + 1}, "
        f"head {head + 1}, which puts {float(peak[layer, head]):.0%} of its attention on {_where(strongest, grid)}."
    )


def patch_grid(config) -> str:
    return (
        f"The {config.image_size}×{config.image_size} picture cut into {config.num_patches} patches of "
        f"{config.patch_size}×{config.patch_size}, each flattened to {config.patch_dim} numbers and projected to "
        f"{config.dim}; with the CLS token, {config.seq_len} tokens."
    )


def position_similarity(similarity: torch.Tensor) -> str:
    """(grid, grid, grid, grid) cosine similarities -> how much nearer neighbours are alike."""
    grid = similarity.shape[0]
    if grid < 2:
        return "One patch only: there is no position to compare."
    flat = similarity.reshape(grid * grid, grid * grid)
    rows, columns = torch.meshgrid(torch.arange(grid), torch.arange(grid), indexing="ij")
    centres = torch.stack((rows.flatten(), columns.flatten()), dim=-1).float()
    distance = torch.cdist(centres, centres)
    neighbours = float(flat[distance == 1].mean())
    far = float(flat[distance >= grid / 2].mean())
    learned = "the model has learned where patches are" if neighbours > far + 0.1 else "little structure yet"
    return (
        f"Positional embeddings of neighbouring patches have a mean cosine similarity of {neighbours:+.2f}, "
        f"patches half the picture or more apart {far:+.2f}: {learned}."
    )


def attention_distance(distances: torch.Tensor) -> str:
    """(layers, heads) mean distances in pixels -> how far the first and last layers look."""
    first, last = distances[0], distances[-1]
    return (
        f"Layer 1's heads look {float(first.min()):.1f}–{float(first.max()):.1f} pixels away on average, "
        f"layer {len(distances)}'s {float(last.min()):.1f}–{float(last.max()):.1f}."
    )


def filters(count: int, patch_size: int) -> str:
    return (
        f"The {count} strongest patterns the first layer (patch_to_embedding) looks for in a "
        f"{patch_size}×{patch_size} patch, strongest first."
    )


def patch_maths(maths) -> str:
    weights = maths.weights
    order = torch.sort(weights, descending=True, stable=True).indices[:TOP].tolist()
    names = ", ".join(("CLS" if i == 0 else f"patch {i}") + f" {float(weights[i]):.0%}" for i in order)
    return (
        f"Patch {maths.patch + 1}'s query in layer {maths.layer + 1}, head {maths.head + 1} gives the most "
        f"weight to {names}."
    )


def timeline_frame(snapshot, class_names: Sequence[str]) -> str:
    accuracy = "" if snapshot.test_accuracy is None else f", test accuracy {snapshot.test_accuracy:.1%}"
    guess = int(snapshot.probe_probabilities.argmax())
    return (
        f"Step {snapshot.step:,} (epoch {snapshot.epoch:.2f}{accuracy}). On its test picture it guesses "
        f"{class_names[guess]} ({float(snapshot.probe_probabilities[guess]):.0%}) and its rollout is strongest on "
        f"{top_patches(snapshot.probe_rollout)}. {position_similarity(snapshot.position_similarity)}"
    )


def confusion(counts: torch.Tensor, class_names: Sequence[str]) -> str:
    counts = counts.detach().long()
    total = int(counts.sum())
    right = int(counts.trace())
    off = counts.clone()
    off.fill_diagonal_(0)
    if int(off.max()) == 0:
        return f"All {total:,} test images right."
    true, guessed = divmod(int(off.argmax()), counts.shape[1])
    return (
        f"{right:,} of {total:,} test images right ({right / max(total, 1):.1%}). The most common mistake: "
        f"{class_names[true]} taken for {class_names[guessed]}, {int(off[true, guessed])} times. "
        f"Click a cell to see those images."
    )


__all__ = [
    "attention_distance",
    "attention_overview",
    "attribution",
    "confusion",
    "faithfulness",
    "filters",
    "head_attention",
    "patch_grid",
    "patch_maths",
    "position_similarity",
    "prediction",
    "timeline_frame",
    "top_patches",
]
