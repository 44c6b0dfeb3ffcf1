"""vit_demo.explain against hand computations on small fixed tensors and drawn images."""

from __future__ import annotations

import io
import math

import numpy as np
import pytest
import torch
from PIL import Image, ImageDraw, ImageOps

from vit_demo import data, explain, pictures
from vit_demo.model import ViT, ViTConfig, patchify

MNIST_INFO = {
    "dataset": "mnist",
    "class_names": [str(d) for d in range(10)],
    "mean": [0.1307],
    "std": [0.3081],
    "image_size": 28,
    "channels": 1,
    "test_accuracy": 0.0,
}
FASHION_INFO = {**MNIST_INFO, "dataset": "fashion_mnist", "mean": [0.2860], "std": [0.3530]}
CIFAR_INFO = {
    "dataset": "cifar10",
    "class_names": list(data.get_spec("cifar10").class_names),
    "mean": [0.4914, 0.4822, 0.4465],
    "std": [0.2470, 0.2435, 0.2616],
    "image_size": 32,
    "channels": 3,
    "test_accuracy": 0.0,
}


def tiny_model(**overrides) -> ViT:
    torch.manual_seed(0)
    settings = dict(image_size=28, patch_size=7, num_classes=10, dim=16, depth=2, heads=2, mlp_dim=32, channels=1)
    return ViT(ViTConfig(**{**settings, **overrides})).eval()


def drawn_seven(width: int = 200, height: int = 300, ink: int = 0, paper: int = 255) -> Image.Image:
    """A thick "7" drawn off-centre on a larger page."""
    image = Image.new("L", (width, height), paper)
    ImageDraw.Draw(image).line([(50, 50), (150, 50), (80, 250)], fill=ink, width=15)
    return image


def centre_of_mass(pixels: np.ndarray) -> tuple[float, float]:
    weights = pixels.astype(float)
    rows, cols = np.indices(pixels.shape)
    return float((weights * rows).sum() / weights.sum()), float((weights * cols).sum() / weights.sum())


def bounding_box_size(pixels: np.ndarray) -> tuple[int, int]:
    rows, cols = np.nonzero(pixels)
    return int(rows.max() - rows.min() + 1), int(cols.max() - cols.min() + 1)


# --------------------------------------------------------------------------- rollout

# Two layers, two heads, a 2x2 grid (5 tokens: CLS, patches 1-4), chosen so the rollout
# can be followed with pencil and paper.
E = torch.eye(5)
EVERYONE_TO_PATCH_0 = torch.zeros(5, 5).index_fill_(1, torch.tensor([1]), 1.0)  # column of token 1
EVERYONE_TO_LAST_PATCH = torch.zeros(5, 5).index_fill_(1, torch.tensor([4]), 1.0)
CLS_UNIFORM_OTHERS_SELF = torch.cat((torch.full((1, 5), 0.2), E[1:]))
TOY_ATTENTIONS = [
    torch.stack((E, EVERYONE_TO_PATCH_0))[None],
    torch.stack((EVERYONE_TO_LAST_PATCH, CLS_UNIFORM_OTHERS_SELF))[None],
]


def test_rollout_mean_fusion_by_hand():
    # Layer 1: (mean + I) / 2 gives CLS row [.75, .25, 0, 0, 0], patch 1 row e1, patch k row .75 e_k + .25 e1.
    # Layer 2: mean CLS row [.1, .1, .1, .1, .6] -> (.. + e0) / 2 = [.55, .05, .05, .05, .3].
    # CLS row of the product over patches: [.2875, .0375, .0375, .225]; divided by the max:
    expected = torch.tensor([[1.0, 3 / 23], [3 / 23, 18 / 23]])
    torch.testing.assert_close(explain.attention_rollout(TOY_ATTENTIONS, "mean")[0], expected)


def test_rollout_max_fusion_by_hand():
    # Layer 1 rows: CLS [2/3, 1/3, 0, 0, 0], patch 1 e1, patch k 1/3 e1 + 2/3 e_k.
    # Layer 2 CLS row: max = [.2, .2, .2, .2, 1] -> [.6, .1, .1, .1, .5] / 1.4.
    # Product over patches: [16, 2, 2, 10] / 42, then / its max:
    expected = torch.tensor([[1.0, 1 / 8], [1 / 8, 5 / 8]])
    torch.testing.assert_close(explain.attention_rollout(TOY_ATTENTIONS, "max")[0], expected)


