"""Runs as pages see them: a page starts a run (or follows the identical one already on the
server), polls what changed, stops it, leaves; a script streams it. Runs are shared
(`shared_runs.RunHub`): pages that ask for the same knobs follow one run, produced once
(`producer.py`). Each page gets its own copy of the result: the model in its session, the
run's zip in its own folder, and the comparison with its previous run.
"""

from __future__ import annotations

import contextvars
import math
import shutil
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from .. import checkpoints, run_record
from ..data import Split, get_spec
from ..model import num_parameters
from ..settings import AppSettings
from ..speed import ThroughputMeter
from ..training import TrainConfig
from . import compare
from .classroom import Classroom
from .frames import Curves, TimelineRecord, draw_position_similarity
from .jobs import StopFlag
from .knobs import APP_REPORT_SECONDS, Knobs
from .library import MINE, LoadedModel
from .limits import check_fits_server
from .producer import Frame, Plan, Producer, RunResult, confusion_frame, merge_frames
from .shared_runs import RunHub, RunKey, SharedRun
from .workfolder import WorkFolder

WATCHED = 8  # test pictures whose guesses a page shows while the model learns
# Pages that may train or wait for a seat at once: a class of 30, and some. Beyond that a page
# is told to try again.
MAX_PAGES_TRAINING = 32
SHARING = "**Same settings as a run already on this server: sharing its result.**\n\n"
CLASS_RUN = "**Your teacher's class run**, followed live on this page.\n\n"


class BusyError(ValueError):
    """A page asked for more than the server gives it now (a second run, a full server)."""


