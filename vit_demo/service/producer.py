"""A run's own side: wait for a seat, train (in the training process, or on a ZeroGPU Space's
lent GPU), and publish a frame for every report, which every page following the run shows.
A frame is a dict of named changes (`FRAME_FIELDS`); the last one carries the `RunResult`.
"""

from __future__ import annotations

import contextvars
import math
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass
from pathlib import Path

import torch

from .. import checkpoints, run_record, summaries
from ..data import Split, display_pixels, own_pictures
from ..model import ViTConfig
from ..speed import ThroughputMeter
from ..timeline import Timeline
from ..training import TrainConfig, TrainProgress, checkpoint_info, create_model
from . import mistakes
from .frames import BackgroundRenderer, ConfusionCells, Curves, TimelineRecord, draw_position_similarity, watched_strip
from .jobs import TrainingJob, TrainingUpdate
from .knobs import Knobs
from .queue import TrainingQueue
from .shared_runs import SharedRun
from .zerogpu import OnCpu

# What a frame may change, by name; the Train tab places each on the page.
FRAME_FIELDS = (
    "status",  # Markdown
    "progress",  # (fraction or None, text) for the progress bar; "" clears it
    "metrics",  # Markdown: step, speed, loss
    "loss",  # long-format table of the curves (pandas)
    "accuracy",
    "positions",  # picture of the positional-embedding similarity
    "positions_summary",
    "watched",  # HTML: the watched pictures and the model's guesses
    "confusion",  # picture
    "confusion_summary",
    "confusion_cells",  # frames.ConfusionCells of the drawn matrix
    "mistakes",  # (class names, (true, guessed)) the Mistakes menus start from
    "view",  # the side view to open: "positions" or "confusion"
    "timeline",  # frames.TimelineRecord
    "timeline_slider",  # snapshots to scrub once the run has ended; 0 resets the slider
    "timeline_frame",  # picture
    "timeline_summary",
    # This page's own, added when it gets the result (runs.py):
    "download",  # Path of the run's zip in the page's folder
    "my_model",  # library.LoadedModel
    "runs",  # the page's last runs (compare.RunSummary)
    "compare_table",
    "compare_loss",
    "compare_accuracy",
)
WAIT_POLL_SECONDS = 0.5
CURVE_SECONDS = 2.0  # the live curves are sent at most this often (and with every evaluation)
MIN_STEPS_FOR_SPEED = 20  # a run stopped sooner says little about this machine's speed


@dataclass(frozen=True)
class RunResult:
    """A finished run's model and record, shared by everyone who followed it."""

    state_dict: dict
    info: dict  # what its checkpoint records (training.checkpoint_info)
    archive: Path  # the run as one zip (checkpoint and record), in the run's own folder
    outcome: dict  # test accuracy, steps, epochs, seconds, images per second, stopped, test images
    curves: Curves


@dataclass(frozen=True)
class Frame:
    """What a shared run publishes: named changes (`FRAME_FIELDS`), the run's progress, and with
    the last frame its result."""

    changes: dict
    progress: TrainProgress | None = None
    result: RunResult | None = None


def merge_frames(older: Frame, newer: Frame) -> Frame:
    """Both frames as one: what a page that saw neither must show (the newer values win)."""
    return Frame({**older.changes, **newer.changes}, newer.progress or older.progress, newer.result or older.result)


def frame_bytes(item: Frame) -> int:
    """About how much memory a frame holds: its pictures and the model's weights."""
    pictures = sum(v.width * v.height * 3 for v in item.changes.values() if hasattr(v, "width"))
    weights = sum(t.numel() * t.element_size() for t in item.result.state_dict.values()) if item.result else 0
    return pictures + weights


def clock(seconds: float) -> str:
    seconds = max(int(round(seconds)), 0)
    return f"{seconds // 60}:{seconds % 60:02d}"


def metrics(p: TrainProgress) -> str:
    of = f" of {p.total_steps:,}" if p.total_steps else ""
    test = f" · test accuracy **{p.test_accuracy:.1%}**" if p.test_accuracy is not None else ""
    return (
        f"Step **{p.step:,}**{of} · epoch **{p.epoch:.2f}** · **{p.images_per_second:,.0f} images/s** · "
        f"time left **{clock(p.eta)}** · loss **{p.train_loss:.3f}**{test}"
    )


def confusion_frame(counts: torch.Tensor, class_names) -> dict:
    """The confusion matrix's picture, its sentence, where its cells are, and the Mistakes menus."""
    from .. import plots, training_plots

    picture, area = plots.figure_to_image_and_box(training_plots.plot_confusion_matrix(counts, class_names))
    return {
        "confusion": picture,
        "confusion_summary": summaries.confusion(counts, class_names),
        "confusion_cells": ConfusionCells(area, tuple(class_names)),
        "mistakes": (tuple(class_names), mistakes.most_confused(counts)),
        "view": "confusion",
    }