def test_rollout_min_fusion_by_hand():
    # Layer 1: min of the heads is e1 e1^T only, so every row of (A + I) / 2 renormalised is e_k: the identity.
    # Layer 2 CLS row: min = [0, 0, 0, 0, .2] -> [.5, 0, 0, 0, .1] / .6: only the last patch.
    expected = torch.tensor([[0.0, 0.0], [0.0, 1.0]])
    torch.testing.assert_close(explain.attention_rollout(TOY_ATTENTIONS, "min")[0], expected)


CLS_ROW = torch.tensor([0.01, 0.04, 0.15, 0.3, 0.5])


def one_layer_with_cls_row(cls_row: torch.Tensor) -> torch.Tensor:
    return torch.cat((cls_row[None], torch.full((4, 5), 0.2)))[None, None]  # (1, 1, 5, 5)


def test_discard_zeroes_lowest_weights_but_keeps_cls_to_cls():
    # 25 weights, discard_ratio .12 -> the 3 lowest: .01 (CLS -> CLS, index 0: kept), .04 and .15.
    layer = explain.residual_attention(one_layer_with_cls_row(CLS_ROW), "mean", discard_ratio=0.12)
    torch.testing.assert_close(layer[0, 0], torch.tensor([0.505, 0.0, 0.0, 0.15, 0.25]) / 0.905)
    torch.testing.assert_close(layer[0, 1], torch.tensor([0.1, 0.6, 0.1, 0.1, 0.1]))
    rollout = explain.attention_rollout([one_layer_with_cls_row(CLS_ROW)], "mean", discard_ratio=0.12)
    torch.testing.assert_close(rollout[0], torch.tensor([[0.0, 0.0], [0.6, 1.0]]))


def test_without_discard_nothing_is_zeroed():
    rollout = explain.attention_rollout([one_layer_with_cls_row(CLS_ROW)], "mean")
    torch.testing.assert_close(rollout[0], torch.tensor([[0.08, 0.3], [0.6, 1.0]]))


def test_discard_is_decided_per_image():
    other_row = torch.tensor([0.2, 0.5, 0.1, 0.1, 0.1])
    batch = torch.cat((one_layer_with_cls_row(CLS_ROW), one_layer_with_cls_row(other_row)))
    together = explain.residual_attention(batch, "mean", discard_ratio=0.12)
    for index, row in enumerate((CLS_ROW, other_row)):
        alone = explain.residual_attention(one_layer_with_cls_row(row), "mean", discard_ratio=0.12)
        torch.testing.assert_close(together[index], alone[0])


def random_attentions(batch=2, layers=3, heads=4, grid=3, seed=0) -> list[torch.Tensor]:
    generator = torch.Generator().manual_seed(seed)
    tokens = grid * grid + 1
    return [
        torch.softmax(torch.randn(batch, heads, tokens, tokens, generator=generator) * 3, dim=-1) for _ in range(layers)
    ]


@pytest.mark.parametrize("head_fusion", explain.HEAD_FUSIONS)
@pytest.mark.parametrize("discard_ratio", [0.0, 0.5, 0.9])
def test_per_layer_rows_sum_to_one_and_rollout_is_scaled_to_max_one(head_fusion, discard_ratio):
    attentions = random_attentions()
    for attention in attentions:
        layer = explain.residual_attention(attention, head_fusion, discard_ratio)
        torch.testing.assert_close(layer.sum(dim=-1), torch.ones(2, 10))
        assert (layer[:, 0, 0] > 0).all()
    rollout = explain.attention_rollout(attentions, head_fusion, discard_ratio)
    assert rollout.shape == (2, 3, 3)
    assert rollout.min() >= 0
    torch.testing.assert_close(rollout.amax(dim=(1, 2)), torch.ones(2))


@pytest.mark.parametrize("bad", [dict(head_fusion="median"), dict(discard_ratio=1.0), dict(discard_ratio=-0.1)])
def test_rollout_rejects_bad_settings(bad):
    with pytest.raises(ValueError):
        explain.attention_rollout(random_attentions(), **bad)


def test_rollout_rejects_non_square_token_count():
    with pytest.raises(ValueError, match="square grid"):
        explain.attention_rollout([torch.full((1, 1, 6, 6), 1 / 6)])


