"""Accuracy of the app's presets, trained exactly as the app trains them, without any UI.

    VIT_DEMO_DATA=../shared/data python -m benchmarks.app_presets [--preset standard] [--dataset mnist ...]

Each preset's knobs become the app's TrainConfig (`Knobs.train_config`: the dataset's recipe,
the plain eager float32 step) and train with the app's threads (`step.server_threads`: one per
operation on 2 cores, where the batch is split over two threads). One line per dataset: the
full test set's accuracy, the epochs, the images per second and the seconds it took.
benchmarks/live_training.py uses this run as its reference.
"""

from __future__ import annotations

import argparse
import time

import torch

from vit_demo import settings
from vit_demo.data import DATASETS
from vit_demo.machine import Machine, configure_threads, server_threads
from vit_demo.recipes import recipe_for
from vit_demo.service.knobs import Knobs
from vit_demo.training import TrainProgress, create_model, run_to_completion


def app_threads() -> int:
    return server_threads(settings.read("VIT_DEMO_THREADS"))


def without_ui(knobs: Knobs) -> tuple[TrainProgress, float]:
    """The preset's run, trained as the app trains it: its final report and its seconds."""
    configure_threads(app_threads())
    started = time.perf_counter()
    model = create_model(knobs.dataset, seed=knobs.seed, **knobs.shape)
    last = run_to_completion(model, knobs.train_config(data_dir=settings.read("VIT_DEMO_DATA")))
    return last, time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--preset", default="standard", help="a preset's name (default: standard)")
    parser.add_argument("--dataset", nargs="+", default=["mnist", "fashion_mnist"], choices=sorted(DATASETS))
    args = parser.parse_args()
    print(Machine.detect(torch.device("cpu")).describe())
    for dataset in args.dataset:
        preset = recipe_for(dataset).preset(args.preset)
        last, seconds = without_ui(Knobs.of_preset(dataset, preset))
        print(
            f"{dataset}, {preset.label} ({preset.candidate.name}), {app_threads()} torch thread(s) per op: "
            f"{last.test_accuracy:.2%} on {last.final_test_images:,} test images, {last.epoch:.2f} epochs, "
            f"{last.images_per_second:,.0f} images/s, {seconds:.0f} s"
        )


if __name__ == "__main__":
    main()
