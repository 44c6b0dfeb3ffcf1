"""A page's run through the service (vit_demo/service/runs.py), with tiny models and data
slices, no browser: the changes a page shows, Stop, the queue, errors, the server's time cap,
the timeline, the mistakes gallery, the comparison with the last run, a run brought back, and
what a closed page leaves behind."""

import threading

import pandas as pd
import pytest
import torch
from PIL import Image
from ui_helpers import TINY, merged, run_all, settings_for, tiny_knobs

from tools.synthetic_cifar import write_cifar10
from vit_demo import checkpoints
from vit_demo.data import load_split
from vit_demo.recipes import recipe_for
from vit_demo.service import jobs, mistakes
from vit_demo.service.frames import TimelineRecord
from vit_demo.service.jobs import StopFlag, TrainingJob, run_training
from vit_demo.service.knobs import Knobs
from vit_demo.service.library import MINE
from vit_demo.service.producer import FRAME_FIELDS
from vit_demo.service.queue import TrainingQueue
from vit_demo.service.runs import Poll
from vit_demo.service.server import Service
from vit_demo.training import TrainConfig

pytestmark = pytest.mark.usefixtures("one_thread")


def test_a_run_shows_its_curves_and_ends_with_the_model_its_zip_and_the_confusion_matrix(trainer):
    changes = run_all(trainer.runs.open(tiny_knobs(), "page"))
    assert all(set(change) <= set(FRAME_FIELDS) for change in changes)  # every change is a field a page places
    with_curves = [c["accuracy"] for c in changes if isinstance(c.get("accuracy"), pd.DataFrame) and len(c["accuracy"])]
    # The first curves already hold every series (a line plot keeps the series it first sees).
    assert set(with_curves[0]["series"]) == {"train accuracy", "test accuracy"}
    assert any(isinstance(c.get("positions"), Image.Image) for c in changes)
    shown = merged(changes)
    assert shown["status"].startswith("### Test accuracy") and shown["view"] == "confusion"
    model, info = checkpoints.load(shown["download"])  # the zip the page downloads, in its own folder
    assert info["dataset"] == "mnist" and model.config.dim == 32 and shown["download"].parent.name == "page"
    assert shown["my_model"].name == MINE and shown["my_model"].model.config == model.config
    assert torch.equal(shown["my_model"].model.pos_embedding, model.pos_embedding)
    assert isinstance(shown["confusion"], Image.Image) and shown["mistakes"][0][:2] == ("0", "1")


def test_the_same_knobs_train_the_same_model_and_an_epoch_is_every_training_image_once(trainer):
    first = merged(run_all(trainer.runs.open(tiny_knobs(), "a")))
    trainer.runs.hub._runs.clear()  # forget the finished run: train again rather than share it
    second = merged(run_all(trainer.runs.open(tiny_knobs(), "b")))
    assert first["my_model"].info["training"]["steps"] == 4  # 512 images, batch 128, one epoch
    for name, tensor in first["my_model"].model.state_dict().items():
        assert torch.equal(tensor, second["my_model"].model.state_dict()[name]), name


def test_stop_ends_a_run_early_and_keeps_the_model(trainer):
    run = trainer.runs.open(tiny_knobs(epochs=30), "page")
    for change in run:
        if str(change.get("metrics", "")).startswith("Step 0"):
            break
    trainer.runs.stop("page")
    shown = merged(run_all(run))
    assert "Stopped early" in shown["status"] and shown["my_model"] is not None
    assert shown["my_model"].info["training"]["stopped_early"]


def test_a_queued_page_sees_its_place_and_can_leave_the_line(trainer):
    someone_else = trainer.queue.join()
    assert trainer.queue.wait_turn(someone_else, 0) == 0
    trainer.queue.expect_end(someone_else, 42)
    run = trainer.runs.open(tiny_knobs(), "page")
    waiting = [next(run) for _ in range(2)][-1]
    assert "number 1 in line" in waiting["status"] and "start in about **0:4" in waiting["status"]
    trainer.runs.stop("page")
    assert "You left the queue" in merged(run_all(run))["status"]
    assert trainer.queue.waiting == 0
    trainer.queue.leave(someone_else)


