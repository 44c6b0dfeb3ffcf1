"""Lessons: one link (or one small JSON file, `VIT_DEMO_LESSON`) fixes the dataset, the preset,
the knobs and the seed, and can lock or hide chosen controls, so a whole class starts from the
same place.

    http://server/?dataset=mnist&preset=quick&seed=3&lock=dataset,patch_size&hide=lr&class_run=1

A lesson file holds the same keys as JSON, lists for `lock` and `hide`, and an optional
`title`. `class_run` makes it a class run: the first page of the lesson to press Start (the
teacher's) starts the lesson's run, and every page of the lesson shows it. `predict` asks each
student for a guess before Start (`Prediction`). Only the file may hold `teacher_key`, the
secret that opens the teacher's view of the class (ui/class_view.py), and `dataset_folder`, a
folder of class folders on the server (relative to the file) that becomes every page's dataset
(own_sets.lesson_dataset). A link's values win over the file's. Every value is checked as the
knobs are (`knobs.RANGES`): one that does not fit is left out and named in the lesson's banner
with what is allowed, never an error. A link's title is shown as plain text: only the server
owner's file may put Markdown (a link) in the banner.
"""

from __future__ import annotations

import hmac
import json
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from .. import settings
from ..data import DATASETS, OWN_PREFIX, get_spec
from ..own_data import OwnDataError
from ..recipes import recipe_for
from ..summaries import format_bytes
from .knobs import KNOBS, RANGES, Range
from .own_sets import lesson_dataset

CONTROLS = ("dataset", "preset", *KNOBS[1:])  # what a lesson may set, lock or hide
MAX_LESSON_FILE_BYTES = 64 * 1024
MAX_TITLE = 120  # characters
TRUE, FALSE = ("1", "true", "yes"), ("0", "false", "no")
# Every key a lesson may hold.
KEYS = (*CONTROLS, "dataset_folder", "lock", "hide", "title", "class_run", "predict", "a", "b", "teacher_key")
# Keys that are not the lesson's: the file's own report, Gradio's ?view=api, the teacher's ?teacher=KEY.
IGNORED = ("problems", "view", "teacher")
GUESS_RANGE = Range(0, 100, 0.1, False, "your guess (test accuracy, %)")
MIN_KEY = 8  # characters: a teacher key short enough to guess opens nothing


@dataclass(frozen=True)
class Prediction:
    """What a lesson asks each student to guess before Start: the test accuracy their settings
    will reach ("accuracy"), or which of two settings will reach the higher one ("which": `a`
    and `b` are (knob, value) pairs)."""

    kind: str
    a: tuple = ()
    b: tuple = ()

    @staticmethod
    def describe(setting: tuple) -> str:
        return ", ".join(f"{name} {value:g}" for name, value in setting)

    @property
    def question(self) -> str:
        if self.kind == "accuracy":
            return "Before you press Start: what test accuracy will your settings reach?"
        return (
            f"Before you press Start: which will reach the higher test accuracy, "
            f"A ({self.describe(self.a)}) or B ({self.describe(self.b)})?"
        )

    @property
    def choices(self) -> list[str]:
        """The answers of a "which" question, as the page offers them."""
        return [f"A ({self.describe(self.a)})", f"B ({self.describe(self.b)})"] if self.kind == "which" else []

    def read_guess(self, value) -> float | str:
        """A student's guess: a percentage, or "A" / "B"; a ValueError says what is allowed."""
        if self.kind == "accuracy":
            return GUESS_RANGE.check("your guess (%)", value)
        word = str(value or "").strip()[:1].upper()
        if word not in ("A", "B"):
            raise ValueError(f"your guess must be A or B, got {value!r}")
        return word


@dataclass
class Lesson:
    values: dict = field(default_factory=dict)  # control -> value, checked; "preset" is a preset's name
    lock: set = field(default_factory=set)
    hide: set = field(default_factory=set)
    title: str | None = None  # Markdown: escaped unless the server owner's file set it
    class_run: bool = False  # every page of the lesson follows the lesson's run
    predict: Prediction | None = None  # the guess asked for before Start
    teacher_key: str | None = field(default=None, repr=False)  # the file's secret: never shown, never from a link
    problems: list = field(default_factory=list)  # a sentence per value left out

    @property
    def active(self) -> bool:
        return bool(
            self.values or self.lock or self.hide or self.title or self.class_run or self.predict or self.teacher_key
        )


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
    if isinstance(values.get("dataset_folder"), str) and values["dataset_folder"].strip():
        values["dataset_folder"] = str(Path(path).parent / values["dataset_folder"].strip())  # an absolute one stays
    return values


def server_lesson(link: Mapping | None = None) -> Lesson:
    """The lesson of this server's file (VIT_DEMO_LESSON) and a page's link."""
    return parse_lesson(read_lesson_file(settings.read("VIT_DEMO_LESSON")), link)


def escape_markdown(text: str) -> str:
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
            shown = dataset if dataset in DATASETS else get_spec(dataset).title  # not an own set's key
            raise ValueError(f"preset must be one of {shown}'s presets ({', '.join(names)}), got {value!r}")
        return word
    return RANGES[name].check(name, value)


def _title(value, trusted: bool, problems: list) -> str | None:
    if not isinstance(value, (str, int, float)) or isinstance(value, bool):
        problems.append(f"title must be text, got {value!r}")
        return None
    text = " ".join(str(value).split())[:MAX_TITLE]
    return text if trusted else escape_markdown(text)


