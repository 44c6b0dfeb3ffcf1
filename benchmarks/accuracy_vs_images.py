"""Test accuracy of each recipe candidate against the number of images it trained on.

    VIT_DEMO_DATA=../shared/data python -m benchmarks.accuracy_vs_images \\
        [--dataset mnist fashion_mnist] [--images 30000 60000 ...] [--seeds 0] [--jobs 2] [--only p7-d64-L2 ...]

How far a short run gets depends on the images it sees; how many images a minute buys
depends on the CPU. This measures the first, which no CPU changes: each candidate of each
dataset's recipe (vit_demo/recipes.py) is trained from scratch for exactly N images
(`epochs = N / training images`: the learning-rate schedule then stretches over those
images as a time-budget run's does over its seconds) and scored on the full test set.
`expectations.AccuracyTable` reads the table this writes (vit_demo/measured/accuracy_vs_images.json),
together with this machine's measured images per second, to pick a run's shape.

Runs go `--jobs` at a time, one torch thread each, in worker processes. Rows already in
the table for the same dataset, candidate, image count and seed are replaced.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from concurrent.futures import ProcessPoolExecutor, as_completed
from datetime import date

from vit_demo import expectations
from vit_demo.data import get_spec
from vit_demo.machine import Machine, configure_threads
from vit_demo.recipes import recipe_for
from vit_demo.training import TrainConfig, create_model, run_to_completion

DEFAULT_IMAGES = (30_000, 60_000, 120_000, 240_000, 480_000)


def measure(dataset: str, candidate_name: str, images: int, seed: int, data_dir: str | None) -> dict:
    configure_threads(1)
    recipe = recipe_for(dataset)
    candidate = recipe.candidate(candidate_name)
    config = TrainConfig(
        **{**recipe.training, "batch_size": candidate.batch_size, "lr": candidate.lr},
        dataset=dataset,
        epochs=images / get_spec(dataset).train_images,
        seed=seed,
        evaluations=0,
        compile=False,
        bf16=False,
        data_dir=data_dir,
    )
    model = create_model(dataset, seed=seed, **candidate.shape)
    started = time.perf_counter()
    final = run_to_completion(model, config)
    return {
        "dataset": dataset,
        "candidate": candidate_name,
        "images": images,
        "seed": seed,
        "test_accuracy": round(final.test_accuracy, 4),
        "test_images": final.final_test_images,
        "seconds": round(time.perf_counter() - started, 1),
        "images_per_second": round(final.images_per_second),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--dataset", nargs="+", default=["mnist", "fashion_mnist"])
    parser.add_argument("--images", nargs="+", type=int, default=list(DEFAULT_IMAGES))
    parser.add_argument("--seeds", nargs="+", type=int, default=[0])
    parser.add_argument("--only", nargs="+", help="candidate names, or their starts (default: every candidate)")
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--data-dir")
    args = parser.parse_args()

    jobs = []
    for dataset in args.dataset:
        for candidate in recipe_for(dataset).candidates:
            if args.only and not any(candidate.name.startswith(prefix) for prefix in args.only):
                continue
            jobs += [(get_spec(dataset).key, candidate.name, n, seed) for n in args.images for seed in args.seeds]
    # The longest runs first, so the pool does not end with one of them alone.
    jobs.sort(key=lambda job: -job[2] * recipe_for(job[0]).candidate(job[1]).shape["depth"])
    machine = Machine.detect().describe()
    print(f"{len(jobs)} runs, {args.jobs} at a time; {machine}", flush=True)

    table = expectations.read_accuracy_table()
    with ProcessPoolExecutor(args.jobs) as pool:
        futures = [pool.submit(measure, *job, args.data_dir) for job in jobs]
        for future in as_completed(futures):
            row = future.result()
            print(json.dumps(row), flush=True)
            key = (row["dataset"], row["candidate"], row["images"], row["seed"])
            table["rows"] = [r for r in table["rows"] if (r["dataset"], r["candidate"], r["images"], r["seed"]) != key]
            table["rows"].append(row)
            table["rows"].sort(key=lambda r: (r["dataset"], r["candidate"], r["images"], r["seed"]))
            table["updated"] = date.today().isoformat()
            table["last_command"] = "python -m benchmarks.accuracy_vs_images " + " ".join(sys.argv[1:])
            table["last_machine"] = machine
            expectations.write_accuracy_table(table)


if __name__ == "__main__":
    main()
