"""Look inside a trained ViT: turn a user's picture into what the model sees, predict,
and compute the maps the app draws (attention rollout, per-head CLS attention,
positional-embedding similarity, mean attention distance, patch-embedding filters).

Indices follow Python: layers, heads, patches and tokens count from 0 here. Token 0 is
the CLS token and token k (k >= 1) is patch k - 1, numbered row by row like `patchify`.
Every function returns CPU tensors and leaves the model's train/eval mode alone: pass a
model in eval mode.

Nothing here imports gradio; `vit_demo.plots` draws what these functions return.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import NamedTuple

import numpy as np
import torch
from PIL import Image, ImageOps

from vit_demo import data
from vit_demo.model import ViT, patch_pixels, patchify

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
HEAD_FUSIONS = ("mean", "max", "min")

# Halfway between black (0) and white (255): which side a picture's background is on.
MID_GREY = 127.5


class Preprocessed(NamedTuple):
    """What the model sees.

    tensor: float (1, C, S, S), normalised with the model's mean/std, ready for `model(...)`.
    display: uint8 numpy array, (S, S) for greyscale or (S, S, 3) for colour: the same
        pixels before normalisation, for showing on screen.
    """

    tensor: torch.Tensor
    display: np.ndarray


@dataclass(frozen=True)
class Explanation:
    """Everything the Explain tab draws, from one forward pass.

    probabilities: (num_classes,) softmax output, in `class_names` order.
    attentions: `depth` tensors of shape (1, heads, N + 1, N + 1), as the model returns them.
    rollout: (grid, grid) attention rollout divided by its maximum (so it lies in [0, 1]).
    """

    preprocessed: Preprocessed
    class_names: tuple[str, ...]
    probabilities: torch.Tensor
    attentions: tuple[torch.Tensor, ...]
    rollout: torch.Tensor

    def top_predictions(self, top_k: int = 3) -> list[tuple[str, float]]:
        return _ranked(self.probabilities, self.class_names, top_k)


# --------------------------------------------------------------------------- preprocessing


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
    spec = data.get_spec(info["dataset"])
    size, channels = int(info.get("image_size", spec.image_size)), int(info.get("channels", spec.channels))
    pixels = _flatten_transparency(*_colour_and_opacity(ImageOps.exif_transpose(image)))
    if channels == 1:
        pixels = _luminance(pixels)[..., None]
    if spec.style == "natural":
        pixels = _resize_and_centre_crop(pixels, size)
    else:
        pixels = _greyscale_object(pixels[..., 0], size, spec.style)[..., None]
    display = np.rint(pixels).clip(0, 255).astype(np.uint8)
    uint8_batch = torch.from_numpy(np.ascontiguousarray(display.transpose(2, 0, 1)))[None]
    # data.normalize is the training code's own arithmetic; only the statistics come from info.
    model_spec = replace(spec, mean=tuple(info["mean"]), std=tuple(info["std"]))
    tensor = data.normalize(uint8_batch, model_spec)
    return Preprocessed(tensor, display[..., 0] if channels == 1 else display)


def _colour_and_opacity(image: Image.Image) -> tuple[np.ndarray, np.ndarray | None]:
    """-> (H, W, 3) float32 colour in 0..255 and (H, W) opacity in 0..1 (None when opaque)."""
    if image.mode.startswith(("I", "F")):
        grey = _high_bit_depth_to_8bit(np.asarray(image, dtype=np.float64), image.mode).astype(np.float32)
        return np.repeat(grey[..., None], 3, axis=-1), None
    has_alpha = image.mode in ("RGBA", "RGBa", "LA", "La", "PA") or "transparency" in image.info
    image = image.convert("RGBA" if has_alpha else "RGB")
    image.thumbnail((MAX_WORKING_SIDE, MAX_WORKING_SIDE), Image.Resampling.BILINEAR)
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
    """Float (H, W) or (H, W, C) -> (height, width[, C]). Bilinear, antialiased when
    shrinking (as torchvision's Resize): no ringing to clip, no aliasing of thin strokes."""
    planes = pixels if pixels.ndim == 3 else pixels[..., None]
    resized = []
    for c in range(planes.shape[-1]):
        plane = Image.fromarray(np.ascontiguousarray(planes[..., c], dtype=np.float32), mode="F")
        resized.append(np.asarray(plane.resize((width, height), Image.Resampling.BILINEAR)))
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


def _ink(grey: np.ndarray) -> np.ndarray | None:
    """Light-on-dark ink with the paper at 0 and the strongest stroke at 255; None when blank.

    The paper's level is taken from the image's outermost pixels: their median decides
    whether to invert, and their 75th percentile (paper plus most of its noise) becomes
    black. A higher percentile would let a digit that touches the edge (more than a few
    percent of the border) set the paper level, and the whole picture would read as blank.
    """
    border = _border(grey)
    if np.median(border) > MID_GREY:
        grey, border = 255.0 - grey, 255.0 - border
    paper = float(np.percentile(border, 75))
    strongest = float(grey.max())
    if strongest - paper < MIN_INK_CONTRAST:
        return None
    return np.clip((grey - paper) * (255.0 / (strongest - paper)), 0.0, 255.0)


def _greyscale_object(grey: np.ndarray, size: int, style: str) -> np.ndarray:
    """The "digit" and "fashion" recipes: (H, W) float -> (size, size) float."""
    if grey.shape == (size, size) and np.median(_border(grey)) <= MID_GREY:
        return grey  # already a dataset image: re-cropping would change its scale
    ink = _ink(grey)
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


# --------------------------------------------------------------------------- prediction


def _model_device(model: ViT) -> torch.device:
    return next(model.parameters()).device


def _ranked(probabilities: torch.Tensor, class_names: Sequence[str], top_k: int) -> list[tuple[str, float]]:
    if top_k < 1:
        raise ValueError(f"top_k must be at least 1, got {top_k}")
    values, indices = probabilities.topk(min(top_k, len(class_names)))
    return [(class_names[i], float(p)) for p, i in zip(values.tolist(), indices.tolist())]


def predict(model: ViT, info: dict, image: Image.Image, top_k: int = 3) -> list[tuple[str, float]]:
    """-> [(class_name, probability), ...], the `top_k` most likely classes, most likely
    first; probabilities are in [0, 1]. `dict(predict(..., top_k=len(class_names)))` is
    what a gr.Label takes."""
    tensor = preprocess(image, info).tensor
    with torch.inference_mode():
        logits = model(tensor.to(_model_device(model)))
    return _ranked(torch.softmax(logits[0].float().cpu(), dim=-1), info["class_names"], top_k)


def explain(
    model: ViT, info: dict, image: Image.Image, head_fusion: str = "mean", discard_ratio: float = 0.0
) -> Explanation:
    """Preprocess, then one forward pass that returns the attention weights too."""
    preprocessed = preprocess(image, info)
    with torch.inference_mode():
        logits, attentions = model(preprocessed.tensor.to(_model_device(model)), return_attention=True)
    attentions = tuple(a.float().cpu() for a in attentions)
    return Explanation(
        preprocessed=preprocessed,
        class_names=tuple(info["class_names"]),
        probabilities=torch.softmax(logits[0].float().cpu(), dim=-1),
        attentions=attentions,
        rollout=attention_rollout(attentions, head_fusion, discard_ratio)[0],
    )


# --------------------------------------------------------------------------- attention maps


def _grid_size(num_tokens: int) -> int:
    grid = math.isqrt(num_tokens - 1)
    if grid * grid != num_tokens - 1:
        raise ValueError(f"{num_tokens} tokens is not a CLS token plus a square grid of patches")
    return grid


def _check_attentions(attentions: Sequence[torch.Tensor]) -> None:
    if len(attentions) == 0:
        raise ValueError("no attention layers given")
    for a in attentions:
        if a.ndim != 4 or a.shape[-1] != a.shape[-2]:
            raise ValueError(f"attention weights must have shape (batch, heads, tokens, tokens), got {tuple(a.shape)}")


def residual_attention(attention: torch.Tensor, head_fusion: str = "mean", discard_ratio: float = 0.0) -> torch.Tensor:
    """One layer of attention rollout: (B, heads, T, T) -> (B, T, T), rows summing to 1.

    Heads are fused (mean, max or min); then, per image, the lowest `discard_ratio`
    fraction of the T*T fused weights is set to zero, except the CLS token's attention to
    itself (flattened index 0, as in jacobgil/vit-explain); then the residual connection
    is modelled as (A + I) / 2 and every row is divided by its sum.
    """
    if head_fusion not in HEAD_FUSIONS:
        raise ValueError(f"head_fusion must be one of {', '.join(HEAD_FUSIONS)}, got {head_fusion!r}")
    if not 0.0 <= discard_ratio < 1.0:
        raise ValueError(f"discard_ratio must be in [0, 1), got {discard_ratio}")
    fused = {"mean": attention.mean(dim=1), "max": attention.amax(dim=1), "min": attention.amin(dim=1)}[head_fusion]
    batch, tokens, _ = fused.shape
    flat = fused.reshape(batch, -1)
    num_discarded = int(flat.shape[-1] * discard_ratio)
    if num_discarded:
        lowest = flat.topk(num_discarded, dim=-1, largest=False).indices
        discard = torch.zeros_like(flat, dtype=torch.bool).scatter_(-1, lowest, True)
        discard[:, 0] = False  # the CLS token's attention to itself always stays
        flat = flat.masked_fill(discard, 0.0)
    with_residual = (flat.reshape(batch, tokens, tokens) + torch.eye(tokens, dtype=flat.dtype)) / 2
    return with_residual / with_residual.sum(dim=-1, keepdim=True)


def attention_rollout(
    attentions: Sequence[torch.Tensor], head_fusion: str = "mean", discard_ratio: float = 0.0
) -> torch.Tensor:
    """Attention rollout (Abnar & Zuidema, 2020): list of (B, heads, T, T) -> (B, grid, grid).

    The per-layer matrices of `residual_attention` are multiplied first layer to last
    (A_L @ ... @ A_1); the CLS row over the patch tokens is how much each patch flowed into
    the CLS token. Each image's map is divided by its maximum: it lies in [0, 1] and its
    largest value is exactly 1.
    """
    _check_attentions(attentions)
    grid = _grid_size(attentions[0].shape[-1])
    rolled = None
    for attention in attentions:
        layer = residual_attention(attention.detach().float().cpu(), head_fusion, discard_ratio)
        rolled = layer if rolled is None else layer @ rolled
    cls_to_patches = rolled[:, 0, 1:]
    cls_to_patches = cls_to_patches / cls_to_patches.amax(dim=-1, keepdim=True)
    return cls_to_patches.reshape(-1, grid, grid)


def attention_maps(attentions: Sequence[torch.Tensor], token: int = 0) -> torch.Tensor:
    """Raw attention of one token (0: CLS; k: patch k - 1) over the patches, every layer and
    head: -> (B, layers, heads, grid, grid). Not renormalised: a map sums to 1 minus what the
    token gives the CLS token (or, for CLS, itself)."""
    _check_attentions(attentions)
    tokens = attentions[0].shape[-1]
    grid = _grid_size(tokens)
    if not 0 <= token < tokens:
        raise ValueError(f"token must be between 0 and {tokens - 1} (0 is CLS), got {token}")
    stacked = torch.stack([a.detach().float().cpu()[:, :, token, 1:] for a in attentions], dim=1)
    return stacked.reshape(*stacked.shape[:3], grid, grid)


def cls_attention_maps(attentions: Sequence[torch.Tensor]) -> torch.Tensor:
    """Raw CLS-to-patch attention of every layer and head: -> (B, layers, heads, grid, grid)."""
    return attention_maps(attentions, token=0)


def token_attention(
    attentions: Sequence[torch.Tensor], layer: int, head: int | None = None, token: int = 0
) -> torch.Tensor:
    """Raw attention of one token (0: CLS; k: patch k - 1) over the patches, in one layer
    (0-based) and head (0-based; None: the mean over heads) -> (B, grid, grid)."""
    maps = attention_maps(attentions, token)
    num_layers, num_heads = maps.shape[1:3]
    if not 0 <= layer < num_layers:
        raise ValueError(
            f"layer must be between 0 and {num_layers - 1} (the model has {num_layers} layers), got {layer}"
        )
    if head is not None and not 0 <= head < num_heads:
        raise ValueError(
            f"head must be between 0 and {num_heads - 1} (each layer has {num_heads} heads) or None, got {head}"
        )
    per_layer = maps[:, layer]
    return per_layer.mean(dim=1) if head is None else per_layer[:, head]


def attention_distance(attentions: Sequence[torch.Tensor], patch_size: int) -> torch.Tensor:
    """Mean attention distance in pixels (Dosovitskiy et al., 2020, Fig. 7 right) -> (layers, heads).

    For every patch query (the CLS token left out) the attention over patch keys is
    renormalised to sum to 1 and weights the Euclidean distance between patch centres;
    the result is averaged over queries and images. Analogous to a CNN's receptive field.
    """
    _check_attentions(attentions)
    grid = _grid_size(attentions[0].shape[-1])
    rows, cols = torch.meshgrid(torch.arange(grid), torch.arange(grid), indexing="ij")
    centres = torch.stack((rows.flatten(), cols.flatten()), dim=-1).float() * patch_size
    distances = torch.cdist(centres, centres)  # (N, N) pixels between patch centres
    per_layer = []
    for attention in attentions:
        patches = attention.detach().float().cpu()[:, :, 1:, 1:]
        patches = patches / patches.sum(dim=-1, keepdim=True)
        per_layer.append((patches * distances).sum(dim=-1).mean(dim=(0, 2)))
    return torch.stack(per_layer)


# --------------------------------------------------------------------------- class-specific maps

# The maps Explore can draw for one picture, and which of them answer "why *this* class".
ATTRIBUTIONS = {
    "rollout": "Attention rollout (Abnar & Zuidema, 2020)",
    "attention": "Last layer's CLS attention",
    "gradient": "Gradient × attention (Chefer et al., 2021)",
    "occlusion": "Occlusion: hide each patch",
}
CLASS_SPECIFIC = ("gradient", "occlusion")


def relevance_propagation(attentions: Sequence[torch.Tensor], gradients: Sequence[torch.Tensor]) -> torch.Tensor:
    """Chefer et al.'s rule over the layers, first to last: every layer's (1, heads, T, T)
    attention and its gradient -> (T, T) relevance of each token to each other. It starts as
    the identity (each token is its own) and grows by  R <- R + mean_heads[(grad * A)+] @ R:
    attention counts where it raised the class's score."""
    _check_attentions(attentions)
    relevance = torch.eye(attentions[0].shape[-1])
    for attention, gradient in zip(attentions, gradients):
        weighted = (gradient[0].detach().float().cpu() * attention[0].detach().float().cpu()).clamp(min=0).mean(dim=0)
        relevance = relevance + weighted @ relevance
    return relevance


def gradient_relevance(model: ViT, images: torch.Tensor, target: int) -> torch.Tensor:
    """Gradient-weighted attention relevance (Chefer, Gur & Wolf, ICCV 2021), for class
    `target`: (1, C, S, S) normalised input -> (grid, grid), not normalised, >= 0.

    One forward pass keeps every layer's attention; one backward pass gives the gradient of
    the class's logit with respect to each; `relevance_propagation` combines them, and the
    CLS token's row over the patches is the map. Unlike rollout, it differs from class to class.
    """
    with torch.enable_grad():
        logits, attentions = model(images.to(_model_device(model)), return_attention=True)
        gradients = torch.autograd.grad(logits[0, target], attentions)
    relevance = relevance_propagation(attentions, gradients)
    grid = _grid_size(relevance.shape[-1])
    return relevance[0, 1:].reshape(grid, grid)


@torch.inference_mode()
def occlusion_sensitivity(model: ViT, images: torch.Tensor, target: int, fill: torch.Tensor) -> torch.Tensor:
    """How much class `target`'s probability drops when each patch alone is painted with
    `fill` (one normalised value per channel: the dataset's empty background): (1, C, S, S)
    -> (grid, grid). One batched forward pass of num_patches + 1 images; a negative value
    means hiding that patch made the class more likely."""
    config = model.config
    grid, p = config.grid_size, config.patch_size
    hidden = patch_masks(torch.eye(config.num_patches, dtype=torch.bool), grid, p)  # (N, S, S), True: painted
    batch = torch.cat((images.cpu(), fill_patches(images.cpu(), hidden, fill)))
    probabilities = model(batch.to(_model_device(model))).float().softmax(-1)[:, target].cpu()
    return (probabilities[0] - probabilities[1:]).reshape(grid, grid)


def patch_masks(chosen: torch.Tensor, grid: int, patch_size: int) -> torch.Tensor:
    """(B, grid * grid) patch choices -> (B, S, S) pixel masks, patches numbered as `patchify` numbers them."""
    per_patch = chosen.reshape(-1, grid, grid)
    return per_patch.repeat_interleave(patch_size, dim=1).repeat_interleave(patch_size, dim=2)


def fill_patches(images: torch.Tensor, masks: torch.Tensor, fill: torch.Tensor) -> torch.Tensor:
    """One (1, C, S, S) image, painted with `fill` (C,) where each of the (B, S, S) `masks`
    is True: -> (B, C, S, S)."""
    return torch.where(masks[:, None], fill.view(1, -1, 1, 1).to(images.dtype), images)


def attribution(
    model: ViT,
    images: torch.Tensor,
    method: str,
    target: int,
    fill: torch.Tensor,
    attentions: Sequence[torch.Tensor] | None = None,
    head_fusion: str = "mean",
    discard_ratio: float = 0.0,
) -> torch.Tensor:
    """Any of `ATTRIBUTIONS` for one image -> (grid, grid), larger meaning "mattered more".
    `attentions` (from a forward pass already made) spares the attention maps a pass."""
    if method not in ATTRIBUTIONS:
        raise ValueError(f"unknown method {method!r}: choose one of {', '.join(ATTRIBUTIONS)}")
    if method == "gradient":
        return gradient_relevance(model, images, target)
    if method == "occlusion":
        return occlusion_sensitivity(model, images, target, fill)
    if attentions is None:
        with torch.inference_mode():
            _, attentions = model(images.to(_model_device(model)), return_attention=True)
    if method == "rollout":
        return attention_rollout(attentions, head_fusion, discard_ratio)[0]
    return token_attention(attentions, len(attentions) - 1)[0]


# --------------------------------------------------------------------------- learned parameters


def position_similarity(model: ViT) -> torch.Tensor:
    """Cosine similarity of the patches' positional embeddings (CLS left out) -> (grid, grid,
    grid, grid); [i, j] is the map for the patch at row i, column j (ViT paper, Fig. 7 centre)."""
    grid = model.config.grid_size
    positions = torch.nn.functional.normalize(model.pos_embedding.detach().float().cpu()[0, 1:], dim=-1)
    return (positions @ positions.T).reshape(grid, grid, grid, grid)


def embedding_filters(model: ViT, k: int) -> torch.Tensor:
    """The top-k principal components of the patch-embedding filters -> (k, C, p, p).

    Each row of `patch_to_embedding.weight` (dim x patch_dim) is a filter over one patch;
    the principal directions of the centred rows, laid out as patches (ViT paper, Fig. 7
    left), show what the first layer looks for. Each component has unit length, and its
    sign is chosen so that its largest-magnitude value is positive (SVD's sign is arbitrary).
    """
    config = model.config
    weights = model.patch_to_embedding.weight.detach().float().cpu()
    if not 1 <= k <= min(weights.shape):
        raise ValueError(f"k must be between 1 and {min(weights.shape)} (min of dim and patch_dim), got {k}")
    centred = weights - weights.mean(dim=0, keepdim=True)
    components = torch.linalg.svd(centred, full_matrices=False).Vh[:k]
    strongest = components.gather(1, components.abs().argmax(dim=1, keepdim=True))
    components = components * strongest.sign()
    return patch_pixels(components, config.patch_size, config.channels).contiguous()


def patch_grid(image_tensor: torch.Tensor, patch_size: int) -> torch.Tensor:
    """(C, H, W) or (1, C, H, W) -> (N, C, p, p): the patches in the model's token order."""
    image = image_tensor[0] if image_tensor.ndim == 4 and image_tensor.shape[0] == 1 else image_tensor
    if image.ndim != 3:
        raise ValueError(f"expected one image of shape (C, H, W), got {tuple(image_tensor.shape)}")
    c, h, w = image.shape
    if h % patch_size or w % patch_size:
        raise ValueError(f"a {h}x{w} image cannot be cut into {patch_size}x{patch_size} patches")
    return patch_pixels(patchify(image[None], patch_size)[0], patch_size, c)


__all__ = [
    "ATTRIBUTIONS",
    "CLASS_SPECIFIC",
    "Explanation",
    "HEAD_FUSIONS",
    "Preprocessed",
    "attention_distance",
    "attention_maps",
    "attention_rollout",
    "attribution",
    "cls_attention_maps",
    "embedding_filters",
    "explain",
    "fill_patches",
    "gradient_relevance",
    "occlusion_sensitivity",
    "patch_masks",
    "patch_grid",
    "position_similarity",
    "predict",
    "preprocess",
    "relevance_propagation",
    "residual_attention",
    "token_attention",
]
