"""Teacher mode: one link (or one small JSON lesson file) fixes the dataset, the preset, the
knobs and the seed, and can lock or hide chosen controls, so a whole class starts from
the same place. And the reverse: the current settings as a link to hand out.

    http://server/?dataset=mnist&preset=quick&seed=3&lock=dataset,patch_size&hide=lr

A lesson file (path in VIT_DEMO_LESSON) holds the same keys as JSON, lists for `lock`
and `hide`, and an optional `title` shown above the Build tab:

    {"title": "Lesson 2: patches", "dataset": "mnist", "preset": "Quick", "seed": 3,
     "lock": ["dataset", "patch_size"], "hide": ["lr", "batch_size"]}

Query parameters win over the file. Values that do not fit (an unknown dataset, a word
where a number goes) are left out and listed in the banner, never an error.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlencode, urlsplit

import gradio as gr

from ..data import DATASETS
from ..recipes import recipe_for

LESSON_ENV = "VIT_DEMO_LESSON"
# Build controls a lesson may set, lock or hide, in `lesson_outputs` order after the dataset.
KNOBS = ("patch_size", "dim", "depth", "heads", "mlp_dim", "lr", "batch_size", "length", "seconds", "epochs", "seed")
CONTROLS = ("dataset", "preset", *KNOBS)
NUMBERS = {"patch_size": int, "dim": int, "depth": int, "heads": int, "mlp_dim": int, "batch_size": int, "seed": int,
           "seconds": float, "epochs": float, "lr": float}
LENGTHS = ("time", "epochs")


@dataclass
class Lesson:
    values: dict = field(default_factory=dict)  # control -> value; "preset" is a label or its first word
    lock: set = field(default_factory=set)
    hide: set = field(default_factory=set)
    title: str | None = None
    problems: list = field(default_factory=list)

    @property
    def active(self) -> bool:
        return bool(self.values or self.lock or self.hide or self.title)


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
    return parse_lesson(read_lesson_file(path if path is not None else os.environ.get(LESSON_ENV)), query)


def preset_label(dataset: str, wanted: str | None) -> str | None:
    """A preset of `dataset` named by its label or its first word ("quick" → "Quick (~30 s)")."""
    if not wanted:
        return None
    for preset in recipe_for(dataset).presets:
        if preset.label.lower() == wanted.lower() or preset.label.split()[0].lower() == wanted.lower():
            return preset.label
    return None


def _update(name: str, lesson: Lesson, **values):
    """An update for control `name`: the lesson's value, locked or hidden as it says."""
    if name in lesson.values or name in lesson.lock or name in lesson.hide:
        if name in lesson.lock:
            values["interactive"] = False
        if name in lesson.hide:
            values["visible"] = False
        return gr.update(**values)
    return gr.skip()


class TeacherHandlers:
    def __init__(self, knob_values):
        self.knob_values = knob_values  # BuildHandlers.knob_values: a preset's knobs

    def start(self, request: gr.Request = None) -> tuple:
        """Page load, first step: the lesson (kept for the second step), its banner, and the dataset."""
        lesson = lesson_from_request(request)
        if not lesson.active and not lesson.problems:
            return lesson, gr.skip(), gr.skip()
        lines = [f"### {lesson.title}" if lesson.title else "### Your teacher set up this lesson"]
        locked = sorted(lesson.lock)
        if locked:
            lines.append(f"Fixed for this lesson: {', '.join(f'`{n}`' for n in locked)}.")
        if lesson.problems:
            lines.append("⚠️ Left out of the lesson link: " + "; ".join(lesson.problems) + ".")
        dataset = _update("dataset", lesson, **({"value": lesson.values["dataset"]}
                                                          if "dataset" in lesson.values else {}))
        return lesson, gr.Markdown("\n\n".join(lines), visible=True), dataset

    def apply(self, lesson: Lesson | None, dataset: str) -> list:
        """Second step, once the dataset's own defaults are in: the preset, knobs, seed, locks."""
        outputs = len(CONTROLS) - 1
        if lesson is None or not lesson.active:
            return [gr.skip()] * outputs
        label = preset_label(dataset, lesson.values.get("preset"))
        updates = []
        if label is not None:
            knobs = dict(zip(KNOBS[:-2], self.knob_values(dataset, label)))  # up to `seconds`
            preset = gr.update(value=label, interactive="preset" not in lesson.lock,
                               visible="preset" not in lesson.hide)
        else:
            knobs = {}
            preset = _update("preset", lesson)
        knobs.update({k: v for k, v in lesson.values.items() if k in KNOBS})
        updates.append(preset)
        for name in KNOBS:
            values = {"value": knobs[name]} if name in knobs else {}
            if name in knobs and name not in lesson.values and name not in lesson.lock and name not in lesson.hide:
                updates.append(gr.update(**values))
            else:
                updates.append(_update(name, lesson, **values))
        return updates

    @staticmethod
    def share_link(dataset, preset, patch_size, dim, depth, heads, mlp_dim, lr, batch_size, length, seconds, epochs,
                   seed, request: gr.Request = None) -> str:
        """The current Build settings as a link a teacher can hand out."""
        values = dict(dataset=dataset, preset=(preset or "").split(" ")[0] or None, patch_size=patch_size, dim=dim,
                      depth=depth, heads=heads, mlp_dim=mlp_dim, lr=lr, batch_size=batch_size, length=length,
                      seconds=seconds if length == "time" else None, epochs=epochs if length == "epochs" else None,
                      seed=seed)
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
