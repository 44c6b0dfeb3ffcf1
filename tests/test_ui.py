"""The app's handlers called as plain functions, with tiny models and data slices.

Gradio is imported (the handlers raise gr.Error) but nothing is launched: see
test_app_e2e.py for the served app and test_browser.py for a real browser.
"""

import io
import time
import zipfile

import gradio as gr
import pandas as pd
import pytest
import torch
from PIL import Image, ImageDraw
from ui_helpers import EXAMPLE, TINY, as_outputs, settings_for, train_inputs

from vit_demo import checkpoints, explain, planning
from vit_demo.data import get_spec, load_split
from vit_demo.model import ViTConfig
from vit_demo.recipes import recipe_for
from vit_demo.sessions import StopFlag, TrainingQueue, run_training
from vit_demo.training import TrainConfig
from vit_demo.ui import App, AppSettings, build_demo, experiment_tab
from vit_demo.ui.build_tab import patch_sizes
from vit_demo.ui.errors import user_errors
from vit_demo.ui.experiment_tab import parse_patches
from vit_demo.ui.explore_tab import VIEWS
from vit_demo.ui.learn import LESSON_TITLES, lesson
from vit_demo.ui.models import MINE, UPLOADED, ModelLibrary
from vit_demo.ui.train_tab import TimelineRecord

# As the app on two cores: one torch thread.
pytestmark = pytest.mark.usefixtures("one_thread")


# ------------------------------------------------------------------ settings and errors


def test_settings_come_from_the_environment(monkeypatch, tmp_path):
    monkeypatch.setenv("VIT_DEMO_MAX_TRAININGS", "3")
    monkeypatch.setenv("VIT_DEMO_TRAIN_LIMIT", "1000")
    settings = AppSettings.from_env(tmp_path)
    assert (settings.max_trainings, settings.train_limit) == (3, 1000)
    assert settings.checkpoint_dir == tmp_path / "checkpoints"
    monkeypatch.setenv("VIT_DEMO_MAX_TRAININGS", "many")
    with pytest.raises(ValueError, match="VIT_DEMO_MAX_TRAININGS must be a whole number greater than 0, got 'many'"):
        AppSettings.from_env(tmp_path)


def test_unexpected_errors_become_a_sentence_not_a_traceback():
    @user_errors
    def broken():
        raise KeyError("internal detail")

    @user_errors
    def broken_stream():
        yield 1
        raise ValueError("dim 64 is not divisible by heads 3")

    with pytest.raises(gr.Error, match="Something went wrong on the server \\(KeyError\\)"):
        broken()
    with pytest.raises(gr.Error, match="not divisible by heads 3"):
        list(broken_stream())


# ------------------------------------------------------------------ Build and Learn


def test_summary_follows_the_knobs(app):
    summary, *lessons = app.build.describe("mnist", 7, 64, 4, 4, 128, 0.003, 128, "time", 30, 1)
    config = ViTConfig(image_size=28, patch_size=7, num_classes=10, dim=64, depth=4, heads=4, mlp_dim=128, channels=1)
    assert "16 patches of 7×7×1 = 49 values" in summary and "17 tokens of 64" in summary
    for name, count in config.parameter_counts().items():
        assert f"| `{name}` | {count:,} |" in summary
    assert "one epoch (512 images)" in summary  # the app's train limit
    assert len(lessons) == len(LESSON_TITLES)


def test_a_model_that_cannot_be_built_shows_its_own_message(app):
    summary, *lessons = app.build.describe("mnist", 7, 64, 4, 3, 128, 0.003, 128, "time", 30, 1)
    assert "cannot be built" in summary and "dim 64 is not divisible by heads 3" in summary
    assert all(lesson_update == gr.skip() for lesson_update in lessons)


def test_datasets_offer_only_patch_sizes_that_divide_their_images(app):
    assert patch_sizes("mnist") == [2, 4, 7, 14, 28]
    assert patch_sizes("cifar10") == [2, 4, 8, 16, 32]
    preset, heading, patch_dropdown, *knobs = app.build.choose_dataset("cifar10")
    assert "Quick (~2 min)" in preset["choices"] and preset["value"] == "Quick (~2 min)"
    assert "`channels` 3" in heading
    assert patch_dropdown["value"] == 8 and patch_dropdown["choices"] == [2, 4, 8, 16, 32]


