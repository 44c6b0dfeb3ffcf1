"""What a run will take before it starts: how long on this machine (and on a ZeroGPU Space,
how much of the visitor's GPU quota), how much memory, and what accuracy the measured table
expects. The Build tab shows it beside the knobs."""

from __future__ import annotations

from dataclasses import dataclass

from ..expectations import Expectation, default_table
from ..model import ViTConfig, estimated_training_memory_bytes
from ..recipes import Candidate, recipe_for
from ..settings import AppSettings
from ..speed import ThroughputMeter
from .jobs import TrainingJob
from .knobs import Knobs, images_in_split
from .limits import check_fits_server


@dataclass(frozen=True)
class Estimate:
    knobs: Knobs
    config: ViTConfig
    train_images: int  # what one epoch holds on this server
    test_images: int
    seconds: float  # the whole run on this machine, scoring included
    images_per_second: float
    speed_source: str  # where the speed comes from, in words
    memory_mb: float
    expected: Expectation | None  # None: these knobs were never measured
    gpu_seconds: float | None = None  # on a ZeroGPU Space: what the run needs of a lent GPU
    lease_seconds: int | None = None  # and what it asks of the visitor's quota
    lease_source: str = ""  # what those two rest on

    @property
    def images(self) -> int:
        return round(self.knobs.epochs * self.train_images)


def matching_candidate(knobs: Knobs) -> Candidate | None:
    """The recipe candidate the knobs describe, if they describe one."""
    wanted = Candidate(**knobs.shape, batch_size=knobs.batch_size, lr=knobs.lr)
    return next((c for c in recipe_for(knobs.dataset).candidates if c == wanted), None)


def estimate(knobs: Knobs, settings: AppSettings, meter: ThroughputMeter, lease=None) -> Estimate:
    """The run of `knobs` on this server; a ValueError (a sentence) when it cannot be built or
    this server cannot afford it. `lease`: a zerogpu.GpuLease on a ZeroGPU Space."""
    config = knobs.model_config()
    check_fits_server(config, knobs.batch_size, settings.max_train_memory_mb, settings.max_train_seconds, meter)
    training = knobs.train_config(settings.data_dir, settings.train_limit, settings.test_limit)
    train_images = images_in_split(knobs.dataset, True, settings.train_limit)
    test_images = images_in_split(knobs.dataset, False, settings.test_limit)
    candidate = matching_candidate(knobs)
    expected = None
    if candidate is not None and not settings.train_limit and knobs.spec.native:
        expected = default_table().expect(knobs.dataset, candidate, knobs.epochs * train_images)
    gpu_seconds = lease_seconds = None
    lease_source = ""
    if lease is not None:
        job = TrainingJob(knobs.shape, training, watched=None, max_seconds=settings.max_train_seconds)
        gpu_seconds, lease_seconds, lease_source = lease.run_seconds(job), lease.seconds(job), lease.source
    return Estimate(
        knobs=knobs,
        config=config,
        train_images=train_images,
        test_images=test_images,
        seconds=meter.run_seconds(config, training, train_images, test_images),
        images_per_second=meter.images_per_second(config, knobs.batch_size),
        speed_source=meter.source,
        memory_mb=estimated_training_memory_bytes(config, knobs.batch_size) / 2**20,
        expected=expected,
        gpu_seconds=gpu_seconds,
        lease_seconds=lease_seconds,
        lease_source=lease_source,
    )
