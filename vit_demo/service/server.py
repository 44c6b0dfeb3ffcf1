"""One running app's service: its settings, the shipped models, the machine's speed, the
training process and the runs. The interface (vit_demo/ui) holds one `Service` and asks it
for everything; nothing here imports gradio."""

from __future__ import annotations

import ctypes
import ctypes.util
import functools
import logging
import threading

import torch

from ..data import DATASETS
from ..machine import Machine, server_threads
from ..recipes import Candidate, recipe_for
from ..settings import AppSettings
from ..speed import ThroughputMeter, measure_speeds
from .estimates import Estimate, estimate
from .jobs import run_training
from .knobs import Knobs
from .lessons import server_lesson
from .library import ModelLibrary
from .queue import TrainingQueue
from .runs import Runs
from .worker import TrainingProcess

log = logging.getLogger("vit_demo.service")
SWEEP_SECONDS = 60.0


@functools.cache
def _libc_malloc_trim():
    """glibc's malloc_trim, or None (another C library, another system)."""
    try:
        return ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6").malloc_trim
    except (OSError, AttributeError):
        return None


def return_freed_memory() -> None:
    """Hand the heap's freed pages back to the system. glibc keeps what pages freed for reuse,
    so without this a server's memory never comes down after a class leaves."""
    trim = _libc_malloc_trim()
    if trim is not None:
        trim(0)


def shapes_to_time() -> list[tuple[str, tuple[Candidate, ...]]]:
    """Each dataset with its presets' candidates, every (image shape, candidate) once: datasets
    of one image shape and class count train a candidate at one speed."""
    seen, each = set(), []
    for dataset, spec in DATASETS.items():
        image = (spec.channels, spec.image_size, spec.num_classes)
        candidates = tuple(
            dict.fromkeys(p.candidate for p in recipe_for(dataset).presets if (image, p.candidate) not in seen)
        )
        seen.update((image, c) for c in candidates)
        if candidates:
            each.append((dataset, candidates))
    return each


class Service:
    def __init__(self, settings: AppSettings):
        self.settings = settings
        self.library = ModelLibrary(settings.checkpoint_dir)
        self.meter = ThroughputMeter()
        self.queue = TrainingQueue(settings.max_trainings)
        # One training process for every run (its runs take turns); on a ZeroGPU Space, runs
        # train on a lent GPU and this process is where they train when none is lent.
        self.process = TrainingProcess(server_threads(settings.threads))
        train = functools.partial(self.process.run, run_training)
        machine = Machine.detect(torch.device("cpu")).describe()
        self.lease = None  # on a ZeroGPU Space: what a run costs on a lent GPU (zerogpu.GpuLease)
        if settings.zero_gpu:
            from . import zerogpu  # imports spaces, which patches torch: only on a ZeroGPU Space

            train, machine, self.lease = zerogpu.ZeroGpuTrainer(train, self.meter), "ZeroGPU", zerogpu.LEASE
        self.runs = Runs(settings, self.meter, self.queue, train, machine)
        self.timed = threading.Event()
        self.closing = threading.Event()

    def estimate(self, knobs: Knobs) -> Estimate:
        """What the run of `knobs` will take here; a ValueError (a sentence) when it cannot run here."""
        return estimate(knobs, self.settings, self.meter, self.lease)

    def start(self) -> None:
        """Start the training process (torch imported, ready to train before the first Start),
        time this machine in the background (estimates rest on the shipped prior meanwhile), and
        read the lesson's folder of pictures before the first page asks for it."""
        self.process.start()
        threading.Thread(target=server_lesson, name="vit-demo-lesson", daemon=True).start()
        threading.Thread(target=self._time_machine, name="vit-demo-timing", daemon=True).start()
        threading.Thread(target=self._sweep, name="vit-demo-sweep", daemon=True).start()

    def _sweep(self) -> None:
        """Every minute, what pages left behind in the work folder goes (service/workfolder.py)."""
        while not self.closing.wait(SWEEP_SECONDS):
            try:
                if self.runs.sweep():
                    return_freed_memory()
            except OSError:  # a file that vanished meanwhile: the next sweep sees the rest
                log.exception("could not sweep the work folder")

    def _time_machine(self) -> None:
        try:
            for dataset, candidates in shapes_to_time():
                if not self._time(dataset, candidates):
                    return
        finally:
            self.timed.set()

    def _time(self, dataset: str, candidates: tuple[Candidate, ...]) -> bool:
        """Time `candidates` in the training process and record the readings, unless another job
        ran meanwhile (a reading beside a training is a share of the cores, not this machine's
        speed). False if the timing failed."""
        started = self.process.started
        try:
            for speeds in self.process.run(measure_speeds, dataset, candidates, device="cpu"):
                if self.process.started == started + 1 and self.process.jobs == 1:
                    self.meter.record_speeds(speeds, candidates, dataset)
        except Exception:
            if not self.closing.is_set():  # a server shutting down ends its process mid-timing
                log.exception("could not time this machine's training speed")
            return False
        return True

    def close(self) -> None:
        """End the training process (the server is shutting down, or a test is done)."""
        self.closing.set()
        self.process.close()