class LiveRun:
    """One page's run, followed on a thread of its own; the page asks for what changed (`take`).

    A page polls rather than streams: a streaming event would keep the page waiting on one long
    request, and Gradio's page then runs its status tracker every frame for the length of the
    run (measured in headless Chromium: a tenth of a core taken from the training). Each poll
    gets the newest value of every field changed since the last one, so a slow page skips stale
    frames instead of falling behind. The thread carries its creator's context: the run it
    starts is the visitor's own (a ZeroGPU lease reads the page's request from it)."""

    def __init__(self, changes: Iterator[dict]):
        self._changes = changes
        self._lock = threading.Lock()
        self._pending: dict = {}
        self._finished = False
        self.error: Exception | None = None
        self.new_model = False  # the run has given the page a model
        context = contextvars.copy_context()
        self._thread = threading.Thread(target=context.run, args=(self._run,), name="vit-demo-live-run", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        try:
            for changes in self._changes:
                with self._lock:
                    self._pending.update(changes)
                    self.new_model = self.new_model or "my_model" in changes
        except Exception as error:  # noqa: BLE001 - the page shows it as a sentence
            self.error = error
        finally:
            with self._lock:
                self._finished = True

    def take(self) -> tuple[dict, bool]:
        """What changed since the last call, and whether the run has ended (nothing left after it)."""
        with self._lock:
            changes, self._pending = self._pending, {}
            return changes, self._finished

    @property
    def finished(self) -> bool:
        with self._lock:
            return self._finished

    def join(self, timeout: float | None = None) -> None:
        self._thread.join(timeout)


@dataclass(frozen=True)
class Poll:
    changes: dict
    finished: bool
    error: Exception | None = None
    new_model: bool = False


class Runs:
    """Every page's run on this server. `train(job, share)` trains a `jobs.TrainingJob` wherever
    this server trains (its training process, or a ZeroGPU Space's lent GPU)."""

    def __init__(self, settings: AppSettings, meter: ThroughputMeter, queue, train, machine: str):
        self.settings = settings
        self.meter = meter
        self.machine = machine  # the key's machine: one server trains on one machine
        self.work = WorkFolder(settings.work_dir, int(settings.max_work_mb * 2**20))
        self.hub = RunHub(settings.work_dir / "runs", merge_frames, _frame_bytes)
        self.producer = Producer(train, queue, meter, self.hub.finished)
        # The most curve points a run of this server can report: one a second, and its evaluations.
        self.max_rows = 2 * (int(settings.max_train_seconds / APP_REPORT_SECONDS) + TrainConfig().evaluations) + 8
        self._live: dict[str, LiveRun] = {}  # page -> its run
        self.classroom = Classroom()  # the lesson's pages and their runs, for the teacher's view
        self._class_seen: dict[str, str] = {}  # page -> the folder of the last class run it followed
        self.gone_hooks: list = []  # called with each page whose files the sweep removed (the UI's state goes too)
        self._live_lock = threading.Lock()

    # ------------------------------------------------------------------ a page's files

    def stop_flag(self, page: str) -> StopFlag:
        return StopFlag(self.work.page_path("stop", page))

    def page_folder(self, page: str) -> Path:
        """A fresh folder for the page's files (its previous run's were already served)."""
        return self.work.fresh("sessions", page)

    def sweep(self) -> list[str]:
        """Remove what pages left behind (service/workfolder.py); the pages whose files went."""
        with self._live_lock:
            busy = {page for page, run in self._live.items() if not run.finished}
        gone = self.work.sweep(busy)
        for page in gone:
            for hook in self.gone_hooks:
                hook(page)
        return gone

    # ------------------------------------------------------------------ planning and starting

    def plan(self, knobs: Knobs) -> Plan:
        """Check the knobs against the model and this server, and read the data, so a problem
        is reported at once, not after a wait in line."""
        s = self.settings
        config = knobs.model_config()
        check_fits_server(config, knobs.batch_size, s.max_train_memory_mb, s.max_train_seconds, self.meter)
        training = knobs.train_config(s.data_dir, s.train_limit, s.test_limit)
        knobs.check_pictures_fit(s.train_limit)
        train_images = len(training.split(train=True))
        # A copy, not a view of the cached test set: a ZeroGPU lease pickles the job with
        # multiprocessing's pickler, which moves a tensor's whole storage into shared memory.
        watched = training.split(train=False, limit=WATCHED)
        watched = Split(watched.images.clone(), watched.labels.clone())
        return Plan(knobs, config, training, watched, train_images, s.max_train_seconds)

    def open(self, knobs: Knobs, page: str, previous=None, class_lesson: bool = False) -> Iterator[dict]:
        """Start the run of `knobs` (or follow the identical one already here) for `page`: the
        changes its page shows, from the first (the settings checked) to its own end. On a class
        run's page the run becomes the class run, which every page of the lesson shows."""
        plan = self.plan(knobs)
        stop = self.stop_flag(page)
        stop.clear()
        yield {
            "status": "Getting ready…",
            "progress": (None, "Getting ready"),
            "metrics": "",
            "loss": None,
            "accuracy": None,
            "confusion": None,
            "download": None,
            "view": "positions",
            "timeline": None,
            "timeline_frame": None,
            "timeline_summary": "",
            "timeline_slider": 0,
        }
        key = RunKey.of(knobs.shape, plan.training, self.machine, plan.max_seconds)
        run, shared = self.hub.join(key, lambda run: self.producer.start(run, plan))
        if class_lesson:
            self.hub.class_run = run
        self.classroom.started(page, knobs.values, run)
        try:
            yield from self._follow(run, SHARING if shared else "", plan, previous, stop, page)
        finally:
            self.classroom.ended(page)
            self.hub.leave(run)
            stop.clear()

    def stream(self, knobs: Knobs, page: str, previous=None, pace: float = 2.0) -> Iterator[dict]:
        """`open` for a script, `paced`: each update costs the server its serialising, and thirty
        scripts taking every report would cost it five times what thirty polling pages do."""
        return paced(self.open(knobs, page, previous), pace)

    def _follow(self, run: SharedRun, heading: str, plan: Plan, previous, stop: StopFlag, page: str):
        """The frames of `run` for this page: the shared ones, then this page's own end (its copy
        of the model, its comparison with its last run). `heading`: what every status starts with."""
        stopping = False
        for item in run.follow():
            if stop() and not stopping:
                stop.clear()
                if run.followers > 1:  # others chose the same settings: they keep the run
                    others = run.followers - 1
                    yield {
                        "status": (
                            f"You stopped watching. The run goes on for the {others} other page"
                            f"{'s' if others > 1 else ''} that chose the same settings; press **Start** to watch "
                            "it again."
                        ),
                        "progress": "",
                    }
                    return
                self.hub.stop(run)  # this page's run alone: it stops, and its model so far is kept
                stopping = True
            if item is None:
                continue
            self.classroom.report(page, item.progress)  # recorded only for a lesson page's own run
            changes = dict(item.changes)
            if heading and "status" in changes:
                changes["status"] = heading + changes["status"]
            if item.result is not None:
                changes.update(self._own_copy(plan, item.result, page), **self._compare(previous, plan, item.result))
            yield changes

    def _own_copy(self, plan: Plan, result: RunResult, page: str) -> dict:
        """This page's own copy of the finished model: in its session, its download, in Explore."""
        knobs = plan.knobs
        model = create_model_from(knobs, result.state_dict)
        folder = self.page_folder(page)
        archive = Path(shutil.copy(result.archive, folder / result.archive.name))
        info = {**result.info, "image_size": plan.config.image_size, "channels": plan.config.channels}
        return {"download": archive, "my_model": LoadedModel(MINE, model, info, "trained here", files=folder)}

    @staticmethod
    def _compare(previous, plan: Plan, result: RunResult) -> dict:
        """This run beside the page's previous one: the kept runs, their table and their curves."""
        return compare_changes(previous, plan.knobs, result.outcome, result.curves, plan.config)

    # ------------------------------------------------------------------ a page's live run

    def start_live(self, knobs: Knobs, page: str, previous=None, class_lesson: bool = False) -> dict:
        """A page's Start: check and plan here (a problem raises at once, as a sentence), then
        follow the run on a thread the page polls. The first changes."""
        with self._live_lock:
            running = self._live.get(page)
            if running is not None and not running.finished:
                raise BusyError("This page is already training: press Stop first.")
            if sum(not run.finished for run in self._live.values()) >= MAX_PAGES_TRAINING:
                raise BusyError(
                    f"This server is busy with {MAX_PAGES_TRAINING} trainings and their queue: try again in a minute."
                )
        changes = self.open(knobs, page, previous, class_lesson)
        first = next(changes)
        with self._live_lock:
            self._live[page] = LiveRun(changes)
        return first

    def poll(self, page: str) -> Poll:
        """What changed for the page's run since the last poll; once it has ended (then it is
        forgotten), its error or whether it gave the page a new model."""
        with self._live_lock:
            run = self._live.get(page)
        if run is None:
            return Poll({}, True)
        changes, finished = run.take()
        if not finished:
            return Poll(changes, False)
        with self._live_lock:
            if self._live.get(page) is run:
                del self._live[page]
        return Poll(changes, True, run.error, run.new_model and run.error is None)

    def training(self, page: str) -> bool:
        with self._live_lock:
            run = self._live.get(page)
            return run is not None and not run.finished

    def stop(self, page: str) -> None:
        """Ask the page's run (or its place in the queue) to end; the model so far is kept."""
        self.stop_flag(page).request()

    def leave(self, page: str) -> None:
        """The page was closed: its run (or its place in line) ends, its live run is let go, and its
        files go after a grace period."""
        self.stop_flag(page).request()
        with self._live_lock:
            self._live.pop(page, None)
            self._class_seen.pop(page, None)
        self.work.left(page)

    def watch_class_run(self, page: str, previous=None) -> bool:
        """A class run's page, every few seconds: once the lesson's run has
        started (on any page of it), follow it like a run of its own. False while there is none
        to follow (or only the one it followed already), or the page's own run is running."""
        run = self.hub.class_run
        # Each class run once: the next one (the teacher's choice) once the last has ended here.
        if run is None or self._class_seen.get(page) == run.folder.name or self.training(page):
            return False
        if not self.hub.attach(run):
            return False
        with self._live_lock:
            self._class_seen[page] = run.folder.name
            self._live[page] = LiveRun(self._watch(run, run.details, previous, page))
        return True

    def _watch(self, run: SharedRun, plan: Plan, previous, page: str):
        stop = self.stop_flag(page)
        stop.clear()
        try:
            yield {"status": CLASS_RUN + "Watching it live.", "view": "positions"}
            yield from self._follow(run, CLASS_RUN, plan, previous, stop, page)
        finally:
            self.hub.leave(run)
            stop.clear()

    # ------------------------------------------------------------------ a run brought back

    def restore(self, path: str, page: str, previous=None) -> dict:
        """A run downloaded from the Train tab, brought back: its curves, confusion matrix,
        timeline and comparison, its model for Explore."""
        model, info = checkpoints.load(path)  # a CheckpointError says what is wrong with the file
        name = Path(path).name
        record = run_record.read(path, run_record.Bounds(model.config, self.max_rows))
        if record is None:
            raise ValueError(
                f"{name} is a model without its run: open it in ③ Explore (Upload a checkpoint). "
                "The file this tab's download makes brings back the curves and the timeline too."
            )
        try:
            knobs = Knobs.read(record.settings)
        except ValueError as error:
            raise checkpoints.CheckpointError(f"{name}/{run_record.RECORD_NAME}: settings: {error}") from error
        if knobs.model_config() != model.config:
            raise checkpoints.CheckpointError(
                f"{name}/{run_record.RECORD_NAME}: its settings describe another model than its checkpoint"
            )
        config, spec, outcome = model.config, knobs.spec, record.result
        folder = self.page_folder(page)
        archive = Path(shutil.copy(path, folder / Path(path).name))
        timeline = TimelineRecord(record.timeline(), record.picture, config, spec.class_names)
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
            "progress": "",
            "loss": curves.loss(),
            "accuracy": curves.accuracy(),
            "timeline": timeline,
            "timeline_slider": len(timeline),
            "timeline_frame": timeline.frame(last),
            "timeline_summary": timeline.summary(last),
            "download": archive,
            "my_model": LoadedModel(MINE, model, info, f"restored from {Path(path).name}", files=folder),
            "view": "positions",
            **dict(
                zip(
                    ("positions", "positions_summary"),
                    draw_position_similarity(timeline.timeline[last].position_similarity),
                )
            ),
            **compare_changes(previous, knobs, outcome, curves, config),
        }
        if record.confusion is not None:
            import torch

            changes.update(confusion_frame(torch.tensor(record.confusion), spec.class_names))
        return changes


