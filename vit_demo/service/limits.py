"""What this server can afford: a run's memory and time, checked before it starts, with what
to lower when it does not fit."""

from __future__ import annotations

from ..model import ViTConfig, divisors, estimated_training_memory_bytes
from ..speed import ThroughputMeter
from ..summaries import format_bytes, format_duration
from ..training import EVAL_SUBSET, STARTING_POINT_IMAGES

# The least a run must manage within the server's time limit to show anything: this many
# training steps, plus scoring the starting point and the stopped model.
MIN_USEFUL_STEPS = 20


def what_to_lower(config: ViTConfig, batch_size: int) -> str:
    bigger = [p for p in divisors(config.image_size) if p > config.patch_size]
    raise_patch = (
        f"raise patch_size (now {config.patch_size}: {config.num_patches} patches; "
        f"{', '.join(map(str, bigger))} also divide {config.image_size})"
        if bigger
        else None
    )
    knobs = ", ".join(
        f"{name} (now {value})"
        for name, value in (
            ("batch_size", batch_size),
            ("depth", config.depth),
            ("dim", config.dim),
            ("mlp_dim", config.mlp_dim),
        )
    )
    return f"{raise_patch + ', or lower ' if raise_patch else 'lower '}{knobs}"


def check_memory(config: ViTConfig, batch_size: int, max_memory_mb: float, what: str = "This model") -> None:
    """A ValueError that says how big and what to lower, when training `config` would need more
    than `max_memory_mb` (estimated from its shape: nothing is built)."""
    memory = estimated_training_memory_bytes(config, batch_size)
    if memory > max_memory_mb * 2**20:
        raise ValueError(
            f"{what} is too big for this server: training it with batch_size {batch_size} needs about "
            f"{format_bytes(memory)} of memory, over the {format_bytes(max_memory_mb * 2**20)} limit "
            f"(VIT_DEMO_MAX_TRAIN_MEMORY_MB). To fit, {what_to_lower(config, batch_size)}."
        )


def check_fits_server(
    config: ViTConfig, batch_size: int, max_memory_mb: float, max_seconds: float, meter: ThroughputMeter
) -> None:
    """Refuse, with a ValueError that says how big and what to lower, a model this server
    cannot train: estimated memory over `max_memory_mb`, or so slow that not even a few
    steps and their scoring fit in `max_seconds`."""
    check_memory(config, batch_size, max_memory_mb)
    scored = 2 * STARTING_POINT_IMAGES + EVAL_SUBSET  # the starting point, the stopped run's slice
    seconds = MIN_USEFUL_STEPS * batch_size / meter.images_per_second(config, batch_size) + meter.seconds_to_score(
        config, scored
    )
    if seconds > max_seconds:
        raise ValueError(
            f"This model is too slow for this server: {MIN_USEFUL_STEPS} training steps with batch_size {batch_size} "
            f"and a first score would take about {format_duration(seconds)} ({config.forward_flops() / 1e6:,.0f} MFLOP "
            f"per image), over the {format_duration(max_seconds)} limit of one run (VIT_DEMO_MAX_TRAIN_SECONDS). "
            f"To fit, {what_to_lower(config, batch_size)}."
        )
