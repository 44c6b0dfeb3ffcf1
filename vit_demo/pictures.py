"""One way to prepare a picture: whatever a person uploads, draws or captures, an image of
their own dataset, and a bundled dataset at a new `image_size` become what a model sees
through the same steps (colour, paper and ink, crop, resize), so a model is shown at
prediction time what it was trained on.

Nothing here imports gradio or touches a model.
"""

from __future__ import annotations

from dataclasses import replace
from typing import NamedTuple

import numpy as np
import torch
from PIL import Image, ImageOps

from . import data

# A phone photo has ~12 MP and the model reads 784 pixels: shrinking early keeps the
# numpy work below fast without changing what survives the final resize.
MAX_WORKING_SIDE = 1024
# MNIST digits fill a 20x20 box inside the 28x28 frame (LeCun et al.); scaled for other sizes.
DIGIT_BOX_FRACTION = 20 / 28
# Ink is what is brighter than this fraction of the stretched range; fainter pixels (paper
# texture, JPEG noise) still show but do not stretch the bounding box.
INK_THRESHOLD = 0.25
# Less contrast than this (grey levels of 255) between the paper and the darkest stroke is
# taken as a blank page, not as ink to stretch.
MIN_INK_CONTRAST = 16

# Halfway between black (0) and white (255): which side a picture's background is on.
MID_GREY = 127.5
# How every picture is shrunk or enlarged (benchmarks/picture_preparation.py compares filters).
RESAMPLING = Image.Resampling.LANCZOS
# Paper plus most of its noise: paper is at least this share of a page (or of its border).
PAPER_PERCENTILE = 75
# Handwriting's paper is judged on a copy this small, opened (a min then a max filter) with
# this window: strokes are narrower than the window there, so what is left is the light
# across the page, and ink that runs off the edge or lies in shadow still rises above it.
LIGHT_SIDE, LIGHT_WINDOW = 24, 7


class Preprocessed(NamedTuple):
    """What the model sees.

    tensor: float (1, C, S, S), normalised with the model's mean/std, ready for `model(...)`.
    display: uint8 numpy array, (S, S) for greyscale or (S, S, 3) for colour: the same
        pixels before normalisation, for showing on screen.
    """

    tensor: torch.Tensor
    display: np.ndarray


def preprocess(image: Image.Image, info: dict) -> Preprocessed:
    """Any PIL image -> what a model trained on `info["dataset"]` expects.

    The recipe follows how the dataset itself was made (`DatasetSpec.style`):
    - "digit" (MNIST): dark ink on light paper is inverted, the paper's grey level is
      removed and the ink stretched to full white; the ink's bounding box is scaled to fit
      a 20x20 box (aspect kept) and placed in 28x28 with its centre of mass at the centre
      (LeCun et al.'s recipe).
    - "fashion" (Fashion-MNIST): the same clean-up, but the item's longer side fills the
      frame and it is centred by its bounding box.
    - "natural" (CIFAR-10): the shorter side is resized to the model's size and the centre
      cropped.
    An image that already has the model's size and a dark background (an image from the
    dataset itself) is used as it is by the greyscale styles. A blank image gives a blank
    (black, for greyscale styles) input rather than an error.
    """
    if not isinstance(image, Image.Image):
        raise TypeError(f"preprocess expects a PIL image, got {type(image).__name__}")
    if 0 in image.size:
        raise ValueError(f"the image has no pixels ({image.size[0]}x{image.size[1]})")
    spec = data.spec_of(info)
    size, channels = spec.image_size, spec.channels
    display = prepare(image, info.get("style", spec.style), size, channels)
    uint8_batch = torch.from_numpy(np.ascontiguousarray(display.transpose(2, 0, 1)))[None]
    # data.normalize is the training code's own arithmetic; only the statistics come from info.
    model_spec = replace(spec, mean=tuple(info["mean"]), std=tuple(info["std"]))
    tensor = data.normalize(uint8_batch, model_spec)
    return Preprocessed(tensor, display[..., 0] if channels == 1 else display)


def prepare(image: Image.Image, style: str, size: int, channels: int) -> np.ndarray:
    """Any PIL image -> uint8 (size, size, channels) in `style`'s recipe (see `preprocess`)."""
    pixels = _flatten_transparency(*_colour_and_opacity(ImageOps.exif_transpose(image)))
    if channels == 1:
        pixels = _luminance(pixels)[..., None]
    if style == "natural":
        pixels = _resize_and_centre_crop(pixels, size)
    else:
        pixels = _greyscale_object(pixels[..., 0], size, style)[..., None]
        pixels = np.repeat(pixels, channels, axis=-1)
    return np.rint(pixels).clip(0, 255).astype(np.uint8)


