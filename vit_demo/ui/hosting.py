"""Where trainings run: in the app's own training process, or on a ZeroGPU Space's GPU.

Hugging Face lends free accounts GPUs by the call (ZeroGPU): a function decorated with
`spaces.GPU` runs in a forked worker that holds a GPU for `duration` seconds, its
arguments and everything it yields pickled across (spaces/zero/wrappers.py). A ZeroGPU
Space refuses to start unless such a function exists when the app starts, so
`train_on_gpu` is decorated here, at import time. Outside a ZeroGPU Space the decorator
returns the function unchanged (spaces/zero/decorator.py: `if not Config.zero_gpu: return
task`), and the app trains in its `worker.TrainingProcess` instead.

On ZeroGPU, `torch.cuda.is_available()` is True in the main process too (spaces patches
it), so nothing in the main process may pick a device by asking it: Explore always runs
on the CPU there, and no GPU quota is spent on a prediction.
"""

from __future__ import annotations

import os

from ..sessions import run_training

try:
    import spaces
except ImportError:  # not installed: the decorator would change nothing anyway
    spaces = None

ZERO_GPU_ENV = "SPACES_ZERO_GPU"
# A run on a lent GPU trains for at most this long: a free account has 5 GPU minutes a day
# (huggingface.co/docs/hub/spaces-zerogpu), and shorter leases are served sooner.
ZERO_GPU_TRAIN_SECONDS = 120.0
# What a lease needs beyond the training itself: building the model, moving the dataset to
# the GPU, scoring the starting point and the full test set at the end.
ZERO_GPU_SETUP_SECONDS = 30.0


def on_zero_gpu() -> bool:
    """The app is a ZeroGPU Space (the variable spaces itself reads, spaces/config.py)."""
    return os.environ.get(ZERO_GPU_ENV, "").strip().lower() in ("1", "t", "true")


def gpu_lease_seconds(model_settings, config, probe_images, stop=None, max_seconds=None, timeline_capacity=40) -> int:
    """The lease a run asks for: its time cap plus the set-up around it. Takes the
    arguments of `run_training`, as ZeroGPU calls it."""
    train_seconds = min(float(max_seconds or ZERO_GPU_TRAIN_SECONDS), ZERO_GPU_TRAIN_SECONDS)
    return int(train_seconds + ZERO_GPU_SETUP_SECONDS)


train_on_gpu = spaces.GPU(duration=gpu_lease_seconds)(run_training) if spaces is not None else run_training


def run_on_gpu(*args, share=None, **kwargs):
    """`train_on_gpu` called as the app calls its training processes: a lent GPU trains one
    run at a time, so a run's share of a shared process (worker.py) has no meaning here."""
    return train_on_gpu(*args, **kwargs)