def parse_lesson(file: Mapping | None = None, link: Mapping | None = None) -> Lesson:
    """The lesson of the server owner's `file` (read_lesson_file) and a page's `link` (its
    query parameters), the link's values winning."""
    lesson = Lesson()
    sources = (file or {}, link or {})
    for source, trusted in zip(sources, (True, False)):
        _take_framing(lesson, source, trusted)
    for source, trusted in zip(sources, (True, False)):  # the dataset first: a preset is one of its dataset's
        if "dataset" in source:
            _take(lesson, "dataset", source["dataset"], None)
        if "dataset_folder" in source:
            _take_folder(lesson, source["dataset_folder"], trusted)
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
    if "predict" in source:
        lesson.predict = _prediction(source, lesson.problems) or lesson.predict
    if "teacher_key" in source:
        lesson.teacher_key = _teacher_key(source["teacher_key"], trusted, lesson.problems) or lesson.teacher_key


def _take_folder(lesson: Lesson, value, trusted: bool) -> None:
    """The lesson file's folder of class folders as every page's dataset (over the file's `dataset`)."""
    if not trusted:
        lesson.problems.append("dataset_folder can be set only in the server's lesson file, never by a link")
    elif not isinstance(value, str) or not value.strip():
        lesson.problems.append(f"dataset_folder must name a folder of class folders, got {value!r}")
    else:
        try:
            lesson.values["dataset"] = lesson_dataset(value)
        except OwnDataError as error:
            lesson.problems.append(f"the lesson's dataset_folder cannot be used: {error}")


def _teacher_key(value, trusted: bool, problems: list) -> str | None:
    """The file's teacher key; a link's is refused (anyone could set the key and open the view).
    The sentences never repeat the value: the banner is every student's."""
    if not trusted:
        problems.append("teacher_key can be set only in the server's lesson file, never by a link")
        return None
    if not isinstance(value, str) or len(value.strip()) < MIN_KEY:
        problems.append(f"teacher_key must be text of at least {MIN_KEY} characters: the teacher's view stays closed")
        return None
    return value.strip()


def _setting(key: str, value, problems: list) -> tuple | None:
    """One side of a "which" question: {"depth": 1} (a file) or "depth:1,dim:32" (a link)."""
    if isinstance(value, str):
        value = dict(item.partition(":")[::2] for item in value.split(",") if item.strip())
    if not isinstance(value, Mapping) or not value:
        problems.append(f'{key} must name the knobs of a setting, like {{"depth": 4}}, got {value!r}')
        return None
    try:
        return tuple((name.strip(), _checked_knob(name.strip(), v)) for name, v in sorted(value.items()))
    except ValueError as error:
        problems.append(f"{key}: {error}")
        return None


def _checked_knob(name: str, value):
    if name not in RANGES:
        raise ValueError(f"no knob called {name!r} (the knobs are {', '.join(RANGES)})")
    return RANGES[name].check(name, value)


def _prediction(source: Mapping, problems: list) -> Prediction | None:
    kind = str(source["predict"]).strip().lower()
    if kind == "accuracy":
        return Prediction("accuracy")
    if kind != "which":
        problems.append(f"predict must be accuracy or which, got {source['predict']!r}")
        return None
    a, b = (_setting(key, source.get(key), problems) for key in ("a", "b"))
    if a is None or b is None:
        return None
    if a == b:
        problems.append("predict: a and b are the same setting")
        return None
    return Prediction("which", a, b)


def teacher_key(environment_key: str | None, file: Mapping) -> str | None:
    """The key that opens the teacher's view: VIT_DEMO_TEACHER_KEY, else the lesson file's."""
    if environment_key and len(environment_key.strip()) >= MIN_KEY:
        return environment_key.strip()
    lesson = Lesson()
    _take_framing(lesson, file, trusted=True)  # the key alone: not the folder a whole parse would list
    return lesson.teacher_key


def key_opens(given, key: str | None) -> bool:
    """`given` is the teacher key (compared in constant time: no guessing it letter by letter)."""
    if not key or not isinstance(given, str) or not given:
        return False
    return hmac.compare_digest(given.encode(), key.encode())


def _take(lesson: Lesson, name: str, value, dataset: str | None) -> None:
    try:
        lesson.values[name] = _value(name, value, dataset)
    except ValueError as error:
        lesson.problems.append(str(error))


def banner_text(lesson: Lesson) -> str:
    lines = [f"### {lesson.title}" if lesson.title else "### Your teacher set up this lesson"]
    if lesson.lock:
        lines.append(f"Fixed for this lesson: {', '.join(f'`{n}`' for n in sorted(lesson.lock))}.")
    dataset = str(lesson.values.get("dataset", ""))
    if dataset.startswith(OWN_PREFIX):
        spec = get_spec(dataset)
        lines.append(
            f"**The class's pictures ({escape_markdown(spec.title)}):** {len(spec.class_names)} classes "
            f"({escape_markdown(', '.join(spec.class_names))}), {spec.train_images} pictures to learn from and "
            f"{spec.test_images} held out to test on."
        )
    if lesson.class_run:
        lines.append(
            "**A class run:** when your teacher starts the lesson's run, your **② Train** tab shows it live, and "
            "its model is yours to explore when it ends."
        )
    if lesson.problems:
        lines.append("⚠️ Left out of the lesson: " + "; ".join(escape_markdown(p) for p in lesson.problems) + ".")
    return "\n\n".join(lines)
