"""The Vision Transformer (Dosovitskiy et al., 2020), small enough to read in one sitting.

An image is cut into `patch_size` x `patch_size` patches, each patch is flattened and
projected to a `dim`-wide token by `patch_to_embedding`, a learnable `cls_token` is
prepended, a learnable `pos_embedding` is added, and `depth` pre-norm transformer blocks
mix the tokens. The CLS token's output is classified by `mlp_head`.

Read it top down: the config, then `ViT` and its parts in the order an image meets them,
then the helpers (cutting images into patches, sizes and costs).
"""

# No `from __future__ import annotations`: the Hub mixin rebuilds `config` from config.json by
# reading `ViT.__init__`'s annotation, which must stay the ViTConfig class itself.
import math
from dataclasses import MISSING, asdict, dataclass, fields

import torch
import torch.nn.functional as F
from huggingface_hub import PyTorchModelHubMixin
from torch import nn


@dataclass(frozen=True)
class ViTConfig:
    """Every number that fixes a ViT: enough to rebuild the model."""

    image_size: int
    patch_size: int
    num_classes: int
    dim: int
    depth: int
    heads: int
    mlp_dim: int
    channels: int = 3
    dim_head: int | None = None
    dropout: float = 0.0
    emb_dropout: float = 0.0

    def __post_init__(self) -> None:
        for name in ("image_size", "patch_size", "num_classes", "dim", "depth", "heads", "mlp_dim", "channels"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int):
                raise ValueError(f"{name} must be a whole number, got {value!r}")
            if value < 1:
                raise ValueError(f"{name} must be at least 1, got {value}")
        if self.dim_head is not None and (
            isinstance(self.dim_head, bool) or not isinstance(self.dim_head, int) or self.dim_head < 1
        ):
            raise ValueError(f"dim_head must be a whole number of at least 1 (or None), got {self.dim_head!r}")
        for name in ("dropout", "emb_dropout"):
            value = getattr(self, name)
            if not 0.0 <= value < 1.0:
                raise ValueError(f"{name} must be in [0, 1), got {value}")
        if self.patch_size > self.image_size:
            raise ValueError(
                f"patch_size {self.patch_size} is larger than image_size {self.image_size}: "
                f"choose a patch_size that divides {self.image_size}: {_join(divisors(self.image_size))}"
            )
        if self.image_size % self.patch_size:
            raise ValueError(
                f"image_size {self.image_size} is not divisible by patch_size {self.patch_size}: "
                f"choose a patch_size that divides {self.image_size}: {_join(divisors(self.image_size))}"
            )
        if self.dim_head is None and self.dim % self.heads:
            raise ValueError(
                f"dim {self.dim} is not divisible by heads {self.heads}: "
                f"choose heads from {_join(divisors(self.dim))}, or a dim that is a multiple of {self.heads}"
            )

    @property
    def grid_size(self) -> int:
        return self.image_size // self.patch_size

    @property
    def num_patches(self) -> int:
        return self.grid_size**2

    @property
    def seq_len(self) -> int:
        return self.num_patches + 1  # the CLS token rides along with the patches

    @property
    def patch_dim(self) -> int:
        return self.channels * self.patch_size**2

    @property
    def head_dim(self) -> int:
        return self.dim_head if self.dim_head is not None else self.dim // self.heads

    @property
    def inner_dim(self) -> int:
        return self.heads * self.head_dim

    def parameter_counts(self) -> dict[str, int]:
        """Learnable numbers per component, computed from the shapes alone (no model is built)."""
        d, n, m = self.dim, self.inner_dim, self.mlp_dim
        block = (
            2 * d  # LayerNorm before attention
            + d * 3 * n
            + 3 * n  # to_qkv
            + n * d
            + d  # to_out
            + 2 * d  # LayerNorm before the feed-forward
            + d * m
            + m
            + m * d
            + d  # the two feed-forward Linears
        )
        return {
            "patch_to_embedding": self.patch_dim * d + d,
            "pos_embedding": self.seq_len * d,
            "cls_token": d,
            "transformer": self.depth * block,
            "mlp_head": 2 * d + d * m + m + m * self.num_classes + self.num_classes,
        }

    def forward_flops(self, cls_only: bool = False) -> int:
        """Floating-point operations of one image's forward pass (multiply-adds count as 2).

        Only the matrix products are counted; they are what the FLOP/s figures compare.
        `cls_only`: what `ViT.forward` computes when no attention maps are asked for (the
        last block works for the CLS token alone, see `Transformer.forward`).
        """
        s, d, n, m = self.seq_len, self.dim, self.inner_dim, self.mlp_dim

        def block(queries: int) -> int:
            keys_values = 2 * s * d * 2 * n
            return (
                keys_values
                + 2 * queries * d * n
                + 2 * 2 * queries * s * n
                + 2 * queries * n * d
                + 2 * 2 * queries * d * m
            )

        embed = 2 * self.num_patches * self.patch_dim * d
        blocks = (self.depth - 1) * block(s) + block(1 if cls_only else s)
        head = 2 * d * m + 2 * m * self.num_classes
        return embed + blocks + head

    @property
    def shape(self) -> dict:
        """What a person chooses (`SHAPE_FIELDS`), the rest being the dataset's."""
        return {name: getattr(self, name) for name in SHAPE_FIELDS}

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, values: dict) -> "ViTConfig":
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise ValueError(f"unknown model settings: {', '.join(unknown)}")
        return cls(**values)