def test_a_time_budget_becomes_the_steps_this_machine_takes_in_it_as_first_planned(app):
    from vit_demo.recipes import Candidate
    from vit_demo.ui.build_tab import Knobs

    knobs = Knobs.read("mnist", 7, 64, 2, 4, 128, 0.003, 128, "time", 30, 1, 0)
    app.meter.record_speeds({Candidate(7, 64, 2, 4, 128).name: 5000.0}, (Candidate(7, 64, 2, 4, 128),), "mnist")
    config = knobs.train_config(app.settings, app.meter)
    # 30 s at 5,000 images/s, less the ten 2,000-image scorings (a third of a training image each).
    assert config.time_budget is None and config.steps == (30 * 5000 - 10 * 2000 // 3) // 128
    assert knobs.train_config(app.settings, app.meter) == config  # same knobs, same run: it can be shared
    app.meter.record_run(knobs.model_config(), 128, 9000.0)  # a later run's speed does not move the plan
    app.meter.record_speeds({Candidate(7, 64, 2, 4, 128).name: 7000.0}, (Candidate(7, 64, 2, 4, 128),), "mnist")
    assert knobs.train_config(app.settings, app.meter).steps == config.steps  # nor does a later reading
    epochs = Knobs.read("mnist", 7, 64, 2, 4, 128, 0.003, 128, "epochs", 30, 2, 0).train_config(app.settings, app.meter)
    assert (epochs.epochs, epochs.steps, epochs.time_budget) == (2.0, None, None)


def test_the_app_times_its_shapes_again_while_no_one_trains(
    tmp_path, tiny_checkpoints, data_dir, one_thread, monkeypatch
):
    from vit_demo.recipes import Candidate

    small = Candidate(7, 32, 1, 2, 64)
    monkeypatch.setattr(App, "_candidates", lambda self: [("mnist", (small,))])
    monkeypatch.setattr(planning, "RETIME_PAUSE", 0.05)
    monkeypatch.setattr(planning, "SPEED_READINGS", 3)
    app = App(settings_for(tmp_path, tiny_checkpoints))
    try:
        probes = load_split("mnist", train=False, data_dir=str(data_dir), limit=4).images
        config = TrainConfig(dataset="mnist", time_budget=6, train_limit=1024, test_limit=256, data_dir=str(data_dir))
        training = app.processes.run(run_training, TINY, config, probes, stop=StopFlag(tmp_path / "stop"))
        next(training)  # a student's training is under way
        app.start_measuring()
        assert app.wait_until_measured(60)
        assert app.meter.readings("mnist", small) == 0  # timed beside it: one core's speed, not kept
        time.sleep(1)
        assert app.processes.jobs == 1 and app.processes.started == 2  # no timing started while it trains
        for _ in training:
            pass
        busy_until = time.monotonic() + 2
        while time.monotonic() < busy_until:  # the server busy (pages opening): its readings not kept either
            sum(range(10_000))
        assert app.meter.readings("mnist", small) == 0
        deadline = time.monotonic() + 60
        while app.meter.readings("mnist", small) < 3 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert app.meter.readings("mnist", small) == 3  # timed again once the machine was quiet
        time.sleep(0.5)
        assert app.meter.readings("mnist", small) == 3 and app.processes.jobs == 0  # and then left alone
    finally:
        app.close()


@pytest.mark.parametrize("dataset", ["mnist", "fashion_mnist"])
def test_the_trust_lesson_quotes_the_measured_faithfulness_of_the_datasets_shipped_model(dataset):
    from vit_demo import faithfulness
    from vit_demo.ui.learn import trust

    measured = faithfulness.measured(dataset)
    text = trust(get_spec(dataset))
    assert f"over **{measured['images']:,} test images** of {get_spec(dataset).title}" in text
    for row in measured["methods"].values():
        assert f"| {row['deletion']:.2f} | {row['insertion']:.2f} | **{row['score']:+.2f}** |" in text
    best = max((m for m in measured["methods"] if m != "random"), key=lambda m: measured["methods"][m]["score"])
    assert f"Here **{explain.ATTRIBUTIONS[best].split(' (')[0]}** is the most faithful" in text


def test_lessons_fill_in_the_current_models_shapes_and_cover_every_part():
    config = ViTConfig(image_size=28, patch_size=7, num_classes=10, dim=64, depth=4, heads=4, mlp_dim=128, channels=1)
    text = "\n".join(lesson(config, get_spec("mnist"), batch_size=128, lr=0.003, train_images=60_000))
    assert "(1, 28, 28) → 16 patches of 49 values → (17, 64)" in text
    for topic in (
        "image_size",
        "patch_size",
        "num_classes",
        "`dim`",
        "`depth`",
        "`heads`",
        "`mlp_dim`",
        "`channels`",
        "patch_to_embedding",
        "pos_embedding",
        "cls_token",
        "to_cls_token",
        "mlp_head",
        "patch_dim",
        "nn.Parameter",
        "nn.Linear",
        "y = x A^T + b",
        "query",
        "learning rate",
        "batch",
        "epoch",
        "Inference",
        "rollout",
        "attention distance",
    ):
        assert topic in text, topic


@pytest.mark.parametrize(
    "dataset, says, never",
    [
        ("mnist", "shifts each training image by up to 1 pixel so", "mirrors"),
        ("fashion_mnist", "lowers it smoothly to zero at the end, and scores", "shifts"),
        ("cifar10", "up to 4 pixels and mirrors half of them left to right", "pixel or two"),
    ],
)
def test_the_training_lesson_describes_the_datasets_own_augmentation(dataset, says, never):
    spec = get_spec(dataset)
    config = ViTConfig(
        image_size=spec.image_size,
        patch_size=spec.image_size // 4,
        num_classes=10,
        dim=64,
        depth=2,
        heads=4,
        mlp_dim=128,
        channels=spec.channels,
    )
    text = " ".join("\n".join(lesson(config, spec, batch_size=128, lr=0.003, train_images=50_000)).split())
    assert says in text and never not in text


# ------------------------------------------------------------------ uploads


def png_bytes(image: Image.Image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


@pytest.mark.parametrize(
    "name, content, message",
    [
        ("empty.png", b"", "is empty"),
        ("notes.txt", b"these are not pixels", "is not an image"),
        ("cut.png", png_bytes(Image.effect_noise((64, 64), 60))[:300], "truncated or damaged"),
        ("cut-header.png", b"\x89PNG\r\n\x1a\n" + b"garbage" * 10, "truncated or damaged"),
        ("dot.png", png_bytes(Image.new("L", (1, 1))), "only 1x1 pixels"),
    ],
)
def test_bad_uploads_say_what_is_wrong(app, tmp_path, name, content, message):
    path = tmp_path / name
    path.write_bytes(content)
    with pytest.raises(gr.Error, match=message):
        app.explore.use_upload(str(path))
    with pytest.raises(gr.Error, match=message):
        app.explore.predict(str(path), "mnist")


def test_huge_pictures_are_refused_before_decoding(app, tmp_path, monkeypatch):
    monkeypatch.setenv("VIT_DEMO_MAX_IMAGE_MEGAPIXELS", "1")
    bomb = tmp_path / "bomb.png"
    bomb.write_bytes(png_bytes(Image.new("L", (2000, 2000))))  # 4 megapixels of black in a few KB
    with pytest.raises(gr.Error, match="2000x2000 pixels .* over the 1-megapixel limit"):
        app.explore.use_upload(str(bomb))


def test_a_blank_canvas_is_no_drawing(app):
    white = Image.new("RGBA", (280, 280), "white")
    assert app.explore.use_drawing({"background": None, "layers": [], "composite": white}) == gr.skip()
    assert app.explore.use_drawing({"composite": Image.new("RGBA", (280, 280), (0, 0, 0, 0))}) == gr.skip()
    ink_on_glass = Image.new("RGBA", (280, 280), (0, 0, 0, 0))
    ImageDraw.Draw(ink_on_glass).line([(60, 60), (200, 60), (120, 240)], fill=(0, 0, 0, 255), width=20)
    drawing = app.explore.use_drawing({"composite": ink_on_glass})
    left, top, _, _ = ink_on_glass.getbbox()
    assert drawing.size == (336, 336) and drawing.getbbox()[:2] == (left + 28, top + 28)  # inside a margin


def test_a_drawing_that_runs_into_the_canvas_edge_is_still_seen(app):
    seven = Image.new("RGBA", (280, 280), "white")
    ImageDraw.Draw(seven).line([(40, 0), (240, 0), (120, 279)], fill="black", width=30)  # the bar on the top edge
    drawing = app.explore.use_drawing({"composite": seven})
    _, _, seen, explored, *_ = app.explore.explore("mnist", drawing, "where", "mean", 0.0, 2, "mean", None, None)
    assert explored.explanation.preprocessed.display.max() > 200  # ink, not a blank page


# ------------------------------------------------------------------ models and Explore


def test_the_library_loads_what_is_there_and_says_what_is_not(tmp_path, tiny_checkpoints):
    assert "No pretrained model was found" in ModelLibrary(tmp_path / "nothing").status()
    broken = tmp_path / "shelf"
    (broken / "mnist").mkdir(parents=True)
    (broken / "mnist" / "config.json").write_text("{not json")
    library = ModelLibrary(broken)
    assert not library.models and "is not valid JSON" in library.status()
    library = ModelLibrary(tiny_checkpoints)
    assert list(library.models) == ["mnist", "fashion_mnist"]
    assert [value for _, value in library.menu()] == ["mnist", "fashion_mnist", MINE, UPLOADED]
    with pytest.raises(ValueError, match="have not trained a model yet"):
        library.resolve(MINE, None, None)
    with pytest.raises(ValueError, match="no model called 'cifar'"):
        library.resolve("cifar", None, None)


def test_explore_predicts_and_draws_only_the_open_view(app):
    image, label, seen, explored, patch, *outputs = app.explore.explore(
        "mnist", None, "where", "mean", 0.0, 2, "mean", None, None
    )
    assert isinstance(image, Image.Image)  # the first example stands in for a missing picture
    assert set(label) == {str(d) for d in range(10)} and sum(label.values()) == pytest.approx(1.0, abs=1e-4)
    assert seen.size == (196, 196) and patch is None
    assert len(outputs) == sum(VIEWS.values()) + len(VIEWS)  # each view's figures and its summary
    drawn_map, faithfulness_curves, summary, *rest = outputs
    assert isinstance(drawn_map, Image.Image) and isinstance(faithfulness_curves, Image.Image)
    assert "The model predicts **" in summary and "Attention rollout" in summary and "Score" in summary
    assert all(output in (None, "") for output in rest)
    choices = ("max", 0.5, 2, "1", "gradient", "3", 1, 1, None)
    for view, count in VIEWS.items():
        opened, *drawn = app.explore.view_opener(view)(explored, *choices)
        figures, text = drawn[:-1], drawn[-1]
        assert opened == view and len(figures) == count and all(isinstance(d, Image.Image) for d in figures)
        assert isinstance(text, str) and len(text) > 40, (view, text)  # every figure is also told in words


def test_each_map_is_scored_against_random_orders_for_the_chosen_class(app):
    explored = app.explore.explore("mnist", None, "where", "mean", 0.0, 2, "mean", None, None)[3]
    for method in ("rollout", "attention", "gradient", "occlusion"):
        _, _, _, summary = app.explore.view_opener("where")(explored, "mean", 0.0, 2, "mean", method, "3")
        assert "for random orders" in summary, method
        if method in ("gradient", "occlusion"):
            assert "for class **3**" in summary
        else:
            assert "the same for every class" in summary


def test_clicking_a_patch_shows_where_it_looks_and_its_maths(app):
    explored = app.explore.explore("mnist", None, "where", "mean", 0.0, 2, "mean", None, None)[3]
    click = gr.SelectData(None, {"index": [60, 100], "value": None})  # 196 px wide, 4x4 patches: row 3, column 2
    patch, shown, tabs, cls_map, overview, heads_text, maths_figure, maths_text = app.explore.choose_patch(
        explored, "where", "mean", 0.0, 2, "mean", "rollout", "predicted", 1, 1, click
    )
    assert patch == 9 and shown == "heads" and tabs.selected == "heads"
    assert "Where patch 10 (row 3, column 2) looks" in heads_text
    assert isinstance(maths_figure, Image.Image) and "Patch 10's query in layer 1, head 1" in maths_text
    assert "| = the token | 32 |" in maths_text  # the model's dim: every step spelled out with its size
    assert "Patch 10 (row 3, column 2)" not in heads_text or "Show the CLS token" in heads_text
    back, _, _, cls_text = app.explore.show_cls(explored, "mean", 0.0, 2, "mean", "rollout", "predicted", 1, 1)
    assert back is None and "the CLS token attends most to" in cls_text
    # On "The maths" the view stays open.
    assert (
        app.explore.choose_patch(explored, "maths", "mean", 0.0, 2, "mean", "rollout", "predicted", 1, 1, click)[1]
        == "maths"
    )


def test_a_shipped_model_explored_on_the_same_picture_is_explained_once_for_everyone(app, monkeypatch):
    calls = []
    real = explain.explain
    monkeypatch.setattr(explain, "explain", lambda *args, **kwargs: calls.append(1) or real(*args, **kwargs))
    first = app.explore.explore("mnist", None, "where", "mean", 0.0, 2, "mean", None, None)
    second = app.explore.explore("mnist", None, "where", "mean", 0.0, 2, "mean", None, None)
    assert len(calls) == 1 and second[3] is first[3]
    app.explore.explore("mnist", None, "where", "max", 0.0, 2, "mean", None, None)  # other settings: drawn anew
    assert len(calls) == 2
    mine = app.explore.library.models["mnist"]
    from vit_demo.ui.models import LoadedModel

    own = LoadedModel(MINE, mine.model, mine.info, "trained here")
    app.explore.explore(MINE, None, "where", "mean", 0.0, 2, "mean", own, None)
    app.explore.explore(MINE, None, "where", "mean", 0.0, 2, "mean", own, None)
    assert len(calls) == 4  # a person's own model is nobody else's: never served from the shared memory


def test_opening_explore_shows_the_first_example_once(app):
    explore_inputs = ("mnist", None, "where", "mean", 0.0, 2, "mean", None, None)
    image, label, *_ = first = app.explore.open_tab(None, *explore_inputs)
    assert isinstance(image, Image.Image) and "7" in label
    assert app.explore.open_tab(first[3], *explore_inputs) == [gr.skip()] * len(first)
    # No model of your own yet: nothing to show, and no error either (the note says what to do).
    assert app.explore.open_tab(None, MINE, *explore_inputs[1:]) == [gr.skip()] * len(first)


def test_choosing_a_model_fits_the_layer_and_head_choices(app):
    note, gallery, layer, head, target, maths_layer, maths_head = app.explore.choose_model("fashion_mnist", None, None)
    assert "Fashion-MNIST" in note and len(gallery.value) == 10
    assert [v for _, v in layer.choices] == [1, 2] and len(head.choices) == 5
    assert [v for _, v in target.choices][:3] == ["predicted", "T-shirt/top", "Trouser"]
    assert [v for _, v in maths_layer.choices] == [1, 2] and [v for _, v in maths_head.choices] == [1, 2, 3, 4]
    assert app.explore.choose_model(MINE, None, None)[0].startswith("⚠️ You have not trained")


def test_the_predict_api_names_every_class_and_refuses_bad_files(app, tmp_path):
    result = app.explore.predict(str(EXAMPLE), "mnist")
    assert set(result) == {str(d) for d in range(10)}
    text = tmp_path / "digit.png"
    text.write_text("not a picture")
    with pytest.raises(gr.Error, match="digit.png is not an image"):
        app.explore.predict(str(text), "mnist")
    with pytest.raises(gr.Error, match="no model called"):
        app.explore.predict(str(EXAMPLE), "imagenet")


def test_uploaded_checkpoints_are_checked(app, tmp_path, tiny_checkpoints):
    archive = checkpoints.zip_checkpoint(tiny_checkpoints / "mnist", tmp_path / "mine.zip")
    uploaded, menu_value = app.explore.upload_checkpoint(str(archive))
    assert menu_value == UPLOADED and uploaded.info["dataset"] == "mnist"
    broken = tmp_path / "broken.zip"
    with zipfile.ZipFile(broken, "w") as z:
        z.writestr("model/config.json", "{}")
    with pytest.raises(gr.Error, match="has no model.safetensors"):
        app.explore.upload_checkpoint(str(broken))


# ------------------------------------------------------------------ Train


def test_training_streams_curves_and_keeps_the_finished_model(trainer):
    frames = [as_outputs(f) for f in trainer.train.train(**train_inputs())]
    with_curves = [f for f in frames if isinstance(f["accuracy"], pd.DataFrame) and len(f["accuracy"])]
    # The first curves already hold every series (a line plot keeps the series it first sees).
    assert set(with_curves[0]["accuracy"]["series"]) == {"train accuracy", "test accuracy"}
    assert any(isinstance(f["positions"], Image.Image) for f in frames)
    last = frames[-1]
    assert "Test accuracy" in last["status"] and last["views"].selected == "confusion"
    assert last["explore_model"] == MINE and isinstance(last["confusion"], Image.Image)
    model, info = checkpoints.load(last["download"].value["path"])  # the zip, as the browser downloads it
    assert info["dataset"] == "mnist" and model.config.dim == 32
    assert last["my_model"].model.config == model.config


def test_stop_ends_a_run_early_and_keeps_the_model(trainer):
    run = trainer.train.train(**train_inputs(length="time", seconds=60))
    for frame in run:
        if "Step 0" in str(as_outputs(frame)["metrics"]):
            break
    trainer.train.stop()
    last = as_outputs(list(run)[-1])
    assert "Stopped early" in last["status"] and last["my_model"] is not None


def test_a_queued_person_sees_their_place_and_can_leave(trainer):
    someone_else = trainer.trainings.join()
    assert trainer.trainings.wait_turn(someone_else, 0) == 0
    trainer.trainings.expect_end(someone_else, 42)
    run = trainer.train.train(**train_inputs())
    waiting = [as_outputs(next(run)) for _ in range(2)][-1]
    assert "number 1 in line" in waiting["status"] and "start in about **0:4" in waiting["status"]
    trainer.train.stop()
    assert "You left the queue" in as_outputs(list(run)[-1])["status"]
    assert trainer.trainings.waiting == 0
    trainer.trainings.leave(someone_else)


def test_a_run_says_when_other_trainings_share_the_machine_and_when_it_has_it_alone(
    tmp_path, tiny_checkpoints, data_dir, one_thread
):
    app = App(settings_for(tmp_path, tiny_checkpoints, data_dir, max_trainings=2))
    try:
        someone_else = app.trainings.join()
        assert app.trainings.wait_turn(someone_else, 0) == 0
        run = app.train.train(**train_inputs(length="time", seconds=60))
        statuses = []
        for frame in run:
            status = as_outputs(frame)["status"]
            if isinstance(status, str) and status.startswith("**Training**"):
                statuses.append(status)
                if len(statuses) == 1:  # the run is training beside the other one
                    app.trainings.leave(someone_else)
                else:
                    break
        beside, alone = statuses
        assert "2 trainings are running on this server at once" in beside
        assert "at once" not in alone  # the machine to itself now
        app.train.stop()
        list(run)
    finally:
        app.close()


def test_training_errors_reach_the_person_as_messages(tmp_path, tiny_checkpoints):
    no_data = App(settings_for(tmp_path, tiny_checkpoints, data_dir=tmp_path / "empty"))
    with pytest.raises(gr.Error, match="VIT_DEMO_DATA"):
        list(no_data.train.train(**train_inputs()))
    with pytest.raises(gr.Error, match="not divisible by heads 3"):
        list(no_data.train.train(**train_inputs(heads=3)))


def test_a_run_ends_at_the_servers_time_limit(data_dir):
    config = TrainConfig(dataset="mnist", time_budget=60, train_limit=512, test_limit=256, data_dir=str(data_dir))
    probes = load_split("mnist", train=False, data_dir=str(data_dir), limit=4).images
    updates = list(run_training(TINY, config, probes, max_seconds=1))
    first, last = updates[0], updates[-1]
    assert first.progress is None and 0 <= first.start.test_accuracy <= 1 and first.probe_probabilities.shape == (4, 10)
    # Ended by the server's cap, long before its own 60 s budget.
    assert last.time_limited and last.progress.stopped and last.progress.elapsed < config.time_budget
    assert set(last.state_dict) >= {"pos_embedding", "cls_token"}


def test_training_queue_is_first_come_first_served():
    queue = TrainingQueue(capacity=1)
    first, second, third = queue.join(), queue.join(), queue.join()
    assert queue.wait_turn(first, 0) == 0
    assert (queue.wait_turn(second, 0), queue.wait_turn(third, 0)) == (1, 2)
    queue.leave(first)
    assert (queue.wait_turn(third, 0), queue.wait_turn(second, 0)) == (2, 0)
    with pytest.raises(ValueError):
        TrainingQueue(capacity=0)


def test_a_queued_run_is_told_when_it_should_start_from_the_runs_ahead_of_it():
    queue = TrainingQueue(capacity=2)
    running = [queue.join(30), queue.join(60)]
    for ticket in running:
        assert queue.wait_turn(ticket, 0) == 0
    waiting = [queue.join(40), queue.join(50), queue.join(None)]
    assert queue.estimated_start(waiting[0]) is None  # the running ones have not said how long they need
    queue.expect_end(running[0], 10)
    queue.expect_end(running[1], 20)
    # Seats free at 10 and 20 s; the first in line takes 10..50, the second 20..70, the third 50.
    assert [queue.estimated_start(t) for t in waiting] == [
        pytest.approx(10, abs=0.5),
        pytest.approx(20, abs=0.5),
        pytest.approx(50, abs=0.5),
    ]
    behind = queue.join(10)
    assert queue.estimated_start(behind) is None  # one ahead of it does not know its length
    assert queue.estimated_start(running[0]) == 0.0


def test_a_stop_flag_reaches_across_threads(tmp_path):
    flag = StopFlag(tmp_path / "stop" / "session")
    assert not flag()
    flag.request()
    assert flag()
    flag.clear()
    assert not flag()


# ------------------------------------------------------------------ the whole interface


def test_the_interface_builds_with_its_public_endpoints(app):
    demo = build_demo(app.settings, app)
    public = {fn.api_name for fn in demo.fns.values() if fn.api_visibility == "public"}
    assert public == {"describe", "train", "stop", "explore", "predict"}


# ------------------------------------------------------------------ the training timeline


def test_training_records_a_bounded_timeline_that_the_slider_scrubs_and_a_gif_exports(trainer):
    frames = [as_outputs(f) for f in trainer.train.train(**train_inputs())]
    records = [f["timeline"] for f in frames if isinstance(f["timeline"], TimelineRecord)]
    record = frames[-1]["timeline"]
    assert records and record is records[-1]
    assert 2 <= len(record) <= 40 and record.timeline.nbytes < 40 * 8_000
    assert record.timeline[0].step == 0 and record.timeline[-1].fraction == pytest.approx(1.0)
    assert isinstance(frames[-1]["timeline_frame"], Image.Image)  # the last snapshot, drawn
    assert frames[-1]["timeline_slider"].maximum == len(record) - 1
    first, said = trainer.train.show_snapshot(record, 0)
    assert isinstance(first, Image.Image) and first.width > 600
    assert said.startswith("Step 0 (epoch 0.00)") and "On the probe picture it guesses" in said
    last, said_last = trainer.train.show_snapshot(record, 999)  # past the end: the last one
    assert last.size == first.size and said_last.startswith(f"Step {record.timeline[-1].step:,} ")
    assert frames[-1]["timeline_summary"] == said_last
    assert trainer.train.show_snapshot(None, 0) == (gr.skip(), gr.skip())
    made = trainer.train.timeline_gif(record)
    assert made.visible
    gif = Image.open(made.value["path"] if isinstance(made.value, dict) else made.value)
    assert gif.format == "GIF" and 2 <= gif.n_frames <= len(record)  # identical neighbours may merge
    with pytest.raises(gr.Error, match="no timeline yet"):
        trainer.train.timeline_gif(None)


# ------------------------------------------------------------------ patch experiments and baselines


def test_patch_numbers_are_read_from_a_list_with_ranges():
    assert parse_patches("0, 5 12-14;3", 16) == [0, 5, 12, 13, 14, 3]
    assert parse_patches("", 16) == [] and parse_patches("  ", 16) == []
    for bad, message in (("16", "0 to 15"), ("a", "not a patch number"), ("5-2", "outside")):
        with pytest.raises(ValueError, match=message):
            parse_patches(bad, 16)


def test_patch_experiments_show_what_position_and_patches_do(app):
    explored = app.explore.explore("mnist", None, "where", "mean", 0.0, 2, "mean", None, None)[3]
    loaded, tensor = explored.loaded, explored.explanation.preprocessed.tensor
    blind = experiment_tab.run(
        loaded, tensor, shuffle=True, seed=1, occluded=[], use_position=False, baseline=experiment_tab.TRAINED
    )
    assert blind.order_change < 1e-3  # no pos_embedding: the order of the patches does not matter
    placed = experiment_tab.run(
        loaded, tensor, shuffle=True, seed=1, occluded=[], use_position=True, baseline=experiment_tab.TRAINED
    )
    assert not torch.allclose(placed.original.probabilities, placed.changed.probabilities, atol=1e-6)
    nothing = experiment_tab.run(
        loaded, tensor, shuffle=False, seed=0, occluded=[], use_position=True, baseline=experiment_tab.TRAINED
    )
    assert nothing.max_logit_change == 0 and nothing.changed.title == "unchanged"
    hidden = experiment_tab.run(
        loaded, tensor, shuffle=False, seed=0, occluded=[0, 5], use_position=True, baseline=experiment_tab.TRAINED
    )
    assert hidden.changed.title == "2 patches hidden"

    figure, summary = experiment_tab.experiment(explored, True, 1, "", True, experiment_tab.TRAINED)
    assert isinstance(figure, Image.Image) and figure.width > 600
    assert "the same guess" in summary and "cannot tell where a patch was" in summary
    _, summary = experiment_tab.experiment(explored, False, 0, "0-3", False, experiment_tab.UNTRAINED)
    assert "random weights" in summary
    twin = loaded.cached("untrained twin", lambda: None)
    assert twin is not loaded.model and twin.config == loaded.model.config
    flat = experiment_tab.run(
        loaded, tensor, shuffle=False, seed=0, occluded=[], use_position=True, baseline=experiment_tab.UNIFORM
    )
    assert torch.allclose(flat.original.rollout, flat.original.rollout.flatten()[0])  # flat: every patch alike
    with pytest.raises(gr.Error, match="0 to 15"):
        experiment_tab.experiment(explored, False, 0, "99", False, experiment_tab.TRAINED)
    assert experiment_tab.experiment(None, True, 0, "", False, experiment_tab.TRAINED)[0] == gr.skip()
    # A new picture redraws the experiment only while its view is open.
    assert experiment_tab.experiment_if_open("rollout", explored, True, 0, "", False, experiment_tab.TRAINED) == (
        gr.skip(),
        gr.skip(),
    )
    opened, figure, _ = experiment_tab.open_experiment(explored, True, 0, "", False, experiment_tab.TRAINED)
    assert opened == experiment_tab.EXPERIMENT_VIEW and isinstance(figure, Image.Image)


def test_the_shuffle_verdict_is_about_the_order_even_when_dropping_position_changes_the_guess():
    """A weak model may guess differently once pos_embedding is gone; the verdict on shuffling
    compares against the unshuffled picture without pos_embedding, so it stays 'the same'."""

    def view(title, probabilities):
        return experiment_tab.experiments.ExperimentView(
            title, torch.zeros(1, 1, 4, 4), torch.tensor(probabilities), torch.zeros(2, 2)
        )

    original = view("original", [0.7, 0.3])
    blind = view("no pos_embedding", [0.4, 0.6])
    shuffled = view("patches shuffled, no pos_embedding", [0.4, 0.6])
    result = experiment_tab.ExperimentResult(original, shuffled, max_logit_change=30.0, blind_unshuffled=blind)
    assert result.order_change == 0
    summary = experiment_tab.summary(result, ["cat", "dog"], experiment_tab.TRAINED)
    assert summary.startswith(
        "Without `pos_embedding`, in order **dog** (60%) → shuffled **dog** (60%): the same guess"
    )
    assert "with `pos_embedding`: **cat** (70%)" in summary


# ------------------------------------------------------------------ the misclassification gallery


def test_the_mistakes_gallery_shows_test_images_of_one_class_taken_for_another(trainer):
    last = as_outputs(list(trainer.train.train(**train_inputs()))[-1])
    mine, true_menu, guess_menu = last["my_model"], last["mistake_true"], last["mistake_guess"]
    items, note = trainer.train.show_mistakes(mine, true_menu.value, guess_menu.value)
    split, guesses = mine.cached("test predictions", lambda: None)
    confusion = torch.zeros(10, 10, dtype=torch.long)
    assert len(split) == mine.info["training"]["test_images"] == 256  # the slice the final score used
    for label, guess in zip(split.labels.tolist(), guesses.tolist()):
        confusion[label, guess] += 1
    # The menus start at the most frequent mix-up, and the gallery holds exactly those images.
    true, guess = (
        true_menu.choices.index((true_menu.value, true_menu.value)),
        guess_menu.choices.index((guess_menu.value, guess_menu.value)),
    )
    expected = int(confusion[true, guess])
    assert true != guess and expected == max(confusion[t, g] for t in range(10) for g in range(10) if t != g)
    assert len(items) == min(expected, 12) and f"**{expected:,}** test images" in note
    picture, caption = items[0]
    assert (
        isinstance(picture, Image.Image)
        and picture.size == (2 * 112 + 4, 112)
        and caption.startswith(f"✗ {guess_menu.value}: ")  # wrong, in a symbol as well as in words
    )
    assert trainer.train.show_mistakes(None, "1", "2")[0] == []
    # Clicking that cell of the drawn confusion matrix opens the same gallery.
    cells, drawn = last["confusion_cells"], last["confusion"]
    left, top, right, bottom = cells.area
    assert 0 <= left < right <= drawn.width and 0 <= top < bottom <= drawn.height
    size = (right - left) / 10
    centre = [left + (guess + 0.5) * size, top + (true + 0.5) * (bottom - top) / 10]
    tabs, true_name, guessed_name, clicked, clicked_note = trainer.train.mistakes_at(
        mine, cells, gr.SelectData(None, {"index": centre, "value": None})
    )
    assert tabs.selected == "mistakes" and (true_name, guessed_name) == (true_menu.value, guess_menu.value)
    assert clicked_note == note and len(clicked) == len(items)
    beside = gr.SelectData(None, {"index": [right + 5, top + 1], "value": None})
    assert trainer.train.mistakes_at(mine, cells, beside) == (gr.skip(),) * 5
    assert "Click a cell to see those images" in last["confusion_summary"]


# ------------------------------------------------------------------ teacher mode


def test_a_class_run_lesson_makes_every_page_watch_for_the_lessons_run(app):
    from vit_demo.ui.teacher import TeacherHandlers, banner_text, parse_lesson

    lesson = parse_lesson({"class_run": True}, {"dataset": "mnist"})
    assert lesson.class_run and "A class run" in banner_text(lesson)
    assert not parse_lesson({"class_run": "0"}).class_run
    *_, class_lesson, watch = TeacherHandlers(app.build).start("mnist", FakeRequest({"class_run": "1"}))
    assert class_lesson is True and watch.active
    *_, class_lesson, watch = TeacherHandlers(app.build).start("mnist", FakeRequest({}))
    assert class_lesson is False and not watch.active


class FakeRequest:
    def __init__(self, query: dict, referer: str | None = None):
        self.query_params = query
        self.headers = {"referer": referer} if referer else {}


def test_a_lesson_link_and_file_set_the_dataset_preset_seed_and_locks(app, tmp_path, monkeypatch):
    from vit_demo.ui.teacher import KNOBS, LESSON_ENV, TeacherHandlers

    lesson_file = tmp_path / "lesson.json"
    lesson_file.write_text(
        '{"title": "Lesson 2: patches", "dataset": "mnist", "lock": ["dataset"], "hide": ["lr"], "seed": 1}'
    )
    monkeypatch.setenv(LESSON_ENV, str(lesson_file))
    teacher = TeacherHandlers(app.build)
    request = FakeRequest(
        {"dataset": "fashion_mnist", "preset": "better", "seed": "3", "lock": "patch_size,preset", "dim": "lots"}
    )
    banner, heading, dataset, preset, *knobs = teacher.start("mnist", request)
    knobs = dict(zip(KNOBS, knobs))
    assert dataset["value"] == "fashion_mnist" and dataset["interactive"] is False  # the link wins; the file locks
    assert "Lesson 2: patches" in banner.value and "dim='lots' does not fit" in banner.value
    assert "`num_classes` 10" in heading
    # The dataset's own settings and the lesson's arrive together: Better's knobs (this
    # machine's plan for it), then the lesson's.
    assert preset["value"].startswith("Better") and preset["interactive"] is False
    assert preset["choices"] == [p.label for p in recipe_for("fashion_mnist").presets]
    better = app.build.preset_plan("fashion_mnist", preset["value"]).candidate
    assert knobs["patch_size"]["value"] == better.patch_size and knobs["patch_size"]["interactive"] is False
    assert knobs["patch_size"]["choices"] == [2, 4, 7, 14, 28]
    assert knobs["depth"]["value"] == better.depth and knobs["seed"]["value"] == 3 and knobs["lr"]["visible"] is False
    assert knobs["epochs"] == gr.skip()  # neither the preset nor the lesson sets it
    # A preset the dataset does not have is reported, and the dataset's first preset stands.
    monkeypatch.delenv(LESSON_ENV)
    banner, _, dataset, preset, *_ = teacher.start("mnist", FakeRequest({"dataset": "cifar10", "preset": "standard"}))
    assert "preset='standard' is not one of cifar10's presets" in banner.value
    assert dataset["value"] == "cifar10" and preset["value"] == recipe_for("cifar10").presets[0].label
    # No lesson: no banner, and the first preset's knobs are this machine's plan for it as it stands now.
    banner, heading, dataset, preset, *knobs = teacher.start("mnist", FakeRequest({}))
    assert banner == heading == dataset == gr.skip()
    quick = app.build.preset_plan("mnist", None).candidate
    assert preset["value"] == recipe_for("mnist").presets[0].label
    assert dict(zip(KNOBS, knobs))["depth"]["value"] == quick.depth

    link = teacher.share_link(
        FakeRequest({}, referer="http://host:7860/?old=1"),
        *("mnist", "Quick (~30 s)", 7, 64, 4, 4, 128, 0.003, 128, "time", 30.0, 1, 3),
    )
    assert link.startswith("http://host:7860/?dataset=mnist&preset=Quick&patch_size=7") and "seed=3" in link
    assert "epochs" not in link and "seconds=30" in link
    # The link read back gives the same settings.
    from urllib.parse import parse_qsl, urlsplit

    banner, _, dataset, preset, *knobs = teacher.start(
        "fashion_mnist", FakeRequest(dict(parse_qsl(urlsplit(link).query)))
    )
    knobs = dict(zip(KNOBS, knobs))
    assert dataset["value"] == "mnist" and preset["value"] == "Quick (~30 s)" and knobs["seconds"]["value"] == 30
    assert knobs["seed"]["value"] == 3 and "Left out" not in banner.value


# ------------------------------------------------------------------ compare runs


def test_the_last_two_runs_are_compared_side_by_side(trainer):
    first = as_outputs(list(trainer.train.train(**train_inputs()))[-1])
    assert [r.number for r in first["runs"]] == [1] and "Train again" in first["compare_table"]
    runs = first["runs"]
    for number in (2, 3):
        last = as_outputs(list(trainer.train.train(**train_inputs(dim=48 if number == 2 else 32), runs=runs))[-1])
        runs = last["runs"]
    assert [r.number for r in runs] == [2, 3]  # only the last two are kept
    table = last["compare_table"]
    assert "**previous run** (#2)" in table and "**latest run** (#3)" in table
    assert "**dim** ◀ changed" in table and "| depth | 2 | 2 |" in table and "**test accuracy**" in table
    assert runs[0].parameters > runs[1].parameters  # dim 48 against 32
    assert set(last["compare_accuracy"]["run"]) == {"previous run", "latest run"}
    assert set(last["compare_loss"]["run"]) == {"previous run", "latest run"}
    assert last["compare_accuracy"]["test accuracy (%)"].between(0, 100).all()
