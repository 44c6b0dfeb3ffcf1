"""vit_demo.plots: every figure builds, has a title, renders, stays readable and is freed."""

from __future__ import annotations

import gc
import math
import subprocess
import sys
import weakref

import numpy as np
import pytest
import torch
from matplotlib.figure import Figure
from matplotlib.text import Text
from PIL import Image

from vit_demo import explain, faithfulness, plots, training_plots
from vit_demo.model import ViT, ViTConfig
from vit_demo.patch_maths import patch_maths

CLASS_NAMES = ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"]


def small_model(image_size: int, patch_size: int, channels: int) -> ViT:
    torch.manual_seed(0)
    config = ViTConfig(
        image_size=image_size,
        patch_size=patch_size,
        num_classes=10,
        dim=32,
        depth=3,
        heads=4,
        mlp_dim=64,
        channels=channels,
    )
    return ViT(config).eval()


def example_display(image_size: int, channels: int) -> np.ndarray:
    pixels = np.zeros((image_size, image_size, 3), np.uint8)
    pixels[image_size // 4 : 3 * image_size // 4, image_size // 3 : image_size // 2] = (250, 200, 30)
    return pixels[..., 0] if channels == 1 else pixels


def all_figures(image_size: int, patch_size: int, channels: int) -> dict[str, Figure]:
    model = small_model(image_size, patch_size, channels)
    display = example_display(image_size, channels)
    pixels = torch.from_numpy(display.reshape(image_size, image_size, channels).transpose(2, 0, 1).copy()).float()[None]
    with torch.no_grad():
        _, attentions = model(pixels / 255, return_attention=True)
    maps = explain.cls_attention_maps(attentions)[0]
    return {
        "confusion": training_plots.plot_confusion_matrix(
            torch.randint(0, 120, (10, 10), generator=torch.Generator().manual_seed(0)), CLASS_NAMES
        ),
        "patch_grid": plots.plot_patch_grid(display, model.config),
        "position_similarity": plots.plot_position_similarity(explain.position_similarity(model)),
        "filters": plots.plot_embedding_filters(explain.embedding_filters(model, 10)),
        "rollout": plots.plot_attribution(
            display, explain.attention_rollout(attentions)[0], explain.ATTRIBUTIONS["rollout"], "every class"
        ),
        "occlusion": plots.plot_attribution(
            display, explain.occlusion_sensitivity(model, pixels / 255, 3, torch.zeros(channels)), "Occlusion", "3"
        ),
        "faithfulness": plots.plot_faithfulness(
            faithfulness.faithfulness(
                model, pixels / 255, 3, explain.attention_rollout(attentions)[0], torch.zeros(channels)
            ),
            "Ankle boot",
        ),
        "patch_maths": plots.plot_patch_maths(patch_maths(model, pixels / 255, patch=2, layer=1, head=3)),
        "query_overview": plots.plot_attention_overview(display, explain.attention_maps(attentions, 3)[0], patch=2),
        "cls_attention": plots.plot_token_attention(display, maps[1, 2], layer=1, head=2, patch=None),
        "cls_attention_head_mean": plots.plot_token_attention(display, maps[0].mean(0), layer=0, head=None, patch=None),
        "patch_attention": plots.plot_token_attention(display, maps[0, 1], layer=0, head=1, patch=5),
        "overview": plots.plot_attention_overview(display, maps),
        "distance": plots.plot_attention_distance(
            explain.attention_distance(attentions, patch_size), patch_size, image_size
        ),
    }


# MNIST's default model, and a CIFAR-sized colour model with an 8x8 grid of patches.
SHAPES = [(28, 7, 1), (32, 4, 3)]


@pytest.mark.parametrize("image_size, patch_size, channels", SHAPES)
def test_every_figure_has_a_title_readable_text_and_nothing_clipped(image_size, patch_size, channels):
    for name, figure in all_figures(image_size, patch_size, channels).items():
        assert isinstance(figure, Figure), name
        assert figure.get_suptitle(), f"{name} has no title"
        figure.canvas.draw()
        renderer = figure.canvas.get_renderer()
        for text in figure.findobj(Text):
            if text.get_visible() and text.get_text().strip():
                assert text.get_fontsize() >= 10, f"{name}: {text.get_text()!r} is {text.get_fontsize()} pt"
        drawn = figure.get_tightbbox(renderer).transformed(figure.dpi_scale_trans)  # what was drawn, in pixels
        edge = figure.bbox
        assert drawn.x0 >= -1 and drawn.y0 >= -1 and drawn.x1 <= edge.x1 + 1 and drawn.y1 <= edge.y1 + 1, (
            f"{name} is cut off"
        )


def test_figure_to_image_renders_at_the_dpi_and_frees_the_figure():
    figure = training_plots.plot_confusion_matrix(torch.eye(3), ["a", "b", "c"])
    width, height = figure.get_size_inches()
    image = plots.figure_to_image(figure, dpi=50)
    assert isinstance(image, Image.Image) and image.mode == "RGB"
    assert image.size == (round(width * 50), round(height * 50))
    assert np.asarray(image).std() > 0  # something was drawn
    assert not figure.axes  # cleared
    alive = weakref.ref(figure)
    del figure
    gc.collect()
    assert alive() is None


def test_figures_are_freed_once_rendered():
    references = []
    for figure in all_figures(28, 7, 1).values():
        plots.figure_to_image(figure, dpi=30)
        references.append(weakref.ref(figure))
    del figure
    gc.collect()
    assert all(reference() is None for reference in references)


def test_library_never_imports_pyplot_or_gradio():
    code = (
        "import sys, vit_demo.explain, vit_demo.plots; "
        "loaded = [m for m in ('matplotlib.pyplot', 'gradio') if m in sys.modules]; "
        "assert not loaded, loaded"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_attention_distance_draws_one_set_of_dots_per_head_within_the_axes():
    distances = torch.tensor([[3.0, 9.0]])
    figure = plots.plot_attention_distance(distances, patch_size=7, image_size=28)
    ax = figure.axes[0]
    assert len(ax.collections) == 2
    assert ax.get_ylim() == (0.0, pytest.approx(21 * math.sqrt(2)))  # the farthest two patch centres of a 4x4 grid


def test_attention_distance_axis_grows_to_fit_a_single_patch_grid():
    figure = plots.plot_attention_distance(torch.tensor([[0.0]]), patch_size=28, image_size=28)
    assert figure.axes[0].get_ylim()[1] > 0
