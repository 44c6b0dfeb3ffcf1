"""The Train tab: Start, Stop, a progress bar, live curves, and what the model learns as it
goes (positional-embedding similarity, predictions on a few fixed test images); at the
end the test accuracy, a confusion matrix and the checkpoint as a zip.

Every browser session trains its own model, kept in that session's gr.State: one
student's model never replaces another's. At most `max_trainings` run at once; the
others wait their turn and see their place in line. Stop (or closing the tab) ends only
that person's run: Stop asks the run to finish its step and score what it has, so the
model so far is kept; a closed tab closes the generator and frees the seat.
"""

from __future__ import annotations

import base64
import hashlib
import html
import io
import math
import shutil
import threading
import time
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path

import gradio as gr
import pandas as pd
import torch
from PIL import Image

from .. import checkpoints, plots, run_record, summaries
from .. import timeline as timelines
from ..data import DatasetSpec, display_pixels, get_spec, load_split, to_picture
from ..model import SHAPE_FIELDS, ViTConfig, num_parameters
from ..planning import ThroughputMeter
from ..sessions import StartingPoint, StopFlag, TrainingQueue, TrainingUpdate
from ..shared_runs import RunHub, RunKey, SharedRun
from ..step import Machine
from ..training import TrainConfig, TrainProgress, checkpoint_info, create_model
from . import compare, mistakes
from .build_tab import BuildControls, Knobs, check_fits_server
from .errors import as_user_error, user_errors
from .figures import figure_slot, render, render_with_box
from .models import MINE, LoadedModel
from .settings import AppSettings
from .state import SessionState

PROBES = 8  # fixed test images whose predictions are shown while the model learns
WAIT_POLL_SECONDS = 0.5
# People who may train or wait for a seat at once, by each way in (pages; scripts on "/train"):
# a class of 30, and some. Beyond that a page is told to try again, a script waits in
# Gradio's own queue.
MAX_TRAINERS = 32
CURVE_SECONDS = 2.0  # the live curves are sent at most this often (and with every evaluation)
POLL_SECONDS = 2.0  # how often a page asks its live run what changed (each ask costs the page and the server)
CLASS_WATCH_SECONDS = 3.0  # how often a class run's page looks for the run, until it follows it
MIN_STEPS_FOR_SPEED = 20  # a run stopped sooner says little about this machine's speed

# What `TrainHandlers.train` yields, in this order; `frame` fills in the ones left unchanged.
TRAIN_OUTPUTS = (
    "status",
    "progress_bar",
    "metrics",
    "loss",
    "accuracy",
    "positions",
    "positions_summary",
    "probes",
    "confusion",
    "confusion_summary",
    "confusion_cells",
    "download",
    "my_model",
    "views",
    "explore_model",
    "timeline",
    "timeline_slider",
    "timeline_frame",
    "timeline_summary",
    "mistake_true",
    "mistake_guess",
    "runs",
    "compare_table",
    "compare_loss",
    "compare_accuracy",
)


def frame(**values) -> tuple:
    unknown = set(values) - set(TRAIN_OUTPUTS)
    if unknown:
        raise KeyError(f"not a Train output: {', '.join(sorted(unknown))}")
    return tuple(values.get(name, gr.skip()) for name in TRAIN_OUTPUTS)


def _no_progress(*args, **kwargs) -> None:
    """A live run's page draws its own progress bar: gr.Progress has no event to report to."""


def progress_html(fraction: float | None, text: str) -> str:
    """The Train tab's own progress bar: a static element redrawn with each report. (Gradio's
    status tracker redraws its timer every frame while a training streams: measured, that kept
    the browser's renderer busy for a tenth of a core, taken from the training on 2 cores.)"""
    bar = "" if fraction is None else f'<progress value="{min(max(fraction, 0.0), 1.0):.3f}" max="1"></progress>'
    return f'<div class="train-bar">{bar}<span>{html.escape(text)}</span></div>'


def _clock(seconds: float) -> str:
    seconds = max(int(round(seconds)), 0)
    return f"{seconds // 60}:{seconds % 60:02d}"


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


