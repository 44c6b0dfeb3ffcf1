"""Render every figure of `vit_demo.plots` for one model into a folder, to look at them.

    python -m tools.render_figures OUT_DIR [--checkpoint PATH] [--seconds 60] [--dpi 100]

With --checkpoint the model comes from `vit_demo.checkpoints.load`; without it a small
MNIST model is trained here for --seconds with the app's own training loop. Each per-image figure is drawn for a
dark "7" drawn on light paper (so the preprocessing has work to do) and, for greyscale
datasets, for the first test image.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch
from PIL import Image, ImageDraw

from vit_demo import checkpoints, data, explain, plots, training_plots
from vit_demo.machine import configure_threads
from vit_demo.model import ViT
from vit_demo.training import TrainConfig, create_model, evaluate, train


def train_quick_mnist(seconds: float, data_dir: str | None) -> tuple[ViT, dict]:
    """A small MNIST model and its info."""
    model = create_model("mnist", seed=0, patch_size=7, dim=64, depth=4, heads=4, mlp_dim=128)
    *_, final = train(model, TrainConfig(dataset="mnist", time_budget=seconds, train_limit=20000, data_dir=data_dir))
    info = checkpoints.default_info("mnist")
    info.update(test_accuracy=final.test_accuracy, image_size=28, channels=1)
    return model, info


def drawn_seven(size: int = 280) -> Image.Image:
    """A thick dark "7" off centre on off-white paper, as a phone photo of a drawing might be."""
    image = Image.new("RGB", (size, size), (235, 232, 225))
    ImageDraw.Draw(image).line([(70, 60), (200, 60), (120, 240)], fill=(30, 30, 40), width=18)
    return image


def build_figures(model: ViT, info: dict, data_dir: str | None) -> dict:
    """Every figure the app shows for this model, by file name."""
    config = model.config
    spec = data.get_spec(info["dataset"])
    test = data.load_split(spec.key, train=False, data_dir=data_dir, limit=1000)
    inputs = {"drawn": drawn_seven()}
    if spec.channels == 1:
        inputs["test0"] = Image.fromarray(test.images[0, 0].numpy())
    figures = {}
    for name, image in inputs.items():
        explanation = explain.explain(model, info, image)
        shown = explanation.preprocessed.display
        maps = explain.cls_attention_maps(explanation.attentions)[0]
        figures[f"{name}_patch_grid"] = plots.plot_patch_grid(shown, config)
        figures[f"{name}_rollout"] = plots.plot_attribution(
            shown, explanation.rollout, explain.ATTRIBUTIONS["rollout"], "every class"
        )
        figures[f"{name}_cls_attention"] = plots.plot_token_attention(
            shown, maps[-1, 0], layer=config.depth - 1, head=0, patch=None
        )
        figures[f"{name}_attention_overview"] = plots.plot_attention_overview(shown, maps)
    with torch.no_grad():
        _, attentions = model(data.normalize(test.images[:256], spec), return_attention=True)
    _, _, confusion = evaluate(model, test, spec, with_confusion=True)
    figures["position_similarity"] = plots.plot_position_similarity(explain.position_similarity(model))
    figures["embedding_filters"] = plots.plot_embedding_filters(
        explain.embedding_filters(model, min(28, config.dim, config.patch_dim))
    )
    figures["attention_distance"] = plots.plot_attention_distance(
        explain.attention_distance(attentions, config.patch_size), config.patch_size, config.image_size
    )
    figures["confusion_matrix"] = training_plots.plot_confusion_matrix(confusion, info["class_names"])
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("out_dir", type=Path)
    parser.add_argument("--checkpoint", help="a saved model; without it a quick MNIST model is trained")
    parser.add_argument("--seconds", type=float, default=60.0, help="training time for the quick model")
    parser.add_argument("--data-dir", help="dataset folder (default: $VIT_DEMO_DATA, else the user cache)")
    parser.add_argument("--dpi", type=int, default=plots.DEFAULT_DPI)
    args = parser.parse_args()
    configure_threads()
    if args.checkpoint:
        model, info = checkpoints.load(args.checkpoint)
    else:
        model, info = train_quick_mnist(args.seconds, args.data_dir)
    args.out_dir.mkdir(parents=True, exist_ok=True)
    for name, figure in build_figures(model, info, args.data_dir).items():
        path = args.out_dir / f"{name}.png"
        plots.figure_to_image(figure, args.dpi).save(path)
        print(path)


if __name__ == "__main__":
    main()
