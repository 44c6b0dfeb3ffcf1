"""Explore's handlers called as plain functions over tiny shipped models: uploads and drawings,
predictions, each view, a clicked patch, the shared cache of explanations, and the patch
experiments."""

import io
import zipfile

import gradio as gr
import pytest
import torch
from PIL import Image, ImageDraw
from ui_helpers import EXAMPLE, explore_values

from vit_demo import checkpoints, experiment_view, experiments, explain
from vit_demo.experiment_view import ExperimentChoices, parse_patches
from vit_demo.service.library import MINE, UPLOADED, ModelLibrary
from vit_demo.ui import experiment_tab
from vit_demo.views import VIEWS

pytestmark = pytest.mark.usefixtures("one_thread")


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
def test_bad_uploads_say_what_is_wrong(explore, tmp_path, name, content, message):
    path = tmp_path / name
    path.write_bytes(content)
    with pytest.raises(gr.Error, match=message):
        explore.use_upload({"upload": str(path)})
    with pytest.raises(gr.Error, match=message):
        explore.predict(str(path), "mnist")


def test_huge_pictures_are_refused_before_decoding(explore, tmp_path, monkeypatch):
    monkeypatch.setenv("VIT_DEMO_MAX_IMAGE_MEGAPIXELS", "1")
    bomb = tmp_path / "bomb.png"
    bomb.write_bytes(png_bytes(Image.new("L", (2000, 2000))))  # 4 megapixels of black in a few KB
    with pytest.raises(gr.Error, match="2000x2000 pixels .* over the 1-megapixel limit"):
        explore.use_upload({"upload": str(bomb)})


def test_a_blank_canvas_is_no_drawing(explore):
    white = Image.new("RGBA", (280, 280), "white")
    assert explore.use_drawing({"sketch": {"background": None, "layers": [], "composite": white}}) == {}
    assert explore.use_drawing({"sketch": {"composite": Image.new("RGBA", (280, 280), (0, 0, 0, 0))}}) == {}
    ink_on_glass = Image.new("RGBA", (280, 280), (0, 0, 0, 0))
    ImageDraw.Draw(ink_on_glass).line([(60, 60), (200, 60), (120, 240)], fill=(0, 0, 0, 255), width=20)
    drawing = explore.use_drawing({"sketch": {"composite": ink_on_glass}})["image"]
    left, top, _, _ = ink_on_glass.getbbox()
    assert drawing.size == (336, 336) and drawing.getbbox()[:2] == (left + 28, top + 28)  # inside a margin


def test_a_drawing_that_runs_into_the_canvas_edge_is_still_seen(explore):
    seven = Image.new("RGBA", (280, 280), "white")
    ImageDraw.Draw(seven).line([(40, 0), (240, 0), (120, 279)], fill="black", width=30)  # the bar on the top edge
    drawing = explore.use_drawing({"sketch": {"composite": seven}})["image"]
    explored = explore.explore(explore_values(image=drawing))["explored"]
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


def test_explore_predicts_and_draws_only_the_open_view(explore):
    shown = explore.explore(explore_values())
    assert isinstance(shown["image"], Image.Image)  # the first example stands in for a missing picture
    label = shown["label"]
    assert set(label) == {str(d) for d in range(10)} and sum(label.values()) == pytest.approx(1.0, abs=1e-4)
    assert shown["seen"].size == (196, 196) and shown["patch"] is None
    drawn_map, faithfulness_curves = shown["where"].figures
    assert isinstance(drawn_map, Image.Image) and isinstance(faithfulness_curves, Image.Image)
    summary = shown["where"].summary
    assert "The model predicts **" in summary and "Attention rollout" in summary and "Score" in summary
    assert all(shown[view] is None for view in VIEWS if view != "where")  # drawn when opened
    choices = dict(fusion="max", discard=0.5, layer=2, head="1", method="gradient", target="3")
    for view, count in VIEWS.items():
        opened = explore.view_opener(view)(explore_values(explored=shown["explored"], **choices))
        figures, text = opened[view].figures, opened[view].summary
        assert opened["open_view"] == view and len(figures) == count
        assert all(isinstance(d, Image.Image) for d in figures)
        assert isinstance(text, str) and len(text) > 40, (view, text)  # every figure is also told in words