# --------------------------------------------------------------------------- CLS attention


def test_cls_attention_reads_the_cls_row_in_patch_order():
    attentions = random_attentions(grid=3)
    one_head = explain.token_attention(attentions, layer=2, head=1)
    assert one_head.shape == (2, 3, 3)
    # The patch at row 1, column 2 is patch 5, i.e. token 6.
    assert one_head[0, 1, 2] == attentions[2][0, 1, 0, 6]
    head_mean = explain.token_attention(attentions, layer=0)
    torch.testing.assert_close(head_mean[1, 2, 0], attentions[0][1, :, 0, 7].mean())
    maps = explain.cls_attention_maps(attentions)
    assert maps.shape == (2, 3, 4, 3, 3)
    torch.testing.assert_close(maps[:, 2, 1], one_head)


@pytest.mark.parametrize(
    "layer, head, message",
    [
        (3, None, "layer must be between 0 and 2"),
        (-1, 0, "layer must be"),
        (0, 4, "head must be between 0 and 3"),
        (0, -1, "head"),
    ],
)
def test_cls_attention_out_of_range(layer, head, message):
    with pytest.raises(ValueError, match=message):
        explain.token_attention(random_attentions(), layer, head)


# --------------------------------------------------------------------------- distances and positions


def one_hot_attention(grid: int, key_patch: int, cls_weight: float = 0.0) -> torch.Tensor:
    """Every query gives `1 - cls_weight` to one patch key and the rest to the CLS token."""
    tokens = grid * grid + 1
    attention = torch.zeros(1, 1, tokens, tokens)
    attention[..., 1 + key_patch] = 1.0 - cls_weight
    attention[..., 0] += cls_weight
    return attention


@pytest.mark.parametrize("cls_weight", [0.0, 0.5])
def test_attention_distance_of_one_hot_attention_is_the_pixel_distance(cls_weight):
    # 2x2 grid of 7-pixel patches, everyone looks at the top-left patch: the queries are
    # 0, 7, 7 and 7*sqrt(2) pixels away. The CLS token's share is left out and renormalised.
    self_attention = torch.eye(5)[None, None]
    attentions = [torch.cat((one_hot_attention(2, 0, cls_weight), self_attention), dim=1)]
    distances = explain.attention_distance(attentions, patch_size=7)
    assert distances.shape == (1, 2)
    torch.testing.assert_close(distances[0], torch.tensor([(14 + 7 * math.sqrt(2)) / 4, 0.0]))


def test_attention_distance_averages_layers_separately_and_over_images():
    near = one_hot_attention(3, 4)  # the centre patch of a 3x3 grid
    far = one_hot_attention(3, 0)
    distances = explain.attention_distance([torch.cat((near, far)), far], patch_size=4)
    centre_mean = 4 * (4 * 1 + 4 * math.sqrt(2)) / 9
    corner_mean = 4 * (0 + 2 * 1 + 2 * 2 + math.sqrt(2) + 2 * math.sqrt(5) + math.sqrt(8)) / 9
    torch.testing.assert_close(distances[:, 0], torch.tensor([(centre_mean + corner_mean) / 2, corner_mean]))


def test_position_similarity_self_is_one_symmetric_and_laid_out_by_row_and_column():
    model = tiny_model()
    with torch.no_grad():
        model.pos_embedding.normal_()
        model.pos_embedding[0, 1 + 1] = model.pos_embedding[0, 1 + 4]  # patch (0, 1) == patch (1, 0)
        model.pos_embedding[0, 1 + 15] = -model.pos_embedding[0, 1 + 0]  # patch (3, 3) == -patch (0, 0)
    similarity = explain.position_similarity(model)
    assert similarity.shape == (4, 4, 4, 4)
    flat = similarity.reshape(16, 16)
    torch.testing.assert_close(flat.diagonal(), torch.ones(16))
    torch.testing.assert_close(flat, flat.T)
    torch.testing.assert_close(similarity[0, 1, 1, 0], torch.tensor(1.0))
    torch.testing.assert_close(similarity[3, 3, 0, 0], torch.tensor(-1.0))


