"""Patch experiments and sanity baselines: the lessons "a ViT reads a sequence of patches"
and "position comes only from `pos_embedding`", made into numbers.

- Shuffle the patches: with `pos_embedding` in place the prediction changes; without it
  the model is blind to order, and the logits stay the same (up to float rounding),
  because self-attention treats its input as a set and the CLS token reads it as one.
- Occlude patches: paint chosen patches with the background and see what the model
  needed.
- Baselines: the same views for an untrained model with the same shape, and a
  uniform-attention rollout, so that students learn which structure is real.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch

from .data import display_pixels
from .explain import attention_rollout
from .model import ViT, patchify, unpatchify
from .training import seeded


def shuffle_patches(images: torch.Tensor, patch_size: int, order: Sequence[int]) -> torch.Tensor:
    """Rearrange the patches: patch i of the result is patch `order[i]` of the input."""
    b, c, h, _ = images.shape
    grid = h // patch_size
    order = torch.as_tensor(list(order), dtype=torch.long)
    if sorted(order.tolist()) != list(range(grid * grid)):
        raise ValueError(f"order must be a permutation of 0..{grid * grid - 1}")
    return unpatchify(patchify(images, patch_size)[:, order], patch_size, c)


def random_order(num_patches: int, seed: int = 0) -> list[int]:
    return torch.randperm(num_patches, generator=torch.Generator().manual_seed(seed)).tolist()


def to_display(images: torch.Tensor, info: dict) -> np.ndarray:
    """A normalised (1, C, S, S) input back to uint8 pixels: (S, S) grey or (S, S, 3) colour."""
    mean = torch.tensor(info["mean"], dtype=torch.float32).view(-1, 1, 1)
    std = torch.tensor(info["std"], dtype=torch.float32).view(-1, 1, 1)
    pixels = ((images[0].float().cpu() * std + mean).clamp(0, 1) * 255).round().to(torch.uint8)
    return display_pixels(pixels)


def background_value(info: dict) -> torch.Tensor:
    """A black pixel as the model sees it (normalised), per channel: what empty paper looks
    like to an MNIST model after the digit was inverted to light-on-dark."""
    mean = torch.tensor(info["mean"], dtype=torch.float32)
    std = torch.tensor(info["std"], dtype=torch.float32)
    return (0.0 - mean) / std


def occlude_patches(images: torch.Tensor, patch_size: int, indices: Sequence[int], fill: torch.Tensor) -> torch.Tensor:
    """Paint the patches at `indices` (model order, row by row) with `fill` (one value per channel)."""
    b, c, h, w = images.shape
    grid = h // patch_size
    out = images.clone()
    for index in indices:
        if not 0 <= index < grid * grid:
            raise ValueError(f"patch index {index} is outside 0..{grid * grid - 1}")
        row, col = divmod(int(index), grid)
        out[:, :, row * patch_size : (row + 1) * patch_size, col * patch_size : (col + 1) * patch_size] = fill.view(
            1, c, 1, 1
        )
    return out


@dataclass(frozen=True)
class ExperimentView:
    """What one variant of the input does to the model."""

    title: str
    images: torch.Tensor  # (1, C, S, S), normalised: what the model read
    probabilities: torch.Tensor  # (num_classes,)
    rollout: torch.Tensor  # (grid, grid), max-normalised (see explain.attention_rollout)


@torch.inference_mode()
def view(model: ViT, images: torch.Tensor, title: str, use_position: bool = True) -> ExperimentView:
    device = next(model.parameters()).device
    logits, attentions = model(images.to(device), return_attention=True, use_position=use_position)
    return ExperimentView(
        title=title,
        images=images.cpu(),
        probabilities=logits[0].float().softmax(-1).cpu(),
        rollout=attention_rollout([a.cpu() for a in attentions])[0],
    )


def patch_experiment(
    model: ViT,
    info: dict,
    images: torch.Tensor,
    *,
    shuffle_seed: int | None = None,
    occluded: Sequence[int] = (),
    use_position: bool = True,
) -> tuple[ExperimentView, ExperimentView]:
    """(the original, the changed input) side by side.

    The change is any mix of: shuffling the patches (a seeded random order), painting
    `occluded` patches with the background, and leaving out `pos_embedding`."""
    patch_size = model.config.patch_size
    changed = images
    parts = []
    if occluded:
        changed = occlude_patches(changed, patch_size, occluded, background_value(info))
        parts.append(f"{len(occluded)} patch{'es' if len(occluded) != 1 else ''} hidden")
    if shuffle_seed is not None:
        changed = shuffle_patches(changed, patch_size, random_order(model.config.num_patches, shuffle_seed))
        parts.append("patches shuffled")
    if not use_position:
        parts.append("no pos_embedding")
    return (
        view(model, images, "original"),
        view(model, changed, ", ".join(parts) or "unchanged", use_position=use_position),
    )


def untrained_twin(model: ViT, seed: int = 0) -> ViT:
    """A freshly initialised model of the same shape: its maps are what "no learning" looks like."""
    with seeded(seed):
        twin = ViT(model.config)
    return twin.to(next(model.parameters()).device).eval()


def uniform_attention(model: ViT, batch: int = 1) -> list[torch.Tensor]:
    """Attention that spreads evenly over every token, in every layer and head: the baseline
    whose rollout is flat, so any structure in a real rollout was learned."""
    cfg = model.config
    tokens = cfg.seq_len
    return [torch.full((batch, cfg.heads, tokens, tokens), 1.0 / tokens) for _ in range(cfg.depth)]