def test_a_run_says_when_other_trainings_share_the_machine_and_when_it_has_it_alone(
    tmp_path, tiny_checkpoints, data_dir
):
    service = Service(settings_for(tmp_path, tiny_checkpoints, data_dir, max_trainings=2))
    try:
        someone_else = service.queue.join()
        assert service.queue.wait_turn(someone_else, 0) == 0
        run = service.runs.open(tiny_knobs(epochs=30), "page")
        statuses = []
        for change in run:
            status = change.get("status", "")
            if status.startswith("**Training**"):
                statuses.append(status)
                if len(statuses) == 1:  # the run is training beside the other one
                    service.queue.leave(someone_else)
                else:
                    break
        beside, alone = statuses
        assert "2 trainings are running on this server at once" in beside
        assert "at once" not in alone  # the machine to itself now
        service.runs.stop("page")
        run_all(run)
    finally:
        service.close()


def test_problems_are_reported_before_anything_trains(tmp_path, tiny_checkpoints):
    no_data = Service(settings_for(tmp_path, tiny_checkpoints, data_dir=tmp_path / "empty"))
    try:
        with pytest.raises(Exception, match="VIT_DEMO_DATA"):
            next(no_data.runs.open(tiny_knobs(), "page"))
        with pytest.raises(ValueError, match="not divisible by heads 3"):
            next(no_data.runs.open(tiny_knobs(heads=3), "page"))
        assert no_data.process.started == 0  # nothing reached the training process
    finally:
        no_data.close()


class TickingClock:
    """jobs.py's clock for a test: 10 ms pass between any two readings, and a reader's wait
    moves it as much as the test says. The cap then comes out the same on any machine."""

    def __init__(self):
        self.now = 0.0

    def monotonic(self) -> float:
        self.now += 0.01
        return self.now


def test_a_run_ends_at_the_servers_time_limit_of_its_own_time(data_dir, monkeypatch):
    clock = TickingClock()
    monkeypatch.setattr(jobs, "time", clock)  # jobs.py reads time.monotonic() alone
    config = TrainConfig(dataset="mnist", epochs=100, train_limit=512, test_limit=256, data_dir=str(data_dir))
    watched = load_split("mnist", train=False, data_dir=str(data_dir), limit=4).images
    updates = []
    for update in run_training(TrainingJob(TINY, config, watched, max_seconds=1)):
        updates.append(update)
        clock.now += 5  # the training process serving other runs: not this run's own time
    first, last = updates[0], updates[-1]
    assert first.progress is None and 0 <= first.start.test_accuracy <= 1 and first.guesses.shape == (4, 10)
    # Ended by the server's cap of 1 s of its own time (at most 100 readings of the clock), long
    # before its own 100 epochs (400 steps); a cap that counted the waits would end it at once.
    assert last.time_limited and last.progress.stopped and 20 < last.progress.step < 100
    assert set(last.state_dict) >= {"pos_embedding", "cls_token"}


def test_the_training_queue_is_first_come_first_served_and_estimates_each_start():
    queue = TrainingQueue(capacity=1)
    first, second, third = queue.join(), queue.join(), queue.join()
    assert queue.wait_turn(first, 0) == 0
    assert (queue.wait_turn(second, 0), queue.wait_turn(third, 0)) == (1, 2)
    queue.leave(first)
    assert (queue.wait_turn(third, 0), queue.wait_turn(second, 0)) == (2, 0)
    with pytest.raises(ValueError):
        TrainingQueue(capacity=0)
    queue = TrainingQueue(capacity=2)
    running = [queue.join(30), queue.join(60)]
    for ticket in running:
        assert queue.wait_turn(ticket, 0) == 0
    waiting = [queue.join(40), queue.join(50), queue.join(None)]
    assert queue.estimated_start(waiting[0]) is None  # the running ones have not said how long they need
    queue.expect_end(running[0], 10)
    queue.expect_end(running[1], 20)
    # Seats free at 10 and 20 s; the first in line takes 10..50, the second 20..70, the third 50.
    starts = [queue.estimated_start(t) for t in waiting]
    assert starts == [pytest.approx(10, abs=0.5), pytest.approx(20, abs=0.5), pytest.approx(50, abs=0.5)]
    assert queue.estimated_start(queue.join(10)) is None  # one ahead of it does not know its length


