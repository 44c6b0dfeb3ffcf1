"""A preset trained live in the app, against the same run without the UI, in one session.

    VIT_DEMO_DATA=../shared/data python -m benchmarks.live_training [--dataset mnist] [--preset quick]
                                                                     [--via client browser] [--rounds 1]

1. The preset's knobs are fixed for both runs below.
2. Without the UI: the run as benchmarks/app_presets.py trains it (the app's TrainConfig and
   threads).
3. In the app: `python app.py` started on a free port, the same knobs trained through
   gradio_client (`--via client`) and/or by headless Chromium pressing Start on a page
   opened with a teacher link that sets them (`--via browser`, Debian's chromium), each
   app run with a seed of its own (the server would share a run it has already trained).

For each app run it prints the images/s and test accuracy the app reported, the ratio to
the run without the UI, and where the CPU went during the run: seconds of CPU time used
by the training process, by the server process (drawing figures, sending updates), and by
the browser, out of the run's wall time times the cores.
"""

from __future__ import annotations

import argparse
import re
import sys
import tempfile
import time
from pathlib import Path
from urllib.parse import urlencode

import psutil
import torch
from app_presets import app_threads, without_ui

from tools.harness import VIEWPORT, AppProcess, chromium_path, launch_chromium
from vit_demo.machine import Machine, available_cores
from vit_demo.recipes import recipe_for
from vit_demo.service.knobs import Knobs

STATUS, METRICS = 0, 2  # where "/train" returns the status and the metrics line


class CpuClock:
    """CPU seconds used by groups of processes between `start` and `stop`."""

    def __init__(self, groups: dict[str, callable]):
        self.groups = groups  # name -> function returning the group's processes now

    @staticmethod
    def _seconds(processes) -> dict[int, float]:
        times = {}
        for process in processes:
            try:
                t = process.cpu_times()
                times[process.pid] = t.user + t.system
            except psutil.Error:
                pass
        return times

    def start(self) -> None:
        self._before = {name: self._seconds(find()) for name, find in self.groups.items()}
        self._started = time.perf_counter()

    def stop(self) -> None:
        self.wall = time.perf_counter() - self._started
        self.used = {}
        for name, find in self.groups.items():
            after = self._seconds(find())
            self.used[name] = sum(t - self._before[name].get(pid, 0.0) for pid, t in after.items())


def read_result(status: str, metrics: str) -> tuple[float, float]:
    speed = float(re.search(r"([\d,]+) images/s", metrics).group(1).replace(",", ""))
    accuracy = float(re.search(r"Test accuracy: ([\d.]+)%", status).group(1)) / 100
    return speed, accuracy


def train_via_client(url: str, knobs: dict, clock: CpuClock) -> tuple[str, str]:
    from gradio_client import Client

    client = Client(url, verbose=False)
    clock.start()
    outputs = client.predict(**knobs, api_name="/train")
    clock.stop()
    return outputs[STATUS], outputs[METRICS]


def train_via_browser(url: str, knobs: dict, clock: CpuClock, screenshot: Path) -> tuple[str, str]:
    from playwright.sync_api import sync_playwright

    link = f"{url}?{urlencode({k: v for k, v in knobs.items()})}"
    with sync_playwright() as playwright:
        browser = launch_chromium(playwright)
        page = browser.new_page(viewport=VIEWPORT)
        page.goto(link, wait_until="domcontentloaded")
        # The summary is drawn from the controls once the lesson's knobs have landed.
        page.locator("#build-summary").get_by_text(f"{knobs['epochs']:g} epoch").wait_for(timeout=60_000)
        clock.start()
        page.locator("#build-start").click()
        status = page.locator("#train-status")
        status.get_by_text("Test accuracy:").wait_for(timeout=900_000)
        clock.stop()  # before the browser closes and its processes' times are gone
        page.wait_for_timeout(500)
        page.screenshot(path=str(screenshot), full_page=True)
        result = status.inner_text(), page.locator("#train-metrics").inner_text()
        browser.close()
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--dataset", default="mnist")
    parser.add_argument("--preset", default="quick", help="a preset's name")
    parser.add_argument("--via", nargs="+", default=["client", "browser"], choices=["client", "browser"])
    parser.add_argument("--rounds", type=int, default=1, help="times to repeat the whole comparison")
    parser.add_argument("--screenshot", default=str(Path(tempfile.gettempdir()) / "live_training.png"))
    args = parser.parse_args()
    if "browser" in args.via and chromium_path() is None:
        sys.exit("chromium is not installed (apt-get install chromium); use --via client")

    print(Machine.detect(torch.device("cpu")).describe())
    print(f"torch {torch.__version__}; app threads per operation: {app_threads()}")
    preset = recipe_for(args.dataset).preset(args.preset)
    print(f"{args.dataset}, {preset.label} ({preset.candidate.name})")

    server = AppProcess()
    try:
        server.wait_ready()
        url = server.url
        server_process = psutil.Process(server.pid)

        def training_processes():
            return [p for p in server_process.children(recursive=True) if "chrom" not in p.name()]

        def browsers():
            return [p for p in psutil.process_iter(["name"]) if "chrom" in (p.info["name"] or "")]

        clock = CpuClock(
            {"training process": training_processes, "server": lambda: [server_process], "browser": browsers}
        )
        cores = available_cores()
        for round_index in range(args.rounds):
            reference, _ = without_ui(Knobs.of_preset(args.dataset, preset))
            reference_speed, reference_accuracy = reference.images_per_second, reference.test_accuracy
            print(
                f"round {round_index + 1}: without the UI  {reference_speed:8,.0f} images/s  "
                f"{reference_accuracy:.2%} test accuracy"
            )
            for via_index, via in enumerate(args.via):
                # A seed of its own for each app run: the server shares a run whose settings it
                # has already trained, so a repeat would replay that run instead of training.
                seed = round_index * len(args.via) + via_index
                knobs = Knobs.of_preset(args.dataset, preset, seed=seed).values
                if via == "client":
                    status, metrics = train_via_client(url, knobs, clock)
                else:
                    status, metrics = train_via_browser(url, knobs, clock, Path(args.screenshot))
                speed, accuracy = read_result(status, metrics)
                split = ", ".join(f"{name} {seconds:.1f} s" for name, seconds in clock.used.items())
                print(
                    f"round {round_index + 1}: app via {via:7s} {speed:8,.0f} images/s  {accuracy:.2%} test accuracy  "
                    f"ratio {speed / reference_speed:.2f}"
                )
                print(f"    CPU over {clock.wall:.1f} s x {cores} cores: {split}")
        if "browser" in args.via:
            print(f"screenshot: {args.screenshot}")
    finally:
        server.stop()


if __name__ == "__main__":
    main()
