"""The class as its teacher sees it: every page of a lesson (service/lessons.py), its student's
nickname and guess, and each run it started, live: its settings, step, loss, test accuracy and
how it ended. From these: the table, the best run, runs that diverged, pages that never pressed
Start, accuracy against a chosen knob, and the guesses against the results.

`Runs` feeds it where a page's run starts, reports and ends (the producer's own numbers,
`training.TrainProgress`); the teacher's view (ui/class_view.py) reads `snapshot`. Only pages
that joined the lesson are recorded: any other page's runs stay its own. Memory is bounded: at
most `max_pages` pages, `MAX_RUNS` runs each, `MAX_POINTS` curve points a run. Nothing here
imports gradio.
"""

from __future__ import annotations

import itertools
import math
import statistics
import threading
from dataclasses import dataclass, field

from .lessons import Prediction

MAX_PAGES = 300  # a class, its neighbours and their reloads
MAX_RUNS = 8  # kept per page, newest last
MAX_POINTS = 48  # loss points kept per run: every other one goes when full
MAX_NICKNAME = 24  # characters
LATE = 0.5  # of a run: past it, a loss above the run's first is a run that diverged
SPARKS = "▁▂▃▄▅▆▇█"
SPARK_WIDTH = 16


@dataclass
class ClassRun:
    """One run a page of the lesson started, as far as it has got."""

    knobs: dict
    handle: object = None  # the shared run, to make it the class run
    guess: float | str | None = None  # what the student guessed before Start
    curve: list = field(default_factory=list)  # (step, train loss), thinned
    step: int = 0
    fraction: float = 0.0
    first_loss: float | None = None
    loss: float | None = None
    test_accuracy: float | None = None  # 0..1, the latest evaluation
    state: str = "waiting"  # waiting, training, finished, stopped

    @property
    def diverged(self) -> bool:
        """Loss NaN or infinite, or above where it started late in the run."""
        if self.loss is None:
            return False
        if not math.isfinite(self.loss):
            return True
        late = self.fraction >= LATE or self.state != "training"
        return late and self.first_loss is not None and self.loss > self.first_loss

    @property
    def ended(self) -> bool:
        return self.state in ("finished", "stopped")

    def add(self, progress) -> None:
        p = progress
        self.step, self.fraction, self.loss = p.step, p.fraction, p.train_loss
        self.first_loss = p.train_loss if self.first_loss is None else self.first_loss
        if p.test_accuracy is not None:
            self.test_accuracy = p.test_accuracy
        if len(self.curve) >= MAX_POINTS:
            self.curve = self.curve[::2]
        self.curve.append((p.step, p.train_loss))
        self.state = ("stopped" if p.stopped else "finished") if p.done else "training"


@dataclass
class Student:
    number: int
    prediction: Prediction | None
    nickname: str = ""
    guess: float | str | None = None
    runs: list = field(default_factory=list)

    @property
    def name(self) -> str:
        return self.nickname or f"Student {self.number}"

    @property
    def run(self) -> ClassRun | None:
        return self.runs[-1] if self.runs else None