def test_a_stop_flag_reaches_across_threads(tmp_path):
    flag = StopFlag(tmp_path / "stop" / "session")
    assert not flag()
    requester = threading.Thread(target=flag.request)
    requester.start()
    requester.join(10)
    assert flag()
    flag.clear()
    assert not flag()


def test_the_timeline_is_bounded_scrubbed_and_drawn_once_the_run_ends(trainer):
    changes = run_all(trainer.runs.open(tiny_knobs(epochs=3), "page"))
    records = [c["timeline"] for c in changes if isinstance(c.get("timeline"), TimelineRecord)]
    shown = merged(changes)
    record = shown["timeline"]
    assert records and record is records[-1]
    assert 2 <= len(record) <= 40 and record.timeline.nbytes < 40 * 8_000
    assert record.timeline[0].step == 0 and record.timeline[-1].fraction == pytest.approx(1.0)
    assert [c for c in changes if "timeline_frame" in c][-1]["timeline_frame"] is shown["timeline_frame"]
    assert shown["timeline_slider"] == len(record)
    first, last = record.frame(0), record.frame(record.index(999))  # past the end: the last one
    assert isinstance(first, Image.Image) and first.width > 600 and last.size == first.size
    assert record.summary(0).startswith("Step 0 (epoch 0.00)") and "On its test picture it guesses" in record.summary(0)
    assert shown["timeline_summary"] == record.summary(len(record) - 1)


def test_the_mistakes_gallery_shows_the_test_images_of_one_class_taken_for_another(trainer):
    shown = merged(run_all(trainer.runs.open(tiny_knobs(epochs=3), "page")))
    mine, (class_names, pair) = shown["my_model"], shown["mistakes"]
    split = mistakes.final_test_split(mine, trainer.settings.data_dir, trainer.settings.test_limit)
    guesses = mistakes.predictions(mine.model, split, mine.spec)
    confusion = torch.zeros(10, 10, dtype=torch.long)
    for label, guess in zip(split.labels.tolist(), guesses.tolist()):
        confusion[label, guess] += 1
    assert len(split) == mine.info["training"]["test_images"] == 256  # the slice the final score used
    true, guess = pair  # the menus start at the most frequent mix-up
    expected = int(confusion[true, guess])
    assert true != guess and expected == max(confusion[t, g] for t in range(10) for g in range(10) if t != g)
    items, note = mistakes.gallery(mine, class_names[true], class_names[guess], trainer.settings.data_dir, 256)
    assert len(items) == min(expected, 12) and f"**{expected:,}** test images" in note
    picture, caption = items[0]
    assert picture.size == (2 * 112 + 4, 112) and caption.startswith(f"✗ {class_names[guess]}: ")
    cells = shown["confusion_cells"]  # a click on that cell of the drawn matrix finds the same pair
    left, top, right, bottom = cells.area
    size_x, size_y = (right - left) / 10, (bottom - top) / 10
    assert cells.at(left + (guess + 0.5) * size_x, top + (true + 0.5) * size_y) == (true, guess)
    assert cells.at(right + 5, top + 1) is None
    assert "Click a cell to see those images" in shown["confusion_summary"]


def test_the_last_two_runs_are_compared_side_by_side(trainer):
    first = merged(run_all(trainer.runs.open(tiny_knobs(), "page")))
    assert [r.number for r in first["runs"]] == [1] and "Train again" in first["compare_table"]
    runs = first["runs"]
    for number in (2, 3):
        last = merged(run_all(trainer.runs.open(tiny_knobs(dim=48 if number == 2 else 32), "page", runs)))
        runs = last["runs"]
    assert [r.number for r in runs] == [2, 3]  # only the last two are kept
    table = last["compare_table"]
    assert "**previous run** (#2)" in table and "**latest run** (#3)" in table
    assert "**dim** ◀ changed" in table and "| depth | 2 | 2 |" in table and "| trained for (epochs) | 1 | 1 |" in table
    assert runs[0].parameters > runs[1].parameters  # dim 48 against 32
    assert set(last["compare_accuracy"]["run"]) == {"previous run", "latest run"}
    assert last["compare_accuracy"]["test accuracy (%)"].between(0, 100).all()


