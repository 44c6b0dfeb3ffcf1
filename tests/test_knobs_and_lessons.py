"""The knobs (service/knobs.py) and lessons (service/lessons.py): every value a page, a script,
a link or a lesson file can send is checked, and a bad one is named with what is allowed."""

import json
import math
from dataclasses import replace

import pytest
import torch
from markdown_it import MarkdownIt

from vit_demo.recipes import recipe_for
from vit_demo.service.knobs import KNOBS, RANGES, Knobs
from vit_demo.service.lessons import CONTROLS, banner_text, parse_lesson, read_lesson_file
from vit_demo.training import create_model, run_to_completion

GOOD = Knobs.of_preset("mnist", recipe_for("mnist").presets[0]).values


def test_the_knobs_are_the_models_shape_and_how_it_trains_each_named_once():
    assert KNOBS == (
        "dataset", "image_size", "channels", "patch_size", "dim", "depth", "heads", "mlp_dim", "lr", "batch_size",
        "epochs", "seed",
    )  # fmt: skip
    assert set(RANGES) == set(KNOBS) - {"dataset"} and CONTROLS == ("dataset", "preset", *KNOBS[1:])
    knobs = Knobs.read(GOOD)
    assert knobs.values == GOOD and Knobs.read({**GOOD, "depth": "3", "lr": "0.003"}) == knobs  # text from a form
    training = knobs.train_config()
    # Counted in epochs: the same knobs are the same run on any machine, the plain eager float32 step.
    assert training.epochs == 4 and training.time_budget is None and (training.compile, training.bf16) == (False, False)
    assert knobs.train_config() == training


def test_image_size_and_channels_shape_the_model_and_the_pictures_it_trains_on(data_dir):
    older = {name: value for name, value in GOOD.items() if name not in ("image_size", "channels")}
    assert Knobs.read(older) == Knobs.read(GOOD)  # a lesson or an older run record: the dataset's own
    knobs = Knobs.read({**GOOD, "image_size": 14, "channels": 3, "patch_size": 7})
    config = knobs.model_config()
    assert (config.image_size, config.channels, config.num_patches, config.patch_dim) == (14, 3, 4, 147)
    training = replace(knobs.train_config(data_dir, train_limit=256, test_limit=64), epochs=2)
    pictures = training.split(train=True)
    assert pictures.images.shape == (256, 3, 14, 14) and training.spec.mean == (0.1307,) * 3
    # Grey repeated into colour: the three planes are the same picture.
    assert torch.equal(pictures.images[:, 0], pictures.images[:, 2]) and pictures.images.float().mean() > 10
    model = create_model(knobs.spec, seed=0, **knobs.shape)
    final = run_to_completion(model, training)
    assert final.done and final.test_accuracy > 0.2  # it learnt from 14x14 colour pictures (chance: 0.1)


def test_pictures_that_would_not_fit_in_memory_are_refused_with_what_to_change():
    with pytest.raises(ValueError, match=r"at 64x64 in colour would hold .* choose a smaller image_size or channels 1"):
        Knobs.read({**GOOD, "image_size": 64, "channels": 3, "patch_size": 8})
    with pytest.raises(ValueError, match="channels must be 1 \\(grey\\) or 3 \\(colour\\), got 2"):
        Knobs.read({**GOOD, "channels": 2})
    with pytest.raises(
        ValueError, match="image_size 30 is not divisible by patch_size 7: choose a patch_size that divides 30"
    ):
        Knobs.read({**GOOD, "image_size": 30}).model_config()


@pytest.mark.parametrize(
    "name, value, says",
    [
        ("depth", 40, "depth must be a whole number from 1 to 12, got 40"),
        ("depth", 2.5, "depth must be a whole number from 1 to 12, got 2.5"),
        ("lr", math.nan, "lr must be a number from 0.0001 to 0.01, got nan"),
        ("lr", math.inf, "got inf"),
        ("epochs", -1, "epochs must be a number from 0.5 to 300, got -1"),
        ("batch_size", 0, "batch_size must be a whole number from 1 to 1,024, got 0"),
        ("seed", 2**64, "seed must be a whole number from 0 to 2,147,483,647"),
        ("dim", True, "dim must be a whole number"),
        ("heads", None, "heads must be a whole number from 1 to 16, got None"),
        ("patch_size", "seven", "got 'seven'"),
        (
            "dataset",
            "imagenet",
            "dataset must be one of mnist, fashion_mnist, cifar10 or your own pictures, got 'imagenet'",
        ),
    ],
)
def test_a_knob_that_does_not_fit_is_named_with_its_value_and_what_is_allowed(name, value, says):
    with pytest.raises(ValueError, match=None) as error:
        Knobs.read({**GOOD, name: value})
    assert says in str(error.value)


