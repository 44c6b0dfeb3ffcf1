"""One patch's way through the model, with the model's real numbers: the "show the maths"
view. Every step is computed here with the model's own modules and weights, so the numbers
on screen are the ones the forward pass uses (a test checks the attention row and the
head's output against the model's).

    pixels (C, p, p)  --flatten-->  patch vector (patch_dim)
      --patch_to_embedding-->  embedding (dim)  + pos_embedding[row]  =  token (dim)
    the layer's input x  --LayerNorm-->  q, k, v (per head, head_dim each)
    scores = q . k_j / sqrt(head_dim) for every token j  --softmax-->  weights
    head output = sum_j weights_j v_j

Indices are 0-based here, as in `vit_demo.explain`: patch 0 is token 1 (token 0 is CLS).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from .model import ViT, patch_pixels, patchify


@dataclass(frozen=True)
class PatchMaths:
    patch: int
    layer: int
    head: int
    pixels: torch.Tensor  # (C, p, p): the normalised values the model reads
    vector: torch.Tensor  # (patch_dim,): the same, flattened as `patchify` flattens them
    embedding: torch.Tensor  # (dim,): patch_to_embedding(vector)
    position: torch.Tensor  # (dim,): this patch's row of pos_embedding
    token: torch.Tensor  # (dim,): embedding + position, the token layer 1 reads
    layer_input: torch.Tensor  # (dim,): the token as `layer` reads it (the token itself for layer 0)
    normed: torch.Tensor  # (dim,): after the layer's LayerNorm
    query: torch.Tensor  # (head_dim,)
    keys: torch.Tensor  # (tokens, head_dim): every token's key in this head
    values: torch.Tensor  # (tokens, head_dim)
    scores: torch.Tensor  # (tokens,): query . key / sqrt(head_dim)
    weights: torch.Tensor  # (tokens,): softmax(scores), this patch's attention row
    output: torch.Tensor  # (head_dim,): weights @ values

    @property
    def token_index(self) -> int:
        return self.patch + 1


@torch.no_grad()
def patch_maths(model: ViT, images: torch.Tensor, patch: int, layer: int = 0, head: int = 0) -> PatchMaths:
    """The numbers of `patch`'s query in `layer`, `head` for one (1, C, S, S) normalised picture."""
    config = model.config
    if not 0 <= patch < config.num_patches:
        raise ValueError(f"patch must be between 0 and {config.num_patches - 1}, got {patch}")
    if not 0 <= layer < config.depth:
        raise ValueError(f"layer must be between 0 and {config.depth - 1}, got {layer}")
    if not 0 <= head < config.heads:
        raise ValueError(f"head must be between 0 and {config.heads - 1}, got {head}")
    device = next(model.parameters()).device
    images = images.to(device).float()
    vector = patchify(images, config.patch_size)[0, patch]
    embedding = model.patch_to_embedding(vector)
    position = model.pos_embedding[0, patch + 1]
    x = model.embed(images)
    for block in model.transformer.layers[:layer]:
        x, _ = block(x)
    block = model.transformer.layers[layer]
    normed = block.attention_norm(x)[0]
    d, inner = config.head_dim, config.inner_dim
    q, k, v = block.attention.to_qkv(normed).split(inner, dim=-1)
    heads = slice(head * d, (head + 1) * d)
    t = patch + 1
    query, keys, values = q[t, heads], k[:, heads], v[:, heads]
    scores = keys @ query * block.attention.scale
    weights = scores.softmax(dim=-1)

    def cpu(tensor: torch.Tensor) -> torch.Tensor:
        return tensor.detach().float().cpu()

    return PatchMaths(
        patch=patch,
        layer=layer,
        head=head,
        pixels=cpu(patch_pixels(vector, config.patch_size, config.channels)),
        vector=cpu(vector),
        embedding=cpu(embedding),
        position=cpu(position),
        token=cpu(embedding + position),
        layer_input=cpu(x[0, t]),
        normed=cpu(normed[t]),
        query=cpu(query),
        keys=cpu(keys),
        values=cpu(values),
        scores=cpu(scores),
        weights=cpu(weights),
        output=cpu(weights @ values),
    )


def patch_at(x: float, y: float, image_size: float, grid: int) -> int:
    """The patch under a click at pixel (x, y) of a square picture `image_size` wide (any
    scale of the model's input): its 0-based index, row by row."""
    column = min(max(int(x * grid // image_size), 0), grid - 1)
    row = min(max(int(y * grid // image_size), 0), grid - 1)
    return row * grid + column


__all__ = ["PatchMaths", "patch_at", "patch_maths"]
