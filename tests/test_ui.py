"""The interface layer: it builds with its public endpoints, places every change a run can send,
words the Build tab's estimate, applies a lesson when a page loads, and the Learn tab's lessons
follow the model. Nothing is launched here: test_app_e2e.py serves the app, test_browser.py
drives a real browser."""

import gradio as gr
import pytest
from ui_helpers import settings_for

from vit_demo import explain
from vit_demo.data import get_spec
from vit_demo.model import ViTConfig
from vit_demo.recipes import recipe_for
from vit_demo.service.estimates import estimate
from vit_demo.service.knobs import KNOBS, Knobs
from vit_demo.service.lessons import CONTROLS
from vit_demo.service.producer import FRAME_FIELDS
from vit_demo.ui import build_demo
from vit_demo.ui.build_tab import patch_sizes, summary
from vit_demo.ui.errors import user_errors
from vit_demo.ui.learn import LESSON_TITLES, lesson

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture
def demo(service):
    return build_demo(service)


def handlers_of(demo: gr.Blocks, name: str):
    """The handler object behind a wired event, found by its method's name."""
    for fn in demo.fns.values():
        target = getattr(fn.fn, "__self__", None)
        if target is not None and fn.fn.__name__ == name:
            return target
    raise LookupError(name)


def test_the_interface_builds_with_its_public_endpoints_named_after_the_knobs(demo):
    public = {fn.api_name: fn for fn in demo.fns.values() if fn.api_visibility == "public"}
    assert set(public) == {"describe", "train", "stop", "explore", "predict", "class_view", "join_lesson"}
    api = demo.get_api_info()["named_endpoints"]
    for endpoint in ("/train", "/describe"):
        assert [p["parameter_name"] for p in api[endpoint]["parameters"]] == list(KNOBS)


def test_every_change_a_run_sends_has_a_place_on_the_page(demo):
    tab = handlers_of(demo, "poll").tab
    outputs = set(tab.outputs())
    for field in FRAME_FIELDS:
        value = {"progress": (0.5, "half"), "mistakes": (("a", "b"), (0, 1)), "timeline_slider": 3}.get(field)
        updates = tab.updates({field: value})
        assert updates and set(updates) <= outputs, field  # placed, and on a component the run's events update


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


def test_the_summary_follows_the_knobs_with_the_time_on_this_machine_and_the_expected_accuracy(service):
    knobs = Knobs.of_preset("mnist", recipe_for("mnist").preset("quick"))
    text = summary(service.estimate(knobs), service.settings)
    config = knobs.model_config()
    assert "16 patches of 7×7×1 = 49 values" in text and f"17 tokens of {config.dim}" in text
    for name, count in config.parameter_counts().items():
        assert f"| `{name}` | {count:,} |" in text
    assert "**4 epochs** = 2,048 training images" in text  # the test app's 512-image train limit
    assert "measured on the project's development machine" in text  # the prior, until this machine is timed
    assert "not measured for these settings" in text  # a train limit: the table's figures do not apply
    full = settings_for(service.settings.work_dir.parent, service.settings.checkpoint_dir, train_limit=None)
    assert "**Expected test accuracy:** about 98.4%" in summary(estimate(knobs, full, service.meter), full)


def test_a_model_that_cannot_be_built_or_trained_here_says_why(service, demo):
    build = handlers_of(demo, "choose_dataset")
    bad = build.describe({**Knobs.of_preset("mnist", recipe_for("mnist").presets[0]).values, "heads": 3})
    assert set(bad) == {build.tab.summary}  # the lessons are left as they were
    assert "dim 64 is not divisible by heads 3" in bad[build.tab.summary]
    huge = build.describe(
        {
            **Knobs.of_preset("mnist", recipe_for("mnist").presets[0]).values,
            "dim": 512,
            "mlp_dim": 2048,
            "depth": 12,
            "batch_size": 1024,
            "patch_size": 2,
        }
    )
    assert (
        "too big for this server" in huge[build.tab.summary]
        and "VIT_DEMO_MAX_TRAIN_MEMORY_MB" in huge[build.tab.summary]
    )