def test_each_map_is_scored_against_random_orders_for_the_chosen_class(explore):
    explored = explore.explore(explore_values())["explored"]
    for method in ("rollout", "attention", "gradient", "occlusion"):
        opened = explore.view_opener("where")(explore_values(explored=explored, method=method, target="3"))
        summary = opened["where"].summary
        assert "for random orders" in summary, method
        if method in ("gradient", "occlusion"):
            assert "for class **3**" in summary
        else:
            assert "the same for every class" in summary


def test_clicking_a_patch_shows_where_it_looks_and_its_maths(explore):
    explored = explore.explore(explore_values())["explored"]
    click = gr.SelectData(None, {"index": [60, 100], "value": None})  # 196 px wide, 4x4 patches: row 3, column 2
    chosen = explore.choose_patch(explore_values(explored=explored), event=click)
    heads_text, maths_text = chosen["heads"].summary, chosen["maths"].summary
    (maths_figure,) = chosen["maths"].figures
    assert chosen["patch"] == 9 and chosen["open_view"] == "heads" and chosen["views"].selected == "heads"
    assert "Where patch 10 (row 3, column 2) looks" in heads_text
    assert isinstance(maths_figure, Image.Image) and "Patch 10's query in layer 1, head 1" in maths_text
    assert "| = the token | 32 |" in maths_text  # the model's dim: every step spelled out with its size
    assert "Patch 10 (row 3, column 2)" not in heads_text or "Show the CLS token" in heads_text
    back = explore.show_cls(explore_values(explored=explored, patch=9))
    assert back["patch"] is None and "the CLS token attends most to" in back["heads"].summary
    # On "The maths" the view stays open.
    on_maths = explore.choose_patch(explore_values(explored=explored, open_view="maths"), event=click)
    assert on_maths["open_view"] == "maths"


def test_a_shipped_model_explored_on_the_same_picture_is_explained_once_for_everyone(explore, monkeypatch):
    calls = []
    real = explain.explain
    monkeypatch.setattr(explain, "explain", lambda *args, **kwargs: calls.append(1) or real(*args, **kwargs))
    first = explore.explore(explore_values())
    second = explore.explore(explore_values())
    assert len(calls) == 1 and second["explored"] is first["explored"]
    explore.explore(explore_values(fusion="max"))  # other settings: drawn anew
    assert len(calls) == 2
    mine = explore.library.models["mnist"]
    from vit_demo.service.library import LoadedModel

    own = LoadedModel(MINE, mine.model, mine.info, "trained here")
    explore.explore(explore_values(MINE, mine=own))
    explore.explore(explore_values(MINE, mine=own))
    assert len(calls) == 4  # a person's own model is nobody else's: never served from the shared memory


def test_opening_explore_shows_the_first_example_once_and_the_shipped_model_reads_it(shipped_explore):
    first = shipped_explore.open_tab(explore_values())
    image, label = first["image"], first["label"]
    _, shown_class = shipped_explore.examples(shipped_explore.library.models["mnist"])[0]
    assert isinstance(image, Image.Image) and max(label, key=label.get) == shown_class and label[shown_class] > 0.9
    assert shipped_explore.open_tab(explore_values(explored=first["explored"])) == {}  # already on show
    # No model of your own yet: nothing to show, and no error either (the note says what to do).
    assert shipped_explore.open_tab(explore_values(MINE)) == {}