def test_position_similarity_by_hand():
    model = tiny_model()
    with torch.no_grad():
        model.pos_embedding.zero_()
        model.pos_embedding[0, 0, 5] = 9.0  # the CLS token's embedding must not matter
        model.pos_embedding[0, 1:, 0] = 1.0
        model.pos_embedding[0, 2, 1] = 1.0  # patch 1 = (1, 1, 0...): cos with the others = 1/sqrt(2)
    similarity = explain.position_similarity(model)
    torch.testing.assert_close(similarity[0, 0, 0, 1], torch.tensor(1 / math.sqrt(2)))
    torch.testing.assert_close(similarity[2, 3, 0, 0], torch.tensor(1.0))


# --------------------------------------------------------------------------- filters and patches


def test_embedding_filters_find_the_dominant_pattern_in_patch_layout():
    model = tiny_model(image_size=8, patch_size=4, channels=3, dim=16)
    pattern = torch.zeros(4, 4, 3)
    pattern[2, 1, 1] = 1.0  # pixel row 2, column 1, green: index (2 * 4 + 1) * 3 + 1 of a patch vector
    generator = torch.Generator().manual_seed(0)
    strengths = torch.randn(16, 1, generator=generator) * 5
    with torch.no_grad():
        model.patch_to_embedding.weight.copy_(
            strengths * pattern.flatten() + 0.01 * torch.randn(16, 48, generator=generator)
        )
    filters = explain.embedding_filters(model, 3)
    assert filters.shape == (3, 3, 4, 4)
    assert filters[0, 1, 2, 1] > 0.99
    flat = filters.reshape(3, -1)
    torch.testing.assert_close(flat @ flat.T, torch.eye(3), atol=1e-5, rtol=0)


def test_embedding_filters_are_the_covariance_eigenvectors():
    model = tiny_model()
    weights = model.patch_to_embedding.weight.detach().double()
    centred = weights - weights.mean(dim=0)
    _, eigenvectors = torch.linalg.eigh(centred.T @ centred)
    top = eigenvectors[:, -2:].flip(-1).T.float()  # eigh sorts ascending
    filters = explain.embedding_filters(model, 2).reshape(2, -1)  # C = 1: (p, p) flattens as patchify does
    torch.testing.assert_close((filters * top).sum(dim=1).abs(), torch.ones(2), atol=1e-4, rtol=0)


@pytest.mark.parametrize("k", [0, 17])
def test_embedding_filters_rejects_k_out_of_range(k):
    with pytest.raises(ValueError, match="k must be between 1 and 16"):
        explain.embedding_filters(tiny_model(), k)


