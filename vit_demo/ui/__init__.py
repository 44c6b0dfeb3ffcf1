"""ViT Playground's Gradio interface: four tabs a student follows left to right.

    ① Build    dataset, preset and knobs; a live summary of shapes, parameters and time
    ② Train    Start/Stop, progress, live curves, learned positions, guesses on test images,
               then accuracy, confusion matrix and the checkpoint as a zip
    ③ Explore  a shipped, just-trained or uploaded model on an example, a drawing or an
               upload: prediction, rollout, each head, patches, positions, distances, filters
    ④ Learn    each part of a ViT explained with the Build tab's shapes filled in

All gradio code lives in this package; the work is done by the library (model, training,
checkpoints, explain, plots, sessions). The handlers are plain methods (tests call them
directly); `build_demo` lays out the components and wires the events, and
`launch_options` holds what `demo.launch` needs here and on Hugging Face Spaces.
"""

from __future__ import annotations

import functools
import logging
import os
import threading
import time

import gradio as gr

from .. import checkpoints, images, planning
from ..data import DATASETS
from ..planning import ThroughputMeter
from ..recipes import Candidate, recipe_for
from ..sessions import TrainingQueue, run_training
from ..step import server_threads
from ..worker import TrainingProcess
from .build_tab import BuildHandlers, render_build_tab, wire_build_tab
from .explore_tab import ExploreHandlers, render_explore_tab, wire_explore_tab
from .gradio_patches import calm_queue, make_gradio_image_cache_atomic, skip_unchanged_outputs
from .hosting import run_on_gpu
from .learn import LESSON_TITLES
from .models import ModelLibrary
from .settings import AppSettings, configure_torch_threads
from .state import SessionState
from .teacher import TeacherHandlers, wire_teacher
from .train_tab import TrainHandlers, render_train_tab, wire_train_tab

log = logging.getLogger("vit_demo.ui")


def dataset_shape(dataset: str) -> tuple:
    """Datasets of one image shape and class count train a candidate at one speed."""
    spec = DATASETS[dataset]
    return (spec.channels, spec.image_size, spec.num_classes)


HEADER = (
    "<div id='title'><h1>ViT Playground</h1><span><b>① Build</b> a Vision Transformer → <b>② Train</b> it → "
    "<b>③ Explore</b> where it looks → <b>④ Learn</b> how it works</span></div>"
)

CSS = """
#title { display: flex; flex-wrap: wrap; align-items: baseline; gap: 0 1.2rem; }
#title h1 { margin: 0; font-size: 1.7rem; font-weight: 700; }
#title span { font-size: 1.05rem; }
.pixelated img, #explore-seen img { image-rendering: pixelated; }
.probe-title { font-weight: 600; margin-bottom: 4px; }
.probe-strip { display: flex; flex-wrap: wrap; gap: 10px; }
.probe { margin: 0; text-align: center; font-size: 0.95rem; line-height: 1.2; }
.probe img { width: 64px; height: 64px; image-rendering: pixelated; border-radius: 4px; }
.probe.right figcaption { color: #15803d; }
.probe.wrong figcaption { color: #b91c1c; }
#build-summary table, #learn-journey table { font-size: 0.95rem; }
#build-summary td, #build-summary th, #learn-journey td, #learn-journey th { padding: 3px 8px; }
#explore-model-note { font-size: 0.95rem; }
/* Five small thumbnails a row: the gallery's own minimum of 100 px would overflow the column. */
#explore-examples .grid-container { grid-template-columns: repeat(5, minmax(0, 1fr)) !important; }
#explore-examples .grid-container { grid-auto-rows: auto !important; }
#explore-examples .gallery-item, #explore-examples .thumbnail-item { height: auto !important; aspect-ratio: 1 / 1; }
#explore-examples .thumbnail-item img { object-fit: contain !important; width: 100%; height: 100%; }
/* Eight views a row at 1366 px: tighter tab buttons keep "Experiments" out of the overflow menu. */
#explore-views .tab-wrapper button, #explore-views .tab-container button {
  padding-left: 8px !important; padding-right: 8px !important;
}
#train-timeline-gif { min-height: 0; }
/* The Train tab draws its own progress bar (train_tab.progress_html): Gradio's status tracker
   would redraw its timer every frame of a training, on the cores the training needs. */
#train-progress [data-testid=status-tracker] { display: none !important; }
.train-bar { display: flex; align-items: center; gap: 10px; font-family: var(--font-mono); font-size: 0.9rem; }
.train-bar progress { flex: 1; height: 14px; accent-color: var(--color-accent); }
/* Mistakes: each item is a picture beside its rollout, twice as wide as it is tall. */
#train-mistakes .grid-container { grid-auto-rows: auto !important; }
#train-mistakes .thumbnail-item { height: auto !important; aspect-ratio: 2 / 1; }
#train-mistakes .thumbnail-item img { object-fit: contain !important; width: 100%; height: 100%; }
"""

