"""Photographed handwriting, made from the MNIST (or Fashion-MNIST) *test* split: the kind of
picture a person uploads, for measuring how pictures are prepared (benchmarks/picture_preparation.py,
tests/test_pictures.py). Each test image is enlarged to a phone photo's size and drawn dark on
paper that is grey and unevenly lit, then blurred, rotated a little, noised and saved as a JPEG;
some are cropped so the digit touches or crosses the edge, some are written in light ink, some
are clean scans. The same seed gives the same pictures.

    python -m tools.handwriting /tmp/handwriting [--count 300] [--seed 0] [--dataset mnist]

writes them there as <index>-<label>.jpg (or .png for the scans) for looking at.
"""

from __future__ import annotations

import argparse
import io
from pathlib import Path

import numpy as np
from PIL import Image, ImageFilter

from vit_demo import data

# Room around the 28x28 test image, so that a rotation or a wide margin never runs out of picture.
PAD = 28
# The share of pictures whose digit touches or crosses one or two edges, is written in light
# ink, or is a clean scan (white paper, even light, no JPEG).
EDGE_SHARE, LIGHT_SHARE, SCAN_SHARE = 0.4, 0.2, 0.15


def photographed_set(
    dataset: str = "mnist", count: int = 300, seed: int = 0, data_dir=None
) -> tuple[list[Image.Image], list[int]]:
    """`count` photographed pictures of test images picked with `seed`, and their labels."""
    split = data.load_split(dataset, train=False, data_dir=data_dir, download=False)
    rng = np.random.default_rng(seed)
    picks = rng.choice(len(split.labels), size=count, replace=False)
    pictures = [photograph(split.images[int(i), 0].numpy(), rng) for i in picks]
    return pictures, [int(split.labels[int(i)]) for i in picks]


def photograph(digit: np.ndarray, rng: np.random.Generator) -> Image.Image:
    """One uint8 (28, 28) light-on-black test image -> a photograph of it, written dark on paper."""
    scan = rng.random() < SCAN_SHARE
    ink = _framed_ink(digit, rng, touching=rng.random() < EDGE_SHARE, side=int(rng.integers(200, 901)))
    paper = rng.uniform(238, 252) if scan else rng.uniform(140, 235)
    darkest = paper - rng.uniform(45, 85) if rng.random() < LIGHT_SHARE else rng.uniform(5, 70)
    grey = paper - (paper - darkest) * ink
    if not scan:
        grey = grey * _lighting(grey.shape, rng)
    tint = np.ones(3) if scan else np.array([1.0, rng.uniform(0.95, 1.0), rng.uniform(0.85, 1.0)])  # warm light
    colour = grey[..., None] * tint
    picture = Image.fromarray(colour.clip(0, 255).astype(np.uint8), "RGB")
    blur = rng.uniform(0.0, 0.2) if scan else rng.uniform(0.0, 0.006) * max(picture.size)
    picture = picture.filter(ImageFilter.GaussianBlur(blur))
    noisy = np.asarray(picture, dtype=np.float32) + rng.normal(0, 1.0 if scan else rng.uniform(2, 9), (*grey.shape, 3))
    picture = Image.fromarray(noisy.clip(0, 255).astype(np.uint8), "RGB")
    return _saved(picture, "PNG" if scan else "JPEG", int(rng.integers(35, 91)))


def _framed_ink(digit: np.ndarray, rng: np.random.Generator, touching: bool, side: int) -> np.ndarray:
    """The digit turned a little, framed with random margins (or cut by the frame when
    `touching`) and enlarged so the frame's longer side is `side` pixels: float 0..1 ink."""
    padded = np.pad(digit.astype(np.float32) / 255.0, PAD)
    turned = np.asarray(Image.fromarray(padded, "F").rotate(rng.uniform(-10, 10), Image.Resampling.BICUBIC))
    rows, cols = np.flatnonzero(turned.max(axis=1) > 0.3), np.flatnonzero(turned.max(axis=0) > 0.3)
    top, bottom, left, right = rows[0], rows[-1] + 1, cols[0], cols[-1] + 1
    extent = max(bottom - top, right - left)
    margins = rng.uniform(0.15, 0.9, 4) * extent
    if touching:  # one or two sides run into the frame: from just touching to cut by an eighth
        cut = rng.choice(4, size=int(rng.integers(1, 3)), replace=False)
        margins[cut] = rng.uniform(-0.12, 0.0, len(cut)) * extent
    box = (left - margins[0], top - margins[1], right + margins[2], bottom + margins[3])
    scale = side / max(box[2] - box[0], box[3] - box[1])
    size = (max(1, round((box[2] - box[0]) * scale)), max(1, round((box[3] - box[1]) * scale)))
    enlarged = np.asarray(Image.fromarray(turned, "F").resize(size, Image.Resampling.BICUBIC, box=box))
    # A pen draws sharper strokes than an enlarged 28x28 image: harden the edges, with a
    # threshold that makes the strokes thinner or thicker.
    threshold, softness = rng.uniform(0.2, 0.5), rng.uniform(0.1, 0.35)
    return np.clip((enlarged - threshold) / softness + 0.5, 0.0, 1.0)


def _lighting(shape: tuple[int, int], rng: np.random.Generator) -> np.ndarray:
    """Brightness across a phone photo: a gradient in a random direction times a vignette."""
    rows, cols = np.meshgrid(np.linspace(-0.5, 0.5, shape[0]), np.linspace(-0.5, 0.5, shape[1]), indexing="ij")
    angle = rng.uniform(0, 2 * np.pi)
    gradient = 1.0 + rng.uniform(0.0, 0.35) * (cols * np.cos(angle) + rows * np.sin(angle))
    return gradient * (1.0 - rng.uniform(0.0, 0.5) * (rows**2 + cols**2))


def _saved(picture: Image.Image, file_format: str, quality: int) -> Image.Image:
    """The picture as a file of `file_format` decodes, as an upload is."""
    buffer = io.BytesIO()
    picture.save(buffer, format=file_format, quality=quality)
    buffer.seek(0)
    return Image.open(buffer)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("folder", type=Path, help="where to write the pictures (created if missing)")
    parser.add_argument("--count", type=int, default=300)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--dataset", default="mnist")
    parser.add_argument("--data-dir")
    args = parser.parse_args()
    args.folder.mkdir(parents=True, exist_ok=True)
    pictures, labels = photographed_set(args.dataset, args.count, args.seed, args.data_dir)
    for index, (picture, label) in enumerate(zip(pictures, labels)):
        picture.save(args.folder / f"{index:04d}-{label}.{'png' if picture.format == 'PNG' else 'jpg'}")
    print(f"{len(pictures)} pictures in {args.folder}")


if __name__ == "__main__":
    main()
