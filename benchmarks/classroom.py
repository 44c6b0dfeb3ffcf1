"""A class of 30 against one server: how long until the last student sees their model learn,
and until everyone has a model, while the class explores meanwhile.

    VIT_DEMO_DATA=../shared/data python -m benchmarks.classroom [--students 30] [--same 24]
        [--epochs 4] [--arrive 60] [--deadline 420] [--app PATH/TO/app.py]

`python app.py` is started on a free loopback port (or another checkout's app.py, `--app`:
the "before" of a change). Every student is a gradio_client session (one browser session
each) that, at the teacher's "go" (all within two seconds, in a shuffled order), streams
"/train": `--same` of them with the lesson's settings (MNIST, patch 7, dim 64, 2 blocks, a
`--epochs`, seed 0), the others each changing one knob of it. While their model
trains each student explores the shipped MNIST model every few seconds ("/explore").

The students open the app first (a gradio_client per student: what loading the page is),
and the clock starts at "go", `--arrive` seconds after the server first answers: a teacher
starts the app, hands out the link and introduces the lesson while the class opens it. (The
app times this machine's speed again while it is idle, and plans runs on those readings:
`--arrive 5` is a class that starts as soon as the server does.)

The server runs a lesson (VIT_DEMO_LESSON) that asks for a guess of the test accuracy: each
student joins it with a nickname and a guess ("/join_lesson") before Start, and a teacher's
client polls the teacher's view ("/class_view") with the lesson's teacher key every
TEACHER_POLL seconds while the class trains, after one poll without the key (refused).

Printed: for the last student, the seconds from "go" until the first live report of a
training step (a curve point) and until the finished model; every student's; the explore
latency p50/p95 meanwhile; the student runs the teacher's view showed (started, training,
finished) at the midpoint and at the end, and its poll latency p50/p95; failed requests; the
distinct runs the server trained; the server's peak RSS (VmHWM); the CPU seconds of the
server, its training processes and the simulated students (whose clients share the server's
two cores here, where a real class's browsers run on their own machines). Bounded: students still without a model at
`--deadline` seconds are reported as such, and the benchmark ends.
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import psutil
from gradio_client import Client

from tools.harness import REPO, AppProcess, percentile
from vit_demo.machine import Machine

LESSON = dict(
    dataset="mnist",
    patch_size=7,
    dim=64,
    depth=2,
    heads=4,
    mlp_dim=128,
    lr=0.003,
    batch_size=128,
    epochs=4,
    seed=0,
)
# One knob changed each: what students try after the lesson's run.
VARIATIONS = (dict(depth=3), dict(dim=48), dict(heads=2), dict(mlp_dim=64), dict(lr=0.002), dict(seed=1))
EXPLORE_EVERY = 8.0  # seconds between a waiting student's explore requests: a look at each figure
TEACHER_KEY = "benchmark-teacher-key"
TEACHER_POLL = 2.0  # seconds between the teacher's view's polls, as its page polls


@dataclass
class Student:
    number: int
    knobs: dict
    guess: int = 90  # the test accuracy (%) the student guesses
    first_step: float | None = None  # seconds after "go": a live report of a step
    finished: float | None = None  # seconds after "go": the finished model
    accuracy: str = ""
    steps: str = ""  # the run's length in steps, as its last report gave it
    explore_seconds: list[float] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)


def metrics_of(output) -> str:
    return str(output[2]) if output and len(output) > 2 else ""  # "/train" returns status, progress bar, metrics first


def status_of(output) -> str:
    return str(output[0]) if output else ""


@dataclass
class Teacher:
    """What the teacher's client saw: (seconds after "go", runs started, training, finished)."""

    polls: list[tuple[float, int, int, int]] = field(default_factory=list)
    seconds: list[float] = field(default_factory=list)
    refused_without_key: bool = False
    failures: list[str] = field(default_factory=list)


def teach(teacher: Teacher, client: Client, go: float, deadline: float, done: threading.Event) -> None:
    try:
        client.predict(key="", knob="depth", api_name="/class_view")
    except Exception:  # noqa: BLE001 - the refusal is what is expected
        teacher.refused_without_key = True
    while not done.is_set() and time.monotonic() < deadline:
        started = time.perf_counter()
        try:
            view = client.predict(key=TEACHER_KEY, knob="depth", api_name="/class_view")
        except Exception as error:  # noqa: BLE001
            teacher.failures.append(f"class_view: {type(error).__name__}: {str(error)[:150]}")
        else:
            teacher.seconds.append(time.perf_counter() - started)
            states = [row[-1] for row in view["rows"]]
            finished = sum("finished" in state for state in states)
            teacher.polls.append((time.monotonic() - go, len(states), view["live"], finished))
        done.wait(TEACHER_POLL)