def test_image_size_and_channels_change_the_shapes_on_build_and_learn(service, demo):
    build = handlers_of(demo, "choose_dataset")
    quick = Knobs.of_preset("mnist", recipe_for("mnist").presets[0]).values
    shown = build.describe({**quick, "image_size": 14, "channels": 3})
    text = shown[build.tab.summary]
    assert "(3, 14, 14) → 4 patches of 7×7×3 = 147 values → 5 tokens of 64" in text
    learn = " ".join(shown[section] for section in build.lessons)
    assert "147" in learn and "colour (red, green and blue per pixel)" in learn
    assert "not measured for these settings" in text  # the measured table is of 28x28 grey MNIST
    sizes = build.choose_image_size({build.tab.knobs["image_size"]: 32})
    assert [value for _, value in sizes[build.tab.knobs["patch_size"]].choices] == [2, 4, 8, 16, 32]


def test_datasets_offer_only_patch_sizes_that_divide_their_images(demo):
    build = handlers_of(demo, "choose_dataset")
    assert patch_sizes(28) == [2, 4, 7, 14, 28] and patch_sizes(32) == [2, 4, 8, 16, 32]
    tab = build.tab
    updates = build.choose_dataset({tab.dataset: "cifar10"})
    assert updates[tab.preset].choices == [(p.label, p.name) for p in recipe_for("cifar10").presets]
    assert "32×32 in colour" in updates[tab.fixed_by_dataset]
    patch = updates[tab.knobs["patch_size"]]
    assert [value for _, value in patch.choices] == [2, 4, 8, 16, 32] and patch.value == 8


@pytest.mark.parametrize("dataset", ["mnist", "fashion_mnist"])
def test_the_trust_lesson_quotes_the_measured_faithfulness_of_the_datasets_shipped_model(dataset):
    from vit_demo import faithfulness

    config = ViTConfig(image_size=28, patch_size=7, num_classes=10, dim=64, depth=4, heads=4, mlp_dim=128, channels=1)
    text = lesson(config, get_spec(dataset), 128, 0.003, 60_000)[LESSON_TITLES.index("10 · How far to trust a map")]
    measured = faithfulness.measured(dataset)
    assert f"over **{measured['images']:,} test images** of {get_spec(dataset).title}" in text
    for row in measured["methods"].values():
        assert f"| {row['deletion']:.2f} | {row['insertion']:.2f} | **{row['score']:+.2f}** |" in text
    best = max((m for m in measured["methods"] if m != "random"), key=lambda m: measured["methods"][m]["score"])
    assert f"Here **{explain.ATTRIBUTIONS[best].split(' (')[0]}** is the most faithful" in text


def test_lessons_fill_in_the_current_models_shapes_and_cover_every_part():
    config = ViTConfig(image_size=28, patch_size=7, num_classes=10, dim=64, depth=4, heads=4, mlp_dim=128, channels=1)
    text = "\n".join(lesson(config, get_spec("mnist"), batch_size=128, lr=0.003, train_images=60_000))
    assert len(LESSON_TITLES) == len(lesson(config, get_spec("mnist"), 128, 0.003, 60_000))
    assert "(1, 28, 28) → 16 patches of 49 values → (17, 64)" in text
    for topic in (
        "image_size", "patch_size", "num_classes", "`dim`", "`depth`", "`heads`", "`mlp_dim`", "`channels`",
        "patch_to_embedding", "pos_embedding", "cls_token", "to_cls_token", "mlp_head", "patch_dim",
        "nn.Parameter", "nn.Linear", "y = x A^T + b", "query", "learning rate", "batch", "epoch", "Inference",
        "rollout", "attention distance",
    ):  # fmt: skip
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


# ------------------------------------------------------------------ a lesson on page load


class FakeRequest:
    def __init__(self, query: dict, referer: str | None = None):
        self.query_params = query
        self.headers = {"referer": referer} if referer else {}


