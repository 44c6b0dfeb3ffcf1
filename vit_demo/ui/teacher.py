"""Teacher mode: one link (or one small JSON lesson file) fixes the dataset, the preset, the
knobs and the seed, and can lock or hide chosen controls, so a whole class starts from
the same place. And the reverse: the current settings as a link to hand out.

    http://server/?dataset=mnist&preset=quick&seed=3&lock=dataset,patch_size&hide=lr&class_run=1

A lesson file (path in VIT_DEMO_LESSON) holds the same keys as JSON, lists for `lock`
and `hide`, and an optional `title` shown above the Build tab:

    {"title": "Lesson 2: patches", "dataset": "mnist", "preset": "Quick", "seed": 3,
     "lock": ["dataset", "patch_size"], "hide": ["lr", "batch_size"]}

`class_run` makes it a class run: the first page of the lesson to press Start (the
teacher's) starts the lesson's run, and every page of the lesson shows it live on its Train
tab and gets its model to explore when it ends. Query parameters win over the file. Values
that do not fit (an unknown dataset, a word where a number goes) are left out and listed in
the banner, never an error.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlencode, urlsplit

import gradio as gr

from .. import settings
from ..data import DATASETS
from ..model import SHAPE_FIELDS
from ..recipes import recipe_for
from .build_tab import PRESET_KNOBS, BuildControls, BuildHandlers

LESSON_ENV = "VIT_DEMO_LESSON"
# Build controls a lesson may set, lock or hide, in the order of TeacherHandlers.start's outputs.
KNOBS = (*PRESET_KNOBS, "epochs", "seed")
CONTROLS = ("dataset", "preset", *KNOBS)
NUMBERS = {
    **dict.fromkeys(SHAPE_FIELDS, int),
    "batch_size": int,
    "seed": int,
    "seconds": float,
    "epochs": float,
    "lr": float,
}
LENGTHS = ("time", "epochs")


@dataclass
class Lesson:
    values: dict = field(default_factory=dict)  # control -> value; "preset" is a label or its first word
    lock: set = field(default_factory=set)
    hide: set = field(default_factory=set)
    title: str | None = None
    class_run: bool = False  # every page of the lesson follows the lesson's run (see above)
    problems: list = field(default_factory=list)

    @property
    def active(self) -> bool:
        return bool(self.values or self.lock or self.hide or self.title or self.class_run)


def _names(value) -> list[str]:
    items = value.split(",") if isinstance(value, str) else list(value or [])
    return [str(item).strip() for item in items if str(item).strip()]


def read_lesson_file(path: str | os.PathLike | None) -> dict:
    """The lesson file's settings; {} when there is none (a broken file is reported, not fatal)."""
    if not path:
        return {}
    try:
        values = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError) as error:
        return {"problems": [f"the lesson file {path} could not be read ({error})"]}
    if not isinstance(values, dict):
        return {"problems": [f"the lesson file {path} must hold a JSON object"]}
    return values


def parse_lesson(*sources: Mapping) -> Lesson:
    """Merge settings (later sources win: the file, then the link's query parameters)."""
    lesson = Lesson()
    for source in sources:
        lesson.problems += list(source.get("problems", []))
        if source.get("title"):
            lesson.title = str(source["title"])
        if "class_run" in source:
            lesson.class_run = str(source["class_run"]).strip().lower() in ("1", "true", "yes")
        for key in ("lock", "hide"):
            if key in source:
                names = _names(source[key])
                unknown = [n for n in names if n not in CONTROLS]
                if unknown:
                    lesson.problems.append(f"{key}: no control called {', '.join(unknown)}")
                getattr(lesson, key).update(n for n in names if n in CONTROLS)
        for name in CONTROLS:
            if name not in source:
                continue
            value = source[name]
            try:
                if name in NUMBERS:
                    value = NUMBERS[name](value)
                elif name == "dataset" and value not in DATASETS:
                    raise ValueError
                elif name == "length" and value not in LENGTHS:
                    raise ValueError
            except (TypeError, ValueError):
                lesson.problems.append(f"{name}={value!r} does not fit")
                continue
            lesson.values[name] = value
    return lesson


def lesson_from_request(request: gr.Request | None, path: str | None = None) -> Lesson:
    query = dict(getattr(request, "query_params", None) or {}) if request is not None else {}
    return parse_lesson(read_lesson_file(path if path is not None else settings.read(LESSON_ENV)), query)