def probe_strip(images: torch.Tensor, labels: torch.Tensor, probabilities: torch.Tensor, spec: DatasetSpec) -> str:
    """The fixed test images with the model's current guess under each, green when right."""
    cells = []
    for pixels, label, probs in zip(images, labels.tolist(), probabilities):
        guess = int(probs.argmax())
        mark, css = ("✓", "right") if guess == label else ("✗", "wrong")
        cells.append(
            f'<figure class="probe {css}">'
            f'<img src="{_png_data_uri(pixels)}" alt="a test image of {spec.class_names[label]}">'
            f"<figcaption>{mark} {spec.class_names[guess]}<br><small>{probs[guess]:.0%}</small></figcaption></figure>"
        )
    right = sum(int(probs.argmax()) == label for probs, label in zip(probabilities, labels.tolist()))
    return (
        f'<div class="probe-title">The model\'s guesses for {len(labels)} test images: {right} right</div>'
        f'<div class="probe-strip">{"".join(cells)}</div>'
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
    return render(plots.plot_position_similarity(similarity)), summaries.position_similarity(similarity)


TIMELINE_CAPACITY = 40  # snapshots kept per run (each a few KB): older ones are thinned evenly
GIF_DPI = 60  # GIF frames are drawn smaller than the page's figures: 40 of them must stay quick


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
    """One session's training timeline: the snapshots (bounded, see `timeline.Timeline`),
    the probe image they were taken on, and the model's shape; kept in a gr.State."""

    timeline: timelines.Timeline
    probe_display: object  # uint8 numpy, (S, S) or (S, S, 3)
    config: ViTConfig
    class_names: tuple[str, ...]
    _frames: dict = field(default_factory=dict, repr=False)  # (step, dpi) -> drawn frame

    def __len__(self) -> int:
        return len(self.timeline)

    def index(self, value) -> int:
        return min(max(int(round(float(value or 0))), 0), len(self) - 1)

    def frame(self, index: int, dpi: int | None = None) -> Image.Image:
        return self.draw(self.timeline[index], dpi)

    def summary(self, index: int) -> str:
        return summaries.timeline_frame(self.timeline[index], self.class_names)

    def draw(self, snapshot: timelines.Snapshot, dpi: int | None = None) -> Image.Image:
        key = (snapshot.step, snapshot.fraction, dpi)
        if key not in self._frames:
            figure = plots.plot_timeline_frame(snapshot, self.probe_display, self.config)
            self._frames[key] = render(figure) if dpi is None else plots.figure_to_image(figure, dpi=dpi)
        return self._frames[key]


def empty_timeline_slider() -> gr.Slider:
    return gr.Slider(
        minimum=0,
        maximum=1,
        value=0,
        step=1,
        interactive=False,
        label="Training timeline: snapshots appear as the model trains",
    )


def timeline_slider(record: TimelineRecord) -> gr.Slider:
    """The slider over a finished run's snapshots. (While the run records them, the slider is
    left as it is and the count is told in words: a slider's update rebuilds its whole
    configuration on the server, once for every page following the run.)"""
    last = len(record) - 1
    plural = "s" if len(record) != 1 else ""
    return gr.Slider(
        minimum=0,
        maximum=max(last, 1),
        value=last,
        step=1,
        interactive=last >= 1,
        label=f"Training timeline: {len(record)} snapshot{plural}, drag to replay",
    )


def recording(record: TimelineRecord) -> str:
    """The timeline while the run records it."""
    plural = "s" if len(record) != 1 else ""
    return f"{len(record)} snapshot{plural} so far: the timeline is drawn when the run ends, to replay."


def _session_key(request: gr.Request | None) -> str:
    """A file-name-safe key for the browser session (one key for calls outside a session)."""
    session = getattr(request, "session_hash", None) or "no-session"
    return hashlib.sha256(session.encode()).hexdigest()[:16]


def _is_skip(value) -> bool:
    return isinstance(value, dict) and value == gr.skip()


class LiveRun:
    """One page's training, run on a thread of its own; the page asks for what changed.

    A streaming event would keep the page waiting on one long request, and Gradio's page then
    runs its status tracker every frame for the length of the run: measured in headless Chromium,
    a tenth of a core taken from the training. Instead the page starts the run (`start_live`)
    and a `gr.Timer` polls (`poll`): each poll gets, per output, the newest value since the last
    poll, so a slow page skips stale frames instead of falling behind."""

    def __init__(self, frames: Iterator[tuple]):
        self._frames = frames
        self._lock = threading.Lock()
        self._pending = [gr.skip()] * len(TRAIN_OUTPUTS)
        self._finished = False
        self.error: Exception | None = None
        self._thread = threading.Thread(target=self._run, name="vit-demo-live-run", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        try:
            for frame in self._frames:
                with self._lock:
                    for index, value in enumerate(frame):
                        if not _is_skip(value):
                            self._pending[index] = value
        except Exception as error:  # noqa: BLE001 - already a sentence for the person (user_errors)
            self.error = error
        finally:
            with self._lock:
                self._finished = True

    def take(self) -> tuple[tuple, bool]:
        """What changed since the last call, and whether the run has ended (and nothing is left)."""
        with self._lock:
            changes, self._pending = tuple(self._pending), [gr.skip()] * len(TRAIN_OUTPUTS)
            return changes, self._finished

    @property
    def finished(self) -> bool:
        with self._lock:
            return self._finished

    def join(self, timeout: float | None = None) -> None:
        self._thread.join(timeout)


@dataclass(frozen=True)
class RunResult:
    """A finished run's model and record, shared by everyone who followed it."""

    state_dict: dict
    info: dict  # what its checkpoint records (training.checkpoint_info)
    archive: Path  # the run as one zip (checkpoint and record), in the run's own folder
    outcome: dict  # test accuracy, steps, epochs, seconds, images per second, stopped (run_record.RunRecord.result)
    curves: Curves


@dataclass(frozen=True)
class LiveFrame:
    """What a shared run publishes: changes to the Train outputs that every page following it
    shows (`TRAIN_OUTPUTS` names), and the run's progress; the last one carries the result."""

    changes: dict
    progress: TrainProgress | None = None
    result: RunResult | None = None


def merge_frames(older: LiveFrame, newer: LiveFrame) -> LiveFrame:
    """Both frames as one: what a page that saw neither must show (the newer values win)."""
    return LiveFrame({**older.changes, **newer.changes}, newer.progress or older.progress, newer.result or older.result)


def frame_bytes(item: LiveFrame) -> int:
    """About how much memory a frame holds: its pictures and the model's weights."""
    pictures = sum(v.width * v.height * 3 for v in item.changes.values() if isinstance(v, Image.Image))
    weights = sum(t.numel() * t.element_size() for t in item.result.state_dict.values()) if item.result else 0
    return pictures + weights


SHARING = "**Same settings as a run already on this server: sharing its result.**\n\n"


class TrainHandlers:
    """`run` trains: `run_training`'s arguments in, its updates out, wherever it runs
    (a training process, or a ZeroGPU worker: see hosting.py). Runs are shared: pages that ask
    for the same settings follow one run (`shared_runs.RunHub`)."""

    def __init__(self, app: AppSettings, meter: ThroughputMeter, queue: TrainingQueue, run):
        self.app = app
        self.meter = meter
        self.queue = queue
        self._run = run
        self.hub = RunHub(app.work_dir / "runs", merge_frames, frame_bytes)
        # The key's machine: one server trains on one machine (a GPU server's runs still key by its CPU).
        self.machine = "ZeroGPU" if app.zero_gpu else Machine.detect(torch.device("cpu")).describe()
        self._live: dict[str, LiveRun] = {}  # session key -> the page's run
        self._live_lock = threading.Lock()

    def _stop_flag(self, request: gr.Request | None) -> StopFlag:
        return StopFlag(self.app.work_dir / "stop" / _session_key(request))

    def _session_folder(self, request: gr.Request | None) -> Path:
        folder = self.app.work_dir / "sessions" / _session_key(request)
        shutil.rmtree(folder, ignore_errors=True)  # the previous run's files: its download was already served
        folder.mkdir(parents=True)
        return folder

    @user_errors
    def train(
        self,
        dataset,
        patch_size,
        dim,
        depth,
        heads,
        mlp_dim,
        lr,
        batch_size,
        length,
        seconds,
        epochs,
        seed,
        runs: list[compare.RunSummary] | None = None,
        class_lesson: bool = False,
        request: gr.Request = None,
        progress=gr.Progress(),
        pace: float = POLL_SECONDS,
    ):
        """Train, or follow the run already training (or trained) with the same settings, and
        stream what happens (a tuple in `TRAIN_OUTPUTS` order per update). On a class run's page
        (`class_lesson`) the run becomes the class run, which every page of the lesson shows.

        A script streaming this ("/train") gets an update at most every `pace` seconds (per
        output, the newest value; the first, the first training step and the last at once),
        much as a page's poll does: each update costs the server its serialising, and thirty
        scripts at a report every 0.4 s cost it five times what thirty pages do. A page's own
        Start (`start_live`) takes every frame (`pace` 0) and its poll merges them."""
        knobs = Knobs.read(
            dataset, patch_size, dim, depth, heads, mlp_dim, lr, batch_size, length, seconds, epochs, seed
        )
        config = knobs.model_config()  # the model's own message when it cannot be built
        check_fits_server(config, knobs.batch_size, self.app, self.meter)  # memory and time caps, with what to lower
        training = knobs.train_config(self.app, self.meter)
        spec = get_spec(dataset)
        # Read the data before queueing: a missing dataset is reported at once, not after the wait.
        train_images = len(load_split(spec.key, train=True, data_dir=self.app.data_dir, limit=self.app.train_limit))
        probes = load_split(spec.key, train=False, data_dir=self.app.data_dir, limit=PROBES)
        stop = self._stop_flag(request)
        stop.clear()
        yield frame(
            status="Getting ready…",
            progress_bar=progress_html(None, "Getting ready"),
            metrics="",
            loss=None,
            accuracy=None,
            confusion=None,
            download=gr.DownloadButton(value=None, interactive=False),
            views=gr.Tabs(selected="positions"),
            timeline=None,
            timeline_frame=None,
            timeline_summary="",
            timeline_slider=empty_timeline_slider(),
        )
        key = RunKey.of(knobs.shape, training, self.machine, self.app.max_train_seconds)
        run, shared = self.hub.join(key, lambda run: self._start(run, knobs, config, training, probes, train_images))
        if class_lesson:
            self.hub.class_run = run
        try:
            yield from self._follow(run, shared, knobs, config, runs, stop, request, progress, pace)
        finally:
            self.hub.leave(run)
            stop.clear()

    def _follow(
        self, run: SharedRun, shared: bool, knobs, config, runs, stop: StopFlag, request, progress, pace: float
    ):
        """The frames of `run` for this page: the shared ones, then this page's own end (its copy
        of the model, its comparison with its last run); at most one every `pace` seconds, each
        with the newest value of every output changed since the last."""
        stopping = False
        pending: dict | None = None  # changes not sent yet, the newest value of each output
        latest = None  # the newest report's progress
        sent = -math.inf
        stepped = False  # a frame with a training step has gone out
        for item in run.follow():
            if stop() and not stopping:
                stop.clear()
                if run.followers > 1:  # others chose the same settings: they keep the run
                    yield frame(
                        status=(
                            f"You stopped watching. The run goes on for the {run.followers - 1} other page"
                            f"{'s' if run.followers > 2 else ''} that chose the same settings; press **Start** to "
                            "watch it again."
                        ),
                        progress_bar="",
                    )
                    return
                self.hub.stop(run)  # this page's run alone: it stops, and its model so far is kept
                stopping = True
            final = False
            if item is not None:
                changes = dict(item.changes)
                if shared and "status" in changes:
                    changes["status"] = SHARING + changes["status"]
                if item.result is not None:
                    result = item.result
                    changes.update(
                        self._finish(knobs, config, item, request),
                        **self._compare(runs, knobs, config, result.outcome, result.curves),
                    )
                    final = True
                pending = changes if pending is None else {**pending, **changes}
                latest = item.progress
            # The first training step goes out at once (the curve begins, and a script sees the
            # progress of even a short run); between reports (`follow` yields None every half
            # second) a held frame goes out once due.
            first_step = latest is not None and not stepped
            if pending is None or not (final or first_step or time.monotonic() - sent >= pace):
                continue
            yield frame(**pending)
            pending, sent, stepped = None, time.monotonic(), stepped or latest is not None
            if latest is not None and not latest.done:
                progress(latest.fraction, desc=f"Training: step {latest.step:,}")  # API clients read the progress here
        if pending is not None:  # a run that ended without a result (stopped or failed): its last changes
            yield frame(**pending)

    def _start(self, run: SharedRun, knobs: Knobs, config: ViTConfig, training: TrainConfig, probes, train_images):
        """Set `run` going on a thread of its own: wait for a seat, train, publish every frame."""
        run.details = (knobs, config)
        threading.Thread(
            target=self._produce,
            args=(run, knobs, config, training, probes, train_images),
            name="vit-demo-run",
            daemon=True,
        ).start()

    def _produce(self, run: SharedRun, knobs: Knobs, config: ViTConfig, training: TrainConfig, probes, train_images):
        expected = training.time_budget or (training.steps or 0) * training.batch_size / max(
            self.meter.images_per_second(config, training.batch_size), 1e-9
        )
        ticket = self.queue.join(expected or None)
        positions = BackgroundRenderer(draw_position_similarity)
        complete = False
        try:
            if not self._wait_for_seat(run, ticket):
                run.publish(
                    LiveFrame({"status": "You left the queue. Press **Start** to join it again.", "progress_bar": ""})
                )
                return
            complete = self._train(run, knobs, config, training, probes, train_images, ticket, positions)
        except Exception as error:  # noqa: BLE001 - every follower gets it, as the message it is
            run.finish(complete=False, error=as_user_error(error))
        finally:
            positions.close()
            self.queue.leave(ticket)
            if not run.done:
                run.finish(complete=complete)
            self.hub.finished(run)

    def _wait_for_seat(self, run: SharedRun, ticket) -> bool:
        """Publish the run's place in line until a seat is free; False if everyone gave up."""
        said = None
        while (place := self.queue.wait_turn(ticket, WAIT_POLL_SECONDS)) > 0:
            if run.stop_requested:
                return False
            running = self.queue.running
            start = self.queue.estimated_start(ticket)
            when = f" It should start in about **{_clock(start)}**." if start is not None else ""
            status = (
                f"**Waiting for a free seat: number {place} in line.** {running} training"
                f"{'s are' if running != 1 else ' is'} running on this server.{when} "
                f"Explore keeps working meanwhile; **Stop** leaves the queue."
            )
            if status != said:  # every follower sees each change; nothing is published twice
                run.publish(
                    LiveFrame(
                        {"status": status, "progress_bar": progress_html(None, f"Waiting: number {place} in line")}
                    )
                )
                said = status
        return True

    def _train(self, run, knobs, config, training, probes, train_images, ticket, positions) -> bool:
        """Train in the training process and publish what the pages show; True if it ran to its end."""
        spec = get_spec(training.dataset)
        record = TimelineRecord(
            timelines.Timeline(TIMELINE_CAPACITY), display_pixels(probes.images[0]), config, spec.class_names
        )
        curves = Curves()
        length = f"{training.steps:,} steps, " if training.steps else ""
        training_now = (
            f"**Training** on {train_images:,} {spec.title} images ({length}{knobs.length_text}). "
            f"Press **Stop** to end early: the model so far is kept."
        )
        status = None

        def status_change() -> dict:
            """The status, when it says something new: how many trainings share the machine."""
            nonlocal status
            running = self.queue.running
            said = training_now + (
                f" {running} trainings are running on this server at once, taking turns on its cores:"
                " each takes longer than it would alone."
                if running > 1
                else ""
            )
            changed, status = said != status, said
            return {"status": said} if changed else {}

        curves_sent, complete = 0.0, False
        for update in self._run(
            knobs.shape,
            training,
            probes.images,
            stop=run.stop,
            share=run.share,
            max_seconds=self.app.max_train_seconds,
            timeline_capacity=TIMELINE_CAPACITY,
        ):
            if update.position_similarity is not None:
                positions.request(update.position_similarity)
            drawn = positions.finish() if update.state_dict is not None else positions.ready()
            changes = {} if drawn is None else dict(zip(("positions", "positions_summary"), drawn))
            if update.snapshot is not None:
                record.timeline.add(update.snapshot)  # thins exactly as the run's own timeline
                changes.update(timeline=record, timeline_summary=recording(record))
            if update.probe_probabilities is not None:
                changes["probes"] = probe_strip(probes.images, probes.labels, update.probe_probabilities, spec)
            p = update.progress
            if p is None:
                curves.start(update.start)
                curves_sent = time.monotonic()
                run.publish(
                    LiveFrame(
                        {
                            **status_change(),
                            "metrics": "Step 0: the model is still random, its guesses are chance.",
                            "progress_bar": progress_html(0.0, "Training"),
                            "loss": curves.loss(),
                            "accuracy": curves.accuracy(),
                            **changes,
                        }
                    )
                )
                continue
            curves.add(p)
            self.queue.expect_end(ticket, p.eta)
            if p.done:
                # The timeline's frame is drawn once the run ends (then scrubbed): drawn live, it
                # cost the training more than anything else on the page, below the fold.
                last = len(record) - 1
                changes.update(
                    timeline_frame=record.frame(last),
                    timeline_summary=record.summary(last),
                    timeline_slider=timeline_slider(record),
                )
                changes.update(self._ending(config, training, update, curves))
                result = self._result(run, knobs, config, training, update, curves, record)
                run.publish(LiveFrame(changes, p, result))
                complete = not p.stopped
                continue  # to the end of the job: the training process is then free for the next
            # Every report moves the numbers; the curves are redrawn (in the browser, the
            # dearest part of an update) every CURVE_SECONDS, and with each evaluation.
            if p.evaluated or time.monotonic() - curves_sent >= CURVE_SECONDS:
                changes.update(loss=curves.loss(), accuracy=curves.accuracy())
                curves_sent = time.monotonic()
            desc = f"Training: step {p.step:,}"
            changes.update(
                metrics=self._metrics(p),
                progress_bar=progress_html(p.fraction, f"{desc} · {p.fraction:.0%}"),
                **status_change(),
            )
            run.publish(LiveFrame(changes, p))
        return complete

    @staticmethod
    def _metrics(p: TrainProgress) -> str:
        of = f" of {p.total_steps:,}" if p.total_steps else ""
        test = f" · test accuracy **{p.test_accuracy:.1%}**" if p.test_accuracy is not None else ""
        return (
            f"Step **{p.step:,}**{of} · epoch **{p.epoch:.2f}** · **{p.images_per_second:,.0f} images/s** · "
            f"time left **{_clock(p.eta)}** · loss **{p.train_loss:.3f}**{test}"
        )

    def _ending(self, config: ViTConfig, training: TrainConfig, update: TrainingUpdate, curves: Curves) -> dict:
        """What every follower's page shows when the run ends: the score, the curves, the
        confusion matrix and the mistakes menus."""
        p = update.progress
        spec = get_spec(training.dataset)
        if update.time_limited:
            ending = f"Stopped at this server's {_clock(self.app.max_train_seconds)} limit"
        elif p.stopped:
            ending = "Stopped early"
        else:
            ending = "Finished"
        return {
            "status": (
                f"### Test accuracy: {p.test_accuracy:.1%}\n"
                f"{ending} after {p.step:,} steps ({p.epoch:.2f} epochs, {_clock(p.elapsed)}), scored on "
                f"{p.final_test_images:,} test images it never trained on. Open **③ Explore** to see where it looks."
            ),
            "metrics": self._metrics(p),
            "progress_bar": progress_html(p.fraction, f"{ending} at step {p.step:,}"),
            "loss": curves.loss(),
            "accuracy": curves.accuracy(),
            **self._confusion(p.confusion, spec.class_names),
            **dict(zip(("mistake_true", "mistake_guess"), mistakes.class_dropdowns(spec.class_names, p.confusion))),
            "views": gr.Tabs(selected="confusion"),
        }

    def _result(
        self,
        run: SharedRun,
        knobs: Knobs,
        config: ViTConfig,
        training: TrainConfig,
        update: TrainingUpdate,
        curves: Curves,
        timeline: TimelineRecord,
    ) -> RunResult:
        """The run's model and its record (settings, curves, timeline), saved and zipped once in
        the run's own folder: the one file a student takes home (run_record.py)."""
        p = update.progress
        if p.step >= MIN_STEPS_FOR_SPEED and p.step_seconds > 0:
            # The speed of its steps, not of the wall clock: runs take turns in the training process.
            self.meter.record_run(config, training.batch_size, p.step * training.batch_size / p.step_seconds)
        info = checkpoint_info(training, p)
        model = create_model(training.dataset, seed=training.seed, **knobs.shape)
        model.load_state_dict(update.state_dict)
        name = f"my-vit-{training.dataset}"
        saved = checkpoints.save(model, run.folder / name, info)
        outcome = {
            "test_accuracy": p.test_accuracy,
            "steps": p.step,
            "epochs": p.epoch,
            "seconds": p.elapsed,
            "images_per_second": p.images_per_second,
            "stopped": p.stopped,
            "test_images": p.final_test_images,
        }
        run_record.write(
            saved,
            run_record.RunRecord(
                settings=asdict(knobs),
                result=outcome,
                loss_rows=[list(row) for row in curves.loss_rows],
                accuracy_rows=[list(row) for row in curves.accuracy_rows],
                confusion=p.confusion.tolist() if p.confusion is not None else None,
                snapshots=list(timeline.timeline.snapshots),
                probe=timeline.probe_display,
            ),
        )
        return RunResult(
            state_dict=update.state_dict,
            info=info,
            archive=checkpoints.zip_checkpoint(saved, run.folder / f"{name}.zip"),
            outcome=outcome,
            curves=curves,
        )

    def _finish(self, knobs: Knobs, config: ViTConfig, item: LiveFrame, request: gr.Request | None) -> dict:
        """This page's own copy of the finished model: in its session, its download, in Explore."""
        result = item.result
        model = create_model(knobs.dataset, seed=knobs.seed, **knobs.shape)
        model.load_state_dict(result.state_dict)
        model.eval()
        folder = self._session_folder(request)
        archive = Path(shutil.copy(result.archive, folder / result.archive.name))
        info = {**result.info, "image_size": config.image_size, "channels": config.channels}
        return {
            "download": gr.DownloadButton(value=str(archive), interactive=True),
            "my_model": LoadedModel(MINE, model, info, "trained here", files=folder),
            "explore_model": MINE,
        }

    @staticmethod
    def _compare(runs, knobs: Knobs, config: ViTConfig, outcome: dict, curves: Curves) -> dict:
        """This run beside the previous one: the kept runs, their table and their curves."""
        run = compare.RunSummary(
            number=compare.next_number(runs),
            settings={
                "dataset": get_spec(knobs.dataset).title.split(" (")[0],
                **knobs.shape,
                "lr": knobs.lr,
                "batch_size": knobs.batch_size,
                "length": knobs.length_text,
                "seed": knobs.seed,
            },
            test_accuracy=outcome["test_accuracy"] or 0.0,
            parameters=num_parameters(config.parameter_counts()),
            seconds=outcome["seconds"],
            steps=outcome["steps"],
            images_per_second=outcome["images_per_second"],
            stopped=outcome["stopped"],
            loss_rows=tuple((s, v) for s, v, _ in curves.loss_rows),
            accuracy_rows=tuple((s, v) for s, v, series in curves.accuracy_rows if series == "test accuracy"),
        )
        kept = compare.keep(runs, run)
        loss, accuracy = compare.curves(kept)
        return {"runs": kept, "compare_table": compare.table(kept), "compare_loss": loss, "compare_accuracy": accuracy}

    @staticmethod
    def _confusion(counts: torch.Tensor, class_names) -> dict:
        """The confusion matrix's picture, its sentence, and where its cells are (for clicks)."""
        picture, area = render_with_box(plots.plot_confusion_matrix(counts, class_names))
        return {
            "confusion": picture,
            "confusion_summary": summaries.confusion(counts, class_names),
            "confusion_cells": ConfusionCells(area, tuple(class_names)),
        }

    @user_errors
    def mistakes_at(self, mine: LoadedModel | None, cells: ConfusionCells | None, event: gr.SelectData) -> tuple:
        """A click on a cell of the confusion matrix: the Mistakes view, set to that true class
        and guess, with its images. A click beside the cells changes nothing."""
        cell = None if cells is None or not isinstance(event.index, (list, tuple)) else cells.at(*event.index)
        if cell is None:
            return (gr.skip(),) * 5
        true_name, guessed_name = (cells.class_names[i] for i in cell)
        items, note = mistakes.gallery(mine, true_name, guessed_name, self.app.data_dir, self.app.test_limit)
        return gr.Tabs(selected="mistakes"), true_name, guessed_name, items, note

    @user_errors
    def show_snapshot(self, record: TimelineRecord | None, value) -> tuple:
        """The timeline's frame at the slider's position, and its sentence."""
        if record is None or not len(record):
            return gr.skip(), gr.skip()
        index = record.index(value)
        return record.frame(index), record.summary(index)

    @user_errors
    def timeline_gif(self, record: TimelineRecord | None, request: gr.Request = None) -> gr.File:
        """Every snapshot of the timeline as an animated GIF (a file to download)."""
        if record is None or not len(record):
            raise ValueError("There is no timeline yet: press Start to train a model first")
        folder = self.app.work_dir / "timelines" / _session_key(request)
        folder.mkdir(parents=True, exist_ok=True)
        frames = [record.frame(i, dpi=GIF_DPI) for i in range(len(record))]
        return gr.File(value=str(timelines.save_gif(frames, folder / "vit-training-timeline.gif")), visible=True)

    @user_errors
    def show_mistakes(self, mine: LoadedModel | None, true_name: str | None, guessed_name: str | None) -> tuple:
        """The gallery of test images of one class taken for another, with their rollouts."""
        items, note = mistakes.gallery(mine, true_name, guessed_name, self.app.data_dir, self.app.test_limit)
        return items, note

    def start_live(self, request: gr.Request | None, *inputs) -> tuple:
        """The page's Start, with the inputs `train` takes: check the settings and read the data
        here (a problem is reported at once), then train on a thread the page polls. The first
        frame, and the timer turned on."""
        key = _session_key(request)
        with self._live_lock:
            running = self._live.get(key)
            if running is not None and not running.finished:
                raise gr.Error("This page is already training: press Stop first.", print_exception=False)
            if sum(not run.finished for run in self._live.values()) >= MAX_TRAINERS:
                raise gr.Error(
                    f"This server is busy with {MAX_TRAINERS} trainings and their queue: try again in a minute.",
                    print_exception=False,
                )
        frames = self.train(*inputs, request=request, progress=_no_progress, pace=0.0)
        first = next(frames)  # settings checked, data read: a problem raises here, as a message
        with self._live_lock:
            self._live[key] = LiveRun(frames)
        return (*first, gr.Timer(active=True))

    @user_errors
    def restore(self, path: str | None, runs=None, request: gr.Request = None) -> tuple:
        """A run saved from this tab, brought back: its curves, confusion matrix, timeline and
        comparison here, its model in Explore. [the Train outputs, a new `finished` mark]."""
        if path is None:
            return (*frame(), gr.skip())
        model, info = checkpoints.load(path)  # a CheckpointError says what is wrong with the file
        record = run_record.read(path)
        if record is None:
            raise ValueError(
                f"{Path(path).name} is a model without its run: open it in ③ Explore (Upload a checkpoint). "
                "The file this tab's download makes brings back the curves and the timeline too."
            )
        settings = record.settings
        knobs = Knobs.read(
            settings["dataset"],
            *(settings["shape"][name] for name in SHAPE_FIELDS),
            *(settings[name] for name in ("lr", "batch_size", "length", "seconds", "epochs", "seed")),
        )
        config, spec, outcome = model.config, get_spec(info["dataset"]), record.result
        folder = self._session_folder(request)
        archive = Path(shutil.copy(path, folder / Path(path).name))
        timeline = TimelineRecord(record.timeline(TIMELINE_CAPACITY), record.probe, config, spec.class_names)
        last = len(timeline) - 1
        curves = Curves([tuple(row) for row in record.loss_rows], [tuple(row) for row in record.accuracy_rows])
        changes = {
            "status": (
                f"### Restored: test accuracy {outcome['test_accuracy']:.1%}\n"
                f"{'Stopped early' if outcome['stopped'] else 'Finished'} after {outcome['steps']:,} steps "
                f"({outcome['epochs']:.2f} epochs), scored on {outcome['test_images']:,} test images. Open "
                "**③ Explore** to see where it looks."
            ),
            "metrics": f"Step **{outcome['steps']:,}** · **{outcome['images_per_second']:,.0f} images/s**",
            "progress_bar": "",
            "loss": curves.loss(),
            "accuracy": curves.accuracy(),
            "timeline": timeline,
            "timeline_slider": timeline_slider(timeline),
            "timeline_frame": timeline.frame(last),
            "timeline_summary": timeline.summary(last),
            "download": gr.DownloadButton(value=str(archive), interactive=True),
            "my_model": LoadedModel(MINE, model, info, f"restored from {Path(path).name}", files=folder),
            "explore_model": MINE,
            "views": gr.Tabs(selected="positions"),
            **dict(
                zip(
                    ("positions", "positions_summary"),
                    draw_position_similarity(timeline.timeline[last].position_similarity),
                )
            ),
            **self._compare(runs, knobs, config, outcome, curves),
        }
        if record.confusion is not None:
            counts = torch.tensor(record.confusion)
            changes.update(self._confusion(counts, spec.class_names), views=gr.Tabs(selected="confusion"))
            changes.update(zip(("mistake_true", "mistake_guess"), mistakes.class_dropdowns(spec.class_names, counts)))
        return (*frame(**changes), f"{time.time():.6f}")

    def watch_class_run(self, class_lesson: bool, runs=None, request: gr.Request = None) -> tuple:
        """A class run's page, every few seconds until it follows one: once the lesson's run has
        started (on any page of it), follow it like a run of its own: [the live timer, this
        timer]. The page's own run, running, comes first."""
        key = _session_key(request)
        run = self.hub.class_run
        with self._live_lock:
            busy = key in self._live and not self._live[key].finished
        if not class_lesson or busy or run is None or not self.hub.attach(run):
            return gr.skip(), gr.Timer(active=bool(class_lesson))
        knobs, config = run.details
        frames = self._watch(run, knobs, config, runs, request)
        with self._live_lock:
            self._live[key] = LiveRun(frames)
        return gr.Timer(active=True), gr.Timer(active=False)

    def _watch(self, run: SharedRun, knobs: Knobs, config: ViTConfig, runs, request):
        """A class run, followed by a page that did not start it."""
        stop = self._stop_flag(request)
        stop.clear()
        try:
            yield frame(status="**Your teacher's class run:** watching it live.", views=gr.Tabs(selected="positions"))
            yield from self._follow(run, False, knobs, config, runs, stop, request, _no_progress, 0.0)
        finally:
            self.hub.leave(run)
            stop.clear()

    def poll(self, request: gr.Request = None) -> tuple:
        """The timer's tick: what changed; once the run has ended, also the timer off, the buttons
        back, and a new `finished` mark (what Explore listens to for the new model)."""
        run = self._live.get(_session_key(request))
        if run is None:
            return (*frame(), gr.Timer(active=False), *self.unlock_controls(), gr.skip())
        changes, finished = run.take()
        if not finished:
            return (*changes, gr.skip(), gr.skip(), gr.skip(), gr.skip(), gr.skip())
        with self._live_lock:
            self._live.pop(_session_key(request), None)
        if run.error is not None:
            changes = frame(**{**dict(zip(TRAIN_OUTPUTS, changes)), "status": f"### ⚠️ {run.error}"})
            return (*changes, gr.Timer(active=False), *self.unlock_controls(), gr.skip())
        return (*changes, gr.Timer(active=False), *self.unlock_controls(), f"{time.time():.6f}")

    def leave(self, request: gr.Request = None) -> None:
        """The page was closed: its run (or its place in the queue) ends, the seat is freed."""
        self._stop_flag(request).request()

    def stop(self, request: gr.Request = None) -> str:
        """Ask this session's training (or its place in the queue) to end."""
        self._stop_flag(request).request()
        return "Stopping after the current step…"

    @staticmethod
    def lock_controls() -> tuple:
        return gr.Button(interactive=False), gr.Button(interactive=False), gr.Button(interactive=True)

    @staticmethod
    def unlock_controls() -> tuple:
        return gr.Button(interactive=True), gr.Button(interactive=True), gr.Button(interactive=False)


@dataclass
class TrainControls:
    start: gr.Button
    stop: gr.Button
    download: gr.DownloadButton
    progress_bar: gr.Markdown
    status: gr.Markdown
    metrics: gr.Markdown
    loss: gr.LinePlot
    accuracy: gr.LinePlot
    positions: gr.Image
    positions_summary: gr.Markdown
    probes: gr.HTML
    confusion: gr.Image
    confusion_summary: gr.Markdown
    views: gr.Tabs
    timeline_slider: gr.Slider
    timeline_frame: gr.Image
    timeline_summary: gr.Markdown
    timeline_gif_button: gr.Button
    timeline_gif: gr.File
    mistakes_tab: gr.Tab
    mistake_true: gr.Dropdown
    mistake_guess: gr.Dropdown
    mistakes_note: gr.Markdown
    mistakes_gallery: gr.Gallery
    compare_table: gr.Markdown
    compare_loss: gr.LinePlot
    compare_accuracy: gr.LinePlot
    confusion_cells: gr.State  # ConfusionCells of the drawn matrix
    restore: gr.File  # a run downloaded from here, uploaded again
    class_lesson: gr.State  # this page belongs to a class run's lesson (teacher.py)
    class_watch: gr.Timer  # a class run's page looks for the run (TrainHandlers.watch_class_run)
    live: gr.Timer  # polls the page's run (TrainHandlers.poll) while it trains
    finished: gr.Textbox  # changes when a run ends: a new model for Explore

    def outputs(self, state: SessionState, explore_model: gr.Dropdown) -> list:
        """The components `TrainHandlers.train` yields to, in `TRAIN_OUTPUTS` order: this tab's,
        the session's, and Explore's model menu."""
        elsewhere = {
            "my_model": state.my_model,
            "timeline": state.my_timeline,
            "runs": state.my_runs,
            "explore_model": explore_model,
        }
        return [elsewhere[name] if name in elsewhere else getattr(self, name) for name in TRAIN_OUTPUTS]


def render_train_tab() -> TrainControls:
    """The Train tab's components (inside an open gr.Tab): controls, progress and curves
    on the left; what the model has learned so far on the right."""
    with gr.Row(equal_height=False):
        with gr.Column(scale=3):
            with gr.Row():
                start = gr.Button("Start training", variant="primary", elem_id="train-start")
                stop = gr.Button("Stop", variant="stop", interactive=False, elem_id="train-stop")
                download = gr.DownloadButton("Download the run (.zip)", interactive=False, elem_id="train-download")
            with gr.Accordion("Bring back a run you downloaded", open=False):
                restore = gr.File(file_types=[".zip"], show_label=False, height=90, elem_id="train-restore")
            # The progress bar needs a component of its own that no update rewrites.
            progress_bar = gr.Markdown("", min_height=70, elem_id="train-progress")
            # No LaTeX to look for in these two: the metrics line is redrawn every second.
            status = gr.Markdown(
                "Press **Start** to train the model you built on the **① Build** tab.",
                latex_delimiters=[],
                elem_id="train-status",
            )
            metrics = gr.Markdown(latex_delimiters=[], elem_id="train-metrics")
            with gr.Row():
                loss = gr.LinePlot(x="step", y="loss", label="Loss (lower is better)", elem_id="train-loss")
                # A fixed colour map: without it the plot keeps the series of its first update
                # (train accuracy only; the first test score comes later).
                accuracy = gr.LinePlot(
                    x="step",
                    y="accuracy (%)",
                    color="series",
                    y_lim=[0, 100],
                    color_map={
                        "train accuracy": "#0072B2",
                        "test accuracy": "#D55E00",
                    },  # Okabe & Ito: safe for colour-blind eyes
                    label="Accuracy (higher is better)",
                    elem_id="train-accuracy",
                )
        with gr.Column(scale=2):
            with gr.Tabs() as views:
                with gr.Tab("Positions it has learned", id="positions"):
                    positions = figure_slot(
                        "train-positions", 300, "How alike the learned positions are, live during training"
                    )
                    positions_summary = gr.Markdown(elem_id="train-positions-summary", latex_delimiters=[])
                with gr.Tab("Confusion matrix", id="confusion"):
                    confusion = figure_slot("train-confusion", 450, "Which classes it mixes up, once training ends")
                    confusion_summary = gr.Markdown(elem_id="train-confusion-summary", latex_delimiters=[])
                with gr.Tab("Mistakes", id="mistakes") as mistakes_tab:
                    with gr.Row():
                        mistake_true = gr.Dropdown(
                            [], label="True class", interactive=False, min_width=100, elem_id="train-mistake-true"
                        )
                        mistake_guess = gr.Dropdown(
                            [], label="Taken for", interactive=False, min_width=100, elem_id="train-mistake-guess"
                        )
                    mistakes_note = gr.Markdown(
                        "Once training ends: the test images it got wrong, and where it looked.",
                        elem_id="train-mistakes-note",
                    )
                    mistakes_gallery = gr.Gallery(
                        columns=2,
                        height=330,
                        allow_preview=True,
                        format="png",
                        object_fit="contain",
                        show_label=False,
                        buttons=[],
                        interactive=False,
                        elem_id="train-mistakes",
                        elem_classes=["pixelated"],
                    )
            probes = gr.HTML(elem_id="train-probes")
    with gr.Group(elem_id="train-timeline"):
        gr.Markdown(
            "**Training timeline.** A snapshot at regular points of the run: how alike the learned positions are, "
            "where the model looks on one test image, what the first layer looks for in a patch, and how far "
            "each head looks. Drag the slider to watch "
            "structure grow out of random noise.",
            padding=True,
        )
        with gr.Row(equal_height=False):
            timeline_slider = gr.Slider(
                0,
                1,
                value=0,
                step=1,
                interactive=False,
                scale=3,
                label="Training timeline: snapshots appear as the model trains",
                elem_id="train-timeline-slider",
            )
            with gr.Column(scale=1, min_width=200):
                timeline_gif_button = gr.Button("Make a GIF of the timeline", elem_id="train-timeline-gif-button")
                # Shown once there is a GIF to download (an empty file box would be a tall drop zone).
                timeline_gif = gr.File(
                    label="Timeline GIF", interactive=False, visible=False, elem_id="train-timeline-gif"
                )
        timeline_frame = figure_slot(
            "train-timeline-frame", 400, "The timeline is drawn when a run ends: then drag the slider"
        )
        timeline_summary = gr.Markdown(elem_id="train-timeline-summary", latex_delimiters=[], padding=True)
    with gr.Accordion("Compare your last two runs", open=True, elem_id="train-compare"):
        with gr.Row(equal_height=False):
            with gr.Column(scale=2, min_width=300):
                compare_table = gr.Markdown(compare.table([]), elem_id="train-compare-table")
            with gr.Column(scale=3):
                with gr.Row():
                    compare_loss = gr.LinePlot(
                        x="step",
                        y="loss",
                        color="run",
                        label="Train loss, both runs",
                        color_map=compare.COLOURS,
                        elem_id="train-compare-loss",
                    )
                    compare_accuracy = gr.LinePlot(
                        x="step",
                        y="test accuracy (%)",
                        color="run",
                        y_lim=[0, 100],
                        color_map=compare.COLOURS,
                        label="Test accuracy, both runs",
                        elem_id="train-compare-accuracy",
                    )
    return TrainControls(
        start=start,
        stop=stop,
        download=download,
        progress_bar=progress_bar,
        status=status,
        metrics=metrics,
        loss=loss,
        accuracy=accuracy,
        positions=positions,
        positions_summary=positions_summary,
        probes=probes,
        confusion=confusion,
        confusion_summary=confusion_summary,
        views=views,
        timeline_slider=timeline_slider,
        timeline_frame=timeline_frame,
        timeline_summary=timeline_summary,
        timeline_gif_button=timeline_gif_button,
        timeline_gif=timeline_gif,
        mistakes_tab=mistakes_tab,
        mistake_true=mistake_true,
        mistake_guess=mistake_guess,
        mistakes_note=mistakes_note,
        mistakes_gallery=mistakes_gallery,
        compare_table=compare_table,
        compare_loss=compare_loss,
        compare_accuracy=compare_accuracy,
        confusion_cells=gr.State(None),
        restore=restore,
        class_lesson=gr.State(False),
        class_watch=gr.Timer(CLASS_WATCH_SECONDS, active=False),
        live=gr.Timer(POLL_SECONDS, active=False),
        finished=gr.Textbox(visible=False),
    )


def wire_train_tab(
    handlers: TrainHandlers,
    demo: gr.Blocks,
    build: BuildControls,
    train: TrainControls,
    state: SessionState,
    steps: gr.Tabs,
    explore_model: gr.Dropdown,
) -> list:
    """Start (on the Build or the Train tab), Stop, the live poll, the timeline, the mistakes
    gallery, and the scripting API's streaming "/train". Returns the events after which the
    session has a new model (`state.my_model`), for Explore to show it."""
    private = {"api_visibility": "private", "show_progress": "hidden"}
    controls = [build.start, train.start, train.stop]
    outputs = train.outputs(state, explore_model)
    inputs = [*build.model_inputs(), *build.training_inputs(), state.my_runs, train.class_lesson]
    build.start.click(lambda: gr.Tabs(selected="train"), None, steps, queue=False, **private)
    # The page starts a run, then polls it (LiveRun); when it ends, `finished` changes.
    starting = gr.on(
        [build.start.click, train.start.click], handlers.lock_controls, None, controls, queue=False, **private
    ).then(
        handlers.start_live,
        inputs,
        [*outputs, train.live],
        **private,
        concurrency_id="train-start",
        concurrency_limit=None,
    )
    starting.failure(handlers.unlock_controls, None, controls, queue=False, **private)
    train.live.tick(handlers.poll, None, [*outputs, train.live, *controls, train.finished], queue=False, **private)
    train.restore.upload(
        handlers.restore, [train.restore, state.my_runs], [*outputs, train.finished], api_visibility="private"
    )
    train.class_watch.tick(
        handlers.watch_class_run, [train.class_lesson, state.my_runs], [train.live, train.class_watch], **private
    )
    demo.unload(handlers.leave)
    train.stop.click(handlers.stop, None, train.status, api_name="stop", queue=False, show_progress="hidden")
    # Scripts train through one streaming call (gradio_client's submit or predict on "/train").
    api_train = gr.Button(visible=False)
    api_training = api_train.click(
        handlers.train,
        inputs,
        outputs,
        api_name="train",
        show_progress="full",
        concurrency_id="train",
        concurrency_limit=MAX_TRAINERS,
    )
    # Scrubbing the timeline: only a person's own moves redraw (the run moves the slider too).
    gr.on(
        [train.timeline_slider.input, train.timeline_slider.release],
        handlers.show_snapshot,
        [state.my_timeline, train.timeline_slider],
        [train.timeline_frame, train.timeline_summary],
        trigger_mode="always_last",
        **private,
    )
    exploring = {"concurrency_id": "explore", "concurrency_limit": handlers.app.max_explores}
    train.timeline_gif_button.click(
        handlers.timeline_gif, state.my_timeline, train.timeline_gif, api_visibility="private", **exploring
    )
    gr.on(
        [train.mistakes_tab.select, train.mistake_true.input, train.mistake_guess.input],
        handlers.show_mistakes,
        [state.my_model, train.mistake_true, train.mistake_guess],
        [train.mistakes_gallery, train.mistakes_note],
        trigger_mode="always_last",
        api_visibility="private",
        **exploring,
    )
    train.confusion.select(
        handlers.mistakes_at,
        [state.my_model, train.confusion_cells],
        [train.views, train.mistake_true, train.mistake_guess, train.mistakes_gallery, train.mistakes_note],
        api_visibility="private",
        **exploring,
    )
    return [train.finished.change, api_training.success]