@pytest.mark.parametrize("dataset", ["mnist", "fashion_mnist"])
def test_the_shipped_models_read_every_shipped_example_as_served(shipped_explore, dataset):
    """Through the predict API's own path (open the file, prepare it as the dataset was made,
    predict): a change to how an upload is prepared that costs the shipped models their
    accuracy fails here."""
    examples = shipped_explore.examples(shipped_explore.library.models[dataset])
    assert len(examples) == 10
    for path, class_name in examples:  # the shipped models read every one of them right
        probabilities = shipped_explore.predict(path, dataset)
        assert max(probabilities, key=probabilities.get) == class_name, (path, probabilities)


def test_choosing_a_model_fits_the_layer_and_head_choices(explore):
    chosen = explore.choose_model(explore_values("fashion_mnist"))
    assert "Fashion-MNIST" in chosen["model_note"] and len(chosen["examples"].value) == 10
    assert [v for _, v in chosen["layer"].choices] == [1, 2] and len(chosen["head"].choices) == 5
    assert [v for _, v in chosen["target"].choices][:3] == ["predicted", "T-shirt/top", "Trouser"]
    assert [v for _, v in chosen["maths_layer"].choices] == [1, 2]
    assert [v for _, v in chosen["maths_head"].choices] == [1, 2, 3, 4]
    refused = explore.choose_model(explore_values(MINE))
    assert list(refused) == ["model_note"] and refused["model_note"].startswith("⚠️ You have not trained")


def test_the_predict_api_names_every_class_and_refuses_bad_files(shipped_explore, tmp_path):
    explore = shipped_explore
    result = explore.predict(str(EXAMPLE), "mnist")  # a 7 from the test set
    assert set(result) == {str(d) for d in range(10)} and sum(result.values()) == pytest.approx(1.0, abs=1e-4)
    assert max(result, key=result.get) == "7"
    text = tmp_path / "digit.png"
    text.write_text("not a picture")
    with pytest.raises(gr.Error, match="digit.png is not an image"):
        explore.predict(str(text), "mnist")
    with pytest.raises(gr.Error, match="no model called"):
        explore.predict(str(EXAMPLE), "imagenet")


def test_uploaded_checkpoints_are_checked(explore, tmp_path, tiny_checkpoints):
    archive = checkpoints.zip_checkpoint(tiny_checkpoints / "mnist", tmp_path / "mine.zip")
    chosen = explore.upload_checkpoint({"checkpoint": str(archive)})
    assert chosen["model"] == UPLOADED and chosen["uploaded"].info["dataset"] == "mnist"
    broken = tmp_path / "broken.zip"
    with zipfile.ZipFile(broken, "w") as z:
        z.writestr("model/config.json", "{}")
    with pytest.raises(gr.Error, match="has no model.safetensors"):
        explore.upload_checkpoint({"checkpoint": str(broken)})


# ------------------------------------------------------------------ patch experiments and baselines


def test_patch_numbers_are_read_from_a_list_with_ranges():
    assert parse_patches("0, 5 12-14;3", 16) == [0, 5, 12, 13, 14, 3]
    assert parse_patches("", 16) == [] and parse_patches("  ", 16) == []
    for bad, message in (("16", "0 to 15"), ("a", "not a patch number"), ("5-2", "outside")):
        with pytest.raises(ValueError, match=message):
            parse_patches(bad, 16)