class Classroom:
    def __init__(self, max_pages: int = MAX_PAGES):
        self.max_pages = max_pages
        self._students: dict[str, Student] = {}  # page -> its student, oldest first
        self._numbers = itertools.count(1)
        self._lock = threading.Lock()

    # ------------------------------------------------------------------ what the pages tell it

    def join(self, page: str, prediction: Prediction | None = None) -> None:
        """A page of the lesson opened (again: its nickname, guess and runs stay)."""
        with self._lock:
            student = self._students.get(page)
            if student is None:
                self._make_room()
                self._students[page] = Student(next(self._numbers), prediction)
            else:
                student.prediction = prediction

    def sign(self, page: str, nickname=None, guess=None) -> str | None:
        """The student's nickname and guess, as typed; a sentence when the guess does not fit
        the question (the guess is then left as it was). Pages not in the lesson: nothing."""
        with self._lock:
            student = self._students.get(page)
            if student is None:
                return None
            if isinstance(nickname, str):
                student.nickname = " ".join(nickname.split())[:MAX_NICKNAME]
            if student.prediction is None or guess in (None, ""):
                return None
            try:
                student.guess = student.prediction.read_guess(guess)
            except ValueError as error:
                return str(error)
            return None

    def started(self, page: str, knobs: dict, handle=None) -> None:
        """The page pressed Start on `knobs` (its run is `handle`)."""
        with self._lock:
            student = self._students.get(page)
            if student is not None:
                student.runs = [*student.runs[-(MAX_RUNS - 1) :], ClassRun(dict(knobs), handle, student.guess)]

    def report(self, page: str, progress) -> None:
        """A report of the page's own run (training.TrainProgress); a page that never started
        one (it follows the class run) is not recorded."""
        if progress is None:
            return
        with self._lock:
            student = self._students.get(page)
            run = student.run if student is not None else None
            if run is not None and not run.ended:
                run.add(progress)

    def ended(self, page: str) -> None:
        """The page let its run go: one that had not finished was stopped (or left)."""
        with self._lock:
            student = self._students.get(page)
            run = student.run if student is not None else None
            if run is not None and not run.ended:
                run.state = "stopped"

    def _make_room(self) -> None:
        """Past `max_pages`, the oldest page that is not training goes."""
        while len(self._students) >= self.max_pages:
            quiet = (p for p, s in self._students.items() if s.run is None or s.run.ended)
            del self._students[next(quiet, next(iter(self._students)))]

    # ------------------------------------------------------------------ what the teacher sees

    def handle(self, number: int):
        """The latest run of student `number` (to make it the class run), or None."""
        with self._lock:
            student = next((s for s in self._students.values() if s.number == number), None)
            return student.run.handle if student is not None and student.run is not None else None

    def outcome(self, page: str) -> str:
        """The student's guess beside the result, for their own page ("" without a guess)."""
        with self._lock:
            student = self._students.get(page)
            if student is None or student.run is None or student.run.guess is None:
                return ""
            return _outcome(student, self._all_runs())

    def snapshot(self, knob: str | None = None) -> dict:
        """Everything the teacher's view shows, as plain values (the scripting API returns it)."""
        with self._lock:
            students = list(self._students.values())
            started = [s for s in students if s.run is not None]
            runs = self._all_runs()
        varying = _varying([run.knobs for _, run in runs])
        knob = knob if knob in {k for _, r in runs for k in r.knobs} else (varying[0] if varying else "depth")
        measured = [(s, r) for s, r in runs if r.test_accuracy is not None and r.ended]
        best = max(measured, key=lambda sr: sr[1].test_accuracy, default=None)
        return {
            "pages": len(students),
            "columns": ["#", "student", *varying, "step", "loss", "curve", "test accuracy", "guess", "state"],
            "rows": [_row(s, varying) for s in started],
            "everyone": _shared_settings([run.knobs for _, run in runs], varying),
            "live": sum(s.run.state == "training" for s in started),
            "best": None if best is None else {"student": best[0].name, "test_accuracy": best[1].test_accuracy},
            "diverged": [s.name for s in started if s.run.diverged],
            "never_started": [s.name for s in students if s.run is None],
            "knob": knob,
            "points": [(r.knobs.get(knob), 100 * r.test_accuracy, s.name, _number(r.guess)) for s, r in measured],
            "guesses": [(s.name, r.guess, _result(r)) for s, r in runs if r.guess is not None],
            **_question(next((s.prediction for s in students if s.prediction is not None), None), runs),
        }

    def _all_runs(self) -> list[tuple[Student, ClassRun]]:
        return [(s, r) for s in self._students.values() for r in s.runs]


