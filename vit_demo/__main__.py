"""Train a ViT from the command line and save it as a checkpoint folder.

    python -m vit_demo --dataset mnist --time-budget 60 --out runs/mnist-60s

Model and training defaults come from the dataset's recipe (`vit_demo.recipes`); any flag
overrides them. A `--time-budget` run that names no model, batch size or learning rate is
planned for this machine: every candidate of the recipe is timed here for about half a second, and
the one whose measured accuracy is best for the images the budget buys is trained
(`vit_demo.speed.plan_for_budget`).
"""

from __future__ import annotations

import argparse
import sys
import time

from . import checkpoints, speed
from .data import DATASETS, DatasetCorruptError, DatasetNotFoundError
from .machine import configure_threads
from .model import SHAPE_FIELDS, ViT
from .recipes import Candidate, recipe_for
from .training import TrainConfig, checkpoint_info, create_model, train


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m vit_demo", description=__doc__.split("\n\n")[0])
    parser.add_argument("--dataset", choices=sorted(DATASETS), default="mnist")
    length = parser.add_mutually_exclusive_group()
    length.add_argument("--epochs", type=float, help="train for this many passes over the training set")
    length.add_argument("--time-budget", type=float, metavar="SECONDS", help="train for this many seconds of wall time")
    for name in SHAPE_FIELDS:
        parser.add_argument(f"--{name.replace('_', '-')}", type=int, dest=name)
    parser.add_argument("--batch-size", type=int)
    parser.add_argument("--lr", type=float, help="peak learning rate")
    parser.add_argument("--weight-decay", type=float)
    parser.add_argument("--warmup", type=float, help="fraction of the run spent warming up the learning rate")
    parser.add_argument("--label-smoothing", type=float)
    parser.add_argument("--no-augment", action="store_true", help="train on the images as they are")
    parser.add_argument(
        "--shift",
        type=int,
        metavar="PIXELS",
        dest="augment_shift",
        help="augment with random shifts of up to this many pixels (default: the dataset's)",
    )
    parser.add_argument(
        "--flip",
        action=argparse.BooleanOptionalAction,
        dest="augment_flip",
        help="augment with random horizontal flips (default: the dataset's)",
    )
    parser.add_argument(
        "--compile",
        action=argparse.BooleanOptionalAction,
        help="compile the training step with TorchInductor (needs a C++ compiler; ~20 s the first time). "
        "Default: only for runs of 5 minutes or more, kept only if it is faster here",
    )
    parser.add_argument(
        "--bf16",
        action=argparse.BooleanOptionalAction,
        help="train in bfloat16 autocast. Default: tried only where the CPU multiplies bfloat16 natively "
        "(AVX512-BF16 or AMX) or on a GPU that does; kept only if faster here",
    )
    parser.add_argument(
        "--force-step",
        action="store_true",
        help="take --compile/--bf16 exactly as given, even where this machine makes them slower",
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--train-limit", type=int, help="use only the first N training images")
    parser.add_argument(
        "--data-dir", help="folder holding the datasets (default: $VIT_DEMO_DATA, else a per-user cache)"
    )
    parser.add_argument("--threads", type=int, help="CPU threads (default: all cores)")
    parser.add_argument("--device", help="cpu, cuda or mps (default: the fastest present)")
    parser.add_argument("--out", required=True, help="folder to write the checkpoint to")
    return parser.parse_args(argv)


def plan_for_budget(dataset: str, seconds: float, device: str | None) -> tuple[Candidate, str]:
    """The recipe candidate this machine trains best in `seconds`, and a line that says why."""
    candidates = recipe_for(dataset).candidates
    plan = speed.plan_for_budget(dataset, seconds, candidates, device)
    expected = plan.expected.describe() if plan.expected else "not measured"
    return plan.candidate, (
        f"plan: {plan.candidate.name}, the best of {len(candidates)} candidates timed here for "
        f"{seconds:g} s: {plan.images_per_second:,.0f} images/s, expected test accuracy {expected}"
    )


def build_run(args: argparse.Namespace) -> tuple[TrainConfig, ViT]:
    """The training settings and the fresh model the flags ask for (a ValueError says what is
    wrong): the dataset's recipe, with each flag given in its place; with --time-budget and no
    shape, the shape that trains best here in that time."""
    recipe = recipe_for(args.dataset)
    shape_given = any(getattr(args, name) is not None for name in (*SHAPE_FIELDS, "batch_size", "lr"))
    if args.time_budget is not None and not shape_given:
        candidate, line = plan_for_budget(args.dataset, args.time_budget, args.device)
        print(line, flush=True)
        for name, value in {**candidate.shape, "batch_size": candidate.batch_size, "lr": candidate.lr}.items():
            setattr(args, name, value)
    model_settings = {name: getattr(args, name) or recipe.shape[name] for name in SHAPE_FIELDS}
    given = ("batch_size", "lr", "weight_decay", "warmup", "label_smoothing")
    training_settings = {**recipe.training, **{k: getattr(args, k) for k in given if getattr(args, k) is not None}}
    epochs = args.epochs if args.epochs is not None or args.time_budget is not None else recipe.epochs
    config = TrainConfig(
        dataset=args.dataset,
        epochs=epochs,
        time_budget=args.time_budget,
        augment=not args.no_augment,
        augment_shift=args.augment_shift,
        augment_flip=args.augment_flip,
        compile=args.compile,
        bf16=args.bf16,
        force_step=args.force_step,
        seed=args.seed,
        data_dir=args.data_dir,
        train_limit=args.train_limit,
        device=args.device,
        **training_settings,
    )
    return config, create_model(args.dataset, seed=args.seed, **model_settings)


def follow(model: ViT, config: TrainConfig):
    """Train, with a progress bar on a terminal (one line per evaluation elsewhere); the last report."""
    from tqdm import tqdm

    bar = tqdm(total=1000, unit="‰", bar_format="{l_bar}{bar}| {elapsed}<{remaining} {postfix}", disable=None)
    last = None
    try:
        for last in train(model, config):
            for note in last.notes:
                bar.write(f"note: {note}", file=sys.stderr)
            bar.n = round(last.fraction * 1000)
            postfix = f"ep {last.epoch:.2f} loss {last.train_loss:.3f} {last.images_per_second:,.0f} img/s"
            if last.test_accuracy is not None:
                postfix += f" test {last.test_accuracy:.2%}"
            bar.set_postfix_str(postfix, refresh=False)
            bar.refresh()
            if bar.disable and last.evaluated:  # not a terminal (a log file, CI): one line per evaluation
                print(f"{last.fraction:6.1%} {last.elapsed:7.1f}s  {postfix}", flush=True)
    finally:
        bar.close()
    return last


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    configure_threads(args.threads)
    try:
        config, model = build_run(args)
    except ValueError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    started = time.perf_counter()
    try:
        last = follow(model, config)
    except (DatasetNotFoundError, DatasetCorruptError, ValueError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    wall = time.perf_counter() - started
    command = "python -m vit_demo " + " ".join(argv if argv is not None else sys.argv[1:])
    info = checkpoint_info(config, last, seconds=round(wall, 1), command=command)
    checkpoints.save(model, args.out, info)
    print(
        f"test accuracy {last.test_accuracy:.2%} on {last.final_test_images:,} test images | "
        f"{last.step} steps, {last.epoch:.2f} epochs in {wall:.1f} s | saved to {args.out}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
