"""The Train tab's events: Start (on the Build or the Train tab), the live poll, Stop, a run
brought back, a class run, the timeline and the mistakes; and the scripting API's streaming
"/train". Each handler is a thin call to the service's runs (service/runs.py), its named
changes placed on the page by `TrainTab.updates`."""

from __future__ import annotations

import time

import gradio as gr

from ..service import mistakes
from ..service.frames import GIF_DPI, TimelineRecord
from ..service.knobs import KNOBS, Knobs
from ..service.library import LoadedModel
from ..timeline import save_gif
from .build_tab import BuildTab
from .endpoints import named
from .errors import as_user_error, user_errors
from .state import page_key
from .train_tab import TrainTab


class TrainHandlers:
    """The tab's events, each a thin call to the service's runs."""

    def __init__(self, service, tab: TrainTab, build: BuildTab, signing=None):
        self.runs = service.runs
        self.settings = service.settings
        self.tab = tab
        self.build = build
        self.signing = signing  # a lesson's nickname and guess (class_view.Signing), kept at Start

    def _knobs(self, values: dict) -> Knobs:
        return Knobs.read({name: values[control] for name, control in self.build.knobs.items()})

    @user_errors
    def start(self, values: dict, request: gr.Request) -> dict:
        """The page's Start: check and plan (a problem is reported at once), then follow the run
        on a thread this page polls. The first changes, and the poll turned on."""
        tab = self.tab
        previous, class_lesson = values[tab.state.my_runs], values[tab.class_lesson]
        if self.signing is not None:  # the guess as it stands when Start is pressed
            self.runs.classroom.sign(page_key(request), values[self.signing.nickname], self.signing.guess(values))
        first = self.runs.start_live(self._knobs(values), page_key(request), previous, class_lesson)
        # A page that starts a run of its own stops looking for the class run (the teacher's
        # page would otherwise follow its own run again once it ended).
        return {**tab.updates(first), tab.live: gr.Timer(active=True), tab.class_watch: gr.Timer(active=False)}

    def poll(self, request: gr.Request) -> dict:
        """The timer's tick: what changed; once the run has ended, also the timer off, the buttons
        back, and a new `finished` mark (what Explore listens to for the new model)."""
        tab = self.tab
        poll = self.runs.poll(page_key(request))
        updates = tab.updates(poll.changes)
        if not poll.finished:
            return updates or gr.skip()
        updates.update({tab.live: gr.Timer(active=False), **self.unlock()})
        if poll.error is not None:
            updates.update({tab.status: f"### ⚠️ {as_user_error(poll.error).message}", tab.progress_bar: ""})
        if poll.new_model:
            updates[tab.finished] = f"{time.time():.6f}"
        return updates

    def signing_inputs(self) -> list:
        s = self.signing
        return [] if s is None else [s.nickname, s.guess_accuracy, s.guess_which]

    def stream(self, values: dict, *, request: gr.Request = None):
        """The scripting API's "/train": the knobs by name, the run's changes streamed."""
        try:
            for changes in self.runs.stream(Knobs.read(values), page_key(request)):
                yield self.tab.updates(changes)
        except Exception as error:
            raise as_user_error(error) from error

    def stop(self, request: gr.Request) -> str:
        self.runs.stop(page_key(request))
        return "Stopping after the current step…"

    def watch_class_run(self, values: dict, request: gr.Request) -> dict:
        tab = self.tab
        if not values[tab.class_lesson]:
            return {tab.class_watch: gr.Timer(active=False)}
        if not self.runs.watch_class_run(page_key(request), values[tab.state.my_runs]):
            return gr.skip()
        # It keeps looking: the teacher may make another run the class run.
        return {tab.live: gr.Timer(active=True)}

    @user_errors
    def restore(self, values: dict, request: gr.Request) -> dict:
        """A run's zip brought back: its curves, timeline and model; or, for a file that is not
        one, the sentence that says why, where the status goes (what was on show stays)."""
        tab = self.tab
        path = values[tab.restore]
        if path is None:
            return gr.skip()
        try:
            changes = self.runs.restore(path, page_key(request), values[tab.state.my_runs])
        except Exception as error:  # noqa: BLE001 - every refusal is a sentence on the page
            return {tab.status: f"### ⚠️ {as_user_error(error).message}"}
        return {**tab.updates(changes), tab.finished: f"{time.time():.6f}"}

    def lock(self) -> dict:
        """While a run is on: no Start, a Stop."""
        off = gr.Button(interactive=False)
        return {self.build.start: off, self.tab.start: off, self.tab.stop: gr.Button(interactive=True)}

    def unlock(self) -> dict:
        on = gr.Button(interactive=True)
        return {self.build.start: on, self.tab.start: on, self.tab.stop: gr.Button(interactive=False)}

    @user_errors
    def show_snapshot(self, values: dict) -> dict:
        """The timeline's frame at the slider's position, and its sentence."""
        tab = self.tab
        record: TimelineRecord | None = values[tab.state.my_timeline]
        if record is None or not len(record):
            return gr.skip()
        index = record.index(values[tab.timeline_slider])
        return {tab.timeline_frame: record.frame(index), tab.timeline_summary: record.summary(index)}

    @user_errors
    def timeline_gif(self, record: TimelineRecord | None, request: gr.Request) -> gr.File:
        """Every snapshot of the timeline as an animated GIF (a file to download)."""
        if record is None or not len(record):
            raise ValueError("There is no timeline yet: press Start to train a model first")
        folder = self.runs.work.fresh("timelines", page_key(request))
        frames = [record.frame(i, dpi=GIF_DPI) for i in range(len(record))]
        return gr.File(value=str(save_gif(frames, folder / "vit-training-timeline.gif")), visible=True)

    @user_errors
    def mistakes_at(self, values: dict, event: gr.SelectData) -> dict:
        """A click on a cell of the confusion matrix: the Mistakes view, set to that true class
        and guess, with its images. A click beside the cells changes nothing."""
        tab = self.tab
        cells = values[tab.confusion_cells]
        cell = None if cells is None or not isinstance(event.index, (list, tuple)) else cells.at(*event.index)
        if cell is None:
            return gr.skip()
        true_name, guessed_name = (cells.class_names[i] for i in cell)
        return {
            tab.views: gr.Tabs(selected="mistakes"),
            tab.mistake_true: true_name,
            tab.mistake_guess: guessed_name,
            **self.show_mistakes(
                {
                    tab.state.my_model: values[tab.state.my_model],
                    tab.mistake_true: true_name,
                    tab.mistake_guess: guessed_name,
                }
            ),
        }

    @user_errors
    def show_mistakes(self, values: dict) -> dict:
        """The gallery of test images of one class taken for another, with their rollouts."""
        tab = self.tab
        mine: LoadedModel | None = values[tab.state.my_model]
        s = self.settings
        items, note = mistakes.gallery(
            mine, values[tab.mistake_true], values[tab.mistake_guess], s.data_dir, s.test_limit
        )
        return {tab.mistakes_gallery: items, tab.mistakes_note: note}


