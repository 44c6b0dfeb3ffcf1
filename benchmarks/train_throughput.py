"""Training throughput of vit_demo's ViT against lucidrains' vit-pytorch, side by side.

    python benchmarks/train_throughput.py [--rounds 5] [--steps 30] [--batch-size 128] [--threads N]
                                          [--no-compile] [--profile]

Both models get the same hyperparameters (image 28, patch 7, dim 64, depth 4, heads 4,
mlp_dim 128; vit-pytorch with dim_head=16 so both are the same size), the same optimizer
(AdamW, fused), the same in-memory MNIST tensor (random pixels if the data is absent) and
the same batch of 128 per optimizer step. The runs:

    vit_demo --compile --bf16     our model as `python -m vit_demo.train --compile --bf16`
                                  trains it: TorchInductor, bfloat16 autocast
    vit_demo                      our model, eager (the trainer's default step)
    vit-pytorch                   their model, eager: how it is used
    vit-pytorch --compile --bf16  their model with our compiled bf16 step, for fairness
    app: ...                      one torch thread per op, as the app runs on two cores: our
                                  step with the batch split across two worker threads
                                  (training.BatchSplitter), and plain steps that leave the
                                  second core idle

Rounds alternate between the runs so that noise from a shared machine hits all alike; the
median round is reported. GFLOP/s counts the matrix products each model actually computes
in forward + backward (3x ViTConfig.forward_flops; ours skips the last block's patch
queries, see Transformer.forward). The last line is `ratio: <vit_demo --compile --bf16 /
vit-pytorch>` (`<vit_demo / vit-pytorch>` with --no-compile). `--profile` adds
torch.profiler's per-operator table of both eager models.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import torch  # noqa: E402

from vit_demo.data import DATASETS, DatasetNotFoundError, load_split, normalize  # noqa: E402
from vit_demo.model import ViT, ViTConfig  # noqa: E402
from vit_demo.training import BatchSplitter, TrainingForward, configure_threads, forward_backward  # noqa: E402

HYPERPARAMETERS = dict(image_size=28, patch_size=7, num_classes=10, dim=64, depth=4, heads=4, mlp_dim=128, channels=1)


def training_images(limit: int) -> tuple[torch.Tensor, torch.Tensor, str]:
    try:
        split = load_split("mnist", train=True, limit=limit)
        return split.images, split.labels, "MNIST"
    except DatasetNotFoundError:
        generator = torch.Generator().manual_seed(0)
        images = torch.randint(0, 256, (limit, 1, 28, 28), dtype=torch.uint8, generator=generator)
        return images, torch.randint(0, 10, (limit,), generator=generator), "random pixels (MNIST not found)"


@dataclass
class Run:
    model: torch.nn.Module
    threads: int  # torch threads per operator
    flops_per_image: int  # the matrix products of forward + backward
    splitter: BatchSplitter | None = None
    compiled: bool = False  # compiled, in bfloat16 autocast

    def __post_init__(self) -> None:
        self.optimizer = torch.optim.AdamW(self.model.parameters(), lr=1e-3, weight_decay=0.05, fused=True)
        cpu = torch.device("cpu")
        self.forward = TrainingForward(self.model, cpu, compile=self.compiled, bf16=self.compiled)


def timed_steps(run: Run, images, labels, batch_size: int, steps: int, offset: int) -> float:
    """Seconds for `steps` training steps."""
    spec = DATASETS["mnist"]
    torch.set_num_threads(run.threads)
    run.model.train()
    n = len(images)
    started = time.perf_counter()
    for i in range(steps):
        first = ((offset + i) * batch_size) % (n - batch_size)
        batch = normalize(images[first : first + batch_size], spec)
        run.optimizer.zero_grad(set_to_none=True)
        forward_backward(run.forward, batch, labels[first : first + batch_size], splitter=run.splitter)
        run.optimizer.step()
    return time.perf_counter() - started


def profile_table(run: Run, images, labels, batch_size: int) -> str:
    from torch.profiler import profile

    with profile() as profiler:
        timed_steps(run, images, labels, batch_size, 20, 0)
    return profiler.key_averages().table(sort_by="self_cpu_time_total", row_limit=15)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--steps", type=int, default=30, help="training steps per round")
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--threads", type=int, help="CPU threads (default: all cores)")
    parser.add_argument("--no-compile", action="store_true", help="leave out the compiled runs")
    parser.add_argument("--profile", action="store_true", help="also print a per-operator profile of both models")
    args = parser.parse_args()

    from vit_pytorch import ViT as LucidrainsViT

    configure_threads(args.threads)
    threads = torch.get_num_threads()
    images, labels, source = training_images(args.batch_size * 64)
    config = ViTConfig(**HYPERPARAMETERS)
    ours, theirs = 3 * config.forward_flops(cls_only=True), 3 * config.forward_flops()
    torch.manual_seed(0)
    runs = {
        "vit_demo --compile --bf16": Run(ViT(**HYPERPARAMETERS), threads, ours, compiled=True),
        "vit_demo": Run(ViT(**HYPERPARAMETERS), threads, ours),
        "vit-pytorch": Run(LucidrainsViT(**HYPERPARAMETERS, dim_head=16), threads, theirs),
        "vit-pytorch --compile --bf16": Run(LucidrainsViT(**HYPERPARAMETERS, dim_head=16), threads, theirs, compiled=True),
    }
    if args.no_compile:
        runs = {name: run for name, run in runs.items() if not run.compiled}
    app_splitter = BatchSplitter(workers=2, threads_per_worker=1) if threads >= 2 else None
    if app_splitter is not None:
        runs |= {
            "app: vit_demo, split": Run(ViT(**HYPERPARAMETERS), 1, ours, splitter=app_splitter),
            "app: vit_demo, plain": Run(ViT(**HYPERPARAMETERS), 1, ours),
            "app: vit-pytorch, plain": Run(LucidrainsViT(**HYPERPARAMETERS, dim_head=16), 1, theirs),
        }

    print(f"torch {torch.__version__}, {threads} threads, data: {source}")
    print(f"batch {args.batch_size}, {args.steps} steps x {args.rounds} rounds per run, alternating")
    for name in ("vit_demo", "vit-pytorch"):
        print(f"  {name:12s} {sum(p.numel() for p in runs[name].model.parameters()):,} parameters")
    for name, run in list(runs.items()):
        torch.set_num_threads(run.threads)
        started = time.perf_counter()
        problem = run.forward.warm_up(normalize(images[: args.batch_size], DATASETS["mnist"]), labels[: args.batch_size])
        if problem:
            print(f"  {name}: {problem}; left out")
            del runs[name]
        elif run.compiled:
            print(f"  {name}: compiled in {time.perf_counter() - started:.1f} s (Inductor's on-disk cache makes later runs quicker)")
        timed_steps(run, images, labels, args.batch_size, 5, 0)  # allocators and kernels

    rates: dict[str, list[float]] = {name: [] for name in runs}
    for round_index in range(args.rounds):
        for name, run in runs.items():
            seconds = timed_steps(run, images, labels, args.batch_size, args.steps, round_index * args.steps)
            rates[name].append(args.steps * args.batch_size / seconds)

    medians = {name: statistics.median(values) for name, values in rates.items()}
    for name, value in medians.items():
        spread = f"{min(rates[name]):,.0f}-{max(rates[name]):,.0f}"
        gflops = value * runs[name].flops_per_image / 1e9
        print(f"{name:30s} {value:8,.0f} images/s (rounds {spread})  {gflops:6.1f} GFLOP/s")
    if args.profile:
        for name in ("vit_demo", "vit-pytorch"):
            print(f"\n{name}, 20 steps, by operator:\n" + profile_table(runs[name], images, labels, args.batch_size))
    if app_splitter is not None:
        app_splitter.close()

    def ratio(ours: str, theirs: str) -> str:
        return f"{medians[ours] / medians[theirs]:.2f}" if ours in medians and theirs in medians else "n/a"

    print(f"ratio, both eager: {ratio('vit_demo', 'vit-pytorch')}")
    if "vit_demo --compile --bf16" in medians:
        print(f"ratio, both compiled + bf16: {ratio('vit_demo --compile --bf16', 'vit-pytorch --compile --bf16')}")
        print(f"ratio: {ratio('vit_demo --compile --bf16', 'vit-pytorch')}")
    else:
        print(f"ratio: {ratio('vit_demo', 'vit-pytorch')}")


if __name__ == "__main__":
    main()