# What the dataset fixes, and the rest a person chooses: the model's shape. Every list of
# "the knobs" (the CLI's flags, the recipes, the Build tab, lesson links) is derived from these.
DATASET_FIELDS = ("image_size", "num_classes", "channels")
SHAPE_FIELDS = tuple(f.name for f in fields(ViTConfig) if f.default is MISSING and f.name not in DATASET_FIELDS)


class ViT(
    nn.Module,
    PyTorchModelHubMixin,
    library_name="vit_demo",
    tags=["image-classification", "vision-transformer", "vit-playground"],
    license="mit",
):
    """The whole model, its parts in the order an image meets them."""

    def __init__(self, config: ViTConfig):
        super().__init__()
        self.config = c = config
        self.patch_to_embedding = nn.Linear(c.patch_dim, c.dim)
        self.cls_token = nn.Parameter(torch.zeros(1, 1, c.dim))
        self.pos_embedding = nn.Parameter(torch.zeros(1, c.seq_len, c.dim))
        self.emb_dropout = nn.Dropout(c.emb_dropout) if c.emb_dropout else nn.Identity()
        self.transformer = Transformer(c.dim, c.depth, c.heads, c.head_dim, c.mlp_dim, c.dropout)
        self.to_cls_token = nn.Identity()
        self.mlp_head = nn.Sequential(
            nn.LayerNorm(c.dim), nn.Linear(c.dim, c.mlp_dim), nn.GELU(), nn.Linear(c.mlp_dim, c.num_classes)
        )
        self.reset_parameters()

    def forward(self, images: torch.Tensor, return_attention: bool = False, use_position: bool = True):
        """Logits (B, num_classes); with `return_attention`, also each block's attention
        weights, (B, heads, seq_len, seq_len) each."""
        self.check_input(images)
        x, attentions = self.transformer(self.embed(images, use_position), return_attention)
        logits = self.mlp_head(self.to_cls_token(x[:, 0]))
        return (logits, attentions) if return_attention else logits

    def embed(self, images: torch.Tensor, use_position: bool = True) -> torch.Tensor:
        """Images -> the token sequence the transformer reads: (B, num_patches + 1, dim).

        `use_position=False` leaves out `pos_embedding`: the experiment that shows a ViT
        then sees a bag of patches, blind to where each one was."""
        tokens = self.patch_to_embedding(patchify(images, self.config.patch_size))
        cls = self.cls_token.expand(tokens.shape[0], -1, -1)
        sequence = torch.cat((cls, tokens), dim=1)
        if use_position:
            sequence = sequence + self.pos_embedding
        return self.emb_dropout(sequence)

    def reset_parameters(self) -> None:
        # Linear and LayerNorm keep PyTorch's defaults (uniform in +-1/sqrt(fan_in)): from
        # scratch in a minute they learn far faster than timm's truncated-normal(0.02)
        # (benchmarks/RESULTS.md). The learned tokens start small: at step 0, position is a hint.
        for module in self.modules():
            if isinstance(module, (nn.Linear, nn.LayerNorm)):
                module.reset_parameters()
        nn.init.trunc_normal_(self.pos_embedding, std=0.02)
        nn.init.trunc_normal_(self.cls_token, std=0.02)

    def check_input(self, images: torch.Tensor) -> None:
        c, s = self.config.channels, self.config.image_size
        if images.ndim != 4 or tuple(images.shape[1:]) != (c, s, s):
            raise ValueError(
                f"expected images of shape (batch, {c}, {s}, {s}) "
                f"({'grey' if c == 1 else f'{c}-channel'} {s}x{s}), got {tuple(images.shape)}"
            )

    def parameter_counts(self) -> dict[str, int]:
        """Learnable numbers per component, counted on the live modules."""
        return {
            "patch_to_embedding": sum(p.numel() for p in self.patch_to_embedding.parameters()),
            "pos_embedding": self.pos_embedding.numel(),
            "cls_token": self.cls_token.numel(),
            "transformer": sum(p.numel() for p in self.transformer.parameters()),
            "mlp_head": sum(p.numel() for p in self.mlp_head.parameters()),
        }


