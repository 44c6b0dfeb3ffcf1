"""Training throughput of vit_demo's ViT against lucidrains' vit-pytorch, side by side.

    python -m benchmarks.train_throughput [--rounds 5] [--steps 30] [--batch-size 128] [--threads N]
                                          [--device cpu|cuda|mps] [--no-compile] [--all-paths] [--profile]

Both models get the same hyperparameters (image 28, patch 7, dim 64, depth 4, heads 4,
mlp_dim 128; vit-pytorch with dim_head=16 so both are the same size), the same optimizer
(AdamW, fused), the same in-memory MNIST tensor (random pixels if the data is absent) and
the same batch per optimizer step. The runs:

    vit_demo <path>               our model on each step path this machine offers
                                  (step.plan_step: eager fp32 always; compiled fp32 where
                                  there is a compiler; bf16 where it is native)
    vit-pytorch eager fp32        their model, as it is used
    vit-pytorch <best path>       their model on our fastest path, for fairness
    app: ...                      one torch thread per op, as the app's training process
                                  runs on two cores: the batch split across two worker
                                  threads (step.BatchSplitter), and plain steps that leave
                                  the second core idle

Rounds alternate between the runs so that noise from a shared machine hits all alike; the
median round is reported. GFLOP/s counts the matrix products each model computes in
forward + backward (3x ViTConfig.forward_flops; ours skips the last block's patch
queries, see Transformer.forward). The first line names the machine. The last line,
`ratio:`, is our fastest path on this machine (the one `python -m vit_demo.train` picks)
over vit-pytorch eager: a path this machine makes slower is never the product's speed.
`--all-paths` also times the paths the machine turns down (bf16 without native units:
~10x slower on an AVX2-only CPU). `--profile` adds torch.profiler's per-operator table of
both eager models.
"""

from __future__ import annotations

import argparse
import statistics
import time
from dataclasses import dataclass

import torch

from vit_demo.data import DATASETS, DatasetNotFoundError, load_split, normalize
from vit_demo.model import ViT, ViTConfig
from vit_demo.step import (
    EAGER_FP32,
    BatchSplitter,
    Machine,
    StepPath,
    TrainingForward,
    configure_threads,
    forward_backward,
    plan_step,
    synchronize,
)

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
    device: torch.device
    threads: int  # torch threads per operator
    flops_per_image: int  # the matrix products of forward + backward
    path: StepPath = EAGER_FP32
    splitter: BatchSplitter | None = None

    def __post_init__(self) -> None:
        self.model.to(self.device)
        self.optimizer = torch.optim.AdamW(self.model.parameters(), lr=1e-3, weight_decay=0.05, fused=True)
        self.forward = TrainingForward(self.model, self.device, compile=self.path.compile, bf16=self.path.bf16)


