"""The Train tab: Start, Stop, a progress bar, live curves, what the model learns as it goes
(positional-embedding similarity, guesses on watched test pictures), then the test accuracy,
a confusion matrix, the mistakes, the timeline, the comparison with the last run and the run
as a zip. The runs themselves are the service's (vit_demo/service/runs.py): this module lays
out the components and places each named change of a run on the page (`TrainTab.updates`).
"""

from __future__ import annotations

import html
from dataclasses import dataclass

import gradio as gr

from ..service import compare
from .figures import figure_slot
from .state import SessionState

POLL_SECONDS = 2.0  # how often a page asks its live run what changed (each ask costs the page and the server)
CLASS_WATCH_SECONDS = 3.0  # how often a class run's page looks for the run, until it follows it


def progress_html(value) -> str:
    """The Train tab's own progress bar: a static element redrawn with each report. (Gradio's
    status tracker redraws its timer every frame while a training streams: measured, that kept
    the browser's renderer busy for a tenth of a core, taken from the training on 2 cores.)"""
    if not value:
        return ""
    fraction, text = value
    bar = "" if fraction is None else f'<progress value="{min(max(fraction, 0.0), 1.0):.3f}" max="1"></progress>'
    return f'<div class="train-bar">{bar}<span>{html.escape(text)}</span></div>'


def timeline_slider(snapshots: int) -> gr.Slider:
    """The slider over a finished run's snapshots (0: none yet). While the run records them, the
    slider is left as it is and the count is told in words: a slider's update rebuilds its whole
    configuration on the server, once for every page following the run."""
    if snapshots < 1:
        return gr.Slider(
            minimum=0,
            maximum=1,
            value=0,
            step=1,
            interactive=False,
            label="Training timeline: snapshots appear as the model trains",
        )
    last = snapshots - 1
    plural = "s" if snapshots != 1 else ""
    return gr.Slider(
        minimum=0,
        maximum=max(last, 1),
        value=last,
        step=1,
        interactive=last >= 1,
        label=f"Training timeline: {snapshots} snapshot{plural}, drag to replay",
    )


def mistake_menus(value) -> tuple[gr.Dropdown, gr.Dropdown]:
    """The two Mistakes menus after a run, set to its most frequent mix-up."""
    class_names, pair = value
    true, guessed = pair if pair else (0, 1 % len(class_names))
    names = list(class_names)
    return (
        gr.Dropdown(choices=names, value=names[true], interactive=True),
        gr.Dropdown(choices=names, value=names[guessed], interactive=True),
    )


