"""Training throughput of vit_demo's ViT against lucidrains' vit-pytorch, side by side.

    python benchmarks/train_throughput.py [--rounds 5] [--steps 30] [--batch-size 128] [--threads N]

Both models get the same hyperparameters (image 28, patch 7, dim 64, depth 4, heads 4,
mlp_dim 128; vit-pytorch with dim_head=16 so both are the same size), the same optimizer
(AdamW, fused), the same in-memory MNIST tensor (random pixels if the data is absent) and
the same training-step code. Rounds alternate between the models so that noise from a
shared machine hits both alike; the median round is reported.

GFLOP/s counts the matrix products of forward + backward (3x the forward FLOPs of
ViTConfig.forward_flops); the last line is `ratio: <ours / theirs>`.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402

from vit_demo.data import DATASETS, DatasetNotFoundError, load_split, normalize  # noqa: E402
from vit_demo.model import ViT, ViTConfig  # noqa: E402
from vit_demo.training import configure_threads  # noqa: E402

HYPERPARAMETERS = dict(image_size=28, patch_size=7, num_classes=10, dim=64, depth=4, heads=4, mlp_dim=128, channels=1)


def training_images(limit: int) -> tuple[torch.Tensor, torch.Tensor, str]:
    try:
        split = load_split("mnist", train=True, limit=limit)
        return split.images, split.labels, "MNIST"
    except DatasetNotFoundError:
        generator = torch.Generator().manual_seed(0)
        images = torch.randint(0, 256, (limit, 1, 28, 28), dtype=torch.uint8, generator=generator)
        return images, torch.randint(0, 10, (limit,), generator=generator), "random pixels (MNIST not found)"


def timed_steps(model, optimizer, images, labels, batch_size: int, steps: int, offset: int) -> float:
    """Seconds for `steps` training steps, the same code for either model."""
    spec = DATASETS["mnist"]
    model.train()
    n = len(images)
    started = time.perf_counter()
    for i in range(steps):
        first = ((offset + i) * batch_size) % (n - batch_size)
        batch = normalize(images[first : first + batch_size], spec)
        loss = F.cross_entropy(model(batch), labels[first : first + batch_size])
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--steps", type=int, default=30, help="training steps per round")
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--threads", type=int, help="CPU threads (default: all cores)")
    args = parser.parse_args()

    from vit_pytorch import ViT as LucidrainsViT

    configure_threads(args.threads)
    images, labels, source = training_images(args.batch_size * 64)
    torch.manual_seed(0)
    models = {
        "vit_demo": ViT(**HYPERPARAMETERS),
        "vit-pytorch": LucidrainsViT(**HYPERPARAMETERS, dim_head=16),
    }
    optimizers = {name: torch.optim.AdamW(m.parameters(), lr=1e-3, weight_decay=0.05, fused=True) for name, m in models.items()}
    sizes = {name: sum(p.numel() for p in m.parameters()) for name, m in models.items()}
    flops_per_image = 3 * ViTConfig(**HYPERPARAMETERS).forward_flops()

    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, data: {source}")
    print(f"batch {args.batch_size}, {args.steps} steps x {args.rounds} rounds per model, alternating")
    for name in models:
        print(f"  {name:12s} {sizes[name]:,} parameters")
    for name in models:  # warm up allocators and kernels
        timed_steps(models[name], optimizers[name], images, labels, args.batch_size, 5, 0)

    rates: dict[str, list[float]] = {name: [] for name in models}
    for round_index in range(args.rounds):
        for name in models:
            seconds = timed_steps(models[name], optimizers[name], images, labels, args.batch_size, args.steps, round_index * args.steps)
            rates[name].append(args.steps * args.batch_size / seconds)

    medians = {name: statistics.median(values) for name, values in rates.items()}
    for name, value in medians.items():
        spread = f"{min(rates[name]):,.0f}-{max(rates[name]):,.0f}"
        gflops = value * flops_per_image / 1e9
        print(f"{name:12s} {value:8,.0f} images/s (rounds {spread})  {gflops:6.1f} GFLOP/s")
    print(f"ratio: {medians['vit_demo'] / medians['vit-pytorch']:.2f}")


if __name__ == "__main__":
    main()
