import pytest
import torch
from conftest import TINY

from vit_demo import experiments
from vit_demo.explain import attention_rollout
from vit_demo.model import ViT, patchify
from vit_demo.training import create_model


@pytest.fixture
def model():
    return create_model("mnist", seed=1, **TINY).eval()


@pytest.fixture
def info():
    return {"mean": [0.1307], "std": [0.3081], "class_names": [str(d) for d in range(10)], "dataset": "mnist"}


def test_shuffle_moves_whole_patches_in_the_given_order():
    image = torch.arange(16.0).view(1, 1, 4, 4)
    shuffled = experiments.shuffle_patches(image, 2, [3, 2, 1, 0])
    assert shuffled[0, 0].tolist() == [[10, 11, 8, 9], [14, 15, 12, 13], [2, 3, 0, 1], [6, 7, 4, 5]]
    torch.testing.assert_close(patchify(shuffled, 2), patchify(image, 2)[:, [3, 2, 1, 0]])
    with pytest.raises(ValueError, match="permutation of 0..3"):
        experiments.shuffle_patches(image, 2, [0, 0, 1, 2])


def test_without_pos_embedding_shuffling_changes_nothing(model):
    images = torch.randn(3, 1, 28, 28)
    order = experiments.random_order(16, seed=5)
    shuffled = experiments.shuffle_patches(images, 7, order)
    with torch.no_grad():
        torch.testing.assert_close(
            model(images, use_position=False), model(shuffled, use_position=False), atol=1e-5, rtol=1e-5
        )
        # With pos_embedding in place the same shuffle changes the logits.
        moved = (model(images) - model(shuffled)).abs().max()
    assert moved > 1e-3


def test_occluding_no_patch_changes_nothing_and_some_patches_do(model, info):
    images = torch.randn(1, 1, 28, 28)
    original, same = experiments.patch_experiment(model, info, images, occluded=[])
    torch.testing.assert_close(original.probabilities, same.probabilities)
    assert same.title == "unchanged"
    _, hidden = experiments.patch_experiment(model, info, images, occluded=[0, 5])
    assert hidden.title == "2 patches hidden"
    background = (0 - 0.1307) / 0.3081
    assert torch.allclose(hidden.images[0, 0, :7, :7], torch.tensor(background))
    assert torch.allclose(hidden.images[0, 0, 7:14, 7:14], torch.tensor(background))
    torch.testing.assert_close(hidden.images[0, 0, 14:], images[0, 0, 14:])
    with pytest.raises(ValueError, match="patch index 16 is outside 0..15"):
        experiments.occlude_patches(images, 7, [16], torch.zeros(1))


def test_the_experiment_reports_probabilities_and_rollout(model, info):
    original, changed = experiments.patch_experiment(
        model, info, torch.randn(1, 1, 28, 28), shuffle_seed=0, use_position=False
    )
    assert changed.title == "patches shuffled, no pos_embedding"
    for view in (original, changed):
        assert view.probabilities.shape == (10,) and view.probabilities.sum().item() == pytest.approx(1, abs=1e-5)
        assert view.rollout.shape == (4, 4) and view.rollout.max().item() == pytest.approx(1)


def test_uniform_attention_rolls_out_flat(model):
    rollout = attention_rollout(experiments.uniform_attention(model))
    torch.testing.assert_close(rollout, torch.ones(1, 4, 4))


def test_the_untrained_twin_has_the_same_shape_but_fresh_weights(model):
    twin = experiments.untrained_twin(model, seed=0)
    assert isinstance(twin, ViT) and twin.config == model.config and not twin.training
    assert not torch.equal(twin.patch_to_embedding.weight, model.patch_to_embedding.weight)
    again = experiments.untrained_twin(model, seed=0)
    assert torch.equal(twin.patch_to_embedding.weight, again.patch_to_embedding.weight)


def test_to_display_undoes_the_normalisation(info):
    pixels = torch.tensor([0, 128, 255], dtype=torch.float32).view(1, 1, 1, 3) / 255
    normalised = (pixels - 0.1307) / 0.3081
    assert experiments.to_display(normalised, info).tolist() == [[0, 128, 255]]


def test_the_side_by_side_figure_renders(model, info):
    from vit_demo.plots import figure_to_image, plot_patch_experiment

    images = torch.randn(1, 1, 28, 28)
    original, changed = experiments.patch_experiment(model, info, images, occluded=[3])
    figure = plot_patch_experiment(
        original,
        changed,
        info["class_names"],
        experiments.to_display(original.images, info),
        experiments.to_display(changed.images, info),
    )
    assert figure.texts[0].get_text() == "Same model, changed input: what moves?"
    image = figure_to_image(figure)
    assert image.size[0] > 600 and not figure.axes  # drawn, then freed
