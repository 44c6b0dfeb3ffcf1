"""A training timeline: small snapshots of what the model has learned so far, taken while
it trains, so a class can scrub through them and watch spatial structure emerge.

A snapshot holds only small tensors (a few KB): the positional-embedding similarity grid,
the mean attention distance per head, the first patch-embedding filters, and the rollout
and prediction on one fixed probe image. Never whole checkpoints. The number kept is
bounded: when the timeline is full, every other snapshot is dropped (the first and the
newest stay), so a long run keeps an even, coarser record instead of growing.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import torch
from PIL import Image

from .explain import attention_distance, attention_rollout, embedding_filters, position_similarity
from .model import ViT


@dataclass(frozen=True)
class Snapshot:
    step: int
    epoch: float
    fraction: float
    test_accuracy: float | None
    position_similarity: torch.Tensor  # (grid, grid, grid, grid)
    attention_distance: torch.Tensor  # (layers, heads), pixels
    filters: torch.Tensor  # (k, C, p, p)
    probe_rollout: torch.Tensor  # (grid, grid)
    probe_probabilities: torch.Tensor  # (num_classes,)

    @property
    def nbytes(self) -> int:
        tensors = (
            self.position_similarity,
            self.attention_distance,
            self.filters,
            self.probe_rollout,
            self.probe_probabilities,
        )
        return sum(t.numel() * t.element_size() for t in tensors)


FILTERS = 8  # first-layer filters a snapshot keeps


def snapshot_shapes(config) -> dict[str, tuple[int, ...]]:
    """The shape of each of a snapshot's tensors for a model of `config` (a ViTConfig)."""
    g, k = config.grid_size, min(FILTERS, config.dim, config.patch_dim)
    return {
        "position_similarity": (g, g, g, g),
        "attention_distance": (config.depth, config.heads),
        "filters": (k, config.channels, config.patch_size, config.patch_size),
        "probe_rollout": (g, g),
        "probe_probabilities": (config.num_classes,),
    }


@torch.no_grad()
def take_snapshot(
    model: ViT,
    probe: torch.Tensor,
    step: int,
    epoch: float,
    fraction: float,
    test_accuracy: float | None,
    filters: int = FILTERS,
) -> Snapshot:
    """Snapshot `model` as it is now; `probe` is one normalised image (1, C, S, S).

    Safe to call in the middle of training: the model's train/eval mode is restored, and
    nothing here touches gradients or the optimizer."""
    was_training = model.training
    model.eval()
    try:
        device = next(model.parameters()).device
        logits, attentions = model(probe.to(device), return_attention=True)
        attentions = [a.float().cpu() for a in attentions]
        k = min(filters, model.config.dim, model.config.patch_dim)
        return Snapshot(
            step=step,
            epoch=epoch,
            fraction=fraction,
            test_accuracy=test_accuracy,
            position_similarity=position_similarity(model),
            attention_distance=attention_distance(attentions, model.config.patch_size),
            filters=embedding_filters(model, k),
            probe_rollout=attention_rollout(attentions)[0],
            probe_probabilities=logits[0].float().softmax(-1).cpu(),
        )
    finally:
        model.train(was_training)


CAPACITY = 40  # snapshots a run keeps (each a few KB): older ones are thinned evenly


class Timeline:
    """Snapshots at regular points of a run, at most `capacity` of them."""

    def __init__(self, capacity: int = CAPACITY, every: float = 0.025):
        if capacity < 2:
            raise ValueError(f"capacity must be at least 2, got {capacity}")
        self.capacity = capacity
        self.every = every  # take one each time this fraction of the run has passed
        self.snapshots: list[Snapshot] = []

    def __len__(self) -> int:
        return len(self.snapshots)

    def __getitem__(self, index: int) -> Snapshot:
        return self.snapshots[index]

    def due(self, fraction: float, done: bool = False) -> bool:
        if not self.snapshots or done:
            return True
        return fraction - self.snapshots[-1].fraction >= self.every

    def add(self, snapshot: Snapshot) -> None:
        if len(self.snapshots) >= self.capacity:
            # Thin evenly: keep the first, every other one after it, and make room for the newest.
            self.snapshots = self.snapshots[::2]
            self.every *= 2
        self.snapshots.append(snapshot)

    def record(self, model: ViT, probe: torch.Tensor, progress) -> bool:
        """Take a snapshot if one is due at this progress report (a TrainProgress); True if taken."""
        if not self.due(progress.fraction, progress.done):
            return False
        self.add(take_snapshot(model, probe, progress.step, progress.epoch, progress.fraction, progress.test_accuracy))
        return True

    @property
    def nbytes(self) -> int:
        return sum(s.nbytes for s in self.snapshots)


def save_gif(frames: Sequence[Image.Image], path: str | Path, seconds_per_frame: float = 0.35) -> Path:
    """An animated GIF that loops; the last frame lingers so the final state can be read."""
    if not frames:
        raise ValueError("no frames to save: train a model first so the timeline has snapshots")
    path = Path(path)
    durations = [round(seconds_per_frame * 1000)] * len(frames)
    durations[-1] = 2000
    palette_frames = [frame.convert("RGB").quantize(colors=255, method=Image.Quantize.MEDIANCUT) for frame in frames]
    palette_frames[0].save(
        path, save_all=True, append_images=palette_frames[1:], duration=durations, loop=0, optimize=True
    )
    return path