def resize_split(images: torch.Tensor, size: int, channels: int) -> torch.Tensor:
    """A dataset's uint8 (N, C, H, W) pictures -> uint8 (N, channels, size, size): grey
    repeated into colour or colour weighed into grey, and resized as `prepare` resizes, so a
    bundled set at a new `image_size` is made the way an upload is."""
    pixels = images.permute(0, 2, 3, 1).numpy().astype(np.float32)
    if channels == 1 and pixels.shape[-1] == 3:
        pixels = _luminance(pixels)[..., None]
    elif channels == 3 and pixels.shape[-1] == 1:
        pixels = np.repeat(pixels, 3, axis=-1)
    if pixels.shape[1:3] != (size, size):
        pixels = np.stack([_resize(picture, size, size) for picture in pixels])
    prepared = np.rint(pixels).clip(0, 255).astype(np.uint8)
    return torch.from_numpy(np.ascontiguousarray(prepared.transpose(0, 3, 1, 2)))


def _colour_and_opacity(image: Image.Image) -> tuple[np.ndarray, np.ndarray | None]:
    """-> (H, W, 3) float32 colour in 0..255 and (H, W) opacity in 0..1 (None when opaque)."""
    if image.mode.startswith(("I", "F")):
        grey = _high_bit_depth_to_8bit(np.asarray(image, dtype=np.float64), image.mode).astype(np.float32)
        return np.repeat(grey[..., None], 3, axis=-1), None
    has_alpha = image.mode in ("RGBA", "RGBa", "LA", "La", "PA") or "transparency" in image.info
    image = image.convert("RGBA" if has_alpha else "RGB")
    image.thumbnail((MAX_WORKING_SIDE, MAX_WORKING_SIDE), RESAMPLING)
    values = np.asarray(image, dtype=np.float32)
    if not has_alpha:
        return values, None
    return values[..., :3], values[..., 3] / 255.0


def _high_bit_depth_to_8bit(values: np.ndarray, mode: str) -> np.ndarray:
    """16-bit, 32-bit integer and float pixels -> 0..255, scaled (never clipped) by the
    full scale their mode and range imply: 65535 for "I;16", else the smallest of 1 (float
    images only), 255 and 65535 that holds every value, else the image's own min..max."""
    low, high = float(values.min()), float(values.max())
    if mode.startswith("I;16"):
        return values * (255.0 / 65535.0)
    if low >= 0:
        candidates = (1.0, 255.0, 65535.0) if mode == "F" else (255.0, 65535.0)
        for full_scale in candidates:
            if high <= full_scale:
                return values * (255.0 / full_scale)
    if high == low:
        return np.zeros_like(values)
    return (values - low) * (255.0 / (high - low))


def _flatten_transparency(colour: np.ndarray, opacity: np.ndarray | None) -> np.ndarray:
    """Composite onto the background that contrasts with what is drawn: white behind dark
    strokes (then inverted like paper), black behind light strokes (a canvas drawn in white)."""
    if opacity is None:
        return colour
    coverage = float(opacity.sum())
    stroke_brightness = float((_luminance(colour) * opacity).sum() / coverage) if coverage else 0.0
    background = 0.0 if stroke_brightness > MID_GREY else 255.0
    return colour * opacity[..., None] + background * (1.0 - opacity[..., None])


def _luminance(colour: np.ndarray) -> np.ndarray:
    """ITU-R 601 weights, as PIL's own RGB -> "L" conversion."""
    return colour @ np.array([0.299, 0.587, 0.114], dtype=colour.dtype)


def _resize(pixels: np.ndarray, width: int, height: int) -> np.ndarray:
    """Float (H, W) or (H, W, C) -> (height, width[, C]) with `RESAMPLING`, antialiased
    when shrinking (as torchvision's Resize): no aliasing of thin strokes."""
    planes = pixels if pixels.ndim == 3 else pixels[..., None]
    resized = []
    for c in range(planes.shape[-1]):
        plane = Image.fromarray(np.ascontiguousarray(planes[..., c], dtype=np.float32), mode="F")
        resized.append(np.asarray(plane.resize((width, height), RESAMPLING)))
    stacked = np.stack(resized, axis=-1)
    return stacked if pixels.ndim == 3 else stacked[..., 0]