def wire_train_tab(handlers: TrainHandlers, demo: gr.Blocks, steps: gr.Tabs) -> list:
    """Returns the events after which the page has a new model of its own, for Explore."""
    tab, build = handlers.tab, handlers.build
    private = {"api_visibility": "private", "show_progress": "hidden"}
    buttons = {build.start, tab.start, tab.stop}
    knobs = set(build.knobs.values())
    build.start.click(lambda: gr.Tabs(selected="train"), None, steps, queue=False, **private)
    # The page starts a run, then polls it (runs.LiveRun); when it ends, `finished` changes.
    starting = gr.on([build.start.click, tab.start.click], handlers.lock, None, buttons, queue=False, **private).then(
        handlers.start,
        {*knobs, tab.state.my_runs, tab.class_lesson, *handlers.signing_inputs()},
        {*tab.outputs(), tab.live, tab.class_watch},
        concurrency_id="train-start",
        concurrency_limit=None,
        **private,
    )
    starting.failure(handlers.unlock, None, buttons, queue=False, **private)
    tab.live.tick(handlers.poll, None, {*tab.outputs(), tab.live, *buttons, tab.finished}, queue=False, **private)
    tab.restore.upload(
        handlers.restore, {tab.restore, tab.state.my_runs}, {*tab.outputs(), tab.finished}, api_visibility="private"
    )
    tab.class_watch.tick(
        handlers.watch_class_run, {tab.class_lesson, tab.state.my_runs}, {tab.live, tab.class_watch}, **private
    )
    tab.stop.click(handlers.stop, None, tab.status, api_name="stop", queue=False, show_progress="hidden")
    # Scripts train through one streaming call (gradio_client's submit or predict on "/train").
    api_training = gr.Button(visible=False).click(
        named(KNOBS, handlers.stream),
        [build.knobs[name] for name in KNOBS],
        tab.outputs(),
        api_name="train",
        show_progress="full",
        concurrency_id="train",
        concurrency_limit=None,
    )
    _wire_looking_back(handlers, private)
    return [tab.finished.change, api_training.success]


def _wire_looking_back(handlers: TrainHandlers, private: dict) -> None:
    """A finished run looked at again: the timeline scrubbed or made a GIF, its mistakes shown."""
    tab = handlers.tab
    # Scrubbing the timeline: only a person's own moves redraw (the run moves the slider too).
    gr.on(
        [tab.timeline_slider.input, tab.timeline_slider.release],
        handlers.show_snapshot,
        {tab.state.my_timeline, tab.timeline_slider},
        {tab.timeline_frame, tab.timeline_summary},
        trigger_mode="always_last",
        **private,
    )
    exploring = {"concurrency_id": "explore", "concurrency_limit": handlers.settings.max_explores}
    tab.timeline_gif_button.click(
        handlers.timeline_gif, tab.state.my_timeline, tab.timeline_gif, api_visibility="private", **exploring
    )
    gr.on(
        [tab.mistakes_tab.select, tab.mistake_true.input, tab.mistake_guess.input],
        handlers.show_mistakes,
        {tab.state.my_model, tab.mistake_true, tab.mistake_guess},
        {tab.mistakes_gallery, tab.mistakes_note},
        trigger_mode="always_last",
        api_visibility="private",
        **exploring,
    )
    tab.confusion.select(
        handlers.mistakes_at,
        {tab.state.my_model, tab.confusion_cells},
        {tab.views, tab.mistake_true, tab.mistake_guess, tab.mistakes_gallery, tab.mistakes_note},
        api_visibility="private",
        **exploring,
    )