@pytest.mark.parametrize("channels, size, patch", [(1, 28, 7), (3, 12, 4)])
def test_patch_grid_agrees_with_patchify(channels, size, patch):
    image = torch.randn(channels, size, size)
    patches = explain.patch_grid(image, patch)
    n = (size // patch) ** 2
    assert patches.shape == (n, channels, patch, patch)
    torch.testing.assert_close(patches.permute(0, 2, 3, 1).reshape(n, -1), patchify(image[None], patch)[0])
    torch.testing.assert_close(explain.patch_grid(image[None], patch), patches)
    torch.testing.assert_close(patches[1], image[:, :patch, patch : 2 * patch])  # patch 1: first row, second column


def test_patch_grid_rejects_indivisible_sizes():
    with pytest.raises(ValueError, match="cannot be cut"):
        explain.patch_grid(torch.zeros(1, 28, 28), 5)


# --------------------------------------------------------------------------- preprocessing


def test_dark_digit_on_paper_becomes_an_mnist_digit():
    shown = pictures.preprocess(drawn_seven(), MNIST_INFO)
    assert shown.tensor.shape == (1, 1, 28, 28) and shown.tensor.dtype == torch.float32
    assert shown.display.shape == (28, 28) and shown.display.dtype == np.uint8
    pixels = shown.display
    assert pixels.max() >= 250  # white ink
    assert np.median(pixels) == 0 and pixels[0].max() == pixels[-1].max() == 0  # black paper
    assert max(bounding_box_size(pixels)) in (19, 20)
    row, col = centre_of_mass(pixels)
    assert abs(row - 14) <= 0.5 and abs(col - 14) <= 0.5
    expected = (torch.from_numpy(pixels).float() / 255 - 0.1307) / 0.3081
    torch.testing.assert_close(shown.tensor[0, 0], expected)


def test_light_digit_on_dark_paper_is_not_inverted():
    light = pictures.preprocess(drawn_seven(ink=255, paper=0), MNIST_INFO).display
    dark = pictures.preprocess(drawn_seven(), MNIST_INFO).display
    np.testing.assert_array_equal(light, dark)


def test_grey_paper_and_grey_ink_are_stretched_to_black_and_white():
    photo = pictures.preprocess(drawn_seven(ink=90, paper=200), MNIST_INFO).display
    clean = pictures.preprocess(drawn_seven(), MNIST_INFO).display
    assert np.abs(photo.astype(int) - clean).max() <= 2


def test_noise_on_the_paper_does_not_move_the_bounding_box():
    page = np.asarray(drawn_seven(), dtype=float)
    noisy = page + np.random.default_rng(0).normal(0, 8, page.shape)
    shown = pictures.preprocess(Image.fromarray(noisy.clip(0, 255).astype(np.uint8)), MNIST_INFO).display
    assert max(bounding_box_size(shown > 64)) in (19, 20)


def test_an_mnist_digit_passes_unchanged():
    # A small digit on black, already 28x28: it must not be blown up to the 20x20 box.
    digit = Image.new("L", (28, 28), 0)
    ImageDraw.Draw(digit).line([(11, 9), (17, 9), (13, 19)], fill=255, width=2)
    np.testing.assert_array_equal(pictures.preprocess(digit, MNIST_INFO).display, np.asarray(digit))


def test_real_mnist_digits_pass_unchanged(data_dir):
    split = data.load_split("mnist", train=False, data_dir=data_dir, limit=50, download=False)
    for image in split.images[:, 0].numpy():
        np.testing.assert_array_equal(pictures.preprocess(Image.fromarray(image), MNIST_INFO).display, image)


def test_an_inverted_mnist_sized_digit_is_inverted():
    digit = Image.new("L", (28, 28), 255)
    ImageDraw.Draw(digit).line([(8, 4), (20, 4), (12, 24)], fill=0, width=2)
    shown = pictures.preprocess(digit, MNIST_INFO).display
    assert shown[0].max() == 0 and shown.max() >= 250


def rgba_strokes(colour: tuple[int, int, int], background_colour: tuple[int, int, int]) -> Image.Image:
    """The "7" in `colour` on a fully transparent background whose hidden colour is `background_colour`."""
    mask = np.asarray(drawn_seven(ink=255, paper=0)) / 255.0
    rgba = np.zeros((*mask.shape, 4))
    rgba[..., :3] = np.where(mask[..., None] > 0, colour, background_colour)
    rgba[..., 3] = mask * 255
    return Image.fromarray(rgba.astype(np.uint8), "RGBA")


@pytest.mark.parametrize(
    "stroke, hidden", [((0, 0, 0), (0, 0, 0)), ((255, 255, 255), (255, 255, 255)), ((20, 20, 200), (255, 255, 255))]
)
def test_strokes_on_a_transparent_canvas_are_read_whatever_their_colour(stroke, hidden):
    expected = pictures.preprocess(drawn_seven(), MNIST_INFO).display
    shown = pictures.preprocess(rgba_strokes(stroke, hidden), MNIST_INFO).display
    assert np.abs(shown.astype(int) - expected).max() <= 2


def save_and_reopen(image: Image.Image, **save_options) -> Image.Image:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG", **save_options)
    buffer.seek(0)
    return Image.open(buffer)


def as_mode(mode: str) -> Image.Image:
    page = drawn_seven()
    if mode == "I;16":
        return Image.fromarray(np.asarray(page).astype(np.uint16) * 257)
    if mode == "I":
        return Image.fromarray(np.asarray(page).astype(np.int32) * 257)
    if mode == "F":
        return Image.fromarray(np.asarray(page).astype(np.float32) / 255)
    if mode == "P-transparent":
        palette = page.convert("RGB").convert("P")
        return save_and_reopen(palette, transparency=palette.getpixel((0, 0)))  # the paper's index
    return page.convert(mode)


@pytest.mark.parametrize(
    "mode", ["1", "L", "LA", "RGB", "RGBA", "P", "P-transparent", "CMYK", "YCbCr", "I;16", "I", "F"]
)
def test_every_image_mode_gives_the_same_digit(mode):
    image = as_mode(mode)
    assert image.mode == {"P-transparent": "P"}.get(mode, mode)
    expected = pictures.preprocess(drawn_seven(), MNIST_INFO).display
    shown = pictures.preprocess(image, MNIST_INFO).display
    assert np.abs(shown.astype(int) - expected).max() <= (40 if mode == "1" else 2)  # "1" loses the anti-aliasing


@pytest.mark.parametrize(
    "mode, value, expected", [("I;16", 32896, 128), ("I", 65535, 255), ("I", 200, 200), ("F", 0.5, 128)]
)
def test_high_bit_depth_is_scaled_not_clipped(mode, value, expected):
    image = Image.new(mode, (40, 48), value)
    shown = pictures.preprocess(image, CIFAR_INFO).display
    assert shown.shape == (32, 32, 3)
    assert np.all(shown == expected)


def test_exif_rotation_is_applied():
    upright = drawn_seven()
    exif = Image.Exif()
    exif[0x0112] = 6  # orientation: the stored pixels must be turned 90 degrees clockwise to view
    stored = save_and_reopen(upright.transpose(Image.Transpose.ROTATE_90), exif=exif)
    np.testing.assert_array_equal(
        pictures.preprocess(stored, MNIST_INFO).display, pictures.preprocess(upright, MNIST_INFO).display
    )


@pytest.mark.parametrize(
    "blank",
    [
        Image.new("L", (50, 50), 255),
        Image.new("L", (50, 50), 0),
        Image.new("RGB", (50, 50), (128, 128, 128)),
        Image.new("RGBA", (50, 50), (0, 0, 0, 0)),
        Image.new("L", (28, 28), 255),
    ],
)
@pytest.mark.parametrize("info", [MNIST_INFO, FASHION_INFO])
def test_a_blank_page_gives_a_blank_input(blank, info):
    shown = pictures.preprocess(blank, info)
    np.testing.assert_array_equal(shown.display, np.zeros((28, 28), np.uint8))


def test_a_blank_photo_stays_one_colour():
    shown = pictures.preprocess(Image.new("RGB", (50, 40), (10, 200, 30)), CIFAR_INFO).display
    np.testing.assert_array_equal(shown, np.broadcast_to(np.array([10, 200, 30], np.uint8), (32, 32, 3)))


def test_a_very_wide_image_is_scaled_into_the_box():
    wide = Image.new("L", (4000, 100), 255)
    ImageDraw.Draw(wide).line([(100, 50), (3900, 50)], fill=0, width=20)
    shown = pictures.preprocess(wide, MNIST_INFO).display
    height, width = bounding_box_size(shown)
    assert width in (19, 20) and height <= 2


def test_fashion_item_fills_the_frame_centred():
    page = Image.new("L", (300, 300), 250)
    ImageDraw.Draw(page).rectangle([(20, 40), (90, 249)], fill=30)  # 71 x 210: a trouser leg off to the left
    shown = pictures.preprocess(page, FASHION_INFO).display
    rows, cols = np.nonzero(shown > 128)
    assert rows.min() == 0 and rows.max() == 27
    assert abs((cols.min() + cols.max()) / 2 - 13.5) <= 0.5
    assert cols.max() - cols.min() + 1 in (9, 10)  # 71 / 210 of 28


def test_natural_photo_is_resized_on_its_short_side_and_centre_cropped():
    photo = np.zeros((50, 100, 3), np.uint8)
    photo[:, :50] = (255, 0, 0)
    photo[:, 50:] = (0, 0, 255)
    photo[:, :25] = (0, 255, 0)  # cropped away: 25 of 100 columns become 16 of 64
    shown = pictures.preprocess(Image.fromarray(photo), CIFAR_INFO).display
    assert shown.shape == (32, 32, 3)
    # Away from the colour edges (where the resize blends neighbours) the colours are exact
    # but for a grey level of Lanczos ringing.
    np.testing.assert_allclose(shown[:, 2:14], np.broadcast_to([255, 0, 0], (32, 12, 3)), atol=1)
    np.testing.assert_allclose(shown[:, 18:30], np.broadcast_to([0, 0, 255], (32, 12, 3)), atol=1)
    assert pictures.preprocess(Image.fromarray(photo), CIFAR_INFO).tensor.shape == (1, 3, 32, 32)


def test_preprocess_rejects_non_images_and_empty_ones():
    with pytest.raises(TypeError, match="PIL image"):
        pictures.preprocess(np.zeros((28, 28)), MNIST_INFO)
    with pytest.raises(ValueError, match="no pixels"):
        pictures.preprocess(Image.new("L", (0, 0)), MNIST_INFO)


def test_image_size_and_channels_default_to_the_dataset():
    info = {key: MNIST_INFO[key] for key in ("dataset", "class_names", "mean", "std")}
    np.testing.assert_array_equal(
        pictures.preprocess(drawn_seven(), info).display, pictures.preprocess(drawn_seven(), MNIST_INFO).display
    )


# --------------------------------------------------------------------------- prediction


def test_predict_ranks_the_softmax_of_the_preprocessed_input():
    model = tiny_model()
    image = drawn_seven()
    with torch.no_grad():
        probabilities = torch.softmax(model(pictures.preprocess(image, MNIST_INFO).tensor)[0], dim=-1)
    predictions = explain.predict(model, MNIST_INFO, image, top_k=3)
    assert [name for name, _ in predictions] == [str(int(i)) for i in probabilities.argsort(descending=True)[:3]]
    torch.testing.assert_close(
        torch.tensor([p for _, p in predictions]), probabilities.sort(descending=True).values[:3]
    )
    everything = dict(explain.predict(model, MNIST_INFO, image, top_k=50))
    assert len(everything) == 10 and abs(sum(everything.values()) - 1) < 1e-5


def test_predict_rejects_top_k_below_one():
    with pytest.raises(ValueError, match="top_k"):
        explain.predict(tiny_model(), MNIST_INFO, drawn_seven(), top_k=0)


def test_explain_serves_every_figure_from_one_forward_pass():
    model = tiny_model()
    explanation = explain.explain(model, MNIST_INFO, drawn_seven(), head_fusion="max", discard_ratio=0.5)
    assert len(explanation.attentions) == 2 and explanation.attentions[0].shape == (1, 2, 17, 17)
    torch.testing.assert_close(explanation.rollout, explain.attention_rollout(explanation.attentions, "max", 0.5)[0])
    # predict() skips the last block's patch queries; the same numbers up to rounding.
    served, predicted = explanation.top_predictions(3), explain.predict(model, MNIST_INFO, drawn_seven(), top_k=3)
    assert [name for name, _ in served] == [name for name, _ in predicted]
    assert [p for _, p in served] == pytest.approx([p for _, p in predicted], abs=1e-6)
    assert explanation.class_names == tuple(MNIST_INFO["class_names"])


# --------------------------------------------------------------------------- a trained model


def accuracy_points(predicted_names: list[str], labels: torch.Tensor, class_names) -> float:
    return 100.0 * float(np.mean([name == class_names[label] for name, label in zip(predicted_names, labels.tolist())]))


def as_photographed(digit: Image.Image) -> Image.Image:
    """An MNIST digit as a user would upload it: dark ink on white paper, with a margin,
    photographed at 8x the size, in colour."""
    on_paper = ImageOps.invert(ImageOps.expand(digit, border=14))
    return on_paper.resize((448, 448), Image.Resampling.BICUBIC).convert("RGB")


@pytest.mark.slow
@pytest.mark.parametrize(
    "upload, tolerance",
    [
        (lambda digit: digit, 0.5),
        # Re-cropping and resampling a photographed digit flips a few borderline ones.
        (as_photographed, 1.0),
    ],
    ids=["as-is", "photographed"],
)
def test_pictures_through_preprocess_score_as_the_raw_tensors(mnist_model, data_dir, upload, tolerance):
    model, info = mnist_model
    split = data.load_split("mnist", train=False, data_dir=data_dir, limit=1000, download=False)
    with torch.no_grad():
        raw = model(data.normalize(split.images, data.get_spec("mnist"))).argmax(dim=1)
    raw_points = accuracy_points([info["class_names"][i] for i in raw.tolist()], split.labels, info["class_names"])
    uploads = [upload(Image.fromarray(image)) for image in split.images[:, 0].numpy()]
    as_pictures = [explain.predict(model, info, picture, top_k=1)[0][0] for picture in uploads]
    assert abs(accuracy_points(as_pictures, split.labels, info["class_names"]) - raw_points) <= tolerance