def _varying(settings: list[dict]) -> list[str]:
    """The knobs the class's runs do not all share, in the knobs' own order."""
    names = list(dict.fromkeys(name for knobs in settings for name in knobs))
    return [n for n in names if len({repr(knobs.get(n)) for knobs in settings}) > 1]


def _shared_settings(settings: list[dict], varying: list[str]) -> dict:
    return {n: v for n, v in settings[0].items() if n not in varying} if settings else {}


def _number(guess) -> float | None:
    return guess if isinstance(guess, float) else None


def _result(run: ClassRun) -> float | None:
    return None if run.test_accuracy is None or not run.ended else 100 * run.test_accuracy


def sparkline(values: list[float]) -> str:
    """A curve in eight heights of block, at most SPARK_WIDTH wide; "" without finite points."""
    finite = [v for v in values if math.isfinite(v)]
    if not finite:
        return ""
    step = max(1, math.ceil(len(values) / SPARK_WIDTH))
    picked = values[::step]
    low, high = min(finite), max(finite)
    span = (high - low) or 1.0
    return "".join(SPARKS[round((v - low) / span * 7)] if math.isfinite(v) else "!" for v in picked)


def _row(student: Student, varying: list[str]) -> list:
    run = student.run
    accuracy = "" if run.test_accuracy is None else f"{run.test_accuracy:.1%}"
    loss = "" if run.loss is None else f"{run.loss:.3f}"
    guess = "" if run.guess is None else (f"{run.guess:g} %" if isinstance(run.guess, float) else run.guess)
    state = "training" if run.state == "training" else run.state
    state = f"⚠ diverged ({state})" if run.diverged else state
    return [
        student.number,
        student.name,
        *(run.knobs.get(n, "") for n in varying),
        run.step,
        loss,
        sparkline([v for _, v in run.curve]),
        accuracy,
        guess,
        state,
    ]


def _question(prediction: Prediction | None, runs: list) -> dict:
    """The lesson's question, and for a "which" question the class's answer so far."""
    if prediction is None:
        return {"question": None}
    answer = which_answer(prediction, runs) if prediction.kind == "which" else None
    return {"question": prediction.question, "kind": prediction.kind, "answer": answer}


def which_answer(prediction: Prediction, runs: list[tuple[Student, ClassRun]]) -> dict[str, list[float]]:
    """The finished runs' accuracies (%) of setting A and of setting B of a "which" question."""
    found: dict[str, list[float]] = {"A": [], "B": []}
    for _, run in runs:
        for side, setting in (("A", prediction.a), ("B", prediction.b)):
            if _result(run) is not None and all(run.knobs.get(n) == v for n, v in setting):
                found[side].append(_result(run))
    return found


def _outcome(student: Student, runs: list[tuple[Student, ClassRun]]) -> str:
    run, prediction = student.run, student.prediction
    result = _result(run)
    if prediction is None or prediction.kind == "accuracy":
        got = "still training" if result is None else f"**{result:.1f} %**"
        gap = (
            ""
            if result is None
            else f" ({abs(result - run.guess):.1f} points {'above' if result >= run.guess else 'below'} your guess)"
        )
        return f"**Your guess:** {run.guess:g} % · **your run:** {got}{gap}"
    found = which_answer(prediction, runs)
    sides = [
        f"{side} ({prediction.describe(getattr(prediction, side.lower()))}) "
        + (
            f"**{statistics.fmean(v):.1f} %** ({len(v)} run{'s' if len(v) != 1 else ''})"
            if v
            else "no finished run yet"
        )
        for side, v in found.items()
    ]
    verdict = ""
    if found["A"] and found["B"]:
        higher = "A" if statistics.fmean(found["A"]) > statistics.fmean(found["B"]) else "B"
        verdict = f": **{higher} is higher**, {'as you guessed' if higher == run.guess else 'not what you guessed'}"
    return f"**Your guess:** {run.guess} · **the class's runs:** {', '.join(sides)}{verdict}"