def timed_steps(run: Run, images, labels, batch_size: int, steps: int, offset: int) -> float:
    """Seconds for `steps` training steps."""
    spec = DATASETS["mnist"]
    torch.set_num_threads(run.threads)
    run.model.train()
    n = len(images)
    synchronize(run.device)
    started = time.perf_counter()
    for i in range(steps):
        first = ((offset + i) * batch_size) % (n - batch_size)
        batch = normalize(images[first : first + batch_size], spec)
        run.optimizer.zero_grad(set_to_none=True)
        forward_backward(run.forward, batch, labels[first : first + batch_size], splitter=run.splitter)
        run.optimizer.step()
    synchronize(run.device)
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
    parser.add_argument("--device", default="cpu", help="cpu, cuda or mps")
    parser.add_argument("--no-compile", action="store_true", help="leave out the compiled paths")
    parser.add_argument("--all-paths", action="store_true", help="also time the paths this machine turns down")
    parser.add_argument("--profile", action="store_true", help="also print a per-operator profile of both models")
    args = parser.parse_args()

    from vit_pytorch import ViT as LucidrainsViT

    configure_threads(args.threads)
    threads = torch.get_num_threads()
    device = torch.device(args.device)
    machine = Machine.detect(device)
    print(machine.describe())
    paths, notes = plan_step(machine, compile=False if args.no_compile else None, bf16=None)
    turned_down = []
    if args.all_paths:
        every = [EAGER_FP32, StepPath(False, True)] + (
            [] if args.no_compile else [StepPath(True, False), StepPath(True, True)]
        )
        turned_down = [p for p in every if p not in paths]
    for note in notes:
        print(f"  {note}")

    images, labels, source = training_images(args.batch_size * 64)
    images, labels = images.to(device), labels.to(device)
    config = ViTConfig(**HYPERPARAMETERS)
    ours, theirs = 3 * config.forward_flops(cls_only=True), 3 * config.forward_flops()

    def our_model() -> ViT:
        torch.manual_seed(0)
        return ViT(ViTConfig(**HYPERPARAMETERS))

    def their_model() -> torch.nn.Module:
        torch.manual_seed(0)
        return LucidrainsViT(**HYPERPARAMETERS, dim_head=16)

    runs = {f"vit_demo {p.name}": Run(our_model(), device, threads, ours, p) for p in paths}
    runs |= {f"vit_demo {p.name} (turned down here)": Run(our_model(), device, threads, ours, p) for p in turned_down}
    runs["vit-pytorch eager fp32"] = Run(their_model(), device, threads, theirs)
    app_splitter = BatchSplitter(workers=2, threads_per_worker=1) if device.type == "cpu" and threads >= 2 else None
    if app_splitter is not None:
        runs |= {
            "app: vit_demo, split": Run(our_model(), device, 1, ours, splitter=app_splitter),
            "app: vit_demo, plain": Run(our_model(), device, 1, ours),
            "app: vit-pytorch, plain": Run(their_model(), device, 1, theirs),
        }

    print(f"torch {torch.__version__}, {threads} threads, data: {source}")
    print(f"batch {args.batch_size}, {args.steps} steps x {args.rounds} rounds per run, alternating")
    print(f"  vit_demo     {sum(p.numel() for p in our_model().parameters()):,} parameters")
    print(f"  vit-pytorch  {sum(p.numel() for p in their_model().parameters()):,} parameters")

    def warm(name: str, run: Run) -> bool:
        torch.set_num_threads(run.threads)
        started = time.perf_counter()
        problem = run.forward.warm_up(
            normalize(images[: args.batch_size], DATASETS["mnist"]), labels[: args.batch_size]
        )
        if problem:
            print(f"  {name}: {problem}; left out")
            return False
        if run.path.compile:
            print(
                f"  {name}: compiled in {time.perf_counter() - started:.1f} s "
                "(Inductor's on-disk cache makes later runs quicker)"
            )
        timed_steps(run, images, labels, args.batch_size, 5, 0)  # allocators and kernels
        return True

    runs = {name: run for name, run in runs.items() if warm(name, run)}

    def median_rates(selected: dict[str, Run]) -> dict[str, float]:
        rates: dict[str, list[float]] = {name: [] for name in selected}
        for round_index in range(args.rounds):
            for name, run in selected.items():
                seconds = timed_steps(run, images, labels, args.batch_size, args.steps, round_index * args.steps)
                rates[name].append(args.steps * args.batch_size / seconds)
        for name, values in rates.items():
            spread = f"{min(values):,.0f}-{max(values):,.0f}"
            gflops = statistics.median(values) * selected[name].flops_per_image / 1e9
            print(f"{name:42s} {statistics.median(values):8,.0f} images/s (rounds {spread})  {gflops:6.1f} GFLOP/s")
        return {name: statistics.median(values) for name, values in rates.items()}

    medians = median_rates(runs)
    ours_offered = {
        name: medians[name] for name in medians if name.startswith("vit_demo ") and "turned down" not in name
    }
    best = max(ours_offered, key=ours_offered.get)
    best_path = runs[best].path
    if best_path != EAGER_FP32:
        fair = Run(their_model(), device, threads, theirs, best_path)
        name = f"vit-pytorch {best_path.name}"
        if warm(name, fair):
            medians |= median_rates({name: fair, "vit-pytorch eager fp32": runs["vit-pytorch eager fp32"]})
            print(f"ratio, both {best_path.name}: {ours_offered[best] / medians[name]:.2f}")
    if args.profile:
        for name in (f"vit_demo {EAGER_FP32.name}", "vit-pytorch eager fp32"):
            print(f"\n{name}, 20 steps, by operator:\n" + profile_table(runs[name], images, labels, args.batch_size))
    if app_splitter is not None:
        app_splitter.close()

    print(f"ratio, both eager fp32: {medians[f'vit_demo {EAGER_FP32.name}'] / medians['vit-pytorch eager fp32']:.2f}")
    print(f"fastest path here: {best}")
    print(f"ratio: {ours_offered[best] / medians['vit-pytorch eager fp32']:.2f}")


if __name__ == "__main__":
    main()
