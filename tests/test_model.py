import pytest
import torch
from torch import nn

from vit_demo.model import SHAPE_FIELDS, ViT, ViTConfig, estimated_training_memory_bytes, patchify
from vit_demo.training import create_model

SMALL = dict(image_size=28, patch_size=7, num_classes=10, dim=64, depth=4, heads=4, mlp_dim=128, channels=1)


def make(**overrides):
    torch.manual_seed(0)
    return ViT(ViTConfig(**{**SMALL, **overrides}))


def test_forward_gives_logits_per_class():
    assert make()(torch.randn(5, 1, 28, 28)).shape == (5, 10)


def test_named_parts_have_the_papers_shapes():
    model = make()
    assert isinstance(model.patch_to_embedding, nn.Linear)
    assert (model.patch_to_embedding.in_features, model.patch_to_embedding.out_features) == (49, 64)
    assert model.config.patch_dim == 1 * 7 * 7
    assert isinstance(model.pos_embedding, nn.Parameter) and model.pos_embedding.shape == (1, 17, 64)
    assert isinstance(model.cls_token, nn.Parameter) and model.cls_token.shape == (1, 1, 64)
    assert isinstance(model.to_cls_token, nn.Identity)
    assert len(model.transformer.layers) == 4
    head_types = {type(m) for m in model.mlp_head}
    assert {nn.LayerNorm, nn.Linear, nn.GELU} <= head_types
    assert model.mlp_head[-1].out_features == 10


def test_rgb_patch_dim_counts_channels():
    model = make(image_size=32, patch_size=8, channels=3)
    assert model.patch_to_embedding.in_features == 3 * 8 * 8
    assert model.pos_embedding.shape == (1, 16 + 1, 64)


def test_config_rebuilds_the_same_architecture():
    model = make(dim_head=8)
    rebuilt = ViT(ViTConfig.from_dict(model.config.to_dict()))
    assert rebuilt.config == model.config
    assert {k: v.shape for k, v in rebuilt.state_dict().items()} == {k: v.shape for k, v in model.state_dict().items()}


def test_attention_maps_are_row_stochastic_per_layer_and_head():
    logits, attentions = make()(torch.randn(3, 1, 28, 28), return_attention=True)
    assert logits.shape == (3, 10)
    assert len(attentions) == 4
    for attention in attentions:
        assert attention.shape == (3, 4, 17, 17)
        assert torch.all(attention >= 0)
        torch.testing.assert_close(attention.sum(-1), torch.ones(3, 4, 17))


