"""The class as its teacher sees it (service/classroom.py), the lesson's question and teacher key
(service/lessons.py), and the teacher's view served: refused without the key, answered with it."""

import pytest
from gradio_client import Client
from ui_helpers import run_all, serving_app, settings_for, tiny_knobs, wait_for

from vit_demo.service.classroom import MAX_POINTS, Classroom
from vit_demo.service.lessons import Prediction, key_opens, parse_lesson, teacher_key
from vit_demo.training import TrainProgress

LESSON = {"dataset": "mnist", "depth": 2, "dim": 32}
KEY = "a-teachers-secret"


def progress(step: int, loss: float, accuracy=None, total: int = 10, **ending) -> TrainProgress:
    return TrainProgress(step=step, total_steps=total, epoch=0.0, fraction=step / total, train_loss=loss,
                         train_accuracy=0.5, images_per_second=1.0, elapsed=1.0, eta=1.0, lr=0.003,
                         test_accuracy=accuracy, **ending)  # fmt: skip


def run(classroom: Classroom, page: str, losses, accuracy: float, **knobs) -> None:
    """A page's run from Start to its end: a report per loss, then the final score."""
    classroom.started(page, {**LESSON, **knobs}, handle=page)
    for step, loss in enumerate(losses, start=1):
        classroom.report(page, progress(step, loss))
    classroom.report(page, progress(len(losses), losses[-1], accuracy, total=len(losses), done=True))
    classroom.ended(page)


def test_a_lesson_page_is_listed_by_its_nickname_and_another_page_never():
    classroom = Classroom()
    classroom.join("ada")
    classroom.join("quiet")
    classroom.sign("ada", "  Ada   L. ")
    run(classroom, "ada", [2.3, 1.0, 0.5], 0.95, depth=4)
    run(classroom, "stranger", [2.3, 1.0], 0.99)  # a page not in the lesson: its runs stay its own
    view = classroom.snapshot("depth")
    assert view["pages"] == 2 and [row[1] for row in view["rows"]] == ["Ada L."]
    assert view["never_started"] == ["Student 2"]
    assert view["best"] == {"student": "Ada L.", "test_accuracy": 0.95}
    assert view["points"] == [(4, 95.0, "Ada L.", None)]
    assert classroom.handle(1) == "ada" and classroom.handle(2) is None


def test_the_table_shows_the_knobs_that_differ_and_a_live_run_as_it_goes():
    classroom = Classroom()
    for page in ("a", "b"):
        classroom.join(page)
    run(classroom, "a", [2.3, 0.4], 0.97, depth=1)
    classroom.started("b", {**LESSON, "depth": 4})
    classroom.report("b", progress(3, 1.5, 0.6))
    view = classroom.snapshot()
    assert view["knob"] == "depth" and view["everyone"] == {"dataset": "mnist", "dim": 32}
    columns = view["columns"]
    live = dict(zip(columns, view["rows"][1]))
    assert live["depth"] == 4 and live["step"] == 3 and live["test accuracy"] == "60.0%" and live["state"] == "training"
    assert view["live"] == 1 and dict(zip(columns, view["rows"][0]))["state"] == "finished"


@pytest.mark.parametrize(
    ("losses", "diverged"),
    [([2.3, 1.0, 0.5, 0.3], False), ([2.3, 1.0, float("nan")], True), ([2.3, 1.0, 2.0, 2.6], True), ([2.3, 2.5], True)],
)
def test_a_run_whose_loss_is_not_a_number_or_ends_above_its_start_diverged(losses, diverged):
    classroom = Classroom()
    classroom.join("p")
    run(classroom, "p", losses, 0.5)
    assert classroom.snapshot()["diverged"] == (["Student 1"] if diverged else [])


def test_early_in_a_run_a_loss_above_its_start_is_not_yet_divergence():
    classroom = Classroom()
    classroom.join("p")
    classroom.started("p", LESSON)
    classroom.report("p", progress(1, 2.3))
    classroom.report("p", progress(2, 2.4))  # 20 % of the run: a first bump
    assert classroom.snapshot()["diverged"] == []


def test_memory_is_bounded_pages_runs_and_curve_points():
    classroom = Classroom(max_pages=5)
    for page in range(8):
        classroom.join(str(page))
    assert classroom.snapshot()["pages"] == 5
    classroom.started("7", LESSON)
    for step in range(1, 500):
        classroom.report("7", progress(step, 1.0 / step, total=500))
    row = classroom.snapshot()["rows"][0]
    assert row[classroom.snapshot()["columns"].index("step")] == 499
    student = classroom._students["7"]
    assert len(student.run.curve) <= MAX_POINTS and len(row[4]) <= 16  # the curve, and its sparkline
    for _ in range(20):
        classroom.started("7", LESSON)
    assert len(student.runs) == 8


def test_a_guess_is_kept_at_start_and_shown_beside_the_result():
    classroom = Classroom()
    classroom.join("p", Prediction("accuracy"))
    assert "from 0 to 100" in classroom.sign("p", "Bo", "150")
    assert classroom.sign("p", "Bo", "90") is None
    run(classroom, "p", [2.3, 0.5], 0.955)
    classroom.sign("p", None, "99")  # after Start: the run keeps the guess it started with
    assert classroom.outcome("p") == "**Your guess:** 90 % · **your run:** **95.5 %** (5.5 points above your guess)"
    assert classroom.snapshot()["guesses"] == [("Bo", 90.0, 95.5)]


