"""Training throughput of vit_demo's ViT against lucidrains' vit-pytorch, like with like.

    python -m benchmarks.train_throughput [--rounds 5] [--steps 30] [--batch-size 128] [--threads N]
                                          [--device cpu|cuda|mps] [--no-compile] [--all-paths] [--profile]

Both models get the same hyperparameters (image 28, patch 7, dim 64, depth 4, heads 4,
mlp_dim 128; vit-pytorch with dim_head=16 so both are the same size), the same optimizer
(AdamW, fused), the same in-memory MNIST tensor (random pixels if the data is absent) and
the same batch per optimizer step. Both models get every step path this machine offers
(step.plan_step: eager fp32 always; bf16 where it is native; compiled where there is a
compiler), so each path is timed for ours and theirs:

    vit_demo <path>               our model on that path
    vit-pytorch <path>            their model on the same path
    app: ...                      one torch thread per op, as the app's training process
                                  runs on two cores: the batch split across two worker
                                  threads (step.BatchSplitter), and plain steps that leave
                                  the second core idle, for both models

Everything is timed in one phase: every run once per round, the rounds alternating (the
order reversed every other round), so that a shared machine's drift hits all runs alike;
each run's median round is printed, and every ratio is worked out from those printed
figures. The first line names the machine, the next ones the model. The ratio lines:

    vit_demo eager fp32 / vit-pytorch eager fp32        the models alone, plain step
    vit_demo fastest (<path>) / vit-pytorch fastest (<path>)
                                                        each model on its own fastest path here
    app, 1 thread per op: ...                           the app's rows

GFLOP/s counts the matrix products each model computes in forward + backward
(3x ViTConfig.forward_flops; ours skips the last block's patch queries, see
Transformer.forward). `--all-paths` also times the paths the machine turns down (bf16
without native units: ~10x slower on an AVX2-only CPU), for both models; they never count as
the fastest. `--profile` adds torch.profiler's per-operator table of both eager models.
"""

from __future__ import annotations

import argparse
import statistics
import time
from dataclasses import dataclass

import torch

from vit_demo.data import DATASETS, DatasetNotFoundError, load_split, normalize
from vit_demo.machine import Machine, configure_threads, synchronize
from vit_demo.model import ViT, ViTConfig
from vit_demo.step import EAGER_FP32, BatchSplitter, StepPath, TrainingForward, forward_backward, plan_step

HYPERPARAMETERS = dict(image_size=28, patch_size=7, num_classes=10, dim=64, depth=4, heads=4, mlp_dim=128, channels=1)
OURS, THEIRS = "vit_demo", "vit-pytorch"
TURNED_DOWN = " (turned down here)"


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--steps", type=int, default=30, help="training steps per round")
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--threads", type=int, help="CPU threads (default: all cores)")
    parser.add_argument("--device", default="cpu", help="cpu, cuda or mps")
    parser.add_argument("--no-compile", action="store_true", help="leave out the compiled paths")
    parser.add_argument("--all-paths", action="store_true", help="also time the paths this machine turns down")
    parser.add_argument("--profile", action="store_true", help="also print a per-operator profile of both models")
    return parser.parse_args()


def training_images(limit: int) -> tuple[torch.Tensor, torch.Tensor, str]:
    try:
        split = load_split("mnist", train=True, limit=limit)
        return split.images, split.labels, "MNIST"
    except DatasetNotFoundError:
        generator = torch.Generator().manual_seed(0)
        images = torch.randint(0, 256, (limit, 1, 28, 28), dtype=torch.uint8, generator=generator)
        return images, torch.randint(0, 10, (limit,), generator=generator), "random pixels (MNIST not found)"


def make_model(which: str) -> torch.nn.Module:
    torch.manual_seed(0)
    if which == OURS:
        return ViT(ViTConfig(**HYPERPARAMETERS))
    from vit_pytorch import ViT as LucidrainsViT

    return LucidrainsViT(**HYPERPARAMETERS, dim_head=16)


def flops_per_image(which: str) -> int:
    """The matrix products of forward + backward for one image."""
    return 3 * ViTConfig(**HYPERPARAMETERS).forward_flops(cls_only=which == OURS)