def test_a_lesson_file_and_a_link_set_the_controls_and_the_link_wins(tmp_path):
    path = tmp_path / "lesson.json"
    path.write_text(json.dumps({"title": "Lesson *2*", "dataset": "mnist", "preset": "Standard", "lock": ["dataset"]}))
    lesson = parse_lesson(read_lesson_file(path), {"dataset": "fashion_mnist", "seed": "3", "hide": "lr,dim"})
    assert lesson.values == {"dataset": "fashion_mnist", "preset": "standard", "seed": 3}
    assert lesson.lock == {"dataset"} and lesson.hide == {"lr", "dim"} and not lesson.problems
    assert lesson.title == "Lesson *2*"  # the server owner's Markdown stands


@pytest.mark.parametrize(
    "link, says",
    [
        ({"seed": str(2**70)}, "seed must be a whole number from 0 to 2,147,483,647"),
        ({"lr": "nan"}, "lr must be a number from 0.0001 to 0.01, got 'nan'"),
        ({"epochs": "inf"}, "epochs must be a number from 0.5 to 300, got 'inf'"),
        ({"batch_size": "0"}, "batch_size must be a whole number from 1 to 1,024, got '0'"),
        ({"preset": "turbo"}, "preset must be one of mnist's presets (quick, standard, finer), got 'turbo'"),
        ({"lock": "everything"}, "lock: no control called everything"),
        ({"class_run": "maybe"}, "class_run must be 1 or 0, got 'maybe'"),
        ({"seconds": "30"}, "no lesson setting called seconds"),
    ],
)
def test_a_link_value_that_does_not_fit_is_left_out_and_named_in_the_banner(link, says):
    lesson = parse_lesson({}, link)
    assert not lesson.values and any(says in problem for problem in lesson.problems), lesson.problems
    assert "Left out of the lesson" in banner_text(lesson)


def test_a_links_title_is_shown_as_text_never_as_a_link():
    lesson = parse_lesson({}, {"title": "[log in](https://evil.example) <img src=x onerror=alert(1)>"})
    page = MarkdownIt("commonmark").render(banner_text(lesson))  # as a Markdown renderer shows it
    assert "<a " not in page and "<img" not in page and "[log in](https://evil.example)" in page
    long = parse_lesson({}, {"title": "x" * 10_000})
    assert len(long.title) <= 120


@pytest.mark.parametrize(
    "content, says",
    [
        ("{not json", "could not be read"),
        ("[1, 2]", "must hold a JSON object"),
        ('{"preset": 5}', "preset must be one of mnist's presets"),
        ('{"lock": 7}', "lock must be a list of control names, got 7"),
        ('{"hide": [1, 2]}', "hide must be a list of control names"),
        ('{"title": {"a": 1}}', "title must be text"),
        ('{"depth": "deep"}', "depth must be a whole number from 1 to 12, got 'deep'"),
    ],
)
def test_a_broken_lesson_file_is_reported_in_the_banner_and_every_page_still_loads(tmp_path, content, says):
    path = tmp_path / "lesson.json"
    path.write_text(content)
    lesson = parse_lesson(read_lesson_file(path), {})
    assert any(says in problem for problem in lesson.problems), lesson.problems
    assert "⚠️" in banner_text(lesson)


def test_a_huge_lesson_file_is_not_read(tmp_path):
    path = tmp_path / "lesson.json"
    path.write_text('{"title": "' + "x" * 200_000 + '"}')
    lesson = parse_lesson(read_lesson_file(path), {})
    assert lesson.title is None and "over 64 KB" in lesson.problems[0]
