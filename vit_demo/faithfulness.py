"""How far to trust a map: deletion and insertion curves (Petsiuk et al., RISE, 2018),
measured on the user's own model and picture.

A map ranks the patches from "mattered most" to "mattered least". If it is right, then
- deleting the patches in that order (painting them with the empty background) makes the
  class's probability fall fast: a small area under the deletion curve;
- inserting them in that order into an empty picture makes it rise fast: a large area
  under the insertion curve.
The same curves for random orders are the baseline: a map that does no better than chance
tells nothing about the model. Everything is batched: one forward pass per curve, of at most
`MAX_POINTS` pictures per order.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import torch

from .explain import fill_patches, patch_masks
from .model import ViT

RANDOM_ORDERS = 4  # random rankings averaged for the baseline
# Every method scored over 1,000 real test images per shipped model
# (benchmarks/explanation_faithfulness.py writes it; the Learn tab quotes it).
MEASURED = Path(__file__).resolve().parent / "measured" / "faithfulness.json"
# Points on a curve at most: a 49-patch model is measured every 3 patches or so, which keeps a
# curve to one small batch (the area changes by well under 0.01).
MAX_POINTS = 17


@dataclass(frozen=True)
class Curve:
    """The class's probability at each point of a curve: after `counts[i]` patches were
    deleted (or inserted), from none to all of them."""

    counts: torch.Tensor  # (points,) patches deleted or inserted, 0 ... num_patches
    probabilities: torch.Tensor  # (points,)

    @property
    def fractions(self) -> torch.Tensor:
        return self.counts.float() / self.counts[-1]

    @property
    def area(self) -> float:
        """Area under the curve over the fraction of patches, 0..1 (the trapezoid rule)."""
        return float(torch.trapezoid(self.probabilities, self.fractions))


@dataclass(frozen=True)
class Faithfulness:
    """A map's deletion and insertion curves beside random orders' (their mean)."""

    deletion: Curve
    insertion: Curve
    random_deletion: Curve
    random_insertion: Curve

    @property
    def score(self) -> float:
        """Insertion area minus deletion area: near 1 for a map that finds what the model
        uses, near 0 (or below) for one that does not."""
        return self.insertion.area - self.deletion.area

    @property
    def random_score(self) -> float:
        return self.random_insertion.area - self.random_deletion.area

    @property
    def beats_random(self) -> bool:
        return self.score > self.random_score


def ranking(saliency: torch.Tensor) -> torch.Tensor:
    """A (grid, grid) map -> patch indices from most to least important (ties: lower index first)."""
    flat = saliency.detach().float().cpu().flatten()
    return torch.sort(flat, descending=True, stable=True).indices


def curve_counts(num_patches: int, points: int = MAX_POINTS) -> torch.Tensor:
    """How many patches are deleted (or inserted) at each point: every count up to `points`
    points, else `points` counts spread evenly from 0 to all."""
    if num_patches + 1 <= points:
        return torch.arange(num_patches + 1)
    return torch.linspace(0, num_patches, points).round().long()


def _orders_to_masks(orders: torch.Tensor, counts: torch.Tensor, delete: bool) -> torch.Tensor:
    """(R, N) rankings -> (R, points, N) patch choices: True for the patches painted at each
    point (deletion: the first k of the order; insertion: all but the first k)."""
    r, n = orders.shape
    position = torch.empty_like(orders)
    position.scatter_(1, orders, torch.arange(n).expand(r, n))  # position[i, patch] = its rank in order i
    taken = position.view(r, 1, n) < counts.view(1, -1, 1)  # the first k of the order
    return taken if delete else ~taken


@torch.inference_mode()
def curves(model: ViT, images: torch.Tensor, target: int, orders: torch.Tensor, fill: torch.Tensor) -> tuple:
    """Deletion and insertion curves of class `target` for each of the (R, N) `orders`,
    averaged over the orders: -> (deletion, insertion) `Curve`s."""
    config = model.config
    n = config.num_patches
    counts = curve_counts(n)
    device = next(model.parameters()).device
    results = []
    for delete in (True, False):
        chosen = _orders_to_masks(orders, counts, delete).reshape(-1, n)
        batch = fill_patches(images.cpu(), patch_masks(chosen, config.grid_size, config.patch_size), fill)
        probabilities = model(batch.to(device)).float().softmax(-1)[:, target].cpu()
        results.append(Curve(counts, probabilities.reshape(len(orders), len(counts)).mean(dim=0)))
    return tuple(results)


def faithfulness(
    model: ViT,
    images: torch.Tensor,
    target: int,
    saliency: torch.Tensor,
    fill: torch.Tensor,
    random_orders: int = RANDOM_ORDERS,
    seed: int = 0,
) -> Faithfulness:
    """The map's curves and the random baseline's, for one (1, C, S, S) normalised picture."""
    deletion, insertion = curves(model, images, target, ranking(saliency)[None], fill)
    generator = torch.Generator().manual_seed(seed)
    n = saliency.numel()
    shuffled = torch.stack([torch.randperm(n, generator=generator) for _ in range(random_orders)])
    random_deletion, random_insertion = curves(model, images, target, shuffled, fill)
    return Faithfulness(deletion, insertion, random_deletion, random_insertion)


def measured(dataset: str, path: Path = MEASURED) -> dict | None:
    """The benchmark's figures for a shipped model of `dataset` (None when not measured):
    its "images", "patches" and per-method "deletion", "insertion", "score", "beats_random"."""
    if not path.is_file():
        return None
    table = json.loads(path.read_text(encoding="utf-8"))
    return next((row for row in table.get("models", []) if row["dataset"] == dataset), None)


__all__ = [
    "MAX_POINTS",
    "MEASURED",
    "RANDOM_ORDERS",
    "Curve",
    "Faithfulness",
    "curve_counts",
    "curves",
    "faithfulness",
    "measured",
    "ranking",
]