@pytest.mark.parametrize("train_mode", [False, True])
def test_fused_and_explicit_attention_give_the_same_logits_and_gradients(train_mode):
    model = make().train(train_mode)
    images = torch.randn(4, 1, 28, 28)
    results = []
    for fused in (True, False):
        for block in model.transformer.layers:
            block.attention.fused = fused
        model.zero_grad()
        logits = model(images)
        logits.square().sum().backward()
        results.append((logits.detach(), model.patch_to_embedding.weight.grad.clone()))
    torch.testing.assert_close(results[0][0], results[1][0], atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(results[0][1], results[1][1], atol=1e-5, rtol=1e-4)
    for block in model.transformer.layers:
        block.attention.fused = None
    model.eval()
    plain = model(images)
    with_maps, _ = model(images, return_attention=True)
    torch.testing.assert_close(plain, with_maps, atol=1e-5, rtol=1e-5)


def test_the_cls_only_last_block_gives_the_full_models_logits_and_gradients():
    """Without attention maps the last block computes the CLS token alone; with them, every
    token. The logits and every gradient must not tell the two apart."""
    model = make()
    images = torch.randn(4, 1, 28, 28)
    results = []
    for return_attention in (True, False):
        model.zero_grad()
        tokens, _ = model.transformer(model.embed(images), return_attention)
        assert tokens.shape == (4, 17 if return_attention else 1, 64)
        logits = model.mlp_head(tokens[:, 0])
        logits.square().sum().backward()
        results.append((logits.detach(), [p.grad.clone() for p in model.parameters()]))
    (full_logits, full_grads), (short_logits, short_grads) = results
    torch.testing.assert_close(short_logits, full_logits, atol=1e-5, rtol=1e-5)
    for full, short in zip(full_grads, short_grads):
        torch.testing.assert_close(short, full, atol=1e-5, rtol=1e-4)
    torch.testing.assert_close(model(images), full_logits, atol=1e-5, rtol=1e-5)


def test_patches_are_numbered_row_by_row_with_channels_innermost():
    # Pixel value = 100 * channel + 10 * row + column, on a 4x4 image cut into 2x2 patches.
    rows = torch.arange(4).view(4, 1)
    cols = torch.arange(4).view(1, 4)
    image = torch.stack([100 * c + 10 * rows + cols for c in range(2)]).float().unsqueeze(0)
    patches = patchify(image, 2)
    assert patches.shape == (1, 4, 2 * 2 * 2)
    # Patch 1 is the top row's second patch: pixel rows 0-1, columns 2-3.
    assert patches[0, 1].tolist() == [2, 102, 3, 103, 12, 112, 13, 113]
    # Patch 2 starts the second row of patches.
    assert patches[0, 2, :2].tolist() == [20, 120]


def test_parameter_counts_match_a_hand_count_and_the_live_model():
    config = ViTConfig(**SMALL)
    counts = config.parameter_counts()
    assert counts["patch_to_embedding"] == 49 * 64 + 64
    assert counts["pos_embedding"] == 17 * 64
    assert counts["cls_token"] == 64
    per_block = (2 * 64) + (64 * 192 + 192) + (64 * 64 + 64) + (2 * 64) + (64 * 128 + 128) + (128 * 64 + 64)
    assert counts["transformer"] == 4 * per_block
    assert counts["mlp_head"] == 2 * 64 + 64 * 128 + 128 + 128 * 10 + 10
    model = make()
    assert model.parameter_counts() == counts
    assert sum(counts.values()) == sum(p.numel() for p in model.parameters())


def test_forward_flops_by_hand_for_a_tiny_model():
    config = ViTConfig(image_size=4, patch_size=2, num_classes=3, dim=8, depth=1, heads=2, mlp_dim=16, channels=1)
    # 4 patches of 4 values -> 5 tokens of width 8.
    embed = 2 * 4 * 4 * 8
    qkv, scores, mix, out, mlp = 2 * 5 * 8 * 24, 2 * 5 * 5 * 8, 2 * 5 * 5 * 8, 2 * 5 * 8 * 8, 2 * (2 * 5 * 8 * 16)
    head = 2 * 8 * 16 + 2 * 16 * 3
    assert config.forward_flops() == embed + qkv + scores + mix + out + mlp + head
    # The one block is the last: only the CLS token queries, all 5 tokens give keys and values.
    qkv, scores, mix, out, mlp = (
        2 * 1 * 8 * 8 + 2 * 5 * 8 * 16,
        2 * 1 * 5 * 8,
        2 * 1 * 5 * 8,
        2 * 1 * 8 * 8,
        2 * (2 * 1 * 8 * 16),
    )
    assert config.forward_flops(cls_only=True) == embed + qkv + scores + mix + out + mlp + head


def test_memory_estimate_grows_with_batch_and_model():
    small = ViTConfig(**SMALL)
    big = ViTConfig(**{**SMALL, "patch_size": 1, "depth": 12})
    assert estimated_training_memory_bytes(small, 256) > estimated_training_memory_bytes(small, 128)
    assert estimated_training_memory_bytes(big, 128) > 50 * estimated_training_memory_bytes(small, 128)


@pytest.mark.parametrize(
    "overrides, message",
    [
        (
            {"patch_size": 5},
            "image_size 28 is not divisible by patch_size 5: choose a patch_size that divides 28: 1, 2, 4, 7, 14, 28",
        ),
        ({"patch_size": 56}, "patch_size 56 is larger than image_size 28"),
        ({"heads": 5}, "dim 64 is not divisible by heads 5: choose heads from 1, 2, 4, 8, 16, 32, 64"),
        ({"dim": 0}, "dim must be at least 1, got 0"),
        ({"depth": -2}, "depth must be at least 1, got -2"),
        ({"mlp_dim": 2.5}, "mlp_dim must be a whole number, got 2.5"),
        ({"channels": 0}, "channels must be at least 1, got 0"),
        ({"dropout": 1.0}, "dropout must be in [0, 1), got 1.0"),
        ({"dim_head": 0}, "dim_head must be a whole number of at least 1"),
    ],
)
def test_invalid_hyperparameters_name_the_rule_and_valid_values(overrides, message):
    with pytest.raises(ValueError) as raised:
        make(**overrides)
    assert message in str(raised.value)


def test_heads_need_not_divide_dim_when_dim_head_is_given():
    model = make(heads=5, dim_head=16)
    assert model.transformer.layers[0].attention.to_qkv.out_features == 3 * 5 * 16
    assert model(torch.randn(2, 1, 28, 28)).shape == (2, 10)


def test_a_dataset_can_be_prepared_at_another_size_in_grey_or_colour_only():
    with pytest.raises(ValueError, match=r"channels must be 1 \(grey\) or 3 \(RGB\), got 2"):
        create_model("mnist", channels=2, patch_size=7, dim=32, depth=1, heads=2, mlp_dim=32)
    grey = create_model("cifar10", channels=1, image_size=16, patch_size=8, dim=32, depth=1, heads=2, mlp_dim=32)
    assert (grey.config.channels, grey.config.image_size, grey.config.patch_dim) == (1, 16, 64)


def test_the_model_itself_accepts_any_channel_count():
    assert make(channels=4)(torch.randn(1, 4, 28, 28)).shape == (1, 10)


@pytest.mark.parametrize("shape", [(2, 3, 28, 28), (2, 1, 32, 32), (1, 28, 28), (2, 1, 28, 27)])
def test_wrong_input_shape_says_what_was_expected(shape):
    with pytest.raises(ValueError) as raised:
        make()(torch.randn(*shape))
    assert "expected images of shape (batch, 1, 28, 28)" in str(raised.value)
    assert str(tuple(shape)) in str(raised.value)


def test_initial_predictions_are_near_uniform():
    # Small initial weights: an untrained model should not be confidently wrong.
    probabilities = make()(torch.randn(64, 1, 28, 28)).softmax(-1)
    assert probabilities.max() < 0.2


def test_a_model_saved_the_hugging_face_way_comes_back_with_its_config(tmp_path):
    """ViT takes one ViTConfig; the Hub mixin must still write it to config.json and rebuild it."""
    model = make(depth=3)
    model.save_pretrained(tmp_path)
    back = ViT.from_pretrained(str(tmp_path))
    assert back.config == model.config
    torch.testing.assert_close(back.pos_embedding, model.pos_embedding)
    assert SHAPE_FIELDS == ("patch_size", "dim", "depth", "heads", "mlp_dim")