def test_a_which_question_is_answered_by_the_classs_runs():
    which = parse_lesson({"predict": "which", "a": {"depth": 1}, "b": {"depth": 4}}).predict
    classroom = Classroom()
    for page, guess in (("a", "A"), ("b", "B (depth 4)")):
        classroom.join(page, which)
        classroom.sign(page, page, guess)
    run(classroom, "a", [2.3, 0.6], 0.90, depth=1)
    run(classroom, "b", [2.3, 0.3], 0.96, depth=4)
    assert classroom.snapshot()["answer"] == {"A": [90.0], "B": [96.0]}
    assert classroom.outcome("b").endswith("**B is higher**, as you guessed")
    assert classroom.outcome("a").endswith("not what you guessed")


@pytest.mark.parametrize(
    ("lesson", "says"),
    [
        ({"predict": "maybe"}, "predict must be accuracy or which, got 'maybe'"),
        ({"predict": "which", "a": "depth:1", "b": "depth:40"}, "b: depth must be a whole number from 1 to 12"),
        ({"predict": "which", "a": {"depth": 1}, "b": {"width": 2}}, "b: no knob called 'width'"),
        ({"predict": "which", "a": {"depth": 1}}, "b must name the knobs of a setting"),
        ({"teacher_key": "short"}, "teacher_key must be text of at least 8 characters"),
    ],
)
def test_a_bad_question_or_key_is_named_in_the_banner_never_an_error(lesson, says):
    parsed = parse_lesson(lesson)
    assert parsed.predict is None and parsed.teacher_key is None
    assert any(says in problem for problem in parsed.problems), parsed.problems
    assert "short" not in " ".join(parsed.problems)  # a key is never repeated where students read


def test_a_link_cannot_set_the_teacher_key():
    lesson = parse_lesson({"teacher_key": KEY}, {"teacher_key": "chosen-by-a-student"})
    assert lesson.teacher_key == KEY and "never by a link" in lesson.problems[0]
    assert teacher_key(None, {"teacher_key": KEY}) == KEY and teacher_key("environment-key", {}) == "environment-key"
    assert key_opens(KEY, KEY) and not key_opens("a-teachers-secreT", KEY) and not key_opens("", None)
    assert not key_opens(None, KEY)


@pytest.fixture(scope="module")
def served(tmp_path_factory, tiny_checkpoints):
    with serving_app(settings_for(tmp_path_factory.mktemp("app"), tiny_checkpoints)) as both:
        yield both


def test_the_teacher_view_refuses_a_client_without_the_key_and_answers_with_it(served, monkeypatch):
    monkeypatch.setenv("VIT_DEMO_TEACHER_KEY", KEY)
    url, service = served
    service.runs.classroom.join("somebody")
    client = Client(url, verbose=False)
    for wrong in ("", "not-the-key", KEY.upper()):
        with pytest.raises(Exception, match="needs the lesson's teacher key"):
            client.predict(key=wrong, knob="depth", api_name="/class_view")
    view = client.predict(key=KEY, knob="depth", api_name="/class_view")
    assert view["pages"] >= 1 and view["knob"] == "depth"
    monkeypatch.delenv("VIT_DEMO_TEACHER_KEY")  # no key configured: nothing opens the view
    with pytest.raises(Exception, match="needs the lesson's teacher key"):
        client.predict(key=KEY, knob="depth", api_name="/class_view")


def test_runs_feed_the_class_and_the_teachers_choice_becomes_the_next_class_run(trainer):
    """Through the service's runs: a lesson page's own run is recorded as it reports; a page
    that follows the class run is not (it never pressed Start); once that run has ended there, the
    run the teacher picks is the one it follows next."""
    runs, classroom = trainer.runs, trainer.runs.classroom
    for page in ("teacher", "ada", "student"):
        classroom.join(page)
    run_all(runs.open(tiny_knobs(seed=31), "teacher", class_lesson=True))
    assert runs.watch_class_run("student")
    wait_for(lambda: runs.poll("student").finished)
    assert not runs.watch_class_run("student")  # the same run twice: no
    run_all(runs.open(tiny_knobs(seed=32, depth=1), "ada"))
    view = classroom.snapshot("depth")
    assert [row[1] for row in view["rows"]] == ["Student 1", "Student 2"] and view["never_started"] == ["Student 3"]
    assert sorted(value for value, *_ in view["points"]) == [1, 2] and view["live"] == 0
    assert runs.hub.choose_class_run(classroom.handle(2))  # Ada's run
    assert runs.watch_class_run("student")
    wait_for(lambda: runs.poll("student").finished)
    assert classroom.snapshot()["never_started"] == ["Student 3"]


def test_the_pages_own_handlers_check_the_key_on_the_server_every_time(service, monkeypatch):
    from test_ui import FakeRequest, handlers_of

    from vit_demo.ui import build_demo

    monkeypatch.setenv("VIT_DEMO_TEACHER_KEY", KEY)
    handlers = handlers_of(build_demo(service), "refresh")
    tab = handlers.tab
    assert tab.key not in handlers.open(FakeRequest({"teacher": "guessed-key"}))  # no view, no class
    opened = handlers.open(FakeRequest({"teacher": KEY}))
    assert opened[tab.key] == KEY and opened[tab.timer].active
    assert tab.table in handlers.refresh({tab.key: KEY, tab.knob: "depth"})
    monkeypatch.setenv("VIT_DEMO_TEACHER_KEY", "the-key-was-changed")  # an open page with the old key: closed
    for key in (KEY, None, ""):
        refused = handlers.refresh({tab.key: key, tab.knob: "depth"})
        assert tab.table not in refused and not refused[tab.timer].active
