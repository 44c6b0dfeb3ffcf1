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

import os

import gradio as gr

from .. import checkpoints, images
from ..machine import configure_threads, server_threads
from ..service.server import Service
from ..settings import AppSettings
from .build_tab import BuildHandlers, render_build_tab, wire_build_tab
from .class_view import ClassHandlers, render_class_tab, render_signing, wire_class_view
from .explore_events import ExploreHandlers, wire_explore_tab
from .explore_tab import render_explore_tab
from .gradio_patches import calm_queue, make_gradio_image_cache_atomic, skip_unchanged_outputs
from .learn import LESSON_TITLES
from .state import ClosedPages, SessionState
from .teacher import TeacherHandlers, wire_teacher
from .train_events import TrainHandlers, wire_train_tab
from .train_tab import render_train_tab

HEADER = (
    "<div id='title'><h1>ViT Playground</h1><span><b>① Build</b> a Vision Transformer → <b>② Train</b> it → "
    "<b>③ Explore</b> where it looks → <b>④ Learn</b> how it works</span></div>"
)

CSS = """
#title { display: flex; flex-wrap: wrap; align-items: baseline; gap: 0 1.2rem; }
#title h1 { margin: 0; font-size: 1.7rem; font-weight: 700; }
#title span { font-size: 1.05rem; }
.pixelated img, #explore-seen img { image-rendering: pixelated; }
.watched-title { font-weight: 600; margin-bottom: 4px; }
.watched-strip { display: flex; flex-wrap: wrap; gap: 10px; }
.watched { margin: 0; text-align: center; font-size: 0.95rem; line-height: 1.2; }
.watched img { width: 64px; height: 64px; image-rendering: pixelated; border-radius: 4px; }
.watched.right figcaption { color: #15803d; }
.watched.wrong figcaption { color: #b91c1c; }
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


def build_demo(service: Service) -> gr.Blocks:
    """The whole interface over `service`, its queue configured; call
    `.launch(**launch_options(settings))`. Each tab lays out its components (`render_*`) and
    wires its own events (`wire_*`); this places the tabs and hands them what they share."""
    make_gradio_image_cache_atomic()  # concurrent identical pictures must not be served half-written
    skip_unchanged_outputs()  # a live run's frames change few of their outputs
    settings = service.settings
    # Gradio's own files (uploads, served pictures) in the app's folder too, an hour at most.
    os.environ.setdefault("GRADIO_TEMP_DIR", str(settings.work_dir / "gradio"))
    with gr.Blocks(title="ViT Playground", delete_cache=(600, 3600)) as demo:
        gr.HTML(HEADER)
        state = SessionState.create()
        with gr.Tabs(elem_id="steps") as steps:
            with gr.Tab("① Build", id="build"):
                banner = gr.Markdown(visible=False, elem_id="lesson-banner")
                build = render_build_tab()
                with gr.Accordion("For teachers: these settings as a link to hand out", open=False):
                    share_link = gr.Textbox(show_label=False, interactive=False, buttons=["copy"], elem_id="share-link")
            with gr.Tab("② Train", id="train"):
                signing = render_signing()  # a lesson's nickname and guess
                train = render_train_tab(state)
            with gr.Tab("③ Explore", id="explore") as explore_tab:
                exploring = ExploreHandlers(service.library, settings.examples_dir)
                explore = render_explore_tab(exploring, service.library, state.my_model)
            with gr.Tab("④ Learn", id="learn"):
                lessons = render_learn_tab()
            class_tab = render_class_tab()  # the teacher's view, only with the teacher key
        wire_build_tab(BuildHandlers(service, build, lessons), demo)
        wire_teacher(TeacherHandlers(build, banner, share_link, train.class_lesson, train.class_watch), demo)
        new_model = wire_train_tab(TrainHandlers(service, train, build, signing), demo, steps)
        wire_class_view(ClassHandlers(service, class_tab, signing, steps), demo, train.finished)
        wire_explore_tab(exploring, explore, explore_tab, state, new_model, settings.max_explores)
        demo.unload(ClosedPages(demo, service.runs).closed)
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


SESSIONS_KEPT = 500  # far more pages than a class opens; about 170 MB of Gradio's copies at most


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
        # Gradio keeps a copy of the page's settings for every page it has served, closed or not
        # (about 350 KB each), until this many: the least recently used go first.
        "state_session_capacity": SESSIONS_KEPT,
    }


def configure_torch_threads(settings: AppSettings) -> None:
    """The server's threads per operation (its training process takes the same count)."""
    configure_threads(server_threads(settings.threads))


__all__ = ["AppSettings", "Service", "build_demo", "configure_torch_threads", "launch_options"]