@dataclass(frozen=True)
class Plan:
    """A run about to be produced: the knobs, the model, the TrainConfig and the data it reads."""

    knobs: Knobs
    config: ViTConfig
    training: TrainConfig
    watched: Split  # the test pictures whose guesses the page shows
    train_images: int
    max_seconds: float


class Producer:
    """Produces shared runs: `start(run, plan)` sets one going on a thread of its own that
    carries the caller's context (a ZeroGPU lease is the visitor's own: `spaces` reads the
    Gradio request from it)."""

    def __init__(
        self,
        train: Callable[..., Iterator[TrainingUpdate | OnCpu]],
        queue: TrainingQueue,
        meter: ThroughputMeter,
        finished: Callable[[SharedRun], None],
    ):
        self._train = train
        self.queue = queue
        self.meter = meter
        self._finished = finished

    def start(self, run: SharedRun, plan: Plan) -> None:
        run.details = plan
        context = contextvars.copy_context()
        threading.Thread(target=context.run, args=(self._produce, run, plan), name="vit-demo-run", daemon=True).start()

    def _produce(self, run: SharedRun, plan: Plan) -> None:
        expected = self.meter.run_seconds(plan.config, plan.training, plan.train_images, plan.training.eval_subset)
        ticket = self.queue.join(expected)
        positions = BackgroundRenderer(draw_position_similarity)
        complete = False
        try:
            if not self._wait_for_seat(run, ticket):
                run.publish(Frame({"status": "You left the queue. Press **Start** to join it again.", "progress": ""}))
                return
            complete = _Training(self, run, plan, ticket, positions).run()
        except Exception as error:  # noqa: BLE001 - every follower gets it, as the message it is
            run.finish(complete=False, error=error)
        finally:
            positions.close()
            self.queue.leave(ticket)
            if not run.done:
                run.finish(complete=complete)
            self._finished(run)

    def _wait_for_seat(self, run: SharedRun, ticket) -> bool:
        """Publish the run's place in line until a seat is free; False if everyone gave up."""
        said = None
        while (place := self.queue.wait_turn(ticket, WAIT_POLL_SECONDS)) > 0:
            if run.stop_requested:
                return False
            running = self.queue.running
            start = self.queue.estimated_start(ticket)
            when = f" It should start in about **{clock(start)}**." if start is not None else ""
            status = (
                f"**Waiting for a free seat: number {place} in line.** {running} training"
                f"{'s are' if running != 1 else ' is'} running on this server.{when} "
                f"Explore keeps working meanwhile; **Stop** leaves the queue."
            )
            if status != said:  # every follower sees each change; nothing is published twice
                run.publish(Frame({"status": status, "progress": (None, f"Waiting: number {place} in line")}))
                said = status
        return True