def print_teacher(teacher: Teacher, wall: float) -> None:
    """The runs the teacher's view showed at the midpoint and at the end, and its latency."""
    print(f"teacher's view without the key: {'refused' if teacher.refused_without_key else 'ANSWERED'}")
    for label, moment in (("midpoint", wall / 2), ("end", wall)):
        seen = min(teacher.polls, key=lambda poll: abs(poll[0] - moment), default=None)
        if seen is not None:
            print(
                f"teacher's view at the {label} ({seen[0]:.0f} s): {seen[1]} student runs started, "
                f"{seen[2]} training live, {seen[3]} finished"
            )
    print(f"teacher's view: most runs training live at once {max((p[2] for p in teacher.polls), default=0)}")
    print(
        f"teacher's view polls: {len(teacher.seconds)}, p50 {1000 * percentile(teacher.seconds, 0.5):.0f} ms, "
        f"p95 {1000 * percentile(teacher.seconds, 0.95):.0f} ms, failed {len(teacher.failures)}"
    )
    for failure in teacher.failures[:5]:
        print(f"  {failure}")


def attend(student: Student, client: Client, go: float, deadline: float) -> None:
    try:
        # What a student types on the page before Start: a nickname and a guess.
        client.predict(nickname=f"student {student.number}", guess=str(student.guess), api_name="/join_lesson")
        job = client.submit(**student.knobs, api_name="/train")
    except Exception as error:  # noqa: BLE001 - every failure is counted and printed
        student.failures.append(f"train: {type(error).__name__}: {error}")
        return
    with httpx.Client(verify=False) as browser:  # one connection kept open, as a browser keeps one
        follow(student, client, job, browser, go, deadline)


def follow(student: Student, client: Client, job, browser: httpx.Client, go: float, deadline: float) -> None:
    next_explore = time.monotonic()
    seen = 0  # frames looked at: gradio_client keeps every frame, so look at each only once
    while time.monotonic() < deadline:
        now = time.monotonic() - go
        if student.first_step is None:
            outputs = job.outputs()
            if any(metrics_of(o).startswith("Step **") for o in outputs[seen:]):
                student.first_step = now
            seen = len(outputs)
        if job.done():
            try:
                final = job.result(timeout=5)
            except Exception as error:  # noqa: BLE001
                student.failures.append(f"train: {type(error).__name__}: {str(error)[:150]}")
                return
            if "Test accuracy" in status_of(final):
                student.finished = now
                student.steps = metrics_of(final).split("Step **")[-1].split("**")[0]
                student.accuracy = status_of(final).split("Test accuracy: ")[1].split("\n")[0]
                student.first_step = student.first_step or now  # a finished run shared at once
            else:
                student.failures.append(f"train ended without a model: {status_of(final)[:120]!r}")
            return
        if time.monotonic() >= next_explore:
            started = time.perf_counter()
            try:
                outputs = client.predict("mnist", "mean", 0.0, 6, "mean", api_name="/explore")
                for picture in (o["url"] for o in outputs if isinstance(o, dict) and o.get("url")):
                    browser.get(picture).raise_for_status()  # what a page fetches to show it
                student.explore_seconds.append(time.perf_counter() - started)
            except Exception as error:  # noqa: BLE001
                student.failures.append(f"explore: {type(error).__name__}: {str(error)[:150]}")
            next_explore = time.monotonic() + EXPLORE_EVERY
        time.sleep(0.2)


def cpu_seconds(server: psutil.Process) -> dict[str, float]:
    """CPU seconds so far of the server process, of its training processes, and of the
    simulated students (a real class's browsers run on their own machines)."""

    def of(process: psutil.Process) -> float:
        try:
            times = process.cpu_times()
            return times.user + times.system
        except psutil.Error:
            return 0.0

    return {
        "server": of(server),
        "training": sum(of(child) for child in server.children(recursive=True)),
        "the students' clients (this benchmark, on the same cores)": of(psutil.Process()),
    }


def peak_rss(pid: int) -> int:
    """A process's peak resident memory (Linux's VmHWM), in bytes; 0 if it is gone."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


def arguments() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--students", type=int, default=30)
    parser.add_argument("--same", type=int, default=24, help="students on the lesson's settings")
    parser.add_argument("--epochs", type=float, default=4, help="the lesson's length (4: about 30 s alone here)")
    parser.add_argument("--arrive", type=float, default=60, help="seconds from the server answering to 'go'")
    parser.add_argument("--deadline", type=float, default=420, help="seconds after 'go' when the benchmark ends")
    parser.add_argument("--app", type=Path, default=REPO / "app.py", help="the app.py to serve (another checkout's)")
    parser.add_argument("--seed", type=int, default=0, help="of the order the students press Start in")
    return parser.parse_args()


def make_class(args: argparse.Namespace) -> tuple[dict, list[Student], Path]:
    """The lesson's settings, the students in the order they press Start with their guesses,
    and the server's lesson file (a guess asked for, the teacher key)."""
    lesson = {**LESSON, "epochs": args.epochs}
    students = [Student(i, dict(lesson)) for i in range(args.same)]
    students += [
        Student(args.same + i, {**lesson, **VARIATIONS[i % len(VARIATIONS)]}) for i in range(args.students - args.same)
    ]
    order = random.Random(args.seed)
    order.shuffle(students)
    for student in students:
        student.guess = order.randint(80, 99)
    lesson_file = Path(tempfile.mkdtemp()) / "lesson.json"
    lesson_file.write_text(json.dumps({"teacher_key": TEACHER_KEY, "predict": "accuracy"}))
    return lesson, students, lesson_file


