"""Accuracy of the app's presets, planned and trained exactly as the app does, without any UI.

    VIT_DEMO_DATA=../shared/data python benchmarks/app_presets.py [--preset Standard] [--dataset mnist ...]

1. The preset is planned for this machine as the app plans it at start-up: each of its
   candidates is timed for about half a second in a training process (`planning.measure_speeds`),
   and `planning.plan` picks the one whose measured accuracy is best for the images its
   time budget buys here.
2. The planned run is trained with the app's TrainConfig (`planning.app_train_config`, the
   time budget turned into the steps it buys at the timed speed, as the app does) and
   the app's threads (`step.server_threads`: one per operation on 2 cores, where the batch
   is split over two threads).

One line per dataset: the plan, then the full test set's accuracy, the epochs reached and
the images per second. benchmarks/live_training.py uses this run as its reference.
"""

from __future__ import annotations

import argparse

from vit_demo.sessions import run_training  # noqa: F401 - the job a TrainingProcess runs is found by name
from vit_demo.worker import TrainingProcess

from vit_demo import planning, settings
from vit_demo.recipes import RECIPES, Preset, recipe_for
from vit_demo.step import Machine, configure_threads, server_threads
from vit_demo.training import create_model, run_to_completion


def app_threads() -> int:
    return server_threads(settings.read("VIT_DEMO_THREADS"))


def find_preset(dataset: str, prefix: str) -> Preset | None:
    return next((p for p in recipe_for(dataset).presets if p.label.startswith(prefix)), None)


def plan_preset(dataset: str, preset: Preset) -> planning.Plan:
    meter = planning.ThroughputMeter()
    process = TrainingProcess(threads=app_threads())
    try:
        for speeds in process.run(planning.measure_speeds, dataset, preset.candidates):
            meter.record_speeds(speeds, preset.candidates, dataset)
    finally:
        process.close()
    return planning.plan(dataset, preset.time_budget, preset.candidates, meter)


def describe_plan(dataset: str, preset: Preset, plan: planning.Plan) -> str:
    expected = plan.expected.describe() if plan.expected else "no measured accuracy"
    return (
        f"{dataset}, {preset.label}: planned {plan.candidate.name} for {plan.seconds:g} s "
        f"({plan.images_per_second:,.0f} images/s timed; expected {expected})"
    )


def without_ui(dataset: str, plan: planning.Plan):
    """The planned run, trained as the app trains it: its final report."""
    c = plan.candidate
    steps = planning.steps_in(plan.seconds, plan.images_per_second, c.batch_size)  # as the app turns seconds into steps
    config = planning.app_train_config(dataset, c.lr, c.batch_size, 0, steps=steps)
    configure_threads(app_threads())
    return run_to_completion(create_model(dataset, seed=0, **c.model), config)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--preset", default="Standard", help="the start of a preset's label (default: Standard)")
    parser.add_argument("--dataset", nargs="+", default=["mnist", "fashion_mnist"], choices=sorted(RECIPES))
    args = parser.parse_args()

    print(Machine.detect().describe())
    for dataset in args.dataset:
        preset = find_preset(dataset, args.preset)
        if preset is None:
            print(f"{dataset}: no preset starts with {args.preset!r}")
            continue
        plan = plan_preset(dataset, preset)
        print(describe_plan(dataset, preset, plan))
        last = without_ui(dataset, plan)
        print(
            f"  {app_threads()} torch thread(s) per op: {last.test_accuracy:.2%} on {last.final_test_images:,} "
            f"test images, {last.epoch:.2f} epochs, {last.images_per_second:,.0f} images/s"
        )


if __name__ == "__main__":
    main()