def test_patch_experiments_show_what_position_and_patches_do(explore):
    explored = explore.explore(explore_values())["explored"]
    loaded, tensor = explored.loaded, explored.explanation.preprocessed.tensor

    def run(**choices):
        return experiment_view.run_experiment(loaded, tensor, ExperimentChoices(**choices))

    blind = run(shuffle=True, seed=1, drop_position=True)
    assert blind.order_change < 1e-3  # no pos_embedding: the order of the patches does not matter
    placed = run(shuffle=True, seed=1)
    assert not torch.allclose(placed.original.probabilities, placed.changed.probabilities, atol=1e-6)
    nothing = run(shuffle=False)
    assert nothing.max_logit_change == 0 and nothing.changed.title == "unchanged"
    hidden = run(shuffle=False, occlude="0, 5")
    assert hidden.changed.title == "2 patches hidden"
    flat = run(shuffle=False, baseline=experiment_view.UNIFORM)
    assert torch.allclose(flat.original.rollout, flat.original.rollout.flatten()[0])  # flat: every patch alike

    # The page's handlers, by name, as the Experiments view's controls send them.
    def values(**changes):
        defaults = {"explored": explored, "open_view": experiment_tab.EXPERIMENT_VIEW, "seed": None, "baseline": None}
        return {**defaults, "shuffle": True, "occlude": "", "drop_position": False, **changes}

    shown = experiment_tab.experiment(values(seed=1, drop_position=True))
    assert isinstance(shown["figure"], Image.Image) and shown["figure"].width > 600
    assert "the same guess" in shown["summary"] and "cannot tell where a patch was" in shown["summary"]
    shown = experiment_tab.experiment(values(shuffle=False, occlude="0-3", baseline=experiment_view.UNTRAINED))
    assert "random weights" in shown["summary"]
    twin = loaded.cached("untrained twin", lambda: None)
    assert twin is not loaded.model and twin.config == loaded.model.config
    with pytest.raises(gr.Error, match="0 to 15"):
        experiment_tab.experiment(values(occlude="99"))
    assert experiment_tab.experiment(values(explored=None)) == {
        "summary": "Choose a picture first: an example, a drawing or an upload."
    }
    # A new picture redraws the experiment only while its view is open.
    assert experiment_tab.experiment_if_open(values(open_view="where")) == {}
    opened = experiment_tab.open_experiment(values(open_view="where"))
    assert opened["open_view"] == experiment_tab.EXPERIMENT_VIEW and isinstance(opened["figure"], Image.Image)


def test_the_shuffle_verdict_is_about_the_order_even_when_dropping_position_changes_the_guess():
    """A weak model may guess differently once pos_embedding is gone; the verdict on shuffling
    compares against the unshuffled picture without pos_embedding, so it stays 'the same'."""

    def view(title, probabilities):
        return experiments.ExperimentView(
            title, torch.zeros(1, 1, 4, 4), torch.tensor(probabilities), torch.zeros(2, 2)
        )

    original = view("original", [0.7, 0.3])
    blind = view("no pos_embedding", [0.4, 0.6])
    shuffled = view("patches shuffled, no pos_embedding", [0.4, 0.6])
    result = experiment_view.ExperimentResult(original, shuffled, max_logit_change=30.0, blind_unshuffled=blind)
    assert result.order_change == 0
    summary = experiment_view.describe_experiment(result, ["cat", "dog"], experiment_view.TRAINED)
    assert summary.startswith(
        "Without `pos_embedding`, in order **dog** (60%) → shuffled **dog** (60%): the same guess"
    )
    assert "with `pos_embedding`: **cat** (70%)" in summary


def test_an_explore_that_ends_after_a_newer_one_of_the_same_page_is_not_shown(explore, monkeypatch):
    import threading
    from types import SimpleNamespace

    from ui_helpers import digit

    older_running, newer_done = threading.Event(), threading.Event()
    real = explain.explain

    def slow_for_the_first(*args, **kwargs):
        if not older_running.is_set():  # the example explored as the tab opened: slow on a busy server
            older_running.set()
            assert newer_done.wait(timeout=120)
        return real(*args, **kwargs)

    monkeypatch.setattr(explain, "explain", slow_for_the_first)
    page, other = SimpleNamespace(session_hash="page"), SimpleNamespace(session_hash="other")
    older = {}
    thread = threading.Thread(target=lambda: older.update(shown=explore.explore(explore_values(), request=page)))
    thread.start()
    assert older_running.wait(timeout=120)
    uploaded = digit()
    newer = explore.explore(explore_values(image=uploaded), request=page)  # the picture just uploaded
    elsewhere = explore.explore(explore_values(image=uploaded), request=other)
    newer_done.set()
    thread.join(timeout=120)
    assert newer["image"] is uploaded and elsewhere["image"] is uploaded
    assert older["shown"] == {}  # nothing: the upload stays on show
