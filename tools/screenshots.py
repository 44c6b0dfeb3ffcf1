"""Use the app like a student would and screenshot every tab, timing start-up and Explore.

    python -m tools.screenshots [--out runs/screenshots] [--epochs 4] [--size 1366x768]

Starts `python app.py` on a free port (the environment passes through, so
VIT_DEMO_CHECKPOINTS, VIT_DEMO_DATA and VIT_DEMO_TRAIN_LIMIT apply), reports how long
the page took to answer, drives Debian's chromium through playwright (Build, a real
training run of --epochs (the quick preset's model), Explore's every view, a drawing, Learn), saves one PNG per
step, and reports the Explore latencies: the server-side handler time (measured in this
process on the same checkpoints) and the round trip through gradio_client.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from dataclasses import asdict
from pathlib import Path

from tools.harness import REPO, AppProcess, launch_chromium


def explore_latency_in_process(runs: int) -> list[float]:
    """Server-side time of the Explore handler (prediction + rollout view), in ms."""
    from vit_demo.service.library import ModelLibrary
    from vit_demo.ui import AppSettings, configure_torch_threads
    from vit_demo.ui.explore_events import ExploreHandlers
    from vit_demo.views import ViewChoices

    settings = AppSettings.from_env(REPO)
    configure_torch_threads(settings)  # as app.py does
    explore = ExploreHandlers(ModelLibrary(settings.checkpoint_dir), settings.examples_dir)
    name = explore.library.default_name()
    page = dict(model=name, image=None, open_view="where", mine=None, uploaded=None, **asdict(ViewChoices()))
    times = []
    for _ in range(runs + 1):
        start = time.perf_counter()
        explore.explore(page)
        times.append(1000 * (time.perf_counter() - start))
    return times[1:]  # the first pays for lazy imports


def explore_latency_round_trip(url: str, runs: int) -> tuple[list[float], list[float]]:
    """Round trips through gradio_client of /explore and /predict, in ms."""
    from gradio_client import Client, handle_file

    client = Client(url, verbose=False)
    example = sorted((REPO / "examples" / "mnist").glob("*.png"))[0]
    explore, predict = [], []
    for _ in range(runs):
        start = time.perf_counter()
        client.predict(api_name="/explore")
        explore.append(1000 * (time.perf_counter() - start))
        start = time.perf_counter()
        client.predict(handle_file(str(example)), "mnist", api_name="/predict")
        predict.append(1000 * (time.perf_counter() - start))
    return explore, predict


def drive(url: str, out: Path, epochs: float, size: tuple[int, int]) -> None:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = launch_chromium(p)
        page = browser.new_page(viewport={"width": size[0], "height": size[1]})
        page.goto(url, wait_until="domcontentloaded")

        def shot(name: str) -> None:
            page.wait_for_timeout(600)  # let images and plots settle
            page.screenshot(path=str(out / f"{name}.png"))
            print(f"saved {out / name}.png")

        page.get_by_text("Your ViT").wait_for(timeout=30_000)
        shot("1-build")
        page.locator("#build-summary").scroll_into_view_if_needed()

        epochs_box = page.locator("#build-epochs input[type=number]")
        epochs_box.fill(f"{epochs:g}")
        epochs_box.press("Enter")
        page.locator("#build-summary").get_by_text(f"{epochs:g} epoch").wait_for(timeout=30_000)
        page.locator("#build-start").click()
        page.locator("#train-metrics").get_by_text("Step").or_(page.get_by_text("in line")).first.wait_for(
            timeout=60_000
        )
        page.locator("#train-progress progress").wait_for(timeout=60_000)
        page.wait_for_function(
            "() => Number(document.querySelector('#train-progress progress')?.value) >= 0.5", timeout=900_000
        )
        shot("2-train-live")
        page.locator("#train-status").get_by_text("Test accuracy:").wait_for(timeout=900_000)
        shot("3-train-done")

        page.get_by_role("tab", name="③ Explore").click()
        page.locator("#explore-label").get_by_text("Prediction").wait_for()
        page.locator("#explore-faithfulness img").wait_for(timeout=20_000)
        page.wait_for_timeout(1500)
        shot("4-explore-where")
        page.locator("#explore-method").get_by_text("Gradient × attention").click()
        page.wait_for_timeout(2000)
        shot("4-explore-where-gradient")
        for view, tab in (
            ("heads", "Each head"),
            ("tokens", "Tokens"),
            ("positions", "Positions"),
            ("distance", "Distance"),
            ("filters", "Filters"),
            ("maths", "The maths"),
        ):
            page.get_by_role("tab", name=tab).click()
            page.locator(f"#explore-{'cls' if view == 'heads' else view} img").wait_for(timeout=20_000)
            shot(f"5-explore-{view}")
        seen = page.locator("#explore-seen img")
        box = seen.bounding_box()
        page.mouse.click(box["x"] + box["width"] * 0.4, box["y"] + box["height"] * 0.6)  # a patch left of centre
        page.wait_for_timeout(2500)
        shot("5-explore-maths-clicked")
        page.get_by_role("tab", name="Each head").click()
        page.wait_for_timeout(1500)
        shot("5-explore-heads-clicked")
        page.get_by_role("tab", name="Where it looks").click()
        page.get_by_role("tab", name="Draw").click()
        canvas = page.locator("#explore-sketch canvas").first
        canvas.wait_for()
        box = canvas.bounding_box()
        stroke = [(0.3, 0.2), (0.7, 0.2), (0.45, 0.85)]  # a 7
        page.mouse.move(box["x"] + box["width"] * stroke[0][0], box["y"] + box["height"] * stroke[0][1])
        page.mouse.down()
        for x, y in stroke[1:]:
            page.mouse.move(box["x"] + box["width"] * x, box["y"] + box["height"] * y, steps=12)
        page.mouse.up()
        page.wait_for_timeout(2500)
        shot("6-explore-drawing")

        page.get_by_role("tab", name="④ Learn").click()
        page.get_by_text("The whole journey").first.wait_for()
        shot("7-learn")
        page.get_by_text("5 · Attention").click()
        shot("8-learn-attention")
        browser.close()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=REPO / "runs" / "screenshots")
    parser.add_argument("--epochs", type=float, default=4, help="length of the training run")
    parser.add_argument("--size", default="1366x768", help="browser window, WIDTHxHEIGHT")
    parser.add_argument("--runs", type=int, default=5, help="Explore requests timed")
    args = parser.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    size = tuple(int(v) for v in args.size.split("x"))

    app = AppProcess()
    try:
        print(f"start-up: the page answered {app.wait_ready():.1f} s after `python app.py`")
        drive(app.url, args.out, args.epochs, size)
        explore_trips, predict_trips = explore_latency_round_trip(app.url, args.runs)
    finally:
        app.stop()
    handler = explore_latency_in_process(args.runs)
    for name, times in (
        ("Explore handler (server side)", handler),
        ("/explore round trip", explore_trips),
        ("/predict round trip", predict_trips),
    ):
        print(f"{name}: median {statistics.median(times):.0f} ms, max {max(times):.0f} ms over {len(times)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
