"""Training on a ZeroGPU Space: each run borrows a GPU for one call, billed to the visitor.

Hugging Face lends free accounts GPUs by the call (ZeroGPU): a function decorated with
`spaces.GPU` runs in a worker forked from the server, holding a GPU for the seconds it asked
for, its argument and everything it yields pickled across (spaces/zero/wrappers.py). The
scheduler finds the visitor through Gradio's request in the caller's context (the
`X-IP-Token` header) and bills their daily quota; a request for more than the visitor has
left is refused. So a run asks for what it needs (`lease_seconds`: measured on a GPU ZeroGPU
uses, vit_demo/measured/gpu_speed.json), and when the GPU is refused it trains on the Space's
own CPU instead, saying why (`ZeroGpuTrainer`).

A ZeroGPU Space refuses to start unless such a function exists when the app launches, so
`train_on_gpu` is decorated at import. Outside a ZeroGPU Space the decorator returns the
function unchanged (spaces/zero/decorator.py). On ZeroGPU, `torch.cuda.is_available()` is
True in the server too (spaces patches it), so nothing in the server may pick a device by
asking it: Explore and the CPU fallback name the CPU.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from pathlib import Path

from ..speed import ThroughputMeter, read_prior
from ..summaries import format_duration
from ..training import config_for
from .jobs import TrainingJob, TrainingUpdate, run_training
from .knobs import images_in_split

try:
    import spaces
except ImportError:  # not installed: the decorator would change nothing anyway
    spaces = None

# GPU speeds and the seconds a lease spends around the training (forking the worker, CUDA's
# start, the data onto the GPU), measured by benchmarks/gpu_lease.py on a GPU ZeroGPU lends.
GPU_PRIOR = Path(__file__).resolve().parent.parent / "measured" / "gpu_speed.json"
# Until that file exists, leases are worked out from the development machine's CPU speeds (a GPU
# trains these small models faster, so the lease is more than the run needs) plus this much for
# forking the worker and starting CUDA: an allowance, not a measurement.
SETUP_ALLOWANCE = 10.0
LEASE_MARGIN = 1.25  # a lease asks for this much more than the run is measured to need
LEASE_MINIMUM = 10  # seconds: below this the lease would be all set-up and noise
# Daily ZeroGPU quotas as Hugging Face's documentation gives them (docs/hub/spaces-zerogpu.md).
QUOTA_MINUTES = {"without an account": 2, "with a free account": 5, "with PRO": 40}


class GpuLease:
    """What a run costs on a lent GPU: from the GPU speeds measured by benchmarks/gpu_lease.py,
    else from the development machine's CPU speeds (`source` says which)."""

    def __init__(self, prior: dict | None = None):
        prior = prior if prior is not None else read_prior(GPU_PRIOR) if GPU_PRIOR.is_file() else None
        if prior is None:
            prior = {**read_prior(), "setup_seconds": SETUP_ALLOWANCE}
            self.source = "the development machine's CPU speeds, no GPU having been measured yet: more than a GPU needs"
        else:
            self.source = f"measured on a {prior.get('gpu', 'GPU')}"
        self.setup_seconds = float(prior.get("setup_seconds", 0.0))
        self.meter = ThroughputMeter(prior)

    def run_seconds(self, job: TrainingJob) -> float:
        """The GPU seconds the run is measured to need, its set-up included."""
        c = job.config
        train = images_in_split(c.dataset, True, c.train_limit)
        test = images_in_split(c.dataset, False, c.test_limit)
        return self.setup_seconds + self.meter.run_seconds(config_for(c.spec, job.shape), c, train, test)

    def seconds(self, job: TrainingJob) -> int:
        """The lease to ask for: a little more than the run needs, capped by the server's time cap."""
        needed = LEASE_MARGIN * self.run_seconds(job)
        if job.max_seconds is not None:
            needed = min(needed, job.max_seconds + self.setup_seconds)
        return max(LEASE_MINIMUM, math.ceil(needed))


LEASE = GpuLease()


def lease_seconds(job: TrainingJob) -> int:
    """`spaces.GPU`'s duration: called with the decorated function's own argument."""
    return LEASE.seconds(job)


train_on_gpu = spaces.GPU(duration=lease_seconds)(run_training) if spaces is not None else run_training


def quota_words() -> str:
    return ", ".join(f"about {minutes} min {who}" for who, minutes in QUOTA_MINUTES.items())


@dataclass(frozen=True)
class OnCpu:
    """Yielded first when a run trains on the Space's CPU instead of a lent GPU: why, in a sentence."""

    sentence: str


class ZeroGpuTrainer:
    """Trains a job on a lent GPU, in the caller's context (the visitor's request, so their
    quota); when no GPU is lent (no quota left, none free) on the Space's own CPU with
    `cpu_train`, and says so first (`OnCpu`)."""

    def __init__(self, cpu_train: Callable[..., Iterator[TrainingUpdate]], cpu_meter: ThroughputMeter, gpu=None):
        self.cpu_train = cpu_train
        self.cpu_meter = cpu_meter
        self.gpu = gpu or train_on_gpu

    def __call__(self, job: TrainingJob, share=None) -> Iterator[TrainingUpdate | OnCpu]:
        updates = self.gpu(job)
        try:
            first = next(updates)
        except Exception as refusal:  # noqa: BLE001 - spaces refuses with gr.Error: any refusal means the CPU
            yield OnCpu(self.sentence(refusal, job))
            yield from self.cpu_train(replace(job, config=replace(job.config, device="cpu")), share=share)
            return
        yield first
        yield from updates

    def sentence(self, refusal: Exception, job: TrainingJob) -> str:
        c = job.config
        cpu = self.cpu_meter.run_seconds(
            config_for(c.spec, job.shape),
            c,
            images_in_split(c.dataset, True, c.train_limit),
            images_in_split(c.dataset, False, c.test_limit),
        )
        gpu = LEASE.run_seconds(job)
        reason = str(refusal).strip() or type(refusal).__name__
        return (
            f"**No GPU for this run, so it trains on this Space's CPU**, about {cpu / max(gpu, 1e-9):.0f}x slower "
            f"(~{format_duration(cpu)} instead of ~{format_duration(gpu)}). ZeroGPU said: {reason} "
            f"Signing in to Hugging Face gives more GPU time each day ({quota_words()})."
        )
