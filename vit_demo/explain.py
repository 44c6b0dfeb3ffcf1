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
from dataclasses import dataclass

import torch
from PIL import Image

from vit_demo.model import ViT, patch_pixels, patchify
from vit_demo.pictures import Preprocessed, preprocess

HEAD_FUSIONS = ("mean", "max", "min")


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
