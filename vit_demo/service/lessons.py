"""Lessons: one link (or one small JSON file, `VIT_DEMO_LESSON`) fixes the dataset, the preset,
the knobs and the seed, and can lock or hide chosen controls, so a whole class starts from the
same place.

    http://server/?dataset=mnist&preset=quick&seed=3&lock=dataset,patch_size&hide=lr&class_run=1

A lesson file holds the same keys as JSON, lists for `lock` and `hide`, and an optional
`title`. `class_run` makes it a class run: the first page of the lesson to press Start (the
teacher's) starts the lesson's run, and every page of the lesson shows it. A link's values win
over the file's. Every value is checked as the knobs are (`knobs.RANGES`): one that does not
fit is left out and named in the lesson's banner with what is allowed, never an error. A
link's title is shown as plain text: only the server owner's file may put Markdown (a link)
in the banner.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from ..data import DATASETS
from ..recipes import recipe_for
from ..summaries import format_bytes
from .knobs import KNOBS, RANGES

CONTROLS = ("dataset", "preset", *KNOBS[1:])  # what a lesson may set, lock or hide
MAX_LESSON_FILE_BYTES = 64 * 1024
MAX_TITLE = 120  # characters
TRUE, FALSE = ("1", "true", "yes"), ("0", "false", "no")
KEYS = (*CONTROLS, "lock", "hide", "title", "class_run")  # every key a lesson may hold
IGNORED = ("problems", "view")  # keys that are not the lesson's: the file's own report, and Gradio's ?view=api


@dataclass
class Lesson:
    values: dict = field(default_factory=dict)  # control -> value, checked; "preset" is a preset's name
    lock: set = field(default_factory=set)
    hide: set = field(default_factory=set)
    title: str | None = None  # Markdown: escaped unless the server owner's file set it
    class_run: bool = False  # every page of the lesson follows the lesson's run
    problems: list = field(default_factory=list)  # a sentence per value left out

    @property
    def active(self) -> bool:
        return bool(self.values or self.lock or self.hide or self.title or self.class_run)


def read_lesson_file(path: str | os.PathLike | None) -> dict:
    """The lesson file's settings; {} without one. A file that cannot be used is reported in
    the banner (`problems`), never fatal."""
    if not path:
        return {}
    name = Path(path).name
    try:
        if Path(path).stat().st_size > MAX_LESSON_FILE_BYTES:
            return {
                "problems": [f"the lesson file {name} is over {format_bytes(MAX_LESSON_FILE_BYTES)}: it was not read"]
            }
        values = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError) as error:
        return {"problems": [f"the lesson file {name} could not be read ({error})"]}
    if not isinstance(values, dict):
        return {"problems": [f"the lesson file {name} must hold a JSON object ({{...}}), not {type(values).__name__}"]}
    return values


def _escape_markdown(text: str) -> str:
    """Plain text in a Markdown banner: no links, images, HTML or emphasis from a link's title."""
    special = "\\`*_{}[]<>()#+-.!|~"
    return "".join("\\" + c if c in special else c for c in text)


def _names(key: str, value, problems: list) -> list[str]:
    if isinstance(value, str):
        items = value.split(",")
    elif isinstance(value, list) and all(isinstance(item, str) for item in value):
        items = value
    else:
        problems.append(f"{key} must be a list of control names, got {value!r}")
        return []
    names = [item.strip() for item in items if item.strip()]
    unknown = [n for n in names if n not in CONTROLS]
    if unknown:
        problems.append(f"{key}: no control called {', '.join(unknown)} (the controls are {', '.join(CONTROLS)})")
    return [n for n in names if n in CONTROLS]


def _value(name: str, value, dataset: str):
    """A control's value, checked; a ValueError says what is allowed."""
    if name == "dataset":
        if value not in DATASETS:
            raise ValueError(f"dataset must be one of {', '.join(DATASETS)}, got {value!r}")
        return value
    if name == "preset":
        names = [p.name for p in recipe_for(dataset).presets]
        word = value.strip().split()[0].lower() if isinstance(value, str) and value.strip() else None
        if word not in names:
            raise ValueError(f"preset must be one of {dataset}'s presets ({', '.join(names)}), got {value!r}")
        return word
    return RANGES[name].check(name, value)


def _title(value, trusted: bool, problems: list) -> str | None:
    if not isinstance(value, (str, int, float)) or isinstance(value, bool):
        problems.append(f"title must be text, got {value!r}")
        return None
    text = " ".join(str(value).split())[:MAX_TITLE]
    return text if trusted else _escape_markdown(text)


def parse_lesson(file: Mapping | None = None, link: Mapping | None = None) -> Lesson:
    """The lesson of the server owner's `file` (read_lesson_file) and a page's `link` (its
    query parameters), the link's values winning."""
    lesson = Lesson()
    sources = (file or {}, link or {})
    for source, trusted in zip(sources, (True, False)):
        _take_framing(lesson, source, trusted)
    for source in sources:  # the dataset first: a preset is one of its dataset's
        if "dataset" in source:
            _take(lesson, "dataset", source["dataset"], None)
    dataset = lesson.values.get("dataset", next(iter(DATASETS)))
    for source in sources:
        for name in CONTROLS[1:]:
            if name in source:
                _take(lesson, name, source[name], dataset)
        unknown = sorted(k for k in source if k not in KEYS and not k.startswith("_") and k not in IGNORED)
        if unknown:
            lesson.problems.append(
                f"no lesson setting called {', '.join(unknown)} (the settings are {', '.join(KEYS)})"
            )
    return lesson


def _take_framing(lesson: Lesson, source: Mapping, trusted: bool) -> None:
    """What frames the lesson rather than the model: the title, a class run, the controls locked
    or hidden; and the file's own report of what it could not read."""
    lesson.problems += list(source.get("problems", [])) if trusted else []
    if source.get("title") not in (None, ""):
        lesson.title = _title(source["title"], trusted, lesson.problems) or lesson.title
    if "class_run" in source:
        word = str(source["class_run"]).strip().lower()
        if word in TRUE + FALSE:
            lesson.class_run = word in TRUE
        else:
            lesson.problems.append(f"class_run must be 1 or 0, got {source['class_run']!r}")
    for key in ("lock", "hide"):
        if key in source:
            getattr(lesson, key).update(_names(key, source[key], lesson.problems))


def _take(lesson: Lesson, name: str, value, dataset: str | None) -> None:
    try:
        lesson.values[name] = _value(name, value, dataset)
    except ValueError as error:
        lesson.problems.append(str(error))


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
        lines.append("⚠️ Left out of the lesson: " + "; ".join(_escape_markdown(p) for p in lesson.problems) + ".")
    return "\n\n".join(lines)