def _resize_and_centre_crop(pixels: np.ndarray, size: int) -> np.ndarray:
    height, width = pixels.shape[:2]
    scale = size / min(height, width)
    new_width, new_height = max(size, round(width * scale)), max(size, round(height * scale))
    resized = _resize(pixels, new_width, new_height)
    top, left = (new_height - size) // 2, (new_width - size) // 2
    return resized[top : top + size, left : left + size]


def _border(pixels: np.ndarray) -> np.ndarray:
    return np.concatenate((pixels[0], pixels[-1], pixels[1:-1, 0], pixels[1:-1, -1]))


def _ink(grey: np.ndarray, style: str) -> np.ndarray | None:
    """Light-on-dark ink with the paper at 0 and the strongest stroke at 255; None when blank.

    Handwriting ("digit"): the whole picture, mostly paper, decides whether to invert, and
    the light across the page (`_light`) is taken away before the paper's level is read, so
    a digit that touches the edge or a page lit unevenly keeps its strokes. Other objects are
    too broad to tell from the light: the outermost pixels' median decides whether to invert,
    and their `PAPER_PERCENTILE` becomes black (a higher one would let an object touching the
    edge set the paper level, and the picture would read as blank).
    """
    if style == "digit":
        if np.median(grey) > MID_GREY:
            grey = 255.0 - grey
        grey = grey - _light(grey)
        paper = float(np.percentile(grey, PAPER_PERCENTILE))
    else:
        border = _border(grey)
        if np.median(border) > MID_GREY:
            grey, border = 255.0 - grey, 255.0 - border
        paper = float(np.percentile(border, PAPER_PERCENTILE))
    strongest = float(grey.max())
    if strongest - paper < MIN_INK_CONTRAST:
        return None
    return np.clip((grey - paper) * (255.0 / (strongest - paper)), 0.0, 255.0)


def _light(grey: np.ndarray) -> np.ndarray:
    """The paper's level under each pixel of light-on-dark `grey`: a grey opening (the
    darkest, then the lightest, of each window) of a `LIGHT_SIDE` copy, enlarged back."""
    height, width = grey.shape
    scale = LIGHT_SIDE / max(height, width)
    small = _resize(grey, max(1, round(width * scale)), max(1, round(height * scale)))
    opened = _window_extreme(_window_extreme(small, np.min), np.max)
    return _resize(opened, width, height)


def _window_extreme(pixels: np.ndarray, extreme) -> np.ndarray:
    """`extreme` (np.min or np.max) of each `LIGHT_WINDOW` square around each pixel."""
    padded = np.pad(pixels, LIGHT_WINDOW // 2, mode="edge")
    return extreme(np.lib.stride_tricks.sliding_window_view(padded, (LIGHT_WINDOW, LIGHT_WINDOW)), axis=(-2, -1))


def _greyscale_object(grey: np.ndarray, size: int, style: str) -> np.ndarray:
    """The "digit" and "fashion" recipes: (H, W) float -> (size, size) float."""
    if grey.shape == (size, size) and np.median(_border(grey)) <= MID_GREY:
        return grey  # already a dataset image: re-cropping would change its scale
    ink = _ink(grey, style)
    if ink is None:
        return np.zeros((size, size), dtype=np.float32)
    rows = np.flatnonzero((ink > INK_THRESHOLD * 255).any(axis=1))
    cols = np.flatnonzero((ink > INK_THRESHOLD * 255).any(axis=0))
    crop = ink[rows[0] : rows[-1] + 1, cols[0] : cols[-1] + 1]
    box = round(size * DIGIT_BOX_FRACTION) if style == "digit" else size
    scale = box / max(crop.shape)
    height, width = max(1, round(crop.shape[0] * scale)), max(1, round(crop.shape[1] * scale))
    scaled = _resize(crop, width, height)
    if style == "digit":
        mass = float(scaled.sum())
        centre_row = float((scaled.sum(axis=1) * np.arange(height)).sum() / mass)
        centre_col = float((scaled.sum(axis=0) * np.arange(width)).sum() / mass)
        # MNIST's centres of mass sit at pixel (14, 14) of 28: size / 2 in index coordinates.
        top, left = round(size / 2 - centre_row), round(size / 2 - centre_col)
    else:
        top, left = (size - height) // 2, (size - width) // 2
    # Keep the whole object in frame even when its mass sits near one edge of its box.
    top, left = min(max(top, 0), size - height), min(max(left, 0), size - width)
    canvas = np.zeros((size, size), dtype=np.float32)
    canvas[top : top + height, left : left + width] = scaled
    return canvas
