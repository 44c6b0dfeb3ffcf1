"""How far a plan made from a few seconds of timing is from the speed a run then trains at,
on this machine: a shared virtual machine's speed wanders over tens of seconds.

    python benchmarks/speed_drift.py [--dataset mnist] [--seconds 300] [--every 15]

Every recipe candidate of the dataset is timed in turn, 0.4 s each, as the app takes its
readings (`planning.measure_speeds`, the batch split over the cores where they allow), over
and over for `--seconds`. Each shape's mean over the whole time stands for the speed a run of
it trains at. Printed, for the first candidate (the lesson's shape) and all of them together:
how far from that mean (5th, 50th, 95th percentile, and the worst) a plan is when it rests on

- one reading, as a plan from the start-up timing alone does, and
- the mean of `planning.SPEED_READINGS`-many readings `--every` seconds apart, as the app's
  re-timing while idle gathers them (vit_demo/ui: one shape at a time, a pause between).

Each start time along the trace gives one plan of each kind. Costs `--seconds` of both cores.
"""

from __future__ import annotations

import argparse
import statistics
import time

from vit_demo import planning
from vit_demo.harness import percentile
from vit_demo.recipes import recipe_for
from vit_demo.step import Machine, configure_threads, server_threads


def percentiles(errors: list[float]) -> str:
    p5, p50, p95 = (percentile(errors, q) for q in (0.05, 0.5, 0.95))
    worst = max(errors, key=abs)
    return f"p5 {p5:+6.1%}  p50 {p50:+6.1%}  p95 {p95:+6.1%}  worst {worst:+6.1%}  ({len(errors)} plans)"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--dataset", default="mnist")
    parser.add_argument("--seconds", type=float, default=300)
    parser.add_argument("--every", type=float, default=15, help="seconds between two readings of one shape")
    args = parser.parse_args()

    configure_threads(server_threads())  # as the app's training process
    print(Machine.detect().describe())
    candidates = recipe_for(args.dataset).candidates
    readings: dict[str, list[tuple[float, float]]] = {c.name: [] for c in candidates}  # (when, images/s)
    started = time.monotonic()
    while time.monotonic() - started < args.seconds:
        for candidate in candidates:
            (speeds,) = planning.measure_speeds(args.dataset, (candidate,), rounds=1)
            readings[candidate.name].append((time.monotonic() - started, speeds[candidate.name]))

    def errors(name: str, count: int) -> tuple[list[float], list[float]]:
        series = readings[name]
        mean = statistics.fmean(speed for _, speed in series)
        one, spread = [], []
        for first, (when, speed) in enumerate(series):
            one.append(speed / mean - 1)
            chosen, due = [], when
            for later, speed_then in series[first:]:
                if later >= due:
                    chosen.append(speed_then)
                    due = later + args.every
                if len(chosen) == count:
                    spread.append(statistics.fmean(chosen) / mean - 1)
                    break
        return one, spread

    lesson = candidates[0].name
    print(f"{args.seconds:g} s, {len(readings[lesson])} readings of each of {len(candidates)} shapes")
    print(f"{lesson}: mean {statistics.fmean(s for _, s in readings[lesson]):,.0f} images/s")
    every = {name: errors(name, planning.SPEED_READINGS) for name in readings}
    for label, index in (
        ("one reading (start-up alone)", 0),
        (f"{planning.SPEED_READINGS} readings {args.every:g} s apart", 1),
    ):
        print(f"  {label}")
        print(f"    {lesson:32}  {percentiles(every[lesson][index])}")
        print(f"    {'all shapes':32}  {percentiles([e for pair in every.values() for e in pair[index]])}")


if __name__ == "__main__":
    main()
