"""A lesson in class: the teacher's view of every run of the lesson, and each student's side of
it (a nickname, the guess a lesson asks for before Start, the guess beside the result).

The teacher's view is a tab shown only on a page opened with the teacher key (`/?teacher=KEY`,
the key from VIT_DEMO_TEACHER_KEY or the lesson file's `teacher_key`). The key is checked on the
server in every handler that gives the class away, against the key as it is now: a page or a
script without it gets a refusal, never the class. The class itself is the service's
(service/classroom.py); this module lays it out and polls it every TEACHER_POLL_SECONDS.
"""

from __future__ import annotations

import statistics
from dataclasses import dataclass

import gradio as gr
import pandas as pd

from .. import plots, settings, training_plots
from ..service.knobs import RANGES
from ..service.lessons import escape_markdown, key_opens, read_lesson_file, server_lesson, teacher_key
from .endpoints import named
from .figures import figure_slot
from .state import page_key

TEACHER_POLL_SECONDS = 2.0
REFUSED = "The teacher's view of the class needs the lesson's teacher key."


@dataclass
class ClassTab:
    """The teacher's view (inside the page's Tabs, hidden until the key opens it)."""

    tab: gr.Tab
    key: gr.State  # the key this page was opened with, checked again at every poll
    timer: gr.Timer
    summary: gr.Markdown
    table: gr.Dataframe
    knob: gr.Dropdown
    figure: gr.Image
    guesses: gr.Markdown
    chosen: gr.Markdown  # which run is now the class run
    api_key: gr.Textbox  # the scripting API's "/class_view" takes the key as a parameter
    data: gr.JSON  # and answers with the class as plain values


@dataclass
class Signing:
    """A student's side of the lesson, on the Train tab (shown only on a lesson's page)."""

    group: gr.Group
    nickname: gr.Textbox
    question: gr.Markdown
    guess_accuracy: gr.Textbox  # an "accuracy" question's answer
    guess_which: gr.Radio  # a "which" question's answer
    outcome: gr.Markdown  # the guess beside the result
    api_guess: gr.Textbox  # the scripting API's "/join_lesson" takes the guess as text

    def guess(self, values: dict):
        """The answer given, whichever question the lesson asks ("A (depth 1)" -> "A")."""
        which = values.get(self.guess_which)
        return which[:1] if which else values.get(self.guess_accuracy)


def render_class_tab() -> ClassTab:
    """The teacher's view, inside an open gr.Tabs."""
    with gr.Tab("The class", id="class", visible=False) as tab:
        summary = gr.Markdown(elem_id="class-summary", latex_delimiters=[])
        # The table the whole width (a projector's back row reads it), the figure below it.
        table = gr.Dataframe(
            interactive=False,
            wrap=True,
            label="Every run of the lesson, live: click a row to make it the class run",
            elem_id="class-table",
        )
        chosen = gr.Markdown(elem_id="class-chosen", latex_delimiters=[])
        with gr.Row(equal_height=False):
            with gr.Column(scale=3):
                figure = figure_slot("class-figure", 420, "One dot per finished run")
            with gr.Column(scale=2):
                knob = gr.Dropdown(list(RANGES), value="depth", label="What did this knob do?", elem_id="class-knob")
                guesses = gr.Markdown(elem_id="class-guesses", latex_delimiters=[])
        api_key, data = gr.Textbox(visible=False), gr.JSON(visible=False)
    return ClassTab(tab, gr.State(None), gr.Timer(TEACHER_POLL_SECONDS, active=False), summary, table, knob, figure,
                    guesses, chosen, api_key, data)  # fmt: skip


def render_signing() -> Signing:
    """The nickname and the guess, above the Train tab's Start (hidden outside a lesson)."""
    with gr.Group(visible=False, elem_id="class-signing") as group:
        with gr.Row(equal_height=False):
            nickname = gr.Textbox(
                label="Your name for the class (what your teacher's screen shows)",
                max_length=24,
                scale=1,
                elem_id="class-nickname",
            )
            with gr.Column(scale=2):
                question = gr.Markdown(padding=True, elem_id="class-question", latex_delimiters=[])
                # Text, not a number field: Gradio's number field sends 0 for one left empty.
                guess_accuracy = gr.Textbox(
                    label="Your guess: test accuracy (%)", placeholder="e.g. 90", max_length=8, visible=False,
                    elem_id="class-guess",
                )  # fmt: skip
                guess_which = gr.Radio([], label="Your guess", visible=False, elem_id="class-guess-which")
        outcome = gr.Markdown(padding=True, elem_id="class-outcome", latex_delimiters=[])
    return Signing(group, nickname, question, guess_accuracy, guess_which, outcome, gr.Textbox(visible=False))


