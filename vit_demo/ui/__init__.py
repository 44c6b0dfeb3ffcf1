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

import gradio as gr

from .. import checkpoints, images, planning
from ..data import DATASETS
from ..planning import ThroughputMeter
from ..recipes import recipe_for
from ..sessions import TrainingQueue, run_training
from ..worker import TrainingProcesses
from . import experiment_tab
from .build_tab import BuildHandlers, render_build_tab, wire_build_tab
from .explore_tab import VIEWS, ExploreHandlers, render_explore_tab
from .gradio_patches import calm_queue, make_gradio_image_cache_atomic
from .hosting import train_on_gpu
from .learn import LESSON_TITLES
from .models import ModelLibrary, remove_files
from .settings import AppSettings, configure_torch_threads, training_threads
from .teacher import CONTROLS as LESSON_CONTROLS
from .teacher import TeacherHandlers
from .train_tab import POLL_SECONDS, TRAIN_OUTPUTS, TrainHandlers, render_train_tab

log = logging.getLogger("vit_demo.ui")


def dataset_shape(dataset: str) -> tuple:
    """Datasets of one image shape and class count train a candidate at one speed."""
    spec = DATASETS[dataset]
    return (spec.channels, spec.image_size, spec.num_classes)


# People who may wait inside the train event for a seat (a class of 30, and some);
# beyond that Gradio's own queue holds them, showing their place as well.
WAITING_ROOM = 32

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
/* Seven views a row at 1366 px: tighter tab buttons keep "Patch experiments" out of the overflow menu. */
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
        # One training process per seat; on a ZeroGPU Space the lent GPU's worker instead.
        self.processes = (
            None if settings.zero_gpu else TrainingProcesses(settings.max_trainings, training_threads(settings))
        )
        run = train_on_gpu if self.processes is None else functools.partial(self.processes.run, run_training)
        self.build = BuildHandlers(settings, self.meter)
        self.train = TrainHandlers(settings, self.meter, self.trainings, run)
        self.explore = ExploreHandlers(self.library, settings.examples_dir)
        self.measured = threading.Event()

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
        try:
            self._measure_each_shape()
        finally:
            self.measured.set()

    def _measure_each_shape(self) -> None:
        measured = set()
        for dataset in DATASETS:
            candidates = tuple(c for c in recipe_for(dataset).candidates if (dataset_shape(dataset), c) not in measured)
            measured.update((dataset_shape(dataset), c) for c in candidates)
            if not candidates:
                continue
            try:
                for speeds in self.processes.run(planning.measure_speeds, dataset, candidates):
                    self.meter.record_speeds(speeds, candidates, dataset)
            except Exception:  # noqa: BLE001 - estimates fall back to a guess; training still works
                log.exception("could not measure this machine's training speed")
                return

    def close(self) -> None:
        """End the training processes (the server is shutting down, or a test is done)."""
        if self.processes is not None:
            self.processes.close()


def show_train_tab():
    return gr.Tabs(selected="train")