def main() -> None:
    args = arguments()
    lesson, students, lesson_file = make_class(args)
    print(Machine.detect().describe())
    print(
        f"serving {args.app}; {args.students} students, {args.same} on the lesson's settings; "
        f'"go" {args.arrive:g} s after the server answers'
    )
    with AppProcess(env={"VIT_DEMO_DOWNLOAD": "0", "VIT_DEMO_LESSON": str(lesson_file)}, app=args.app) as server:
        answering = time.monotonic()
        # The class opens the page. A page fetches the pictures it shows and keeps none: no
        # gradio_client downloads into files, which cost this benchmark's clients twice the CPU.
        # Loopback HTTP has no certificates to check: left on, gradio_client loads the CA
        # bundle afresh for every request, 32 ms of these shared cores each.
        clients = [Client(server.url, verbose=False, download_files=False, ssl_verify=False) for _ in students]
        teacher, class_done = Teacher(), threading.Event()
        teacher_client = Client(server.url, verbose=False, ssl_verify=False)
        time.sleep(max(answering + args.arrive - time.monotonic(), 0))
        server_process = psutil.Process(server.pid)
        cpu_before = cpu_seconds(server_process)
        go = time.monotonic()
        deadline = go + args.deadline
        watching = threading.Thread(target=teach, args=(teacher, teacher_client, go, deadline, class_done), daemon=True)
        watching.start()
        threads = []
        for student, client in zip(students, clients):
            thread = threading.Thread(target=attend, args=(student, client, go, deadline), daemon=True)
            thread.start()
            threads.append(thread)
            time.sleep(2.0 / args.students)  # everyone presses Start within two seconds of "go"
        for thread in threads:
            thread.join(max(deadline - time.monotonic(), 0) + 30)
        watching.join(TEACHER_POLL)  # one last poll: the class as it ended
        class_done.set()
        watching.join(30)
        peak = server.peak_rss()
        cpu_after = cpu_seconds(server_process)
        wall = time.monotonic() - go
        children = [child.pid for child in server_process.children(recursive=True)]
        peak_children = sum(peak_rss(pid) for pid in children)

    first = [s.first_step for s in students]
    done = [s.finished for s in students]
    explores = [t for s in students for t in s.explore_seconds]
    failures = [f for s in students for f in s.failures]
    runs = {tuple(sorted(s.knobs.items())) for s in students if s.finished is not None}
    missing_first = sum(t is None for t in first)
    missing_done = sum(t is None for t in done)
    print(
        f"first curve point, last student: {max((t for t in first if t), default=float('nan')):.1f} s"
        + (f" ({missing_first} never saw one by the deadline)" if missing_first else "")
    )
    print(
        f"finished model, last student:    {max((t for t in done if t), default=float('nan')):.1f} s"
        + (f" ({missing_done} had none by the deadline, {args.deadline:g} s)" if missing_done else "")
    )
    print("every student, seconds to first curve point / finished model (accuracy, steps):")
    for s in sorted(students, key=lambda s: s.number):
        first_text = f"{s.first_step:6.1f}" if s.first_step is not None else "     -"
        done_text = f"{s.finished:6.1f}" if s.finished is not None else "     -"
        changed = {k: v for k, v in s.knobs.items() if lesson.get(k) != v} or "lesson"
        print(f"  {s.number:2d} {first_text} {done_text}  {s.accuracy:>6s} {s.steps:>6s} steps  {changed}")
    print(
        f"explore while training: {len(explores)} requests, p50 {1000 * percentile(explores, 0.5):.0f} ms, "
        f"p95 {1000 * percentile(explores, 0.95):.0f} ms"
    )
    print_teacher(teacher, wall)
    print(f"distinct settings with a finished model: {len(runs)}")
    print(f"failed requests: {len(failures)}")
    for failure in failures[:10]:
        print(f"  {failure}")
    print(f"peak RSS: server {peak / 2**20:,.0f} MB, its training processes {peak_children / 2**20:,.0f} MB")
    used = {name: cpu_after[name] - cpu_before.get(name, 0.0) for name in cpu_after}
    print(
        f"CPU seconds over {wall:.0f} s x {psutil.cpu_count()} cores: "
        + ", ".join(f"{name} {seconds:.0f} s" for name, seconds in used.items())
    )
    if statistics.fmean([t is not None for t in done]) < 1:
        print("not every student had a model by the deadline")


if __name__ == "__main__":
    main()
