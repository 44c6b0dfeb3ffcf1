"""The class-specific maps (gradient x attention, occlusion) and the faithfulness curves:
hand computations on toy tensors, independent re-computations on small real models, and
what they say about a trained model."""

from __future__ import annotations

import pytest
import torch
from conftest import TINY

from vit_demo import data, experiments, explain, faithfulness
from vit_demo.training import create_model

INFO = {"mean": [0.1307], "std": [0.3081], "dataset": "mnist"}


@pytest.fixture
def model():
    return create_model("mnist", seed=3, **TINY).eval()


@pytest.fixture
def images():
    return torch.randn(1, 1, 28, 28, generator=torch.Generator().manual_seed(0))


def test_relevance_propagation_by_hand():
    # Two layers of one head over two tokens (CLS and one patch).
    a1, g1 = torch.tensor([[0.6, 0.4], [0.3, 0.7]]), torch.tensor([[1.0, -2.0], [0.5, 1.0]])
    a2, g2 = torch.tensor([[0.5, 0.5], [0.5, 0.5]]), torch.tensor([[0.0, 2.0], [1.0, 1.0]])
    relevance = explain.relevance_propagation([a1[None, None], a2[None, None]], [g1[None, None], g2[None, None]])
    # Layer 1: (g*a)+ = [[.6, 0], [.15, .7]]; R = I + that = [[1.6, 0], [.15, 1.7]].
    # Layer 2: (g*a)+ = [[0, 1], [.5, .5]]; R += that @ R = [[.15, 1.7], [.875, .85]].
    torch.testing.assert_close(relevance, torch.tensor([[1.75, 1.7], [1.025, 2.55]]))


def test_relevance_propagation_averages_the_heads_after_dropping_negative_evidence():
    attention = torch.tensor([[[0.5, 0.5], [0.5, 0.5]], [[0.5, 0.5], [0.5, 0.5]]])[None]  # 2 heads
    gradient = torch.tensor([[[0.0, 4.0], [0.0, 0.0]], [[0.0, -4.0], [0.0, 0.0]]])[None]
    relevance = explain.relevance_propagation([attention], [gradient])
    # Head 1 gives 2.0 to CLS <- patch, head 2's -2.0 is clipped to 0: their mean is 1.0.
    torch.testing.assert_close(relevance, torch.tensor([[1.0, 1.0], [0.0, 1.0]]))


def test_gradient_relevance_uses_the_gradient_of_the_chosen_class(model, images):
    with torch.enable_grad():
        logits, attentions = model(images, return_attention=True)
        gradients = torch.autograd.grad(logits[0, 4], attentions)
    expected = explain.relevance_propagation(attentions, gradients)[0, 1:].reshape(4, 4)
    torch.testing.assert_close(explain.gradient_relevance(model, images, 4), expected)
    assert (expected >= 0).all()
    # Class-specific: another class, another map; rollout is the same for every class.
    assert not torch.allclose(explain.gradient_relevance(model, images, 7), expected)
    assert all(p.grad is None for p in model.parameters())  # nothing left behind in the model


def test_occlusion_is_the_probability_lost_when_each_patch_alone_is_hidden(model, images):
    fill = experiments.background_value(INFO)
    drops = explain.occlusion_sensitivity(model, images, 2, fill)
    with torch.no_grad():
        before = model(images).softmax(-1)[0, 2]
        for patch in range(16):
            hidden = experiments.occlude_patches(images, 7, [patch], fill)
            after = model(hidden).softmax(-1)[0, 2]
            assert drops.flatten()[patch] == pytest.approx(float(before - after), abs=1e-5)


def test_attribution_serves_every_method_as_a_grid(model, images):
    fill = experiments.background_value(INFO)
    for method in explain.ATTRIBUTIONS:
        assert explain.attribution(model, images, method, 3, fill).shape == (4, 4)
    with pytest.raises(ValueError, match="choose one of rollout"):
        explain.attribution(model, images, "saliency", 3, fill)