def current_key() -> str | None:
    """The teacher key as it is now (the environment's, else the lesson file's)."""
    return teacher_key(settings.read("VIT_DEMO_TEACHER_KEY"), read_lesson_file(settings.read("VIT_DEMO_LESSON")))


class ClassHandlers:
    def __init__(self, service, tab: ClassTab, signing: Signing, steps: gr.Tabs):
        self.runs, self.classroom = service.runs, service.runs.classroom
        self.tab, self.signing, self.steps = tab, signing, steps
        self._drawn: tuple = (None, None)  # (what was drawn, its picture): a poll that changes nothing draws nothing

    def open(self, request: gr.Request) -> dict:
        """Page load: the teacher key opens the teacher's view; a lesson's page joins the class
        and shows the nickname and the lesson's question."""
        query = dict(getattr(request, "query_params", None) or {}) if request is not None else {}
        if "teacher" in query and key_opens(query["teacher"], current_key()):
            tab = self.tab
            return {tab.tab: gr.Tab(visible=True), self.steps: gr.Tabs(selected="class"), tab.key: query["teacher"],
                    tab.timer: gr.Timer(active=True)}  # fmt: skip
        lesson = server_lesson(query)
        if not lesson.active:
            return gr.skip()
        self.classroom.join(page_key(request), lesson.predict)
        s, predict = self.signing, lesson.predict
        return {
            s.group: gr.Group(visible=True),
            s.question: f"**{predict.question}**" if predict else "",
            s.guess_accuracy: gr.Textbox(visible=predict is not None and predict.kind == "accuracy"),
            s.guess_which: gr.Radio(
                choices=predict.choices if predict else [], visible=bool(predict and predict.choices)
            ),
        }

    def refresh(self, values: dict) -> dict:
        """The timer's tick (and a new knob): the class as it is now; a key no longer right
        closes the view."""
        tab = self.tab
        if not key_opens(values[tab.key], current_key()):
            return {tab.timer: gr.Timer(active=False), tab.tab: gr.Tab(visible=False), tab.summary: REFUSED}
        snapshot = self.classroom.snapshot(values[tab.knob])
        return {
            tab.summary: summary_text(snapshot),
            tab.table: pd.DataFrame(snapshot["rows"], columns=snapshot["columns"]),
            tab.figure: self._figure(snapshot),
            tab.guesses: guesses_text(snapshot),
        }

    def _figure(self, snapshot: dict):
        drawing = (snapshot["knob"], tuple(p for p in snapshot["points"] if p[0] is not None))
        if drawing != self._drawn[0]:
            figure = training_plots.plot_class_knob(drawing[1], drawing[0])
            self._drawn = (drawing, plots.figure_to_image(figure))
        return self._drawn[1]

    def choose(self, values: dict, event: gr.SelectData) -> dict:
        """A click on a row: that student's run becomes the class run."""
        if not key_opens(values[self.tab.key], current_key()):
            raise gr.Error(REFUSED)
        row = event.row_value or []
        number = int(row[0]) if row and str(row[0]).isdigit() else None
        name = escape_markdown(str(row[1])) if len(row) > 1 else ""
        if number is None or not self.runs.hub.choose_class_run(self.classroom.handle(number)):
            return {self.tab.chosen: f"{name}'s run cannot be the class run: it was stopped, failed or is gone."}
        return {self.tab.chosen: f"**{name}'s run is now the class run:** the lesson's pages that look for it show it."}

    def api_view(self, values: dict) -> dict:
        """The scripting API's "/class_view": the class as plain values, with the key only."""
        if not key_opens(values["key"], current_key()):
            raise gr.Error(REFUSED)
        return self.classroom.snapshot(values["knob"])

    def sign(self, values: dict, request: gr.Request) -> str:
        """The nickname or the guess typed: kept for the teacher's view; a guess that does not
        fit is said where the outcome goes."""
        problem = self.classroom.sign(page_key(request), values[self.signing.nickname], self.signing.guess(values))
        return f"⚠️ {escape_markdown(problem)}" if problem else ""

    def join(self, values: dict, *, request: gr.Request = None) -> str:
        """The scripting API's "/join_lesson": a script's session joins the server's lesson
        (VIT_DEMO_LESSON) with a nickname and a guess, as a lesson's page does."""
        lesson = server_lesson()
        if not lesson.active:
            raise gr.Error("This server has no lesson to join (VIT_DEMO_LESSON).")
        page = page_key(request)
        self.classroom.join(page, lesson.predict)
        problem = self.classroom.sign(page, values["nickname"], values["guess"])
        if problem:
            raise gr.Error(problem)
        return lesson.predict.question if lesson.predict else "Joined the lesson."

    def outcome(self, request: gr.Request) -> str:
        return self.classroom.outcome(page_key(request))


