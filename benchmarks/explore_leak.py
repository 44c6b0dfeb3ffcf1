"""Does a long session leak? 500 Explore/predict requests in a row from one session
against the app served on 127.0.0.1 in a subprocess, the server's RSS sampled every 50.

    python -m benchmarks.explore_leak [--requests 500] [--every 50]

Every request alternates models and pictures: /explore (one forward pass with attention
and the rollout figure drawn with matplotlib) four times out of five, /predict (an upload)
the fifth. A leak of figures or of per-request caches would show as RSS climbing in step
with the request count; a flat series after the first few hundred requests (allocator
warm-up) is what "no leak" looks like. Also prints the server's open file descriptors and
the size of Gradio's output cache on disk (files, not memory).
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

from gradio_client import Client, handle_file
from load_test import EXAMPLES, default_data_dir, mb, start_server

from tools.harness import percentile


def disk_usage(folder: Path) -> int:
    return sum(f.stat().st_size for f in folder.rglob("*") if f.is_file()) if folder.exists() else 0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=500)
    parser.add_argument("--every", type=int, default=50)
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="vit-leak-") as workdir:
        server = start_server(Path(workdir), default_data_dir(), {"VIT_DEMO_THREADS": "1"})
        try:
            server.wait_ready()
            time.sleep(3)  # the start-up throughput benchmark
            client = Client(server.url, verbose=False)
            series = [(0, server.rss())]
            latencies, failures = [], []
            started = time.perf_counter()
            for i in range(1, args.requests + 1):
                model = ("mnist", "fashion_mnist")[(i // 5) % 2]
                begun = time.perf_counter()
                try:
                    if i % 5 == 0:
                        client.predict(handle_file(str(EXAMPLES[i % len(EXAMPLES)])), model, api_name="/predict")
                    else:
                        client.predict(
                            model, ("mean", "max", "min")[i % 3], 0.1 * (i % 5), 2, "mean", api_name="/explore"
                        )
                except Exception as error:  # noqa: BLE001
                    failures.append(f"{i}: {type(error).__name__}: {str(error)[:150]}")
                latencies.append(time.perf_counter() - begun)
                if i % args.every == 0:
                    series.append((i, server.rss()))
            elapsed = time.perf_counter() - started
            fds = len(os.listdir(f"/proc/{server.process.pid}/fd"))
            peak = server.peak_rss()
            cache = disk_usage(Path(workdir) / "tmp" / "gradio")
        finally:
            server.stop()

    print(
        f"explore leak: {args.requests} requests in a row from one session (4/5 /explore, 1/5 /predict), "
        f"{elapsed:.0f} s, failures {len(failures)}"
    )
    print(
        f"latency p50 {sorted(latencies)[len(latencies) // 2] * 1000:.0f} ms, "
        f"p95 {percentile(latencies, 0.95) * 1000:.0f} ms"
    )
    print("server RSS after N requests: " + ", ".join(f"{n}: {mb(rss)}" for n, rss in series))
    later = [rss for n, rss in series if n >= args.requests // 2]
    print(
        f"growth over the second half: {mb(later[-1] - later[0])}; peak {mb(peak)} (VmHWM); "
        f"open fds at end {fds}; Gradio output cache on disk {mb(cache)}"
    )
    for failure in failures[:10]:
        print(f"  FAILURE {failure}")
    sys.exit(1 if failures else 0)


if __name__ == "__main__":
    main()