def paced(changes: Iterator[dict], pace: float, clock=time.monotonic) -> Iterator[dict]:
    """At most one update every `pace` seconds, each the newest value of every field changed
    since the last; the first change, the first training step and the last at once."""
    pending, sent, stepped = None, -math.inf, False
    for change in changes:
        pending = change if pending is None else {**pending, **change}
        step = str(change.get("metrics", "")).startswith("Step **")
        if "my_model" in change or (step and not stepped) or clock() - sent >= pace:
            yield pending
            pending, sent, stepped = None, clock(), stepped or step
    if pending is not None:
        yield pending


def create_model_from(knobs: Knobs, state_dict: dict):
    from ..training import create_model

    model = create_model(knobs.spec, seed=knobs.seed, **knobs.shape)
    model.load_state_dict(state_dict)
    return model.eval()


def compare_changes(previous, knobs: Knobs, outcome: dict, curves: Curves, config) -> dict:
    """A run beside the page's previous one: the kept runs, their table and their curves."""
    run = compare.RunSummary(
        number=compare.next_number(previous),
        settings={**knobs.values, "dataset": get_spec(knobs.dataset).title.split(" (")[0]},
        test_accuracy=outcome["test_accuracy"] or 0.0,
        parameters=num_parameters(config.parameter_counts()),
        seconds=outcome["seconds"],
        steps=outcome["steps"],
        images_per_second=outcome["images_per_second"],
        stopped=outcome["stopped"],
        loss_rows=tuple((s, v) for s, v, _ in curves.loss_rows),
        accuracy_rows=tuple((s, v) for s, v, series in curves.accuracy_rows if series == "test accuracy"),
    )
    kept = compare.keep(previous, run)
    loss, accuracy = compare.curves(kept)
    return {"runs": kept, "compare_table": compare.table(kept), "compare_loss": loss, "compare_accuracy": accuracy}


def _frame_bytes(item: Frame) -> int:
    from .producer import frame_bytes

    return frame_bytes(item)
