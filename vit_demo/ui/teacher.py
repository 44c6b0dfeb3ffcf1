"""Teacher mode on the page: a lesson (service/lessons.py) sets the Build tab when the page
loads, and the Build tab's settings become a link to hand out."""

from __future__ import annotations

from urllib.parse import urlencode, urlsplit

import gradio as gr

from ..recipes import recipe_for
from ..service.knobs import Knobs
from ..service.lessons import CONTROLS, banner_text, server_lesson
from .build_tab import BuildTab, dataset_choices, fixed_by_dataset, patch_sizes, preset_choices


class TeacherHandlers:
    def __init__(
        self, tab: BuildTab, banner: gr.Markdown, link: gr.Textbox, class_lesson: gr.State, class_watch: gr.Timer
    ):
        self.tab, self.banner, self.link = tab, banner, link
        self.class_lesson, self.class_watch = class_lesson, class_watch

    def control(self, name: str):
        return self.tab.preset if name == "preset" else self.tab.knobs[name]

    def start(self, request: gr.Request) -> dict:
        """Page load: the lesson (VIT_DEMO_LESSON and the link's query) sets the dataset (with
        what choosing it sets), the preset's knobs, the lesson's own values, locks and hides, all
        in one step, so nothing the dataset sets can land after the lesson; and a class run's
        page starts watching for the run."""
        query = dict(getattr(request, "query_params", None) or {}) if request is not None else {}
        lesson = server_lesson(query)
        if not (lesson.active or lesson.problems):
            return gr.skip()
        dataset = lesson.values.get("dataset", self.tab.dataset.value)
        preset = recipe_for(dataset).preset(lesson.values.get("preset"))
        values = {**Knobs.of_preset(dataset, preset).values, "preset": preset.name, **lesson.values}
        updates = {name: {"value": values[name]} for name in CONTROLS if name in values}
        updates["preset"].update(choices=preset_choices(dataset), info=preset.blurb)
        updates["dataset"]["choices"] = dataset_choices(dataset)  # with the lesson's folder, if it has one
        updates["patch_size"]["choices"] = patch_sizes(values["image_size"])
        for name in lesson.lock:
            updates.setdefault(name, {})["interactive"] = False
        for name in lesson.hide:
            updates.setdefault(name, {})["visible"] = False
        return {
            self.banner: gr.Markdown(banner_text(lesson), visible=True),
            self.tab.fixed_by_dataset: fixed_by_dataset(dataset),
            self.class_lesson: lesson.class_run,
            self.class_watch: gr.Timer(active=lesson.class_run),
            **{self.control(name): gr.update(**update) for name, update in updates.items()},
        }

    def share_link(self, values: dict, request: gr.Request) -> str:
        """The current Build settings as a link a teacher can hand out."""
        query = urlencode(
            {name: _plain(values[self.control(name)]) for name in CONTROLS if values[self.control(name)] is not None}
        )
        return f"{_page_address(request)}?{query}"


def _plain(value):
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value


def _page_address(request: gr.Request | None) -> str:
    """Where the page was opened (without its query), as the browser sees it."""
    headers = getattr(request, "headers", None) or {}
    referer = headers.get("referer") if hasattr(headers, "get") else None
    if referer:
        parts = urlsplit(referer)
        return f"{parts.scheme}://{parts.netloc}{parts.path}"
    return ""


def wire_teacher(handlers: TeacherHandlers, demo: gr.Blocks) -> None:
    """On page load the lesson sets the Build tab; any change of a control rewrites the link.
    The link is written from the values as the page holds them (preprocess=False): a change
    seen mid-update (a new dataset, the old preset) is not refused as a choice the dataset
    lacks, and the last change writes the link."""
    private = {"api_visibility": "private", "show_progress": "hidden"}
    controls = {handlers.control(name) for name in CONTROLS}
    outputs = {handlers.banner, handlers.tab.fixed_by_dataset, handlers.class_lesson, handlers.class_watch, *controls}
    link = {"fn": handlers.share_link, "inputs": controls, "outputs": handlers.link, "preprocess": False, **private}
    demo.load(handlers.start, None, outputs, **private).then(**link)
    gr.on([control.change for control in controls], trigger_mode="always_last", **link)
