"""Using ViT Playground from outside, as its visitors do: `python app.py` served from a
process of its own on a free loopback port, and Debian's headless Chromium driven by
Playwright. The browser tests, the benchmarks and tools/screenshots.py start both from here.

Nothing here imports gradio or torch: the app is the real entry point, in its own process.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent  # a checkout (or an editable install): app.py lives here

# Headless Chromium as root on a machine with no outside network: no sandbox (root), no GPU,
# and none of its background connections, which the closed network refuses many at a time.
CHROMIUM_FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
)
VIEWPORT = {"width": 1366, "height": 768}  # a classroom projector, and the common laptop

# An app that never calls out: no analytics, version checks or telemetry (gradio reads these at import).
OFFLINE_ENV = {"GRADIO_ANALYTICS_ENABLED": "False", "HF_HUB_DISABLE_TELEMETRY": "1", "HF_HUB_OFFLINE": "1"}


def chromium_path() -> str | None:
    return shutil.which("chromium")


def launch_chromium(playwright):
    """A headless Chromium browser (Debian's: never `playwright install`)."""
    path = chromium_path()
    if path is None:
        raise RuntimeError("chromium is not installed (apt-get install chromium)")
    return playwright.chromium.launch(executable_path=path, args=list(CHROMIUM_FLAGS))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class AppProcess:
    """`python app.py` on 127.0.0.1 and a free port, with `env` added to this process's
    environment; its output goes to `log` (or nowhere). `app` is another checkout's app.py
    (a benchmark's "before"), run from its own folder so that it imports its own vit_demo.
    Use as a context manager, or call `wait_ready` and `stop`."""

    def __init__(
        self,
        env: dict[str, str] | None = None,
        log: Path | None = None,
        cwd: Path | None = None,
        app: Path = REPO / "app.py",
    ):
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}/"
        self._log = open(log, "w") if log else subprocess.DEVNULL
        environment = {
            **os.environ,
            **OFFLINE_ENV,
            "GRADIO_SERVER_NAME": "127.0.0.1",
            "GRADIO_SERVER_PORT": str(self.port),
            **(env or {}),
        }
        self.started = time.perf_counter()
        self.process = subprocess.Popen(
            [sys.executable, str(app)],
            cwd=cwd or app.parent,
            env=environment,
            stdout=self._log,
            stderr=subprocess.STDOUT,
        )
        self.samples: list[tuple[float, int]] = []  # (seconds since sampling began, RSS bytes)
        self._sampling = threading.Event()

    @property
    def pid(self) -> int:
        return self.process.pid

    def wait_ready(self, timeout: float = 180) -> float:
        """Wait until the page answers; the seconds from start until it did."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"app.py exited with code {self.process.returncode}")
            try:
                with urllib.request.urlopen(self.url, timeout=1) as response:
                    if response.status == 200:
                        return time.perf_counter() - self.started
            except OSError:
                time.sleep(0.2)
        raise TimeoutError(f"app.py did not answer within {timeout:g} s")

    def _status(self, field: str) -> int:
        for line in Path(f"/proc/{self.pid}/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1]) * 1024
        return 0

    def rss(self) -> int:
        """The server process's resident memory now, in bytes (Linux)."""
        return self._status("VmRSS")

    def peak_rss(self) -> int:
        """The most resident memory the server process has held (Linux's VmHWM)."""
        return self._status("VmHWM")

    def start_sampling(self, every: float = 0.5) -> None:
        """Record the server's RSS every `every` seconds in `samples`, until `stop`."""

        def sample() -> None:
            began = time.monotonic()
            while not self._sampling.wait(every):
                self.samples.append((time.monotonic() - began, self.rss()))

        threading.Thread(target=sample, daemon=True).start()

    def stop(self) -> None:
        self._sampling.set()
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        if self._log is not subprocess.DEVNULL:
            self._log.close()

    def __enter__(self) -> AppProcess:
        self.wait_ready()
        return self

    def __exit__(self, *exc) -> None:
        self.stop()


def percentile(values: list[float], q: float) -> float:
    """The `q` quantile (0-1) of `values`, the nearest measured value to it (NaN without any):
    what the benchmarks report latencies and errors by."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


__all__ = [
    "CHROMIUM_FLAGS",
    "OFFLINE_ENV",
    "VIEWPORT",
    "AppProcess",
    "chromium_path",
    "free_port",
    "launch_chromium",
    "percentile",
]