THEME = gr.themes.Soft(primary_hue="indigo", secondary_hue="sky", neutral_hue="slate", spacing_size="sm")


class App:
    """The shared parts of one running app: its settings, the shipped models, the
    throughput meter and the training queue; and the handlers of each tab."""

    def __init__(self, settings: AppSettings):
        self.settings = settings
        self.library = ModelLibrary(settings.checkpoint_dir)
        self.meter = ThroughputMeter()
        self.trainings = TrainingQueue(settings.max_trainings)
        # One training process for all the seats (its trainings take turns); on a ZeroGPU Space
        # the lent GPU's worker instead.
        self.processes = None if settings.zero_gpu else TrainingProcess(server_threads(settings.threads))
        run = run_on_gpu if self.processes is None else functools.partial(self.processes.run, run_training)
        self.build = BuildHandlers(settings, self.meter)
        self.train = TrainHandlers(settings, self.meter, self.trainings, run)
        self.explore = ExploreHandlers(self.library, settings.examples_dir)
        self.measured = threading.Event()
        self.closing = threading.Event()

    def start_measuring(self) -> None:
        """Time every recipe candidate in a training process, in the background: what plans
        need to know of this machine. (Not on ZeroGPU: timing there would spend GPU quota.)"""
        if self.processes is None:
            self.measured.set()
            return
        threading.Thread(target=self._measure, name="vit-demo-measure", daemon=True).start()

    def wait_until_measured(self, timeout: float) -> bool:
        """Block until the machine is measured (so the first visitor's plan is this machine's)."""
        return self.measured.wait(timeout)

    def _measure(self) -> None:
        """Every shape timed at start-up, then again while the server is idle."""
        each_dataset = self._candidates()
        try:
            for dataset, candidates in each_dataset:
                if not self._time(dataset, candidates, rounds=2):
                    return
        finally:
            self.measured.set()
        self._retime_while_idle([(dataset, c) for dataset, candidates in each_dataset for c in candidates])

    def _candidates(self) -> list[tuple[str, tuple[Candidate, ...]]]:
        """Each dataset with its recipe's candidates, every (image shape, candidate) once:
        datasets of one image shape and class count train a candidate at one speed."""
        seen, each = set(), []
        for dataset in DATASETS:
            candidates = tuple(c for c in recipe_for(dataset).candidates if (dataset_shape(dataset), c) not in seen)
            seen.update((dataset_shape(dataset), c) for c in candidates)
            if candidates:
                each.append((dataset, candidates))
        return each

    def _retime_while_idle(self, shapes: list[tuple[str, Candidate]]) -> None:
        """One more reading at a time of the shape read least, while no training runs, until
        every shape has `planning.SPEED_READINGS`: plans then rest on a minute or two of this
        machine, not on the few seconds of its start-up (planning.ThroughputMeter). Each
        reading takes about half a second of both cores, and a pause between readings leaves
        them to whoever comes."""
        while not self.closing.wait(planning.RETIME_PAUSE):
            pending = [(self.meter.readings(*shape), shape) for shape in shapes]
            pending = [(readings, shape) for readings, shape in pending if readings < planning.SPEED_READINGS]
            if not pending:
                return
            if self.processes.jobs:  # someone trains: a reading now would slow them, and time one core
                continue
            _, (dataset, candidate) = min(pending, key=lambda item: item[0])
            if not self._time(dataset, (candidate,), rounds=1):
                return

    def _time(self, dataset: str, candidates: tuple[Candidate, ...], rounds: int) -> bool:
        """Time `candidates` in the training process and record the readings, unless another
        job ran meanwhile or the server was busy (pages opening, say): a reading beside other
        work is a share of the cores, not this machine's speed. False if the timing failed."""
        started, server_cpu, began = self.processes.started, time.process_time(), time.monotonic()
        try:
            for speeds in self.processes.run(planning.measure_speeds, dataset, candidates, rounds=rounds):
                alone = self.processes.started == started + 1 and self.processes.jobs == 1
                server_cores = (time.process_time() - server_cpu) / (time.monotonic() - began)
                if alone and server_cores < planning.QUIET_SERVER_CORES:
                    self.meter.record_speeds(speeds, candidates, dataset)
        except Exception:  # estimates fall back to a guess; training still works
            if not self.closing.is_set():  # a server shutting down ends its processes mid-measurement
                log.exception("could not measure this machine's training speed")
            return False
        return True

    def close(self) -> None:
        """End the training processes (the server is shutting down, or a test is done)."""
        self.closing.set()
        if self.processes is not None:
            self.processes.close()