def build_demo(settings: AppSettings, app: App | None = None) -> gr.Blocks:
    """The whole interface, its queue configured; call `.launch(**launch_options(settings))`."""
    app = app or App(settings)
    make_gradio_image_cache_atomic()  # concurrent identical pictures must not be served half-written
    if app.processes is not None:
        app.processes.start()  # warm before the first Start: torch imported, ready to train
    app.start_measuring()
    private = {"api_visibility": "private", "show_progress": "hidden"}
    exploring = {"concurrency_id": "explore", "concurrency_limit": settings.max_explores}

    with gr.Blocks(title="ViT Playground") as demo:
        gr.HTML(HEADER)
        my_model = gr.State(None, delete_callback=remove_files)
        my_timeline = gr.State(None)
        my_runs = gr.State([])  # the last two runs' summaries (compare.RunSummary), for Compare
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
        # The scripting API's own inputs: any file (so a bad one gets the app's message
        # rather than a file-type refusal) and a model named as in the Explore menu.
        api_image = gr.File(visible=False)
        api_model = gr.Textbox(visible=False)
        api_label = gr.Label(visible=False)
        api_trigger = gr.Button(visible=False)

        # ---------------------------------------------------------------- Build
        wire_build_tab(app.build, build, lessons)
        describe_inputs = [*build.model_inputs(), build.lr, build.batch_size, build.length, build.seconds, build.epochs]
        demo.load(app.build.describe, describe_inputs, [build.summary, *lessons], **private)

        # ---------------------------------------------------------------- Teacher mode
        # A lesson (VIT_DEMO_LESSON and the link's query) sets the dataset, preset and knobs.
        teacher = TeacherHandlers(app.build)
        lesson_controls = [getattr(build, name) for name in LESSON_CONTROLS]
        demo.load(teacher.start, build.dataset, [lesson_banner, build.fixed_by_dataset, *lesson_controls], **private)
        gr.on(
            [demo.load, *(control.change for control in lesson_controls)],
            teacher.share_link,
            lesson_controls,
            share_link,
            trigger_mode="always_last",
            **private,
        )

        # ---------------------------------------------------------------- Train
        train_outputs = {
            "status": train.status,
            "progress_bar": train.progress_bar,
            "metrics": train.metrics,
            "loss": train.loss,
            "accuracy": train.accuracy,
            "positions": train.positions,
            "probes": train.probes,
            "confusion": train.confusion,
            "download": train.download,
            "my_model": my_model,
            "views": train.views,
            "explore_model": explore.model,
            "timeline": my_timeline,
            "timeline_slider": train.timeline_slider,
            "timeline_frame": train.timeline_frame,
            "mistake_true": train.mistake_true,
            "mistake_guess": train.mistake_guess,
            "runs": my_runs,
            "compare_table": train.compare_table,
            "compare_loss": train.compare_loss,
            "compare_accuracy": train.compare_accuracy,
        }
        controls = [build.start, train.start, train.stop]
        outputs_of_train = [train_outputs[name] for name in TRAIN_OUTPUTS]
        train_inputs = [*build.model_inputs(), *build.training_inputs(), my_runs]
        build.start.click(show_train_tab, None, steps, queue=False, **private)
        # The page starts a run, then polls it each second (train_tab.LiveRun); when it ends,
        # `finished` changes and Explore shows the new model.
        live = gr.Timer(POLL_SECONDS, active=False)
        finished = gr.Textbox(visible=False)
        starting = gr.on(
            [build.start.click, train.start.click], app.train.lock_controls, None, controls, queue=False, **private
        ).then(
            app.train.start_live,
            train_inputs,
            [*outputs_of_train, live],
            **private,
            concurrency_id="train-start",
            concurrency_limit=None,
        )
        starting.failure(app.train.unlock_controls, None, controls, queue=False, **private)
        live.tick(app.train.poll, None, [*outputs_of_train, live, *controls, finished], queue=False, **private)
        demo.unload(app.train.leave)
        # Scripts train through one streaming call (gradio_client's submit or predict on "/train").
        api_train = gr.Button(visible=False)
        api_training = api_train.click(
            app.train.train,
            train_inputs,
            outputs_of_train,
            api_name="train",
            show_progress="full",
            concurrency_id="train",
            concurrency_limit=WAITING_ROOM,
        )
        # Scrubbing the timeline: only a person's own moves redraw (the run moves the slider too).
        gr.on(
            [train.timeline_slider.input, train.timeline_slider.release],
            app.train.show_snapshot,
            [my_timeline, train.timeline_slider],
            train.timeline_frame,
            trigger_mode="always_last",
            **private,
        )
        train.timeline_gif_button.click(
            app.train.timeline_gif,
            my_timeline,
            train.timeline_gif,
            api_visibility="private",
            concurrency_id="explore",
            concurrency_limit=settings.max_explores,
        )
        gr.on(
            [train.mistakes_tab.select, train.mistake_true.input, train.mistake_guess.input],
            app.train.show_mistakes,
            [my_model, train.mistake_true, train.mistake_guess],
            [train.mistakes_gallery, train.mistakes_note],
            trigger_mode="always_last",
            api_visibility="private",
            **exploring,
        )
        train.stop.click(app.train.stop, None, train.status, api_name="stop", queue=False, show_progress="hidden")

        # ---------------------------------------------------------------- Explore
        e = explore
        explore_inputs = [e.model, e.image, e.open_view, e.fusion, e.discard, e.layer, e.head, my_model, e.uploaded]
        explore_outputs = [
            e.image,
            e.label,
            e.seen,
            e.explored,
            *(slot for view in VIEWS for slot in e.view_images[view]),
        ]

        explore_event = {**exploring, "show_progress": "minimal"}
        describe_model = (
            app.explore.choose_model,
            [e.model, my_model, e.uploaded],
            [e.model_note, e.examples, e.layer, e.head],
        )
        # A model chosen in the menu is described, then shown on the current picture: the
        # public "explore" endpoint. Training and checkpoint uploads choose a model too
        # (a value set by the server raises no `input` event, so they chain the same steps).
        e.model.input(*describe_model, **private).success(
            app.explore.explore, explore_inputs, explore_outputs, api_name="explore", **explore_event
        )
        model_events = (
            api_training,
            e.checkpoint.upload(app.explore.upload_checkpoint, e.checkpoint, [e.uploaded, e.model], **private),
        )
        picture_events = (
            e.examples.select(app.explore.use_example, [e.model, my_model, e.uploaded], e.image, **private),
            e.upload.upload(app.explore.use_upload, e.upload, e.image, **private),
            e.sketch.change(app.explore.use_drawing, e.sketch, e.image, trigger_mode="always_last", **private),
        )
        described = [
            finished.change(*describe_model, **private),
            *(event.success(*describe_model, **private) for event in model_events),
        ]
        for event in (*described, *picture_events):
            event.success(
                app.explore.explore, explore_inputs, explore_outputs, api_visibility="private", **explore_event
            )
        explore_tab.select(
            app.explore.open_tab,
            [*explore_inputs, e.explored],
            explore_outputs,
            api_visibility="private",
            **explore_event,
        )
        view_controls = [e.explored, e.fusion, e.discard, e.layer, e.head]
        # Only a person's own moves redraw (`input`, `release`): a new model resets the layer
        # and head choices, and that must not switch the open view to "Each head".
        redraw_triggers = {"rollout": [e.fusion.input, e.discard.release], "heads": [e.layer.input, e.head.input]}
        for view in VIEWS:
            gr.on(
                [e.view_tabs[view].select, *redraw_triggers.get(view, [])],
                app.explore.view_opener(view),
                view_controls,
                [e.open_view, *e.view_images[view]],
                trigger_mode="always_last",
                api_visibility="private",
                **explore_event,
            )
        # Patch experiments: opening the view, any change of its controls, or a new picture
        # while it is open runs the experiment on the explored picture.
        x = e.experiment
        x.tab.select(
            experiment_tab.open_experiment,
            [e.explored, *x.inputs()],
            [e.open_view, x.figure, x.summary],
            api_visibility="private",
            **explore_event,
        )
        gr.on(
            [x.run.click, x.shuffle.input, x.seed.submit, x.occlude.submit, x.drop_position.input, x.baseline.input],
            experiment_tab.experiment,
            [e.explored, *x.inputs()],
            [x.figure, x.summary],
            trigger_mode="always_last",
            api_visibility="private",
            **explore_event,
        )
        e.explored.change(
            experiment_tab.experiment_if_open,
            [e.open_view, e.explored, *x.inputs()],
            [x.figure, x.summary],
            api_visibility="private",
            **explore_event,
        )
        api_trigger.click(
            app.explore.predict,
            [api_image, api_model, my_model, e.uploaded],
            api_label,
            api_name="predict",
            **exploring,
        )

    demo.queue(max_size=128, default_concurrency_limit=settings.max_explores)
    calm_queue(demo)
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
