"""A class at once: 25 students exploring in a loop while 5 press Start, against the app
served on 127.0.0.1 in a subprocess, through gradio_client (one client = one browser
session). Loopback only; bounded in requests and time.

    python -m benchmarks.load_test [--explorers 25] [--trainers 5] [--seconds 75] [--data-dir DIR]

The server gets tiny training settings (VIT_DEMO_TRAIN_LIMIT, a few-second time budget,
VIT_DEMO_MAX_TRAININGS=2 so trainings beyond the cap queue) and two small untrained
checkpoints made here. Each explorer alternates /predict (an example picture upload) and
/explore; each trainer streams /train, then explores its own model ("mine") and checks it
is the model it trained (its downloaded zip predicts the same on the same picture). One more
session that never trained asks for "mine" and must get the "not trained yet" message.

Prints: requests and failures by endpoint, explore/predict latency p50/p95, trainings
finished and how many waited in line, and the server's RSS at start, end and peak (VmHWM).
An "answer" is a result or one of the app's own messages (queue full, not trained yet);
anything else is a failure.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")
os.environ.setdefault("HF_HUB_OFFLINE", "1")

from gradio_client import Client, handle_file

from tools.harness import REPO, AppProcess, percentile

EXAMPLES = sorted((REPO / "examples" / "mnist").glob("*.png"))
TINY = dict(patch_size=7, dim=32, depth=2, heads=4, mlp_dim=64)


def make_checkpoints(folder: Path) -> None:
    from vit_demo import checkpoints
    from vit_demo.training import create_model

    for dataset in ("mnist", "fashion_mnist"):
        model = create_model(dataset, seed=0, **TINY)
        checkpoints.save(model, folder / dataset, checkpoints.default_info(dataset))


def default_data_dir() -> str | None:
    for candidate in (os.environ.get("VIT_DEMO_DATA"), REPO.parent / "shared" / "data"):
        if candidate and (Path(candidate) / "MNIST" / "raw" / "train-images-idx3-ubyte").is_file():
            return str(candidate)
    return None


def start_server(workdir: Path, data_dir: str | None, extra_env: dict[str, str]) -> AppProcess:
    """The app with two small untrained checkpoints made here, its temporary files in `workdir`."""
    (workdir / "checkpoints").mkdir(parents=True)
    make_checkpoints(workdir / "checkpoints")
    (workdir / "tmp").mkdir()
    env = {
        "GRADIO_TEMP_DIR": str(workdir / "tmp" / "gradio"),
        "TMPDIR": str(workdir / "tmp"),
        "VIT_DEMO_CHECKPOINTS": str(workdir / "checkpoints"),
        "VIT_DEMO_DOWNLOAD": "0",
        **({"VIT_DEMO_DATA": data_dir} if data_dir else {}),
        **extra_env,
    }
    return AppProcess(env, log=workdir / "server.log", cwd=workdir)


def mb(size: int) -> str:
    return f"{size / 2**20:,.0f} MB"


class Tally:
    def __init__(self):
        self.lock = threading.Lock()
        self.latency: dict[str, list[float]] = {}
        self.messages: dict[str, int] = {}  # the app's own refusals: answers, not failures
        self.failures: list[str] = []

    def ok(self, endpoint: str, seconds: float) -> None:
        with self.lock:
            self.latency.setdefault(endpoint, []).append(seconds)

    def message(self, endpoint: str, text: str) -> None:
        with self.lock:
            self.messages[f"{endpoint}: {text[:70]}"] = self.messages.get(f"{endpoint}: {text[:70]}", 0) + 1

    def fail(self, endpoint: str, error: BaseException) -> None:
        with self.lock:
            self.failures.append(f"{endpoint}: {type(error).__name__}: {str(error)[:200]}")


EXPECTED_MESSAGES = ("queue is full", "have not trained a model yet")


def timed(tally: Tally, endpoint: str, call, *args, **kwargs):
    started = time.perf_counter()
    try:
        result = call(*args, **kwargs)
    except Exception as error:  # noqa: BLE001 - every answer is sorted below
        if any(text in str(error) for text in EXPECTED_MESSAGES):
            tally.message(endpoint, str(error))
            return None
        tally.fail(endpoint, error)
        return None
    tally.ok(endpoint, time.perf_counter() - started)
    return result


def explorer(url: str, index: int, tally: Tally, stop: threading.Event, max_requests: int) -> None:
    client = Client(url, verbose=False)
    model = ("mnist", "fashion_mnist")[index % 2]
    for i in range(max_requests):
        if stop.is_set():
            return
        if i % 2 == 0:
            example = EXAMPLES[(index + i) % len(EXAMPLES)]
            result = timed(tally, "predict", client.predict, handle_file(str(example)), model, api_name="/predict")
            if result is not None and len(result["confidences"]) != 10:
                tally.fail("predict", ValueError(f"unexpected answer {result}"))
        else:
            timed(tally, "explore", client.predict, model, "mean", 0.0, 2, "mean", api_name="/explore")


def trainer(url: str, index: int, tally: Tally, epochs: float, report: dict) -> None:
    from vit_demo import checkpoints, explain
    from vit_demo.images import open_image

    client = Client(url, verbose=False)
    seed = 100 + index
    started = time.perf_counter()
    job = client.submit(
        dataset="mnist",
        **TINY,
        lr=0.003,
        batch_size=128,
        epochs=epochs,
        seed=seed,
        api_name="/train",
    )
    try:
        outputs = job.result(timeout=240)
    except Exception as error:  # noqa: BLE001
        tally.fail("train", error)
        return
    all_outputs = job.outputs()
    places = [s for s in (str(o[0]) for o in all_outputs) if "in line" in s]
    report[index] = {
        "waited_in_line": bool(places),
        "seconds": time.perf_counter() - started,
        "status": str(outputs[0]).splitlines()[0],
    }
    if "Test accuracy" not in str(outputs[0]):
        tally.fail("train", ValueError(f"no model at the end: {outputs[0]!r}"))
        return
    tally.ok("train", time.perf_counter() - started)
    zip_path = next(v["value"] for v in outputs if isinstance(v, dict) and str(v.get("value")).endswith(".zip"))
    model, info = checkpoints.load(zip_path)
    if info["training"]["seed"] != seed:
        tally.fail("isolation", ValueError(f"trainer {index} got a model trained with seed {info['training']['seed']}"))
    # Its own model in Explore: the same prediction as the zip it downloaded.
    label = timed(tally, "explore-mine", client.predict, "mine", "mean", 0.0, 2, "mean", api_name="/explore")
    if label is not None:
        first = sorted((REPO / "examples" / "mnist").glob("*.png"))[0]
        expected = dict(explain.predict(model, info, open_image(first), top_k=10))
        served = {c["label"]: c["confidence"] for c in label[0]["confidences"]}  # the top 3 the page shows
        if not served or max(abs(served[k] - expected.get(k, -1.0)) for k in served) > 1e-3:
            tally.fail("isolation", ValueError(f"trainer {index}: Explore's 'mine' is not the model it trained"))
    report[index]["isolated"] = True


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--explorers", type=int, default=25)
    parser.add_argument("--trainers", type=int, default=5)
    parser.add_argument("--seconds", type=float, default=75, help="hard limit on the explore phase")
    parser.add_argument("--train-epochs", type=float, default=0.5, help="each training's length")
    parser.add_argument("--max-requests", type=int, default=40, help="per explorer")
    parser.add_argument("--data-dir", default=default_data_dir())
    args = parser.parse_args()
    if args.data_dir is None:
        sys.exit("no MNIST found: pass --data-dir (a folder with MNIST/raw/*-ubyte)")

    with tempfile.TemporaryDirectory(prefix="vit-load-") as workdir:
        server = start_server(
            Path(workdir),
            args.data_dir,
            {
                "VIT_DEMO_TRAIN_LIMIT": "2048",
                "VIT_DEMO_TEST_LIMIT": "500",
                "VIT_DEMO_MAX_TRAININGS": "2",
                "VIT_DEMO_MAX_EXPLORES": "2",
                "VIT_DEMO_THREADS": "1",
                "VIT_DEMO_MAX_TRAIN_SECONDS": "30",
            },
        )
        try:
            server.wait_ready()
            time.sleep(3)  # the start-up throughput benchmark
            rss_start = server.rss()
            server.start_sampling()
            tally, stop, report = Tally(), threading.Event(), {}
            started = time.perf_counter()
            threads = [
                threading.Thread(target=explorer, args=(server.url, i, tally, stop, args.max_requests))
                for i in range(args.explorers)
            ]
            trainers = [
                threading.Thread(target=trainer, args=(server.url, i, tally, args.train_epochs, report))
                for i in range(args.trainers)
            ]
            for thread in threads + trainers:
                thread.start()
            # A session with no model of its own: the message, never someone else's model.
            timed(
                tally,
                "explore-mine-untrained",
                Client(server.url, verbose=False).predict,
                "mine",
                "mean",
                0.0,
                2,
                "mean",
                api_name="/explore",
            )
            deadline = time.monotonic() + args.seconds
            for thread in trainers:
                thread.join(timeout=max(deadline - time.monotonic(), 0) + 120)
            while time.monotonic() < deadline and any(t.is_alive() for t in threads):
                time.sleep(0.5)
            stop.set()
            for thread in threads:
                thread.join(timeout=60)
            elapsed = time.perf_counter() - started
            rss_end, peak = server.rss(), server.peak_rss()
        finally:
            server.stop()

    answered = sum(len(v) for v in tally.latency.values()) + sum(tally.messages.values())
    requests = answered + len(tally.failures)
    print(
        f"load test: {args.explorers} explorers + {args.trainers} trainers + 1 untrained session, "
        f"{elapsed:.0f} s, server on 127.0.0.1 (VIT_DEMO_MAX_TRAININGS=2, MAX_EXPLORES=2, 1 torch thread)"
    )
    print(f"requests {requests}, answered {answered}, failures {len(tally.failures)}")
    for endpoint, values in sorted(tally.latency.items()):
        print(
            f"  {endpoint:<14} {len(values):4d} ok   p50 {statistics.median(values) * 1000:7.0f} ms   "
            f"p95 {percentile(values, 0.95) * 1000:7.0f} ms   max {max(values) * 1000:7.0f} ms"
        )
    for text, count in sorted(tally.messages.items()):
        print(f"  message x{count}: {text}")
    for failure in tally.failures[:10]:
        print(f"  FAILURE {failure}")
    explore_like = tally.latency.get("explore", []) + tally.latency.get("predict", [])
    print(
        f"explore+predict latency: p50 {statistics.median(explore_like) * 1000:.0f} ms, "
        f"p95 {percentile(explore_like, 0.95) * 1000:.0f} ms over {len(explore_like)} requests"
    )
    waited = sum(r["waited_in_line"] for r in report.values())
    print(
        f"trainings: {args.trainers} started, {len(tally.latency.get('train', []))} finished with a model, "
        f"{waited} waited in line first (cap 2), own model in Explore: "
        f"{sum(bool(r.get('isolated')) for r in report.values())}/{args.trainers}"
    )
    for index, r in sorted(report.items()):
        print(f"  trainer {index}: {r['seconds']:.0f} s, waited={r['waited_in_line']}, {r['status']}")
    series = ", ".join(mb(rss) for _, rss in server.samples[:: max(1, len(server.samples) // 12)])
    print(f"server RSS: start {mb(rss_start)}, end {mb(rss_end)}, peak {mb(peak)} (VmHWM); samples: {series}")
    sys.exit(1 if tally.failures else 0)


if __name__ == "__main__":
    main()
