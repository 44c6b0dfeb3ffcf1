"""A soak: many tabs that each start a run and close mid-run, against `python app.py` on
127.0.0.1, in headless Chromium. What a closed tab leaves behind must go: its run, its live
state and, after the grace period, its files.

    VIT_DEMO_DATA=../shared/data python -m benchmarks.soak [--tabs 200] [--parallel 4]

Each tab opens a lesson link with its own seed (so no two share a run), presses Start, waits
until its run trains or waits in line, and closes. The server trains on 2,048 images. Printed:
the CPU line; the server's RSS and the work folder's size after a warm-up of `--warm-up` tabs
(the baseline: imports, the first pictures drawn, and the finished-run cache filled to its
bound of 16 runs), after every `--every` tabs (a leak grows with them, a bound levels off), and
once the sweep has removed the pages' files (the grace period is 120 s, the sweep runs every
minute: bounded by --settle seconds).
"""

from __future__ import annotations

import argparse
import asyncio
import re
import tempfile
import time
from pathlib import Path

import torch
from playwright.async_api import async_playwright

from tools.harness import CHROMIUM_FLAGS, VIEWPORT, AppProcess, chromium_path
from vit_demo.machine import Machine
from vit_demo.service.workfolder import PAGE_KINDS, folder_bytes

# what #train-status says once a run trains or waits its turn (or, on a fast machine, has ended)
STARTED = re.compile("Training|in line|Test accuracy")


async def one_tab(browser, url: str, seed: int) -> None:
    context = await browser.new_context(viewport=VIEWPORT)
    try:
        page = await context.new_page()
        await page.goto(f"{url}?dataset=mnist&preset=quick&seed={seed}", timeout=60_000)
        await page.locator("#build-start").click(timeout=60_000)
        await page.locator("#train-status").get_by_text(STARTED).first.wait_for(timeout=60_000)
    finally:
        await context.close()  # the tab goes mid-run, as a student's does


async def tabs(url: str, seeds: range, parallel: int) -> int:
    """Open, start and close a tab per seed, `parallel` at a time; how many failed."""
    failed = 0
    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(executable_path=chromium_path(), args=list(CHROMIUM_FLAGS))
        slots = asyncio.Semaphore(parallel)

        async def bounded(seed: int) -> None:
            nonlocal failed
            async with slots:
                try:
                    await one_tab(browser, url, seed)
                except Exception as error:  # noqa: BLE001 - counted and shown, the soak goes on
                    failed += 1
                    print(f"  tab {seed}: {type(error).__name__}: {str(error)[:120]}", flush=True)

        await asyncio.gather(*(bounded(seed) for seed in seeds))
        await browser.close()
    return failed


def pages_left(work: Path) -> int:
    return sum(len(list((work / kind).glob("*"))) for kind in PAGE_KINDS)


def reading(label: str, server: AppProcess, work: Path, started: float) -> None:
    print(
        f"{label:32} {time.monotonic() - started:6.0f} s  server RSS {server.rss() / 2**20:6.0f} MB  "
        f"work folder {folder_bytes(work) / 2**20:6.1f} MB  pages' files {pages_left(work):4}",
        flush=True,
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tabs", type=int, default=200)
    parser.add_argument("--parallel", type=int, default=4)
    parser.add_argument("--warm-up", type=int, default=20)
    parser.add_argument("--every", type=int, default=50)
    parser.add_argument("--settle", type=float, default=300, help="seconds to wait for the sweep, at most")
    args = parser.parse_args()
    print(Machine.detect(torch.device("cpu")).describe(), flush=True)
    with tempfile.TemporaryDirectory() as folder:
        work = Path(folder) / "work"
        env = {"VIT_DEMO_WORK_DIR": str(work), "VIT_DEMO_TRAIN_LIMIT": "2048", "VIT_DEMO_TEST_LIMIT": "500"}
        with AppProcess(env, log=Path(folder) / "server.log") as server:
            started = time.monotonic()
            server.wait_ready()
            failed = asyncio.run(tabs(server.url, range(args.warm_up), args.parallel))
            reading(f"after a warm-up of {args.warm_up} tabs", server, work, started)
            for done in range(0, args.tabs, args.every):
                seeds = range(args.warm_up + done, args.warm_up + min(done + args.every, args.tabs))
                failed += asyncio.run(tabs(server.url, seeds, args.parallel))
                reading(f"after {seeds.stop - args.warm_up} tabs closed mid-run", server, work, started)
            deadline = time.monotonic() + args.settle
            while pages_left(work) and time.monotonic() < deadline:
                time.sleep(5)
            reading("after the sweep", server, work, started)
            print(f"tabs that failed: {failed} of {args.warm_up + args.tabs}", flush=True)


if __name__ == "__main__":
    main()
