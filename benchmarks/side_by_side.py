"""Several students' trainings at once in the app's training process: one lane per core
(trainings side by side, service/worker.py) against a single lane (one training at a time, each
step split over every core), in the same run.

    VIT_DEMO_DATA=../shared/data python -m benchmarks.side_by_side [--runs 3] [--steps 600] [--rounds 2]

Each round starts `--runs` trainings of the class benchmark's lesson shape (MNIST, patch 7,
dim 64, 2 blocks, batch 128, `--steps` steps, seeds 0, 1, ...) at once in a fresh
`TrainingProcess` with the app's threads per operation (`step.server_threads`), on one lane
and on the default lanes in turn, and times them from the first start to the last model.
Printed: the machine, each round's training images per second over all the runs, the
median of each, their ratio, and whether every run's weights came out bit for bit the same
on both (a shared run's model must not depend on what else the server was training).
"""

from __future__ import annotations

import argparse
import statistics
import threading
import time

import torch

from vit_demo.data import load_split
from vit_demo.machine import Machine, server_threads
from vit_demo.service.jobs import TrainingJob, run_training
from vit_demo.service.worker import TrainingProcess, lanes_for
from vit_demo.training import TrainConfig

LESSON_SHAPE = dict(patch_size=7, dim=64, depth=2, heads=4, mlp_dim=128)


def train_at_once(lanes: int | None, runs: int, steps: int) -> tuple[float, list[dict[str, torch.Tensor]]]:
    """Training images per second over `runs` trainings started together, and their weights."""
    process = TrainingProcess(server_threads(), lanes=lanes)
    try:
        watched = load_split("mnist", train=False, limit=4).images
        warm = TrainConfig(dataset="mnist", steps=2, force_step=True)
        list(process.run(run_training, TrainingJob(LESSON_SHAPE, warm, watched)))  # torch imported, the data decoded
        configs = [TrainConfig(dataset="mnist", steps=steps, seed=seed, force_step=True) for seed in range(runs)]
        jobs = [process.run(run_training, TrainingJob(LESSON_SHAPE, config, watched)) for config in configs]
        weights: list[dict[str, torch.Tensor] | None] = [None] * runs

        def follow(index: int) -> None:
            for update in jobs[index]:
                weights[index] = update.state_dict

        started = time.perf_counter()
        followers = [threading.Thread(target=follow, args=(index,)) for index in range(runs)]
        for follower in followers:
            follower.start()
        for follower in followers:
            follower.join()
        seconds = time.perf_counter() - started
    finally:
        process.close()
    return runs * steps * configs[0].batch_size / seconds, weights


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=3, help="trainings started at once")
    parser.add_argument("--steps", type=int, default=600, help="training steps of each")
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()
    print(Machine.detect(torch.device("cpu")).describe())
    default_lanes = lanes_for(server_threads())
    print(f"{args.runs} trainings of {args.steps} steps at once, {server_threads()} thread(s) per operation")
    speeds: dict[int, list[float]] = {1: [], default_lanes: []}
    same = True
    for round_number in range(args.rounds):
        models = {}
        for lanes in speeds:
            speed, models[lanes] = train_at_once(lanes, args.runs, args.steps)
            speeds[lanes].append(speed)
            print(f"  round {round_number + 1}, {lanes} lane(s): {speed:,.0f} training images/s")
        first, *others = models.values()
        same &= all(torch.equal(a[name], b[name]) for other in others for a, b in zip(first, other) for name in a)
    medians = {lanes: statistics.median(values) for lanes, values in speeds.items()}
    for lanes, median in medians.items():
        print(f"{lanes} lane(s): median {median:,.0f} training images/s")
    print(f"ratio: {medians[default_lanes] / medians[1]:.2f}x ({default_lanes} lanes over 1)")
    print(f"every run's weights bit for bit the same on both: {'yes' if same else 'NO'}")


if __name__ == "__main__":
    main()