def plural(count: int, word: str, words: str | None = None) -> str:
    return f"{count} {word if count == 1 else words or word + 's'}"


def summary_text(snapshot: dict) -> str:
    """The class in a few lines a projector shows: pages, live runs, the best, what went wrong."""
    rows = snapshot["rows"]

    def names(found: list) -> str:
        return ", ".join(escape_markdown(n) for n in found[:12]) + (
            f" and {len(found) - 12} more" if len(found) > 12 else ""
        )

    best = snapshot["best"]
    lines = [
        f"### The class: {snapshot['pages']} page{'s' if snapshot['pages'] != 1 else ''} · {len(rows)} started · "
        f"{snapshot['live']} training now",
        f"**Best run:** {escape_markdown(best['student'])}, {best['test_accuracy']:.1%}"
        if best
        else "**Best run:** none finished yet",
    ]
    if snapshot["diverged"]:
        lines.append(f"**⚠ Diverged** (loss not a number, or above where it started): {names(snapshot['diverged'])}")
    if snapshot["never_started"]:
        lines.append(f"**Never pressed Start:** {names(snapshot['never_started'])}")
    if snapshot["everyone"]:
        lines.append("Everyone's runs share " + ", ".join(f"{k} {v}" for k, v in snapshot["everyone"].items()))
    return "\n\n".join(lines)


def guesses_text(snapshot: dict) -> str:
    """The class's guesses against its results."""
    if not snapshot.get("question"):
        return ""
    guesses = snapshot["guesses"]
    head = f"**The question:** {escape_markdown(snapshot['question'].removeprefix('Before you press Start: '))}"
    if snapshot["kind"] == "which":
        votes = {side: sum(g == side for _, g, _ in guesses) for side in ("A", "B")}
        found = {
            side: f"{statistics.fmean(v):.1f} % ({len(v)} runs)" if v else "no run yet"
            for side, v in snapshot["answer"].items()
        }
        return f"{head}\n\nGuesses: A {votes['A']}, B {votes['B']} · the class's runs: A {found['A']}, B {found['B']}"
    done = [(n, g, r) for n, g, r in guesses if r is not None]
    if not done:
        return f"{head}\n\n{plural(len(guesses), 'guess', 'guesses')} so far; none of their runs has finished."
    closest = min(done, key=lambda item: abs(item[2] - item[1]))
    return (
        f"{head}\n\n{plural(len(guesses), 'guess', 'guesses')}, {plural(len(done), 'run')} finished: mean guess "
        f"{statistics.fmean(g for _, g, _ in done):.1f} %, mean result {statistics.fmean(r for *_, r in done):.1f} % · "
        f"closest: {escape_markdown(closest[0])} (guessed {closest[1]:g} %, got {closest[2]:.1f} %)"
    )


def wire_class_view(handlers: ClassHandlers, demo: gr.Blocks, finished: gr.Textbox) -> None:
    """Page load opens the teacher's view or joins the lesson; the teacher's view polls; the
    nickname and guess are kept as typed; a finished run shows its guess beside its result."""
    tab, s = handlers.tab, handlers.signing
    private = {"api_visibility": "private", "show_progress": "hidden"}
    demo.load(handlers.open, None, {tab.tab, handlers.steps, tab.key, tab.timer, s.group, s.question,
                                    s.guess_accuracy, s.guess_which}, **private)  # fmt: skip
    shown = {tab.summary, tab.table, tab.figure, tab.guesses, tab.timer, tab.tab}
    gr.on([tab.timer.tick, tab.knob.change], handlers.refresh, {tab.key, tab.knob}, shown, trigger_mode="always_last",
          **private)  # fmt: skip
    tab.table.select(handlers.choose, {tab.key}, tab.chosen, **private)
    typed = [s.nickname.blur, s.nickname.submit, s.guess_accuracy.blur, s.guess_accuracy.submit, s.guess_which.change]
    gr.on(typed, handlers.sign, {s.nickname, s.guess_accuracy, s.guess_which}, s.outcome, trigger_mode="always_last",
          **private)  # fmt: skip
    finished.change(handlers.outcome, None, s.outcome, **private)
    gr.Button(visible=False).click(
        named(("key", "knob"), handlers.api_view), [tab.api_key, tab.knob], tab.data, api_name="class_view"
    )
    gr.Button(visible=False).click(
        named(("nickname", "guess"), handlers.join), [s.nickname, s.api_guess], s.question, api_name="join_lesson"
    )