class Transformer(nn.Module):
    def __init__(self, dim: int, depth: int, heads: int, dim_head: int, mlp_dim: int, dropout: float = 0.0):
        super().__init__()
        self.layers = nn.ModuleList(TransformerBlock(dim, heads, dim_head, mlp_dim, dropout) for _ in range(depth))

    def forward(self, x: torch.Tensor, return_attention: bool = False):
        """Every block in turn: (tokens, [each block's attention weights, or None]).

        Without attention maps, only the CLS token's output is read (by the classifier), so the
        last block computes that one token alone, (B, 1, dim): the same logits, most of a
        block's work less (`ViTConfig.forward_flops`)."""
        attentions = []
        for index, block in enumerate(self.layers):
            last = index == len(self.layers) - 1
            x, attention = block(x, return_attention, cls_only=last and not return_attention)
            attentions.append(attention)
        return x, attentions


class TransformerBlock(nn.Module):
    """Pre-norm block: x + Attention(LN(x)), then x + FeedForward(LN(x))."""

    def __init__(self, dim: int, heads: int, dim_head: int, mlp_dim: int, dropout: float = 0.0):
        super().__init__()
        self.attention_norm = nn.LayerNorm(dim)
        self.attention = Attention(dim, heads, dim_head, dropout)
        self.feed_forward_norm = nn.LayerNorm(dim)
        self.feed_forward = FeedForward(dim, mlp_dim, dropout)

    def forward(self, x: torch.Tensor, return_attention: bool = False, cls_only: bool = False):
        attended, attention = self.attention(self.attention_norm(x), return_attention, cls_only)
        x = (x[:, :1] if cls_only else x) + attended
        x = x + self.feed_forward(self.feed_forward_norm(x))
        return x, attention


class Attention(nn.Module):
    """Multi-head self-attention. q, k and v come from one Linear (`to_qkv`): one matrix
    product instead of three, the same math.

    `fused` picks the kernel: True uses `scaled_dot_product_attention`, False the explicit
    softmax(q k^T / sqrt(d)) v, None (the default) fuses on GPUs only: on a CPU, at the
    17-65 tokens these models see, the explicit path trains faster (benchmarks/RESULTS.md).
    """

    def __init__(self, dim: int, heads: int, dim_head: int, dropout: float = 0.0):
        super().__init__()
        self.heads = heads
        self.dim_head = dim_head
        self.scale = dim_head**-0.5
        self.dropout = dropout
        self.fused: bool | None = None
        inner_dim = heads * dim_head
        self.to_qkv = nn.Linear(dim, inner_dim * 3)
        self.to_out = nn.Linear(inner_dim, dim)

    def forward(self, x: torch.Tensor, return_attention: bool = False, cls_only: bool = False):
        """(output, attention weights or None). `cls_only`: only the CLS token asks (queries),
        every token still answers (keys, values), and the output has one token, (B, 1, dim)."""
        b, n, _ = x.shape
        h, d = self.heads, self.dim_head
        if cls_only:
            inner = h * d
            q = (
                F.linear(x[:, :1], self.to_qkv.weight[:inner], self.to_qkv.bias[:inner])
                .view(b, 1, h, d)
                .transpose(1, 2)
            )
            kv = F.linear(x, self.to_qkv.weight[inner:], self.to_qkv.bias[inner:])
            k, v = kv.view(b, n, 2, h, d).permute(2, 0, 3, 1, 4).unbind(0)
        else:
            q, k, v = self.to_qkv(x).view(b, n, 3, h, d).permute(2, 0, 3, 1, 4).unbind(0)
        attention = None
        fused = self.fused if self.fused is not None else not x.is_cpu
        if fused and not return_attention:
            out = F.scaled_dot_product_attention(q, k, v, dropout_p=self.dropout if self.training else 0.0)
        else:
            attention = torch.softmax((q @ k.transpose(-2, -1)) * self.scale, dim=-1)
            weights = F.dropout(attention, self.dropout, self.training) if self.dropout else attention
            out = weights @ v
        out = out.transpose(1, 2).reshape(b, q.shape[2], h * d)
        out = self.to_out(out)
        if self.dropout:
            out = F.dropout(out, self.dropout, self.training)
        return out, attention