def build_demo(settings: AppSettings, app: App | None = None) -> gr.Blocks:
    """The whole interface, its queue configured; call `.launch(**launch_options(settings))`.
    Each tab lays out its components (`render_*`) and wires its own events (`wire_*`); this
    places the tabs and hands them what they share: the session's state and the page."""
    app = app or App(settings)
    make_gradio_image_cache_atomic()  # concurrent identical pictures must not be served half-written
    skip_unchanged_outputs()  # a live run's frames change few of their outputs
    if app.processes is not None:
        app.processes.start()  # warm before the first Start: torch imported, ready to train

    with gr.Blocks(title="ViT Playground") as demo:
        gr.HTML(HEADER)
        state = SessionState.create()
        with gr.Tabs(elem_id="steps") as steps:
            with gr.Tab("① Build", id="build"):
                lesson_banner = gr.Markdown(visible=False, elem_id="lesson-banner")
                build = render_build_tab(app.build, settings)
                with gr.Accordion("For teachers: these settings as a link to hand out", open=False):
                    share_link = gr.Textbox(show_label=False, interactive=False, buttons=["copy"], elem_id="share-link")
            with gr.Tab("② Train", id="train"):
                train = render_train_tab()
            with gr.Tab("③ Explore", id="explore") as explore_tab:
                explore = render_explore_tab(app.explore, app.library)
            with gr.Tab("④ Learn", id="learn"):
                lessons = render_learn_tab()

        wire_build_tab(app.build, demo, build, lessons)
        wire_teacher(
            TeacherHandlers(app.build), demo, build, lesson_banner, share_link, train.class_lesson, train.class_watch
        )
        new_model = wire_train_tab(app.train, demo, build, train, state, steps, explore.model)
        wire_explore_tab(app.explore, explore, explore_tab, state, new_model, settings.max_explores)

    demo.queue(max_size=128, default_concurrency_limit=settings.max_explores)
    calm_queue(demo)
    app.start_measuring()  # now that building the page no longer takes the cores the timing needs
    return demo


def render_learn_tab() -> list[gr.Markdown]:
    """The Learn tab: the model's journey on the left, one fold per part on the right."""
    latex = [{"left": "$$", "right": "$$", "display": True}]
    with gr.Row(equal_height=False):
        with gr.Column(scale=3):
            gr.Markdown(f"### {LESSON_TITLES[0]}\nThe shapes follow the model on the **Build** tab.")
            lessons = [gr.Markdown(elem_id="learn-journey", latex_delimiters=latex)]
        with gr.Column(scale=2):
            for index, title in enumerate(LESSON_TITLES[1:], start=1):
                with gr.Accordion(title, open=False):
                    lessons.append(gr.Markdown(latex_delimiters=latex, elem_id=f"learn-{index}"))
    return lessons


def launch_options(settings: AppSettings) -> dict:
    """`demo.launch` keywords: host and port from the environment (Spaces sets them), no
    server-side rendering (Spaces would need Node for it), the theme, the examples folder
    allowed to be served wherever the app is started from, and an upload cap."""
    port = os.environ.get("GRADIO_SERVER_PORT")
    return {
        "server_name": os.environ.get("GRADIO_SERVER_NAME") or None,
        "server_port": int(port) if port else None,
        "ssr_mode": False,
        "theme": THEME,
        "css": CSS,
        "allowed_paths": [str(settings.examples_dir)],
        # Gradio's own cap on any upload; pictures and checkpoints have tighter limits of
        # their own, checked by the library with messages that say what to do.
        "max_file_size": max(checkpoints.max_checkpoint_bytes(), images.max_upload_bytes()),
    }


__all__ = ["App", "AppSettings", "build_demo", "configure_torch_threads", "launch_options"]
