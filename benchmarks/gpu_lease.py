"""What a run costs on a lent GPU: the seconds a ZeroGPU lease must cover, per preset, measured
on the GPU this runs on, and the GPU speeds the app's leases are worked out from
(vit_demo/measured/gpu_speed.json).

    VIT_DEMO_DATA=/path/to/data python -m benchmarks.gpu_lease [--out vit_demo/measured/gpu_speed.json]

A lease covers what ZeroGPU's worker does (spaces/zero/wrappers.py): a process forked from the
server, CUDA started in it, then the whole run (`service.jobs.run_training`: the starting point,
the training, its evaluations, the final score on the full test set). Measured here:

1. every recipe candidate's training speed (`speed.measure_speeds` on the GPU): the rows the app
   estimates any shape from;
2. the set-up a lease pays beyond the run (the fork, CUDA's start, the first kernels): a tiny
   run's whole time in a forked child less what the speeds account for, the most of three;
3. each preset's whole run in a forked child, fork and CUDA's start included, beside the lease
   the app would ask for it.

Prints the GPU line, each figure, and the lease the app would ask for beside what the run took.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import time
import traceback
from dataclasses import replace
from pathlib import Path

import torch

from vit_demo.data import load_split
from vit_demo.machine import Machine
from vit_demo.recipes import recipe_for
from vit_demo.service.jobs import TrainingJob, run_training
from vit_demo.service.knobs import Knobs
from vit_demo.service.server import shapes_to_time
from vit_demo.service.zerogpu import GPU_PRIOR, GpuLease
from vit_demo.speed import measure_speeds


def _forked(target, *args):
    """`target(*args)` in a forked child with CUDA started there: its result, and the seconds from
    the fork to the child's answer. A child that fails raises its error here."""
    context = multiprocessing.get_context("fork")
    results = context.Queue()

    def child() -> None:
        try:
            torch.zeros(1, device=DEVICE[0])  # CUDA's start, as spaces' worker_init does it
            value = target(*args)
            if DEVICE[0] == "cuda":
                torch.cuda.synchronize()
            results.put(("value", value))
        except BaseException:  # noqa: BLE001 - the parent reports it
            results.put(("error", traceback.format_exc()))

    began = time.perf_counter()
    process = context.Process(target=child)
    process.start()
    kind, value = results.get(timeout=900)
    seconds = time.perf_counter() - began
    process.join(60)
    if kind == "error":
        raise RuntimeError(f"the forked child failed:\n{value}")
    return value, seconds


def _whole_run(knobs: Knobs, data_dir: str | None) -> dict:
    training = replace(knobs.train_config(data_dir=data_dir), device=DEVICE[0])
    watched = load_split(knobs.dataset, train=False, data_dir=data_dir, limit=8).images
    started = time.perf_counter()
    last = None
    for update in run_training(TrainingJob(knobs.shape, training, watched)):
        last = update.progress or last
    return {
        "run_seconds": time.perf_counter() - started,
        "steps": last.step,
        "images_per_second": last.step * training.batch_size / last.step_seconds,
        "test_accuracy": last.test_accuracy,
    }


DEVICE = ["cuda"]  # --device cpu: a dry run of this script on a machine without a GPU


def _timed(dataset: str, candidates) -> list[dict]:
    return list(measure_speeds(dataset, candidates, seconds=2.0, rounds=4, device=DEVICE[0]))


TINY = Knobs("mnist", 7, 32, 1, 2, 64, 0.003, 128, 0.5)


def _tiny_run(data_dir: str | None) -> float:
    training = replace(TINY.train_config(data_dir=data_dir, train_limit=1024, test_limit=256), device=DEVICE[0])
    watched = load_split("mnist", train=False, data_dir=data_dir, limit=8).images
    for _ in run_training(TrainingJob(TINY.shape, training, watched)):
        pass
    return 0.0


def _describe() -> str:
    return f"{Machine.detect(torch.device(DEVICE[0])).describe()}; torch {torch.__version__}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data-dir", default=None)
    parser.add_argument("--out", type=Path, default=GPU_PRIOR)
    parser.add_argument("--datasets", nargs="+", default=["mnist", "cifar10"])
    parser.add_argument("--device", default="cuda", help="cpu: a dry run of the script, not a GPU figure")
    args = parser.parse_args()
    DEVICE[0] = args.device
    # CUDA only ever starts in forked children, as on ZeroGPU: a parent that started it could not fork them.
    machine, _ = _forked(_describe)
    print(machine, flush=True)
    for dataset in args.datasets:  # the data in memory before any fork, as the app has it
        (
            load_split(dataset, train=True, data_dir=args.data_dir),
            load_split(dataset, train=False, data_dir=args.data_dir),
        )

    rows = []
    for dataset, _ in shapes_to_time():
        if dataset not in args.datasets:
            continue
        candidates = recipe_for(dataset).candidates
        (speeds,), _ = _forked(_timed, dataset, candidates)
        for candidate in candidates:
            print(f"{dataset:14} {candidate.name:34} {speeds[candidate.name]:10,.0f} images/s", flush=True)
            rows.append(
                {
                    "dataset": dataset,
                    "shape": candidate.shape,
                    "batch_size": candidate.batch_size,
                    "images_per_second": round(speeds[candidate.name]),
                }
            )
    table = {"gpu": machine, "command": "python -m benchmarks.gpu_lease", "setup_seconds": 0.0, "rows": rows}
    # Set-up: what a tiny run's lease took beyond what the speeds account for (the fork, CUDA's
    # start, the first kernels), the most of three.
    tiny = TrainingJob(TINY.shape, TINY.train_config(data_dir=args.data_dir, train_limit=1024, test_limit=256), None)
    modelled = GpuLease(table).run_seconds(tiny)
    setups = [_forked(_tiny_run, args.data_dir)[1] - modelled for _ in range(3)]
    table["setup_seconds"] = round(max(setups), 2)
    print(f"set-up beyond the run (fork, CUDA's start, first kernels): {', '.join(f'{s:.2f}' for s in setups)} s")
    lease = GpuLease(table)
    presets = []
    for dataset in args.datasets:
        for preset in recipe_for(dataset).presets:
            knobs = Knobs.of_preset(dataset, preset)
            measured, outside = _forked(_whole_run, knobs, args.data_dir)
            job = TrainingJob(knobs.shape, knobs.train_config(data_dir=args.data_dir), watched=None)
            asked = lease.seconds(job)
            print(
                f"{dataset:14} {preset.name:9} whole run {measured['run_seconds']:6.1f} s, with fork and CUDA "
                f"{outside:6.1f} s; estimated {lease.run_seconds(job):6.1f} s, lease asked {asked} s; "
                f"{measured['images_per_second']:,.0f} images/s, test accuracy {measured['test_accuracy']:.2%}",
                flush=True,
            )
            presets.append(
                {"dataset": dataset, "preset": preset.name, "seconds": round(outside, 1), "lease": asked, **measured}
            )
    table["presets"] = presets
    args.out.write_text(json.dumps(table, indent=1) + "\n", encoding="utf-8")
    print(f"written to {args.out}")


if __name__ == "__main__":
    main()
