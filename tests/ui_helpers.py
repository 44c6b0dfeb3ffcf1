"""What the service and UI tests share: app settings for a tiny, fast app, the knobs of one
short training, and the app served in-process on a free loopback port."""

from __future__ import annotations

import threading
import time
from contextlib import contextmanager
from pathlib import Path

import torch
from PIL import Image, ImageDraw

from vit_demo.service.knobs import Knobs
from vit_demo.service.server import Service
from vit_demo.settings import AppSettings
from vit_demo.ui import build_demo, launch_options

REPO = Path(__file__).resolve().parent.parent
EXAMPLE = REPO / "examples" / "mnist" / "7-7-00000.png"
TINY = {"patch_size": 7, "dim": 32, "depth": 2, "heads": 4, "mlp_dim": 64}


def settings_for(tmp_path: Path, checkpoint_dir: Path, data_dir=None, **overrides) -> AppSettings:
    values = dict(
        checkpoint_dir=checkpoint_dir,
        examples_dir=REPO / "examples",
        data_dir=str(data_dir) if data_dir else None,
        train_limit=512,
        test_limit=256,
        work_dir=tmp_path / "work",
        max_trainings=1,  # one seat, so that a second run waits in line where a test needs one
    )
    return AppSettings(**{**values, **overrides})


def explore_values(model: str = "mnist", **changes) -> dict:
    """What an Explore event reads, by name (explore_events.EXPLORE_INPUTS and the explored
    picture), as a fresh page has them; `changes` replace some."""
    from dataclasses import asdict

    from vit_demo.views import ViewChoices

    values = dict(model=model, image=None, open_view="where", mine=None, uploaded=None, explored=None)
    return {**values, **asdict(ViewChoices(layer=2)), **changes}


def digit(mode: str = "L", size=(64, 64)) -> Image.Image:
    """A black 7 on white paper."""
    image = Image.new(mode, size, "white")
    ImageDraw.Draw(image).line(
        [(size[0] // 4, size[1] // 5), (3 * size[0] // 4, size[1] // 5), (size[0] // 2, 4 * size[1] // 5)],
        fill="black",
        width=max(2, min(size) // 10),
    )
    return image


def wait_for(condition, timeout: float = 60.0) -> None:
    """Until `condition()` holds, looked at every 50 ms; a test failure if it never does."""
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "it never happened"
        threading.Event().wait(0.05)


def tiny_knobs(**changes) -> Knobs:
    """One epoch of the tiny model on 512 MNIST images: 4 steps."""
    values = dict(dataset="mnist", **TINY, lr=0.003, batch_size=128, epochs=1, seed=0)
    return Knobs.read({**values, **changes})


def run_all(changes) -> list[dict]:
    """Every change a run sends its page, to the end."""
    return list(changes)


def merged(changes: list[dict]) -> dict:
    """What a page shows after all of them: the newest value of each field."""
    shown: dict = {}
    for change in changes:
        shown.update(change)
    return shown


@contextmanager
def one_torch_thread():
    # As the app on two cores: two threads per op fight over the cores other work needs.
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)


@contextmanager
def serving_app(settings: AppSettings):
    """The app launched on 127.0.0.1 (a free port) for the block; yields its URL and its Service."""
    with one_torch_thread():
        service = Service(settings)
        demo = build_demo(service)  # queued as the app is, with its own limits
        service.start()
        options = {k: v for k, v in launch_options(settings).items() if k not in ("server_name", "server_port")}
        _, address, _ = demo.launch(server_name="127.0.0.1", prevent_thread_lock=True, quiet=True, **options)
        try:
            yield address, service
        finally:
            demo.close()
            service.close()


@contextmanager
def serving(settings: AppSettings):
    """The app launched on 127.0.0.1 (a free port) for the block; yields its URL."""
    with serving_app(settings) as (address, _):
        yield address