@dataclass
class Run:
    which: str  # OURS or THEIRS
    device: torch.device
    threads: int  # torch threads per operator
    path: StepPath = EAGER_FP32
    splitter: BatchSplitter | None = None
    offered: bool = True  # a path this machine offers (not only timed for --all-paths)

    def __post_init__(self) -> None:
        self.model = make_model(self.which).to(self.device)
        self.optimizer = torch.optim.AdamW(self.model.parameters(), lr=1e-3, weight_decay=0.05, fused=True)
        self.forward = TrainingForward(self.model, self.device, compile=self.path.compile, bf16=self.path.bf16)


@dataclass
class Bench:
    images: torch.Tensor
    labels: torch.Tensor
    batch_size: int
    steps: int
    rounds: int

    def batch(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        first = (index * self.batch_size) % (len(self.images) - self.batch_size)
        end = first + self.batch_size
        return normalize(self.images[first:end], DATASETS["mnist"]), self.labels[first:end]


def timed_steps(run: Run, bench: Bench, steps: int, offset: int) -> float:
    """Seconds for `steps` training steps."""
    torch.set_num_threads(run.threads)
    run.model.train()
    synchronize(run.device)
    started = time.perf_counter()
    for i in range(steps):
        images, labels = bench.batch(offset + i)
        run.optimizer.zero_grad(set_to_none=True)
        forward_backward(run.forward, images, labels, splitter=run.splitter)
        run.optimizer.step()
    synchronize(run.device)
    return time.perf_counter() - started


def profile_table(run: Run, bench: Bench) -> str:
    from torch.profiler import profile

    with profile() as profiler:
        timed_steps(run, bench, 20, 0)
    return profiler.key_averages().table(sort_by="self_cpu_time_total", row_limit=15)


def step_paths(machine: Machine, no_compile: bool, all_paths: bool) -> tuple[list[StepPath], list[StepPath], list[str]]:
    """The paths this machine offers, those it turns down (timed only for --all-paths), and its notes."""
    offered, notes = plan_step(machine, compile=False if no_compile else None, bf16=None)
    if not all_paths:
        return offered, [], notes
    every = [EAGER_FP32, StepPath(False, True)] + ([] if no_compile else [StepPath(True, False), StepPath(True, True)])
    return offered, [p for p in every if p not in offered], notes


def build_runs(device: torch.device, threads: int, offered: list[StepPath], turned_down: list[StepPath]) -> dict:
    """Every run, ours and theirs side by side for each path, then the app's one-thread rows."""
    runs: dict[str, Run] = {}
    for path in offered + turned_down:
        suffix = "" if path in offered else TURNED_DOWN
        for which in (OURS, THEIRS):
            runs[f"{which} {path.name}{suffix}"] = Run(which, device, threads, path, offered=path in offered)
    if device.type == "cpu" and threads >= 2:
        splitter = BatchSplitter(workers=2, threads_per_worker=1)
        runs["app: vit_demo, split"] = Run(OURS, device, 1, splitter=splitter, offered=False)
        runs["app: vit-pytorch, split"] = Run(THEIRS, device, 1, splitter=splitter, offered=False)
        runs["app: vit_demo, plain"] = Run(OURS, device, 1, offered=False)
        runs["app: vit-pytorch, plain"] = Run(THEIRS, device, 1, offered=False)
    return runs


def warm(name: str, run: Run, bench: Bench) -> bool:
    """Compile (where the path compiles) and run a few steps; False if the path cannot run here."""
    torch.set_num_threads(run.threads)
    started = time.perf_counter()
    problem = run.forward.warm_up(*bench.batch(0))
    if problem:
        print(f"  {name}: {problem}; left out")
        return False
    if run.path.compile:
        seconds = time.perf_counter() - started
        print(f"  {name}: compiled in {seconds:.1f} s (Inductor's on-disk cache makes later runs quicker)")
    timed_steps(run, bench, 5, 0)  # allocators and kernels
    return True


def time_rounds(runs: dict[str, Run], bench: Bench) -> dict[str, list[float]]:
    """images/s of every run in every round; the order is reversed every other round."""
    rates: dict[str, list[float]] = {name: [] for name in runs}
    names = list(runs)
    for round_index in range(bench.rounds):
        for name in names if round_index % 2 == 0 else reversed(names):
            seconds = timed_steps(runs[name], bench, bench.steps, round_index * bench.steps)
            rates[name].append(bench.steps * bench.batch_size / seconds)
    return rates


def print_rates(runs: dict[str, Run], rates: dict[str, list[float]]) -> dict[str, int]:
    """One line per run; returns the medians as printed (whole images/s)."""
    printed = {}
    for name, values in rates.items():
        median = round(statistics.median(values))
        gflops = median * flops_per_image(runs[name].which) / 1e9
        spread = f"{min(values):,.0f}-{max(values):,.0f}"
        print(f"{name:38s} {median:7,} images/s (rounds {spread:>13s})  {gflops:6.1f} GFLOP/s")
        printed[name] = median
    return printed


def ratio_line(label: str, numerator: int, denominator: int) -> str:
    return f"ratio, {label}: {numerator:,} / {denominator:,} = {numerator / denominator:.2f}"


def fastest(runs: dict[str, Run], medians: dict[str, int], which: str) -> str:
    """The name of `which` model's fastest run among the paths this machine offers."""
    return max((n for n in medians if runs[n].which == which and runs[n].offered), key=medians.get)


def print_ratios(runs: dict[str, Run], medians: dict[str, int]) -> None:
    plain = EAGER_FP32.name
    print(ratio_line(f"{OURS} {plain} / {THEIRS} {plain}", medians[f"{OURS} {plain}"], medians[f"{THEIRS} {plain}"]))
    ours, theirs = fastest(runs, medians, OURS), fastest(runs, medians, THEIRS)
    label = f"{OURS} fastest ({runs[ours].path.name}) / {THEIRS} fastest ({runs[theirs].path.name})"
    print(ratio_line(label, medians[ours], medians[theirs]))
    if "app: vit_demo, plain" in medians:
        for kind in ("plain", "split"):
            label = f"app, 1 thread per op: {OURS} {kind} / {THEIRS} {kind}"
            print(ratio_line(label, medians[f"app: {OURS}, {kind}"], medians[f"app: {THEIRS}, {kind}"]))
        label = f"app, 1 thread per op: {OURS} split / {OURS} plain"
        print(ratio_line(label, medians[f"app: {OURS}, split"], medians[f"app: {OURS}, plain"]))


def print_header(machine: Machine, threads: int, source: str, bench: Bench) -> None:
    print(machine.describe())
    h = HYPERPARAMETERS
    print(
        f"model: image {h['image_size']}, patch {h['patch_size']}, dim {h['dim']}, depth {h['depth']}, "
        f"heads {h['heads']}, mlp {h['mlp_dim']} (vit-pytorch: dim_head {h['dim'] // h['heads']}); "
        f"batch {bench.batch_size}"
    )
    print(f"  {OURS:12s} {sum(p.numel() for p in make_model(OURS).parameters()):,} parameters")
    print(f"  {THEIRS:12s} {sum(p.numel() for p in make_model(THEIRS).parameters()):,} parameters")
    print(f"torch {torch.__version__}, {threads} threads, data: {source}")
    print(f"{bench.steps} steps x {bench.rounds} rounds per run, one phase, every run in every round, alternating")


def main() -> None:
    args = parse_args()
    configure_threads(args.threads)
    threads = torch.get_num_threads()
    device = torch.device(args.device)
    machine = Machine.detect(device)
    images, labels, source = training_images(args.batch_size * 64)
    bench = Bench(images.to(device), labels.to(device), args.batch_size, args.steps, args.rounds)
    print_header(machine, threads, source, bench)
    offered, turned_down, notes = step_paths(machine, args.no_compile, args.all_paths)
    for note in notes:
        print(f"  {note}")
    print(f"paths offered here: {', '.join(p.name for p in offered)}; each timed for both models")

    built = build_runs(device, threads, offered, turned_down)
    runs = {name: run for name, run in built.items() if warm(name, run, bench)}
    medians = print_rates(runs, time_rounds(runs, bench))
    print_ratios(runs, medians)
    if args.profile:
        for which in (OURS, THEIRS):
            name = f"{which} {EAGER_FP32.name}"
            print(f"\n{name}, 20 steps, by operator:\n" + profile_table(runs[name], bench))
    splitters = {id(run.splitter): run.splitter for run in built.values() if run.splitter is not None}
    for splitter in splitters.values():
        splitter.close()


if __name__ == "__main__":
    main()
