"""The "show the maths" numbers are the forward pass's own: checked against the model."""

import pytest
import torch
from conftest import TINY

from vit_demo.model import patchify
from vit_demo.patch_maths import patch_at, patch_maths
from vit_demo.training import create_model


@pytest.fixture
def model():
    return create_model("mnist", seed=2, **TINY).eval()


@pytest.fixture
def images():
    return torch.randn(1, 1, 28, 28, generator=torch.Generator().manual_seed(4))


@pytest.mark.parametrize("layer, head", [(0, 0), (1, 1)])
def test_the_attention_row_and_head_output_are_the_models_own(model, images, layer, head):
    maths = patch_maths(model, images, patch=5, layer=layer, head=head)
    with torch.no_grad():
        _, attentions = model(images, return_attention=True)
    torch.testing.assert_close(maths.weights, attentions[layer][0, head, 6])
    assert maths.weights.sum() == pytest.approx(1.0, abs=1e-6)
    # The head's output is its slice of what the attention hands to `to_out`.
    captured = {}
    to_out = model.transformer.layers[layer].attention.to_out
    hook = to_out.register_forward_hook(lambda module, args, out: captured.setdefault("in", args[0]))
    with torch.no_grad():
        model(images, return_attention=True)
    hook.remove()
    d = model.config.head_dim
    torch.testing.assert_close(maths.output, captured["in"][0, 6, head * d : (head + 1) * d], atol=1e-5, rtol=1e-5)


def test_the_token_is_the_patch_embedded_plus_its_position(model, images):
    maths = patch_maths(model, images, patch=9)
    torch.testing.assert_close(maths.vector, patchify(images, 7)[0, 9])
    torch.testing.assert_close(maths.pixels[0], images[0, 0, 14:21, 7:14])  # patch 9: row 2, column 1
    torch.testing.assert_close(
        maths.embedding, model.patch_to_embedding.weight @ maths.vector + model.patch_to_embedding.bias
    )
    with torch.no_grad():
        torch.testing.assert_close(maths.token, model.embed(images)[0, 10])
    torch.testing.assert_close(maths.layer_input, maths.token)  # layer 1 reads the token itself
    # Scores are q . k / sqrt(head_dim), by hand for the CLS key.
    assert maths.scores[0] == pytest.approx(float(maths.query @ maths.keys[0]) / model.config.head_dim**0.5, abs=1e-5)


def test_out_of_range_choices_say_what_fits(model, images):
    with pytest.raises(ValueError, match="patch must be between 0 and 15"):
        patch_maths(model, images, patch=16)
    with pytest.raises(ValueError, match="layer must be between 0 and 1"):
        patch_maths(model, images, patch=0, layer=2)
    with pytest.raises(ValueError, match="head must be between 0 and 1"):
        patch_maths(model, images, patch=0, head=2)


def test_a_click_lands_on_the_patch_under_it():
    assert patch_at(0, 0, 196, 4) == 0
    assert patch_at(195, 0, 196, 4) == 3
    assert patch_at(60, 100, 196, 4) == 2 * 4 + 1
    assert patch_at(400, 400, 196, 4) == 15  # a click on the edge stays in the picture
