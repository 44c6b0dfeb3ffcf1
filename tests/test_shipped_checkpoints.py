"""The models that ship in checkpoints/ load, are small, and score what their config says."""

import pytest
from conftest import REPO

from vit_demo import checkpoints
from vit_demo.data import get_spec, load_split
from vit_demo.training import evaluate

SHIPPED = sorted(p.parent.name for p in (REPO / "checkpoints").glob("*/config.json"))


def test_both_bundled_datasets_have_a_shipped_model():
    assert {"mnist", "fashion_mnist"} <= set(SHIPPED)


@pytest.mark.parametrize("name", SHIPPED)
def test_a_shipped_model_scores_its_recorded_accuracy_on_real_test_images(name, data_dir):
    folder = REPO / "checkpoints" / name
    assert sum(f.stat().st_size for f in folder.iterdir()) < 5 * 2**20
    model, info = checkpoints.load(folder)
    assert info["dataset"] == name and info["training"]["test_images"] == 10000
    spec = get_spec(name)
    _, accuracy, _ = evaluate(model, load_split(name, train=False, data_dir=data_dir, limit=1000), spec)
    # 1,000 images estimate the full-set score to within about +-2 points (95%).
    assert abs(accuracy - info["test_accuracy"]) < 0.025, (accuracy, info["test_accuracy"])
    assert accuracy > {"mnist": 0.97, "fashion_mnist": 0.85}[name]
