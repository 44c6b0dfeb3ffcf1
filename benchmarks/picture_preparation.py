"""How well the shipped models read photographed pictures, for each way of preparing them.

    python -m benchmarks.picture_preparation [--count 1000] [--fashion-count 500] [--seed 0]

The pictures are tools/handwriting.py's: MNIST (and Fashion-MNIST) test images enlarged to
phone-photo sizes, drawn dark on grey, unevenly lit paper, blurred, noised, saved as JPEG,
some touching the edge, some in light ink, some clean scans. Each candidate is the real
preparation (`pictures.preprocess` with the shipped model's info) with one part swapped:

    resampling   the filter every shrink and enlargement uses (`pictures.RESAMPLING`)
    paper        how the paper's level is found (`pictures._ink`):
                   border         the outermost pixels' 75th percentile, every style (before)
                   whole median   the whole picture's median, every style
                   light          the light across the page taken away first, every style
                   light digits   the light taken away for handwriting, the border for the
                                  other styles (kept)

The first line names the machine (accuracy does not depend on it; the time does), then one
line per candidate with each model's accuracy on its set and the seconds the preparations took.
"""

from __future__ import annotations

import argparse
import time
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from tools.handwriting import photographed_set
from vit_demo import checkpoints, pictures
from vit_demo.machine import Machine

CHECKPOINTS = Path(__file__).resolve().parent.parent / "checkpoints"
FILTERS = {
    "bilinear": Image.Resampling.BILINEAR,
    "bicubic": Image.Resampling.BICUBIC,
    "lanczos": Image.Resampling.LANCZOS,
    "box (area)": Image.Resampling.BOX,
}
KEPT_INK = pictures._ink


def _stretched(grey: np.ndarray, paper: float) -> np.ndarray | None:
    strongest = float(grey.max())
    if strongest - paper < pictures.MIN_INK_CONTRAST:
        return None
    return np.clip((grey - paper) * (255.0 / (strongest - paper)), 0.0, 255.0)


def border_ink(grey: np.ndarray, style: str) -> np.ndarray | None:
    """The preparation before: the outermost pixels decide and set the paper, every style."""
    border = pictures._border(grey)
    if np.median(border) > pictures.MID_GREY:
        grey, border = 255.0 - grey, 255.0 - border
    return _stretched(grey, float(np.percentile(border, 75)))


def median_ink(grey: np.ndarray, style: str) -> np.ndarray | None:
    """The whole picture, mostly paper, decides, and its median sets the paper."""
    if np.median(grey) > pictures.MID_GREY:
        grey = 255.0 - grey
    return _stretched(grey, float(np.median(grey)))


def light_ink(grey: np.ndarray, style: str) -> np.ndarray | None:
    """The kept handwriting recipe, for every style."""
    return KEPT_INK(grey, "digit")


PAPERS = {"border": border_ink, "whole median": median_ink, "light": light_ink, "light digits": KEPT_INK}


@contextmanager
def candidate(resampling: Image.Resampling, ink):
    saved = pictures.RESAMPLING, pictures._ink
    pictures.RESAMPLING, pictures._ink = resampling, ink
    try:
        yield
    finally:
        pictures.RESAMPLING, pictures._ink = saved


def accuracy(model, info: dict, images: list[Image.Image], labels: list[int]) -> float:
    """Percent of `images` the model reads as their label, each prepared by `pictures.preprocess`."""
    batch = torch.cat([pictures.preprocess(image, info).tensor for image in images])
    with torch.no_grad():
        predicted = torch.cat([model(chunk).argmax(dim=1) for chunk in batch.split(256)])
    return 100.0 * float((predicted == torch.tensor(labels)).float().mean())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--count", type=int, default=1000, help="photographed MNIST digits")
    parser.add_argument("--fashion-count", type=int, default=500, help="photographed Fashion-MNIST items (0: none)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--data-dir")
    args = parser.parse_args()
    print(Machine.detect(torch.device("cpu")).describe(), flush=True)

    sets = {"mnist": args.count, "fashion_mnist": args.fashion_count}
    readers = {}
    for dataset, count in sets.items():
        if count:
            model, info = checkpoints.load(CHECKPOINTS / dataset)
            readers[dataset] = (model, info, *photographed_set(dataset, count, args.seed, args.data_dir))
    print(
        ", ".join(
            f"{dataset}: {len(r[2])} photographed test pictures (seed {args.seed})" for dataset, r in readers.items()
        )
    )
    print(f"{'resampling':12s} {'paper':14s} " + " ".join(f"{dataset:>14s}" for dataset in readers) + "  seconds")
    for filter_name, resampling in FILTERS.items():
        for paper_name, ink in PAPERS.items():
            started = time.perf_counter()
            with candidate(resampling, ink):
                scores = [accuracy(*reader) for reader in readers.values()]
            marks = " (kept)" if (resampling, ink) == (pictures.RESAMPLING, KEPT_INK) else ""
            print(
                f"{filter_name:12s} {paper_name:14s} "
                + " ".join(f"{score:13.1f}%" for score in scores)
                + f"  {time.perf_counter() - started:6.1f}{marks}",
                flush=True,
            )


if __name__ == "__main__":
    main()