class FeedForward(nn.Module):
    def __init__(self, dim: int, mlp_dim: int, dropout: float = 0.0):
        super().__init__()
        layers: list[nn.Module] = [nn.Linear(dim, mlp_dim), nn.GELU(), nn.Linear(mlp_dim, dim)]
        if dropout:  # a Dropout(p=0) still costs a kernel launch per step on the CPU
            layers[2:2] = [nn.Dropout(dropout)]
            layers.append(nn.Dropout(dropout))
        self.net = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


# ---------------------------------------------------------------- helpers


def patchify(images: torch.Tensor, patch_size: int) -> torch.Tensor:
    """(B, C, H, W) -> (B, num_patches, patch_size * patch_size * C).

    Patches are numbered row by row (left to right, top to bottom); each patch is
    flattened pixel by pixel with the channels innermost, the layout of the paper.
    """
    b, c, h, w = images.shape
    p = patch_size
    x = images.reshape(b, c, h // p, p, w // p, p)
    x = x.permute(0, 2, 4, 3, 5, 1)  # b, grid_row, grid_col, pixel_row, pixel_col, c
    return x.reshape(b, (h // p) * (w // p), p * p * c)


def patch_pixels(patches: torch.Tensor, patch_size: int, channels: int) -> torch.Tensor:
    """(..., p * p * C) flattened as `patchify` flattens -> (..., C, p, p) pictures."""
    p = patch_size
    return patches.reshape(*patches.shape[:-1], p, p, channels).movedim(-1, -3)


def unpatchify(patches: torch.Tensor, patch_size: int, channels: int) -> torch.Tensor:
    """The inverse of `patchify`: (B, N, p * p * C) -> (B, C, H, W) for a square grid."""
    b, n, _ = patches.shape
    grid, p = math.isqrt(n), patch_size
    pictures = patch_pixels(patches, p, channels).reshape(b, grid, grid, channels, p, p)
    return pictures.permute(0, 3, 1, 4, 2, 5).reshape(b, channels, grid * p, grid * p)


def divisors(n: int) -> list[int]:
    return [d for d in range(1, n + 1) if n % d == 0]


def _join(values: list[int]) -> str:
    return ", ".join(str(v) for v in values)


def num_parameters(counts: dict[str, int]) -> int:
    return sum(counts.values())


def estimated_training_memory_bytes(config: ViTConfig, batch_size: int) -> int:
    """A generous estimate of the memory one training step needs.

    Parameters, gradients and two AdamW moments (4 copies), plus the activations
    autograd keeps: per block about 12 tensors of (seq_len x dim), 3 of (seq_len x mlp_dim)
    and, for the backward pass of attention, 2 of (heads x seq_len x seq_len).
    """
    params = sum(config.parameter_counts().values())
    s, d, m, h = config.seq_len, config.dim, config.mlp_dim, config.heads
    per_image = config.depth * (12 * s * d + 3 * s * m + 2 * h * s * s) + 2 * config.num_patches * config.patch_dim
    return 4 * (4 * params + batch_size * per_image)


__all__ = [
    "Attention",
    "FeedForward",
    "Transformer",
    "TransformerBlock",
    "ViT",
    "ViTConfig",
    "divisors",
    "estimated_training_memory_bytes",
    "num_parameters",
    "patchify",
]