def banner_text(lesson: Lesson) -> str:
    lines = [f"### {lesson.title}" if lesson.title else "### Your teacher set up this lesson"]
    if lesson.lock:
        lines.append(f"Fixed for this lesson: {', '.join(f'`{n}`' for n in sorted(lesson.lock))}.")
    if lesson.class_run:
        lines.append(
            "**A class run:** when your teacher starts the lesson's run, your **② Train** tab shows it live, and "
            "its model is yours to explore when it ends."
        )
    if lesson.problems:
        lines.append("⚠️ Left out of the lesson link: " + "; ".join(lesson.problems) + ".")
    return "\n\n".join(lines)


def preset_label(dataset: str, wanted: str | None) -> str | None:
    """A preset of `dataset` named by its label or its first word ("quick" → "Quick (~30 s)")."""
    if not wanted:
        return None
    for preset in recipe_for(dataset).presets:
        if preset.label.lower() == wanted.lower() or preset.label.split()[0].lower() == wanted.lower():
            return preset.label
    return None


class TeacherHandlers:
    def __init__(self, build: BuildHandlers):
        self.build = build

    def start(self, dataset: str, request: gr.Request = None) -> list:
        """Page load: the lesson's banner, the dataset's heading, and an update for every control
        in `CONTROLS` order. The preset's knobs come from this machine's plan as it stands now
        (the layout was built before the machine was measured). A lesson's dataset comes with
        what choosing it sets (its presets, patch sizes and first preset's knobs), then the
        lesson's preset, knobs, locks and hides over it, all in one step, so nothing the
        dataset sets can land after the lesson."""
        lesson = lesson_from_request(request)
        dataset = lesson.values.get("dataset", dataset)
        wanted_preset = lesson.values.get("preset")
        label = preset_label(dataset, wanted_preset)
        if wanted_preset is not None and label is None:
            lesson.problems.append(f"preset={wanted_preset!r} is not one of {dataset}'s presets")
        updates: dict[str, dict] = {name: {} for name in CONTROLS}
        updates.update(self.build.dataset_settings(dataset, label))
        if "dataset" in lesson.values:
            updates["dataset"] = {"value": dataset}
        for name, value in lesson.values.items():
            if name in KNOBS:
                updates[name]["value"] = value
        for name in lesson.lock:
            updates[name]["interactive"] = False
        for name in lesson.hide:
            updates[name]["visible"] = False
        shown = lesson.active or bool(lesson.problems)
        banner = gr.Markdown(banner_text(lesson), visible=True) if shown else gr.skip()
        heading = self.build.fixed_by_dataset(dataset) if "dataset" in lesson.values else gr.skip()
        controls = [gr.update(**updates[name]) if updates[name] else gr.skip() for name in CONTROLS]
        # A class run's pages watch for it (train_tab.TrainHandlers.watch_class_run).
        return [banner, heading, *controls, lesson.class_run, gr.Timer(active=lesson.class_run)]

    @staticmethod
    def share_link(request: gr.Request | None, *values) -> str:
        """The current Build settings (one value per control, in `CONTROLS` order) as a link a
        teacher can hand out: the preset by its first word, and only the length in use."""
        values = dict(zip(CONTROLS, values))
        values["preset"] = (values["preset"] or "").split(" ")[0] or None
        values["epochs" if values["length"] == "time" else "seconds"] = None
        query = urlencode({k: _plain(v) for k, v in values.items() if v is not None})
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


def wire_teacher(
    handlers: TeacherHandlers,
    demo: gr.Blocks,
    build: BuildControls,
    banner: gr.Markdown,
    link: gr.Textbox,
    class_lesson: gr.State,
    class_watch: gr.Timer,
) -> None:
    """On page load the lesson (VIT_DEMO_LESSON and the link's query) sets the Build tab, and a
    class run's page starts watching for it (`class_lesson`, `class_watch`); any change of a
    control rewrites the link to hand out."""
    private = {"api_visibility": "private", "show_progress": "hidden"}
    controls = [getattr(build, name) for name in CONTROLS]
    demo.load(
        handlers.start, build.dataset, [banner, build.fixed_by_dataset, *controls, class_lesson, class_watch], **private
    )
    gr.on(
        [demo.load, *(control.change for control in controls)],
        handlers.share_link,
        controls,
        link,
        trigger_mode="always_last",
        **private,
    )
