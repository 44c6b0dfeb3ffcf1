"""Accuracy of the app's presets, trained exactly as the app trains them, without a browser.

    VIT_DEMO_DATA=../shared/data python benchmarks/app_presets.py [--preset Standard] [--dataset mnist ...]

The app gives each request one torch thread on a 2-core machine (ui.settings), so a training
there takes the two-worker step (training.BatchSplitter); the TrainConfig comes from the same
function the Build tab calls (ui.build_tab.train_config). One line per dataset: the full test
set's accuracy, the epochs reached and the images per second.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

import torch  # noqa: E402

from vit_demo.recipes import RECIPES, recipe_for  # noqa: E402
from vit_demo.training import create_model, run_to_completion  # noqa: E402
from vit_demo.ui.build_tab import TIME, train_config  # noqa: E402
from vit_demo.ui.settings import AppSettings, configure_torch_threads  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--preset", default="Standard", help="the start of a preset's label (default: Standard)")
    parser.add_argument("--dataset", nargs="+", default=["mnist", "fashion_mnist"], choices=sorted(RECIPES))
    args = parser.parse_args()

    settings = AppSettings.from_env(REPO)
    configure_torch_threads(settings)
    for dataset in args.dataset:
        recipe = recipe_for(dataset)
        preset = next((p for p in recipe.presets if p.label.startswith(args.preset)), None)
        if preset is None:
            print(f"{dataset}: no preset starts with {args.preset!r}")
            continue
        config = train_config(
            dataset, recipe.training["lr"], recipe.training["batch_size"], TIME, preset.time_budget, None, 0, settings
        )
        model = create_model(dataset, seed=0, **{**recipe.model, **preset.model})
        last = run_to_completion(model, config)
        print(
            f"{dataset}, {preset.label} ({torch.get_num_threads()} torch thread per op): "
            f"{last.test_accuracy:.2%} on {last.final_test_images:,} test images, "
            f"{last.epoch:.2f} epochs, {last.images_per_second:,.0f} images/s"
        )


if __name__ == "__main__":
    main()