@dataclass
class TrainTab:
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
    watched: gr.HTML
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
    confusion_cells: gr.State  # frames.ConfusionCells of the drawn matrix
    restore: gr.File  # a run downloaded from here, uploaded again
    class_lesson: gr.State  # this page belongs to a class run's lesson (teacher.py)
    class_watch: gr.Timer  # a class run's page looks for the run
    live: gr.Timer  # polls the page's run while it trains
    finished: gr.Textbox  # changes when a run ends: a new model for Explore
    state: SessionState

    def outputs(self) -> list:
        """Every component a run's changes may update (`updates`), in one fixed order: the
        scripting API's "/train" returns them so."""
        s = self.state
        return [
            self.status, self.progress_bar, self.metrics, self.loss, self.accuracy, self.positions,
            self.positions_summary, self.watched, self.confusion, self.confusion_summary, self.confusion_cells,
            self.mistake_true, self.mistake_guess, self.views, s.my_timeline, self.timeline_slider,
            self.timeline_frame, self.timeline_summary, self.download, s.my_model, s.my_runs,
            self.compare_table, self.compare_loss, self.compare_accuracy,
        ]  # fmt: skip

    def updates(self, changes: dict) -> dict:
        """A run's named changes (service/producer.py's FRAME_FIELDS) as updates of this page's components."""
        s = self.state
        placed = {
            "status": (self.status,),
            "metrics": (self.metrics,),
            "loss": (self.loss,),
            "accuracy": (self.accuracy,),
            "positions": (self.positions,),
            "positions_summary": (self.positions_summary,),
            "watched": (self.watched,),
            "confusion": (self.confusion,),
            "confusion_summary": (self.confusion_summary,),
            "confusion_cells": (self.confusion_cells,),
            "timeline": (s.my_timeline,),
            "timeline_frame": (self.timeline_frame,),
            "timeline_summary": (self.timeline_summary,),
            "runs": (s.my_runs,),
            "compare_table": (self.compare_table,),
            "compare_loss": (self.compare_loss,),
            "compare_accuracy": (self.compare_accuracy,),
        }
        converted = {
            "progress": lambda v: {self.progress_bar: progress_html(v)},
            "view": lambda v: {self.views: gr.Tabs(selected=v)},
            "timeline_slider": lambda v: {self.timeline_slider: timeline_slider(v)},
            "mistakes": lambda v: dict(zip((self.mistake_true, self.mistake_guess), mistake_menus(v))),
            "download": lambda v: {self.download: gr.DownloadButton(value=str(v) if v else None, interactive=bool(v))},
            "my_model": lambda v: {s.my_model: v},
        }
        result = {}
        for name, value in changes.items():
            if name in placed:
                result[placed[name][0]] = value
            else:
                result.update(converted[name](value))
        return result

    def controls(self, build_start: gr.Button) -> dict:
        return {"starts": (build_start, self.start), "stop": self.stop}


def render_train_tab(state: SessionState) -> TrainTab:
    """The Train tab's components (inside an open gr.Tab): controls, progress and curves on the
    left; what the model has learned so far on the right; the timeline and the comparison below."""
    with gr.Row(equal_height=False):
        with gr.Column(scale=3):
            run = _run_and_curves()
        with gr.Column(scale=2):
            learned = _what_it_learned()
    return TrainTab(
        **run,
        **learned,
        **_timeline(),
        **_comparison(),
        confusion_cells=gr.State(None),
        class_lesson=gr.State(False),
        class_watch=gr.Timer(CLASS_WATCH_SECONDS, active=False),
        live=gr.Timer(POLL_SECONDS, active=False),
        finished=gr.Textbox(visible=False),
        state=state,
    )


def _run_and_curves() -> dict:
    """Start, Stop, the download and a run brought back; progress, status and the live curves."""
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
    return dict(
        start=start,
        stop=stop,
        download=download,
        restore=restore,
        progress_bar=progress_bar,
        status=status,
        metrics=metrics,
        loss=loss,
        accuracy=accuracy,
    )


def _what_it_learned() -> dict:
    """The learned positions, the confusion matrix and the mistakes; the watched guesses."""
    with gr.Tabs() as views:
        with gr.Tab("Positions it has learned", id="positions"):
            positions = figure_slot("train-positions", 300, "How alike the learned positions are, live during training")
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
    watched = gr.HTML(elem_id="train-watched")
    return dict(
        views=views,
        positions=positions,
        positions_summary=positions_summary,
        confusion=confusion,
        confusion_summary=confusion_summary,
        mistakes_tab=mistakes_tab,
        mistake_true=mistake_true,
        mistake_guess=mistake_guess,
        mistakes_note=mistakes_note,
        mistakes_gallery=mistakes_gallery,
        watched=watched,
    )


def _timeline() -> dict:
    """The training timeline: a slider over the snapshots, their frame and sentence, and a GIF."""
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
    return dict(
        timeline_slider=timeline_slider,
        timeline_gif_button=timeline_gif_button,
        timeline_gif=timeline_gif,
        timeline_frame=timeline_frame,
        timeline_summary=timeline_summary,
    )


def _comparison() -> dict:
    """The last two runs side by side: a table and both runs' curves."""
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
    return dict(compare_table=compare_table, compare_loss=compare_loss, compare_accuracy=compare_accuracy)