def test_attention_maps_read_one_tokens_row_in_patch_order():
    attention = torch.rand(1, 2, 5, 5)
    maps = explain.attention_maps([attention, attention], token=3)
    assert maps.shape == (1, 2, 2, 2, 2)
    torch.testing.assert_close(maps[0, 1, 0].flatten(), attention[0, 0, 3, 1:])
    with pytest.raises(ValueError, match="between 0 and 4"):
        explain.attention_maps([attention], token=5)


# ---------------------------------------------------------------------------------- faithfulness


def test_a_curves_area_is_the_trapezoid_over_the_fraction_of_patches():
    curve = faithfulness.Curve(torch.tensor([0, 1, 2]), torch.tensor([1.0, 0.5, 0.0]))
    assert curve.fractions.tolist() == [0.0, 0.5, 1.0]
    assert curve.area == pytest.approx(0.5)
    assert faithfulness.Curve(torch.tensor([0, 1, 4]), torch.tensor([0.0, 1.0, 1.0])).area == pytest.approx(0.875)


def test_long_curves_are_measured_at_evenly_spread_points():
    assert faithfulness.curve_counts(16).tolist() == list(range(17))
    counts = faithfulness.curve_counts(49)
    assert len(counts) == faithfulness.MAX_POINTS and counts[0] == 0 and counts[-1] == 49
    assert (counts.diff() >= 3).all()


def test_ranking_puts_the_strongest_patch_first_and_breaks_ties_by_index():
    assert faithfulness.ranking(torch.tensor([[0.1, 0.9], [0.5, 0.5]])).tolist() == [1, 2, 3, 0]


def test_deletion_and_insertion_masks_by_hand():
    order, counts = torch.tensor([[2, 0, 1]]), torch.arange(4)
    deletion = faithfulness._orders_to_masks(order, counts, delete=True)[0].int().tolist()
    insertion = faithfulness._orders_to_masks(order, counts, delete=False)[0].int().tolist()
    assert deletion == [[0, 0, 0], [0, 0, 1], [1, 0, 1], [1, 1, 1]]
    assert insertion == [[1, 1, 1], [1, 1, 0], [0, 1, 0], [0, 0, 0]]


def test_curves_match_deleting_and_inserting_patches_one_picture_at_a_time(model, images):
    fill = experiments.background_value(INFO)
    order = torch.randperm(16, generator=torch.Generator().manual_seed(1))
    deletion, insertion = faithfulness.curves(model, images, 5, order[None], fill)
    blank = experiments.occlude_patches(images, 7, range(16), fill)
    with torch.no_grad():
        for k in range(17):
            deleted = experiments.occlude_patches(images, 7, order[:k].tolist(), fill)
            kept = experiments.occlude_patches(images, 7, order[k:].tolist(), fill)
            assert deletion.probabilities[k] == pytest.approx(float(model(deleted).softmax(-1)[0, 5]), abs=1e-5)
            assert insertion.probabilities[k] == pytest.approx(float(model(kept).softmax(-1)[0, 5]), abs=1e-5)
        # Both curves run between the picture and the empty page.
        assert deletion.probabilities[0] == pytest.approx(float(model(images).softmax(-1)[0, 5]), abs=1e-5)
        assert insertion.probabilities[0] == pytest.approx(float(model(blank).softmax(-1)[0, 5]), abs=1e-5)


def test_on_a_trained_model_the_class_specific_maps_beat_random_orders(mnist_model, data_dir):
    model, info = mnist_model
    spec = data.get_spec("mnist")
    split = data.load_split("mnist", train=False, data_dir=data_dir, limit=20, download=False)
    fill = experiments.background_value(info)
    scores = {method: [] for method in ("gradient", "occlusion")}
    random_scores = []
    for pixels, label in zip(split.images, split.labels.tolist()):
        image = data.normalize(pixels[None], spec)
        for method in scores:
            saliency = explain.attribution(model, image, method, label, fill)
            result = faithfulness.faithfulness(model, image, label, saliency, fill)
            scores[method].append(result.score)
        random_scores.append(result.random_score)
    random_mean = sum(random_scores) / len(random_scores)
    for method, values in scores.items():
        assert sum(values) / len(values) > random_mean + 0.1, (method, values, random_mean)
