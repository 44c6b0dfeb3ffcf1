"""What pages draw from a run, made once for every page that follows it: the curves, the
watched pictures with the model's guesses, the figures (drawn off the training's hot path,
within a CPU budget), the timeline and the confusion matrix. Nothing here imports gradio:
the Train tab only places these on the page."""

from __future__ import annotations

import base64
import io
import math
import time
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field

import pandas as pd
import torch
from PIL import Image

from .. import plots, summaries, training_plots
from .. import timeline as timelines
from ..data import DatasetSpec, to_picture
from ..model import ViTConfig
from ..training import TrainProgress
from .jobs import StartingPoint

GIF_DPI = 60  # GIF frames are drawn smaller than the page's figures: 40 of them must stay quick


@dataclass
class Curves:
    """The run so far, as the long-format tables gr.LinePlot draws (one row per point)."""

    loss_rows: list[tuple[int, float, str]] = field(default_factory=list)
    accuracy_rows: list[tuple[int, float, str]] = field(default_factory=list)

    def start(self, point: StartingPoint) -> None:
        # Every series has a point at step 0: a line plot keeps the series of its first data.
        self.loss_rows.append((0, point.train_loss, "train loss"))
        self.accuracy_rows.append((0, 100 * point.train_accuracy, "train accuracy"))
        self.accuracy_rows.append((0, 100 * point.test_accuracy, "test accuracy"))

    def add(self, p: TrainProgress) -> None:
        if p.step and not math.isnan(p.train_loss):
            self.loss_rows.append((p.step, p.train_loss, "train loss"))
            self.accuracy_rows.append((p.step, 100 * p.train_accuracy, "train accuracy"))
        if p.evaluated and p.test_accuracy is not None:
            self.accuracy_rows.append((p.step, 100 * p.test_accuracy, "test accuracy"))

    @staticmethod
    def _table(rows, value: str) -> pd.DataFrame:
        return pd.DataFrame(rows, columns=["step", value, "series"])

    def loss(self) -> pd.DataFrame:
        return self._table(self.loss_rows, "loss")

    def accuracy(self) -> pd.DataFrame:
        return self._table(self.accuracy_rows, "accuracy (%)")


def _png_data_uri(pixels: torch.Tensor) -> str:
    """uint8 (C, H, W) -> an inline PNG for HTML."""
    buffer = io.BytesIO()
    to_picture(pixels).save(buffer, format="PNG")
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


def watched_strip(images: torch.Tensor, labels: torch.Tensor, probabilities: torch.Tensor, spec: DatasetSpec) -> str:
    """The fixed test images with the model's current guess under each, green when right."""
    cells = []
    for pixels, label, probs in zip(images, labels.tolist(), probabilities):
        guess = int(probs.argmax())
        mark, css = ("✓", "right") if guess == label else ("✗", "wrong")
        cells.append(
            f'<figure class="watched {css}">'
            f'<img src="{_png_data_uri(pixels)}" alt="a test image of {spec.class_names[label]}">'
            f"<figcaption>{mark} {spec.class_names[guess]}<br><small>{probs[guess]:.0%}</small></figcaption></figure>"
        )
    right = sum(int(probs.argmax()) == label for probs, label in zip(probabilities, labels.tolist()))
    return (
        f'<div class="watched-title">The model\'s guesses for {len(labels)} test images: {right} right</div>'
        f'<div class="watched-strip">{"".join(cells)}</div>'
    )


class BackgroundRenderer:
    """Draws figures on a worker thread so updates keep flowing meanwhile. Only the newest
    request waiting is drawn: a slow drawing skips stale ones instead of falling behind.

    Drawing takes CPU from the training on the same cores, so it keeps to a budget: after a
    drawing that took d seconds the next starts no sooner than d / `max_share` seconds after
    this one started (a 0.1 s figure at most every 4 s at the default 2.5 %). The run's last
    request is drawn at once (`finish`)."""

    def __init__(self, draw, max_share: float = 0.025):
        self._draw = draw
        self.max_share = max_share
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="vit-demo-figures")
        self._running: Future | None = None
        self._next = None
        self._not_before = 0.0

    def request(self, data) -> None:
        self._next = data
        self._start_if_idle()

    def _start_if_idle(self, now_anyway: bool = False) -> None:
        idle = self._running is None or self._running.done()
        if self._next is not None and idle and (now_anyway or time.monotonic() >= self._not_before):
            self._running, self._next = self._executor.submit(self._timed_draw, self._next), None

    def _timed_draw(self, data):
        started = time.monotonic()
        drawing = self._draw(data)
        self._not_before = started + (time.monotonic() - started) / self.max_share
        return drawing

    def ready(self):
        """The newest finished drawing not handed out yet, else None."""
        self._start_if_idle()
        if self._running is None or not self._running.done():
            return None
        drawing, self._running = self._running.result(), None
        self._start_if_idle()
        return drawing

    def finish(self):
        """Draw what is requested now, wait for it; the last drawing (None if none was pending)."""
        drawing = None
        self._start_if_idle(now_anyway=self._running is None)
        while self._running is not None:
            self._running.result()
            drawing = self.ready()
            self._start_if_idle(now_anyway=self._running is None)
        return drawing

    def close(self) -> None:
        self._executor.shutdown(wait=False, cancel_futures=True)


def draw_position_similarity(similarity: torch.Tensor) -> tuple[Image.Image, str]:
    return plots.figure_to_image(plots.plot_position_similarity(similarity)), summaries.position_similarity(similarity)


@dataclass(frozen=True)
class ConfusionCells:
    """Where a drawn confusion matrix's cells are: its axes' area in the picture (left, top,
    right, bottom pixels) and the classes of its rows and columns."""

    area: tuple[float, ...]
    class_names: tuple[str, ...]

    def at(self, x: float, y: float) -> tuple[int, int] | None:
        """(true, guessed) class indices of the cell under a click at (x, y); None beside the cells."""
        k = len(self.class_names)
        return plots.grid_cell(self.area, k, k, x, y)


@dataclass(eq=False)
class TimelineRecord:
    """One run's training timeline: the snapshots (bounded, see `timeline.Timeline`), the
    picture they were taken on, and the model's shape; a page keeps it to scrub and export."""

    timeline: timelines.Timeline
    picture: object  # uint8 numpy, (S, S) or (S, S, 3): the first watched picture
    config: ViTConfig
    class_names: tuple[str, ...]

    def __len__(self) -> int:
        return len(self.timeline)

    def index(self, value) -> int:
        return min(max(int(round(float(value or 0))), 0), len(self) - 1)

    def frame(self, index: int, dpi: int | None = None) -> Image.Image:
        return self.draw(self.timeline[index], dpi)

    def summary(self, index: int) -> str:
        return summaries.timeline_frame(self.timeline[index], self.class_names)

    def draw(self, snapshot: timelines.Snapshot, dpi: int | None = None) -> Image.Image:
        """Drawn each time, never kept: a page keeps its record (Gradio holds a closed page's for
        an hour), and forty kept frames would be some 60 MB a page."""
        figure = training_plots.plot_timeline_frame(snapshot, self.picture, self.config)
        return plots.figure_to_image(figure) if dpi is None else plots.figure_to_image(figure, dpi=dpi)
