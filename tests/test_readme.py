"""The README's numbers and lists, checked against the code and the shipped checkpoints."""

import re

import pytest
from conftest import REPO

from vit_demo import checkpoints
from vit_demo.recipes import recipe_for
from vit_demo.service.knobs import KNOBS
from vit_demo.settings import VARIABLES

README = (REPO / "README.md").read_text(encoding="utf-8")


def shipped_rows():
    return re.findall(r"^\| `checkpoints/(\w+)` \| (.*?) \| ([\d.]+) % \|", README, flags=re.MULTILINE)


def test_the_shipped_models_table_gives_each_checkpoints_real_size_and_score():
    rows = shipped_rows()
    assert sorted(folder for folder, _, _ in rows) == sorted(
        p.parent.name for p in (REPO / "checkpoints").glob("*/config.json")
    )
    for folder, model, accuracy in rows:
        loaded, info = checkpoints.load(REPO / "checkpoints" / folder)
        parameters = sum(p.numel() for p in loaded.parameters())
        assert f"({round(parameters / 1000)}k parameters)" in model, (folder, parameters)
        assert float(accuracy) == pytest.approx(info["test_accuracy"] * 100, abs=0.005), folder
        cfg = loaded.config
        assert model.startswith(
            f"patch {cfg.patch_size}, dim {cfg.dim}, depth {cfg.depth}, heads {cfg.heads}, mlp {cfg.mlp_dim} "
        )


def preset_words(dataset: str) -> list[str]:
    return [preset.name for preset in recipe_for(dataset).presets]


def test_the_lesson_link_section_names_every_knob_and_each_datasets_presets():
    assert f"The knobs are `{' '.join(KNOBS[1:])}`" in README
    sentence = " ".join(README[README.index("`preset` takes") :].split("\n\n")[0].split())
    for dataset, title in (("mnist", "MNIST"), ("cifar10", "CIFAR-10")):
        words = preset_words(dataset)
        assert f"{', '.join(f'`{w}`' for w in words[:-1])} or `{words[-1]}` for {title}" in sentence, sentence
    assert preset_words("fashion_mnist") == preset_words("mnist")


def test_the_settings_table_is_every_declared_variable_with_its_meaning_and_default():
    rows = re.findall(r"^\| `(VIT_DEMO_\w+)` \| (.*?) \| (.*?) \|$", README, flags=re.MULTILINE)
    assert [name for name, _, _ in rows] == list(VARIABLES)
    for name, meaning, default in rows:
        variable = VARIABLES[name]
        assert meaning == variable.meaning, name
        if variable.kind in (int, float) and variable.default is not None:
            assert default == f"`{variable.default:g}`", name
        if variable.kind is bool:
            assert default == f"`{int(variable.default)}`", name
