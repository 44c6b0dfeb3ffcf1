"""How faithful each of Explore's maps is, over real test images: deletion and insertion
curves (vit_demo.faithfulness) of every method, beside random orders, on the shipped models.

    VIT_DEMO_DATA=../shared/data python -m benchmarks.explanation_faithfulness [--images 1000] [--jobs 2]

For each of the first N test images of each shipped model's dataset, every map of
`explain.ATTRIBUTIONS` is computed for the class the model predicts, and scored: the area
under its deletion curve (lower: deleting the patches it ranks first kills the prediction
fast), under its insertion curve (higher: inserting them first into an empty picture brings
it back fast), and their difference, the score. Random orders are the baseline. Prints a
table per model (means, with the standard error of the score, and how often a map beats
random on an image) and writes it to vit_demo/measured/faithfulness.json, which the Learn
tab quotes.
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
import time
from concurrent.futures import ProcessPoolExecutor
from datetime import date
from pathlib import Path

import torch

from tools.harness import REPO
from vit_demo import checkpoints, data, experiments, explain, faithfulness
from vit_demo.machine import Machine, configure_threads

TABLE = faithfulness.MEASURED
RANDOM = "random"


def score_model(folder: str, images: int, seed: int) -> dict:
    """Every method's mean areas and score on the first `images` test images."""
    configure_threads(1)
    model, info = checkpoints.load(folder)
    spec = data.get_spec(info["dataset"])
    split = data.load_split(spec.key, train=False, limit=images)
    fill = experiments.background_value(info)
    generator = torch.Generator().manual_seed(seed)
    n = model.config.num_patches
    rows = {method: [] for method in (*explain.ATTRIBUTIONS, RANDOM)}
    started = time.perf_counter()
    for pixels in split.images:
        image = data.normalize(pixels[None], spec)
        with torch.inference_mode():
            logits, attentions = model(image, return_attention=True)
        target = int(logits.argmax())
        orders = torch.stack([torch.randperm(n, generator=generator) for _ in range(faithfulness.RANDOM_ORDERS)])
        random = faithfulness.curves(model, image, target, orders, fill)
        rows[RANDOM].append((random[0].area, random[1].area))
        for method in explain.ATTRIBUTIONS:
            saliency = explain.attribution(model, image, method, target, fill, attentions=attentions)
            deletion, insertion = faithfulness.curves(model, image, target, faithfulness.ranking(saliency)[None], fill)
            rows[method].append((deletion.area, insertion.area))
    random_scores = [insertion - deletion for deletion, insertion in rows[RANDOM]]
    methods = {}
    for method, areas in rows.items():
        scores = [insertion - deletion for deletion, insertion in areas]
        methods[method] = {
            "deletion": round(statistics.fmean(a for a, _ in areas), 4),
            "insertion": round(statistics.fmean(b for _, b in areas), 4),
            "score": round(statistics.fmean(scores), 4),
            "score_error": round(statistics.stdev(scores) / math.sqrt(len(scores)), 4),
            "beats_random": round(statistics.fmean(s > r for s, r in zip(scores, random_scores)), 4),
        }
    return {
        "model": Path(folder).name,
        "dataset": spec.key,
        "images": len(split),
        "patches": n,
        "test_accuracy": info.get("test_accuracy"),
        "seconds": round(time.perf_counter() - started, 1),
        "methods": methods,
    }


def print_table(result: dict) -> None:
    print(
        f"\n{result['model']} ({result['patches']} patches), {result['images']:,} test images, "
        f"{result['seconds']:.0f} s"
    )
    print(f"{'method':12s} {'deletion':>9s} {'insertion':>10s} {'score':>14s} {'beats random':>13s}")
    for method, row in result["methods"].items():
        beats = "" if method == RANDOM else f"{row['beats_random']:.0%}"
        print(
            f"{method:12s} {row['deletion']:9.3f} {row['insertion']:10.3f} "
            f"{row['score']:+7.3f} ± {row['score_error']:.3f} {beats:>13s}"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--images", type=int, default=1000)
    parser.add_argument("--models", nargs="+", default=["mnist", "fashion_mnist"], help="folders in checkpoints/")
    parser.add_argument("--jobs", type=int, default=2, help="models scored at once, one torch thread each")
    parser.add_argument("--seed", type=int, default=0, help="of the random orders")
    args = parser.parse_args()
    machine = Machine.detect(torch.device("cpu")).describe()
    print(machine)
    folders = [str(REPO / "checkpoints" / name) for name in args.models]
    with ProcessPoolExecutor(args.jobs) as pool:
        results = list(pool.map(score_model, folders, [args.images] * len(folders), [args.seed] * len(folders)))
    for result in results:
        print_table(result)
    TABLE.parent.mkdir(parents=True, exist_ok=True)
    table = {
        "updated": date.today().isoformat(),
        "command": "python -m benchmarks.explanation_faithfulness "
        + " ".join(
            f"--{k.replace('_', '-')} {' '.join(v) if isinstance(v, list) else v}" for k, v in vars(args).items()
        ),
        "machine": machine,
        "random_orders": faithfulness.RANDOM_ORDERS,
        "models": results,
    }
    TABLE.write_text(json.dumps(table, indent=1) + "\n", encoding="utf-8")
    print(f"\nwritten to {TABLE.relative_to(REPO)}")


if __name__ == "__main__":
    main()
