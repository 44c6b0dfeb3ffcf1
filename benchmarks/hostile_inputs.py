"""What a hostile file costs the server, against a valid one of the same kind, while another
student's predictions are served.

    VIT_DEMO_DATA=../shared/data python -m benchmarks.hostile_inputs [--repeat 3]

In one process, as the app handles them: a valid run's zip brought back on the Train tab
(`Runs.restore`) and every hostile edit of it (tools/hostile_files.py), a valid checkpoint
uploaded to Explore and hostile ones (a zip that lies about its size, a config declaring a huge
model), and a person's own dataset zip (`own_data.read_archive`, not yet behind a page), valid and
hostile (tools/hostile_files.py: zip bombs, climbing paths, links, bad pictures). Each is handled
`--repeat` times while another thread asks Explore for a prediction every 50 ms (each case lasts
until two more have been served). Printed per file: the median seconds,
the peak Python memory (tracemalloc, MB), the slowest prediction served meanwhile, and the start
of the sentence the person reads.
"""

from __future__ import annotations

import argparse
import html
import json
import statistics
import tempfile
import threading
import time
import tracemalloc
from pathlib import Path

import torch

from tools.harness import REPO
from tools.hostile_files import RUN_EDITS, dataset_zip, edited_json, hostile_dataset_zips, lying_zip
from vit_demo import checkpoints, own_data, run_record, settings
from vit_demo.machine import Machine
from vit_demo.service.knobs import Knobs
from vit_demo.service.server import Service
from vit_demo.settings import AppSettings
from vit_demo.ui.explore_events import ExploreHandlers

EXAMPLE = REPO / "examples" / "mnist" / "7-7-00000.png"


class Neighbour:
    """Another student: a prediction every 50 ms, each one's seconds kept."""

    def __init__(self, explore: ExploreHandlers):
        self.explore, self.times, self.stopping = explore, [], threading.Event()
        self.served = threading.Condition()
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self.stopping.wait(0.05):
            started = time.perf_counter()
            self.explore.predict(str(EXAMPLE), "mnist")
            with self.served:
                self.times.append(time.perf_counter() - started)
                self.served.notify_all()

    def one_more(self) -> None:
        """Wait (10 s at most) for a prediction that started after now, so every case overlaps one."""
        with self.served:
            wanted = len(self.times) + 2
            self.served.wait_for(lambda: len(self.times) >= wanted, timeout=10)

    def __enter__(self) -> Neighbour:
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stopping.set()
        self.thread.join(10)


def measure(handle, repeat: int, explore: ExploreHandlers) -> tuple[str, float, float, float]:
    """(what the person reads, median seconds, peak MB of Python memory, slowest neighbour's seconds)."""
    seconds, peaks, said = [], [], ""
    with Neighbour(explore) as neighbour:
        for _ in range(repeat):
            tracemalloc.start()
            started = time.perf_counter()
            try:
                handle()
                said = "accepted"
            except Exception as error:  # noqa: BLE001 - the refusal is what is measured
                said = html.unescape(getattr(error, "message", str(error)))
            seconds.append(time.perf_counter() - started)
            peaks.append(tracemalloc.get_traced_memory()[1] / 2**20)
            tracemalloc.stop()
        neighbour.one_more()
    return said, statistics.median(seconds), max(peaks), max(neighbour.times, default=float("nan"))


def cases(service: Service, explore: ExploreHandlers, folder: Path) -> dict:
    knobs = Knobs.read(dict(dataset="mnist", patch_size=7, dim=32, depth=2, heads=4, mlp_dim=64, lr=0.003,
                            batch_size=128, epochs=1, seed=0))  # fmt: skip
    valid_run = next(c for c in service.runs.open(knobs, "maker") if "download" in c and c["download"])["download"]
    restore = service.runs.restore
    found = {"run zip: valid": lambda: restore(str(valid_run), "page")}
    for name, (change, _) in RUN_EDITS.items():
        path = edited_json(valid_run, folder / f"{len(found)}.zip", run_record.RECORD_NAME, change)
        found[f"run zip: {name}"] = lambda path=path: restore(str(path), "page")

    def upload(path: Path):
        return lambda: explore.upload_checkpoint({"checkpoint": str(path)})

    found["checkpoint: valid"] = upload(valid_run)
    liar = lying_zip(folder / "liar.zip", real_bytes=1024 * 2**20, declared=100)
    found["checkpoint: 1 GiB inflated, 100 bytes declared"] = upload(liar)
    huge = folder / "huge"
    model, info = checkpoints.load(valid_run)
    checkpoints.save(model, huge, info)
    config = json.loads((huge / "config.json").read_text())
    config.update(dim=8192, mlp_dim=32768, depth=12, heads=8)
    (huge / "config.json").write_text(json.dumps(config))
    huge_zip = checkpoints.zip_checkpoint(huge, folder / "huge.zip")
    found["checkpoint: a 1 KB config declaring 37 GB"] = upload(huge_zip)
    datasets = {"valid": dataset_zip(folder), **hostile_dataset_zips(folder / "datasets")}
    for name, path in datasets.items():
        found[f"dataset zip: {name}"] = lambda path=path: own_data.read_archive(path)
    return found


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    print(Machine.detect(torch.device("cpu")).describe(), flush=True)
    with tempfile.TemporaryDirectory() as work:
        app = AppSettings(
            checkpoint_dir=REPO / "checkpoints",
            examples_dir=REPO / "examples",
            data_dir=str(settings.read("VIT_DEMO_DATA") or ""),
            train_limit=2048,
            test_limit=500,
            work_dir=Path(work) / "work",
        )
        service = Service(app)
        explore = ExploreHandlers(service.library, app.examples_dir)
        try:
            found = cases(service, explore, Path(work))
            found["run zip: valid"]()  # once unmeasured: the first restore also imports and warms up
            for name, handle in found.items():
                said, seconds, peak, neighbour = measure(handle, args.repeat, explore)
                slowest = f"neighbour's slowest {neighbour * 1000:5.0f} ms"
                print(f"{name:50} {seconds * 1000:6.0f} ms {peak:6.1f} MB  {slowest}  {said[:80]}", flush=True)
        finally:
            service.close()


if __name__ == "__main__":
    main()
