"""The development machine's training speeds, written to vit_demo/measured/cpu_speed.json: what
the app's estimates rest on until it has timed the machine it runs on (it serves its first page
before that).

    python -m benchmarks.cpu_speed [--seconds 2] [--out vit_demo/measured/cpu_speed.json]

Every recipe candidate of every dataset shape is timed as the app times it (`speed.measure_speeds`
in a training process with the app's threads: one per operation on 2 cores, the batch split
over two threads), for `--seconds` each in four turns taken in rotation. Prints the CPU line and
one line per candidate.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch

from vit_demo import settings
from vit_demo.machine import Machine, server_threads
from vit_demo.recipes import recipe_for
from vit_demo.service.server import shapes_to_time
from vit_demo.service.worker import TrainingProcess
from vit_demo.speed import PRIOR, measure_speeds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=2.0, help="timing per candidate (default 2)")
    parser.add_argument("--out", type=Path, default=PRIOR)
    args = parser.parse_args()
    machine = Machine.detect(torch.device("cpu")).describe()
    print(machine, flush=True)
    threads = server_threads(settings.read("VIT_DEMO_THREADS"))
    process = TrainingProcess(threads=threads)
    rows = []
    try:
        for dataset, _ in shapes_to_time():
            candidates = recipe_for(dataset).candidates
            for speeds in process.run(
                measure_speeds, dataset, candidates, seconds=args.seconds, rounds=4, device="cpu"
            ):
                for candidate in candidates:
                    speed = speeds[candidate.name]
                    print(f"{dataset:14} {candidate.name:34} {speed:9,.0f} images/s", flush=True)
                    rows.append(
                        {
                            "dataset": dataset,
                            "shape": candidate.shape,
                            "batch_size": candidate.batch_size,
                            "images_per_second": round(speed),
                        }
                    )
    finally:
        process.close()
    command = f"python -m benchmarks.cpu_speed --seconds {args.seconds:g}"
    table = {"machine": machine, "threads_per_operation": threads, "command": command, "rows": rows}
    args.out.write_text(json.dumps(table, indent=1) + "\n", encoding="utf-8")
    print(f"written to {args.out}")


if __name__ == "__main__":
    main()