class _Training:
    """One run's training, report by report, turned into frames."""

    def __init__(self, producer: Producer, run: SharedRun, plan: Plan, ticket, positions: BackgroundRenderer):
        self.producer, self.run_, self.plan, self.ticket, self.positions = producer, run, plan, ticket, positions
        spec = plan.training.spec
        self.spec = spec
        self.record = TimelineRecord(Timeline(), display_pixels(plan.watched.images[0]), plan.config, spec.class_names)
        self.curves = Curves()
        self.curves_sent = -math.inf
        self.status: str | None = None
        self.where = ""  # a sentence when the run trains somewhere else than planned (a ZeroGPU Space's CPU)

    def run(self) -> bool:
        """Train and publish; True if the run ran to its end."""
        job = TrainingJob(
            self.plan.knobs.shape,
            self.plan.training,
            self.plan.watched.images,
            stop=self.run_.stop,
            max_seconds=self.plan.max_seconds,
            own_pictures=own_pictures(self.plan.training.dataset),
        )
        complete = False
        for update in self.producer._train(job, share=self.run_.share):
            if isinstance(update, OnCpu):
                self.where = f" {update.sentence}"
                continue
            changes = self._pictures(update)
            if update.progress is None:
                self._start(update, changes)
            elif update.progress.done:
                self._end(update, changes)
                complete = not update.progress.stopped
            else:
                self._report(update.progress, changes)
        return complete

    def _status_change(self) -> dict:
        """The status, when it says something new: how many trainings share the machine."""
        knobs, training = self.plan.knobs, self.plan.training
        running = self.producer.queue.running
        said = (
            f"**Training** on {self.plan.train_images:,} {self.spec.title} images ({knobs.length_text}, "
            f"{math.ceil(training.total_epochs * self.plan.train_images / training.batch_size):,} steps). "
            f"Press **Stop** to end early: the model so far is kept.{self.where}"
            + (
                f" {running} trainings are running on this server at once, taking turns on its cores:"
                " each takes longer than it would alone."
                if running > 1
                else ""
            )
        )
        changed, self.status = said != self.status, said
        return {"status": said} if changed else {}

    def _pictures(self, update: TrainingUpdate) -> dict:
        """What the update changes in the pictures: positions (drawn in the background), the
        timeline, the watched guesses."""
        if update.position_similarity is not None:
            self.positions.request(update.position_similarity)
        drawn = self.positions.finish() if update.state_dict is not None else self.positions.ready()
        changes = {} if drawn is None else dict(zip(("positions", "positions_summary"), drawn))
        if update.snapshot is not None:
            self.record.timeline.add(update.snapshot)  # thins exactly as the run's own timeline
            plural = "s" if len(self.record) != 1 else ""
            changes.update(
                timeline=self.record,
                timeline_summary=f"{len(self.record)} snapshot{plural} so far: the timeline is drawn when the run "
                "ends, to replay.",
            )
        if update.guesses is not None:
            watched = self.plan.watched
            changes["watched"] = watched_strip(watched.images, watched.labels, update.guesses, self.spec)
        return changes

    def _start(self, update: TrainingUpdate, changes: dict) -> None:
        self.curves.start(update.start)
        self.curves_sent = time.monotonic()
        self.run_.publish(
            Frame(
                {
                    **self._status_change(),
                    "metrics": "Step 0: the model is still random, its guesses are chance.",
                    "progress": (0.0, "Training"),
                    "loss": self.curves.loss(),
                    "accuracy": self.curves.accuracy(),
                    **changes,
                }
            )
        )

    def _report(self, p: TrainProgress, changes: dict) -> None:
        self.curves.add(p)
        self.producer.queue.expect_end(self.ticket, p.eta)
        # Every report moves the numbers; the curves are redrawn (in the browser, the dearest
        # part of an update) every CURVE_SECONDS, and with each evaluation.
        if p.evaluated or time.monotonic() - self.curves_sent >= CURVE_SECONDS:
            changes.update(loss=self.curves.loss(), accuracy=self.curves.accuracy())
            self.curves_sent = time.monotonic()
        changes.update(
            metrics=metrics(p),
            progress=(p.fraction, f"Training: step {p.step:,} · {p.fraction:.0%}"),
            **self._status_change(),
        )
        self.run_.publish(Frame(changes, p))

    def _end(self, update: TrainingUpdate, changes: dict) -> None:
        p = update.progress
        self.curves.add(p)
        # The timeline's frame is drawn once the run ends (then scrubbed): drawn live, it cost
        # the training more than anything else on the page, below the fold.
        last = len(self.record) - 1
        changes.update(
            timeline_frame=self.record.frame(last),
            timeline_summary=self.record.summary(last),
            timeline_slider=len(self.record),
        )
        changes.update(self._ending(update))
        self.run_.publish(Frame(changes, p, self._result(update)))

    def _ending(self, update: TrainingUpdate) -> dict:
        """What every follower's page shows when the run ends: the score, the curves, the
        confusion matrix and the mistakes menus."""
        p = update.progress
        if update.time_limited:
            ending = f"Stopped at this server's {clock(self.plan.max_seconds)} limit"
        elif p.stopped:
            ending = "Stopped early"
        else:
            ending = "Finished"
        return {
            "status": (
                f"### Test accuracy: {p.test_accuracy:.1%}\n"
                f"{ending} after {p.step:,} steps ({p.epoch:.2f} epochs, {clock(p.elapsed)}), scored on "
                f"{p.final_test_images:,} test images it never trained on.{self.where} Open **③ Explore** to see "
                "where it looks."
            ),
            "metrics": metrics(p),
            "progress": (p.fraction, f"{ending} at step {p.step:,}"),
            "loss": self.curves.loss(),
            "accuracy": self.curves.accuracy(),
            **confusion_frame(p.confusion, self.spec.class_names),
        }

    def _result(self, update: TrainingUpdate) -> RunResult:
        """The run's model and its record (knobs, curves, timeline), saved and zipped once in the
        run's own folder: the one file a student takes home (run_record.py)."""
        p, plan = update.progress, self.plan
        if p.step >= MIN_STEPS_FOR_SPEED and p.step_seconds > 0 and not self.where:
            # The speed of its steps, not of the wall clock: runs take turns in the training process.
            self.producer.meter.record_run(
                plan.config, plan.training.batch_size, p.step * plan.training.batch_size / p.step_seconds
            )
        info = checkpoint_info(plan.training, p)
        model = create_model(plan.training.spec, seed=plan.training.seed, **plan.knobs.shape)
        model.load_state_dict(update.state_dict)
        name = f"my-vit-{plan.training.dataset}"
        saved = checkpoints.save(model, self.run_.folder / name, info)
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
                settings=asdict(plan.knobs),
                result=outcome,
                loss_rows=[list(row) for row in self.curves.loss_rows],
                accuracy_rows=[list(row) for row in self.curves.accuracy_rows],
                confusion=p.confusion.tolist() if p.confusion is not None else None,
                snapshots=list(self.record.timeline.snapshots),
                picture=self.record.picture,
            ),
        )
        return RunResult(
            state_dict=update.state_dict,
            info=info,
            archive=checkpoints.zip_checkpoint(saved, self.run_.folder / f"{name}.zip"),
            outcome=outcome,
            curves=self.curves,
        )