def test_a_lesson_sets_the_build_tab_on_page_load_and_the_settings_become_a_link(demo, tmp_path, monkeypatch):
    teacher = handlers_of(demo, "share_link")
    tab = teacher.tab
    lesson_file = tmp_path / "lesson.json"
    lesson_file.write_text('{"title": "Lesson 2: patches", "dataset": "mnist", "lock": ["dataset"], "hide": ["lr"]}')
    monkeypatch.setenv("VIT_DEMO_LESSON", str(lesson_file))
    query = {"dataset": "fashion_mnist", "preset": "finer", "seed": "3", "lock": "patch_size,preset", "dim": "lots"}
    updates = teacher.start(FakeRequest(query))
    assert updates[tab.dataset]["value"] == "fashion_mnist" and updates[tab.dataset]["interactive"] is False
    banner = updates[teacher.banner].value
    assert "Lesson 2: patches" in banner and "dim must be a whole number from 8 to 512, got 'lots'" in banner
    finer = recipe_for("fashion_mnist").preset("finer")
    assert updates[tab.preset]["value"] == "finer" and updates[tab.preset]["interactive"] is False
    assert updates[tab.preset]["info"] == finer.blurb  # the chosen preset's words, not the first's
    assert updates[tab.knobs["patch_size"]]["value"] == finer.candidate.patch_size == 4
    assert updates[tab.knobs["patch_size"]]["interactive"] is False and updates[tab.knobs["lr"]]["visible"] is False
    assert updates[tab.knobs["seed"]]["value"] == 3 and updates[tab.knobs["epochs"]]["value"] == finer.epochs
    assert updates[teacher.class_lesson] is False
    monkeypatch.delenv("VIT_DEMO_LESSON")
    assert teacher.start(FakeRequest({})) == gr.skip()  # no lesson: the page as it was built
    class_run = teacher.start(FakeRequest({"class_run": "1"}))
    assert class_run[teacher.class_lesson] is True and class_run[teacher.class_watch].active

    chosen = ("mnist", "quick", 28, 1, 7, 64, 3, 4, 128, 0.003, 128, 4.0, 3)
    values = {teacher.control(n): v for n, v in zip(CONTROLS, chosen, strict=True)}
    link = teacher.share_link(values, FakeRequest({}, referer="http://host:7860/?old=1"))
    assert link.startswith("http://host:7860/?dataset=mnist&preset=quick&image_size=28&channels=1&patch_size=7")
    assert "epochs=4&seed=3" in link
    from urllib.parse import parse_qsl, urlsplit

    back = teacher.start(FakeRequest(dict(parse_qsl(urlsplit(link).query))))
    assert back[tab.knobs["seed"]]["value"] == 3 and "Left out" not in back[teacher.banner].value


def test_a_lessons_folder_of_pictures_is_every_pages_dataset(demo, tmp_path, monkeypatch):
    import zipfile

    from tools.hostile_files import dataset_zip

    teacher = handlers_of(demo, "share_link")
    with zipfile.ZipFile(dataset_zip(tmp_path)) as archive:
        archive.extractall(tmp_path)
    lesson_file = tmp_path / "lesson.json"
    lesson_file.write_text('{"title": "Our shapes", "dataset_folder": "shapes", "lock": ["dataset"]}')
    monkeypatch.setenv("VIT_DEMO_LESSON", str(lesson_file))
    for _page in range(2):  # every page of the lesson: the same choice, none of them brought it
        updates = teacher.start(FakeRequest({}))
        dataset = updates[teacher.tab.dataset]
        assert dataset["value"].startswith("own-") and dataset["interactive"] is False
        assert ("The class's pictures: shapes", dataset["value"]) in dataset["choices"]
        assert updates[teacher.tab.preset]["value"] == recipe_for(dataset["value"]).presets[0].name
        assert updates[teacher.tab.knobs["image_size"]]["value"] == get_spec(dataset["value"]).image_size
        banner = updates[teacher.banner].value
        assert "Left out" not in banner and "3 classes (circles, squares, triangles), 18 pictures to learn" in banner
    build = handlers_of(demo, "use_archive")  # a student brings a zip of their own: both are offered
    (tmp_path / "mine").mkdir()
    mine = build.use_archive({build.tab.own.archive: str(dataset_zip(tmp_path / "mine", per_class=5, name="mine.zip"))})
    labels = [label for label, _ in mine[build.tab.dataset].choices]
    assert labels[-2:] == ["The class's pictures: shapes", "Your pictures: mine"]
