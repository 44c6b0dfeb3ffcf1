"""How long `python app.py` takes to answer its first page, as a user (or a Space) starts it.

    VIT_DEMO_DATA=../shared/data python -m benchmarks.first_page [--runs 3]

Each run starts the app in a process of its own on a free port, asks for the page until it
answers, and stops it. Printed: the CPU line, each run's seconds from the process's start to the
first answer, and the median.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
from pathlib import Path

import torch

from tools.harness import AppProcess
from vit_demo.machine import Machine


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    print(Machine.detect(torch.device("cpu")).describe(), flush=True)
    seconds = []
    with tempfile.TemporaryDirectory() as work:
        for run in range(args.runs):
            app = AppProcess(env={"VIT_DEMO_WORK_DIR": str(Path(work) / str(run))})
            try:
                seconds.append(app.wait_ready())
            finally:
                app.stop()
            print(f"run {run + 1}: first page after {seconds[-1]:.1f} s", flush=True)
    print(f"median {statistics.median(seconds):.1f} s over {args.runs} runs")


if __name__ == "__main__":
    main()