def test_a_downloaded_run_comes_back_with_its_curves_timeline_and_model(trainer, tmp_path):
    shown = merged(run_all(trainer.runs.open(tiny_knobs(), "page")))
    back = trainer.runs.restore(str(shown["download"]), "other page")
    assert back["status"].startswith(f"### Restored: test accuracy {shown['my_model'].info['test_accuracy']:.1%}")
    assert back["loss"].equals(shown["loss"]) and back["timeline_slider"] == shown["timeline_slider"]
    for name, tensor in shown["my_model"].model.state_dict().items():
        assert torch.equal(tensor, back["my_model"].model.state_dict()[name]), name
    model_only = checkpoints.zip_checkpoint(
        checkpoints.save(shown["my_model"].model, tmp_path / "m", shown["my_model"].info), tmp_path / "m.zip"
    )
    with pytest.raises(ValueError, match="is a model without its run"):
        trainer.runs.restore(str(model_only), "page")


def test_a_page_polls_its_live_run_and_a_second_start_is_refused(trainer):
    first = trainer.runs.start_live(tiny_knobs(epochs=3), "page")
    assert first["status"] == "Getting ready…"
    with pytest.raises(ValueError, match="already training"):
        trainer.runs.start_live(tiny_knobs(), "page")
    shown = {}
    for _ in range(3000):  # a deadline: 3000 polls of at most 0.05 s each
        poll = trainer.runs.poll("page")
        shown.update(poll.changes)
        if poll.finished:
            break
        threading.Event().wait(0.05)
    assert poll.finished and poll.error is None and poll.new_model and shown["my_model"] is not None
    assert trainer.runs.poll("page") == Poll({}, True)  # forgotten once it has ended


def test_cifar10_trains_through_the_service_on_files_in_its_real_format(tmp_path, tiny_checkpoints):
    write_cifar10(tmp_path / "data", per_batch=64)
    service = Service(settings_for(tmp_path, tiny_checkpoints, tmp_path / "data", train_limit=None, test_limit=None))
    try:
        knobs = Knobs.of_preset("cifar10", recipe_for("cifar10").preset("quick"))
        shown = merged(run_all(service.runs.open(knobs, "page")))
        assert shown["status"].startswith("### Test accuracy")
        # 5 files of 64 pictures: 3 batches an epoch (the last one partial).
        assert shown["my_model"].info["training"]["steps"] == knobs.epochs * 3
        assert shown["my_model"].model.config.channels == 3 and shown["mistakes"][0][0] == "airplane"
    finally:
        service.close()


def test_a_run_on_your_own_pictures_names_its_classes_in_the_mistakes_the_download_and_a_restore(trainer, tmp_path):
    from tools.hostile_files import DATASET_CLASSES, dataset_zip
    from vit_demo.own_data import read_archive
    from vit_demo.service.own_sets import keep

    key = keep(read_archive(dataset_zip(tmp_path)))
    knobs = tiny_knobs(dataset=key, image_size=32, patch_size=8, batch_size=16, epochs=2)
    shown = merged(run_all(trainer.runs.open(knobs, "page")))
    assert shown["status"].startswith("### Test accuracy")
    class_names, _ = shown["mistakes"]
    assert tuple(class_names) == DATASET_CLASSES
    mine = shown["my_model"]
    split = mistakes.final_test_split(mine, trainer.settings.data_dir, trainer.settings.test_limit)
    assert len(split) == mine.info["training"]["test_images"] == 6  # the held-out fifth
    items, note = mistakes.gallery(mine, "circles", "squares", trainer.settings.data_dir, 256)
    assert "circles" in note and "squares" in note and all(c.startswith("✗ squares: ") for _, c in items)
    _, info = checkpoints.load(shown["download"])
    assert info["class_names"] == list(DATASET_CLASSES) and info["title"] == "shapes" and info["dataset"] == key
    back = trainer.runs.restore(str(shown["download"]), "other page")
    assert back["status"].startswith("### Restored") and back["my_model"].spec.class_names == DATASET_CLASSES
    from vit_demo import data

    data._own.pop(key)  # a server that no longer holds the pictures asks for them again, by name
    with pytest.raises(ValueError, match="these pictures are no longer on this server: add your own pictures again"):
        trainer.runs.restore(str(shown["download"]), "third page")
