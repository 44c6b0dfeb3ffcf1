"""What a handful of pictures can and cannot teach a ViT: a student's own dataset, imitated.

    VIT_DEMO_DATA=../shared/data python -m benchmarks.tiny_data [--seeds 0 1 2] [--jobs 2]

A student brings 2-20 classes of 5-40 pictures each and trains at an image_size of their
choice. This imitates that with the bundled data: the first 5 classes of MNIST and of
Fashion-MNIST, prepared at 32x32 grey (`get_spec(...).at(32, 1)`, as the app prepares a set
at another size), with 5, 10, 20 or 40 training pictures per class drawn at random from the
training split (the seed draws them: a 5-picture set is part of the same seed's 10-picture
set), and scored on a fixed 100 pictures per class from the test split that no run sees.

Compared at equal epochs (so equal steps for the same pictures): the presets' usual model
(dim 64, depth 4, heads 4, mlp 128; patch 8 at 32 pixels, the 4x4 grid of patch 7 at 28)
against a smaller one (dim 32, depth 2, heads 2, mlp 64), each with the shift augmentation
(`data.augment`, 2 pixels: a person's own 64-pixel pictures are shifted by 4, scaled to 32)
and without. Every run is scored on its own training pictures (unshifted) and on the held-out
ones; the difference is the overfitting gap. Then the small model on 10 pictures a class for
10 to 300 epochs, and at batch 16 and 128, says how long is worth training.

Route: `train` reads its pictures only through `TrainConfig.split`, which knows a dataset's
first N images, not a chosen few; `PicturesConfig` is a TrainConfig whose `split` returns the
pictures it is given (nothing is patched), and its dataset is the 5-class spec itself
(`get_spec` takes a spec as it is), so the model has 5 outputs. Everything else is the app's
own training: `create_model`, `run_to_completion`, TrainConfig's defaults (lr 3e-3, weight
decay 0.05, warmup 5 %, no label smoothing), eager float32 steps on the CPU.

Runs go `--jobs` at a time in worker processes, each held to one core and one torch thread.
Printed: the machine, then one table (the mean over seeds, and the lowest and highest).
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import statistics
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field, replace

import torch

from vit_demo.data import DatasetSpec, Split, get_spec, load_split
from vit_demo.machine import Machine, configure_threads
from vit_demo.training import TrainConfig, create_model, evaluate, run_to_completion

DATASETS = ("mnist", "fashion_mnist")
CLASSES = 5  # the first five: labels stay 0-4
PER_CLASS = (5, 10, 20, 40)
TEST_PER_CLASS = 100
IMAGE_SIZE, CHANNELS = 32, 1
SHIFT = 2
EPOCHS, BATCH = 100, 32
SHAPES = {
    "usual": dict(patch_size=8, dim=64, depth=4, heads=4, mlp_dim=128),
    "small": dict(patch_size=8, dim=32, depth=2, heads=2, mlp_dim=64),
}
# How long is worth training: the small model on 10 pictures a class, (epochs, batch).
SWEEP_PER_CLASS = 10
SWEEP = ((10, BATCH), (30, BATCH), (100, BATCH), (300, BATCH), (100, 16), (100, 128))


@dataclass(frozen=True)
class PicturesConfig(TrainConfig):
    """A TrainConfig that trains and scores on the pictures it is given (see the module's Route)."""

    train_pictures: Split | None = field(default=None, compare=False, repr=False)
    test_pictures: Split | None = field(default=None, compare=False, repr=False)

    def split(self, train: bool, limit: int | None = None) -> Split:
        return (self.train_pictures if train else self.test_pictures).subset(limit)


@dataclass(frozen=True)
class Job:
    dataset: str
    per_class: int
    model: str
    shift: int  # 0: no augmentation
    epochs: int
    batch: int
    seed: int

    @property
    def row(self) -> tuple:
        """The table row this run is one seed of."""
        return (self.dataset, self.per_class, self.model, self.shift, self.epochs, self.batch)


def five_classes(dataset: str) -> DatasetSpec:
    spec = get_spec(dataset).at(IMAGE_SIZE, CHANNELS)
    return replace(spec, class_names=spec.class_names[:CLASSES])


def balanced(split: Split, per_class: int, generator: torch.Generator | None) -> list[torch.Tensor]:
    """Each class's first `per_class` indices, shuffled by `generator` (None: in the split's order)."""
    chosen = []
    for label in range(CLASSES):
        indices = (split.labels == label).nonzero().squeeze(1)
        order = torch.randperm(len(indices), generator=generator) if generator is not None else slice(None)
        chosen.append(indices[order][:per_class])
    return chosen


def pick(split: Split, chosen: list[torch.Tensor], per_class: int) -> Split:
    indices = torch.cat([class_indices[:per_class] for class_indices in chosen])
    return Split(split.images[indices].clone(), split.labels[indices].clone())


def pictures(seeds: list[int]) -> dict:
    """(dataset, seed, per class) -> training Split, and dataset -> the held-out Split."""
    sets = {}
    for dataset in DATASETS:
        spec = five_classes(dataset)
        train, test = load_split(spec, train=True), load_split(spec, train=False)
        sets[dataset] = pick(test, balanced(test, TEST_PER_CLASS, None), TEST_PER_CLASS)
        for seed in seeds:
            chosen = balanced(train, max(PER_CLASS), torch.Generator().manual_seed(seed))
            for per_class in PER_CLASS:
                sets[dataset, seed, per_class] = pick(train, chosen, per_class)
    return sets


def jobs(seeds: list[int]) -> list[Job]:
    runs = {
        Job(dataset, per_class, model, shift, EPOCHS, BATCH, seed)
        for dataset in DATASETS
        for per_class in PER_CLASS
        for model in SHAPES
        for shift in (0, SHIFT)
        for seed in seeds
    }
    runs |= {
        Job(dataset, SWEEP_PER_CLASS, "small", shift, epochs, batch, seed)
        for dataset in DATASETS
        for shift in (0, SHIFT)
        for epochs, batch in SWEEP
        for seed in seeds
    }
    return sorted(runs, key=lambda job: -cost(job))  # the longest first, so the pool ends evenly


def steps(job: Job) -> int:
    images = job.per_class * CLASSES
    return job.epochs * -(-images // min(job.batch, images))


def cost(job: Job) -> float:
    return steps(job) * min(job.batch, job.per_class * CLASSES) * SHAPES[job.model]["dim"] * SHAPES[job.model]["depth"]


def hold_one_core(workers: multiprocessing.Queue) -> None:
    # One core and one thread per run: on a core of its own a run's step is not split over two
    # threads (step.BatchSplitter), which two runs side by side on two cores would only slow.
    worker = workers.get()
    if hasattr(os, "sched_setaffinity"):  # Linux; elsewhere the batch may be split
        allowed = sorted(os.sched_getaffinity(0))
        os.sched_setaffinity(0, {allowed[worker % len(allowed)]})
    configure_threads(1)


def measure(job: Job, train: Split, test: Split) -> dict:
    spec = five_classes(job.dataset)
    config = PicturesConfig(
        dataset=spec,
        epochs=job.epochs,
        batch_size=job.batch,
        augment=job.shift > 0,
        augment_shift=job.shift,
        augment_flip=False,
        seed=job.seed,
        evaluations=0,
        compile=False,
        bf16=False,
        device="cpu",
        train_pictures=train,
        test_pictures=test,
    )
    model = create_model(spec, seed=job.seed, **SHAPES[job.model])
    started = time.perf_counter()
    final = run_to_completion(model, config)
    _, own, _ = evaluate(model, train, spec)
    return {"train": own, "test": final.test_accuracy, "steps": final.step, "seconds": time.perf_counter() - started}


def cell(values: list[float]) -> str:
    percents = [100 * v for v in values]
    return f"{statistics.mean(percents):5.1f} ({min(percents):3.0f}-{max(percents):3.0f})"


def print_table(results: dict[Job, dict]) -> None:
    rows: dict[tuple, list[dict]] = {}
    for job in sorted(results, key=lambda j: (DATASETS.index(j.dataset), j.per_class, j.model, j.shift, j.epochs)):
        rows.setdefault(job.row, []).append(results[job])
    print(
        f"{'dataset':13s} {'per class':>9s} {'model':5s} {'shift':>5s} {'epochs':>6s} {'batch':>5s} {'steps':>5s}"
        f"  {'own pictures %':>14s}  {'new pictures %':>14s}  {'gap':>5s}"
    )
    for (dataset, per_class, model, shift, epochs, batch), runs in rows.items():
        train, test = [r["train"] for r in runs], [r["test"] for r in runs]
        gap = 100 * (statistics.mean(train) - statistics.mean(test))
        print(
            f"{dataset:13s} {per_class:9d} {model:5s} {shift or 'off':>5} {epochs:6d} {batch:5d} {runs[0]['steps']:5d}"
            f"  {cell(train):>14s}  {cell(test):>14s}  {gap:5.1f}"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    parser.add_argument("--jobs", type=int, default=2)
    args = parser.parse_args()

    print(Machine.detect(torch.device("cpu")).describe(), flush=True)
    started = time.perf_counter()
    sets = pictures(args.seeds)
    planned = jobs(args.seeds)
    print(
        f"{len(planned)} runs, {args.jobs} at a time, one core each; {CLASSES} classes at {IMAGE_SIZE}x{IMAGE_SIZE} "
        f"grey, scored on {TEST_PER_CLASS} held-out pictures a class; seeds {' '.join(map(str, args.seeds))}",
        flush=True,
    )
    for name, shape in SHAPES.items():
        parameters = sum(p.numel() for p in create_model(five_classes("mnist"), **shape).parameters())
        print(f"  {name}: {', '.join(f'{k} {v}' for k, v in shape.items())} ({parameters:,} parameters)")

    workers = multiprocessing.Queue()
    for worker in range(args.jobs):
        workers.put(worker)
    with ProcessPoolExecutor(args.jobs, initializer=hold_one_core, initargs=(workers,)) as pool:
        futures = {
            job: pool.submit(measure, job, sets[job.dataset, job.seed, job.per_class], sets[job.dataset])
            for job in planned
        }
        results = {job: future.result() for job, future in futures.items()}
    print_table(results)
    training = sum(r["seconds"] for r in results.values())
    print(f"{time.perf_counter() - started:.0f} s in all ({training:.0f} s of training over the runs)")


if __name__ == "__main__":
    main()
