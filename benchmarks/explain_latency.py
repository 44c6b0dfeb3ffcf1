"""How long the Explain tab takes for one uploaded picture, end to end.

    python -m benchmarks.explain_latency [--runs 20] [--dpi 100] [--threads 1] [--checkpoint PATH]

One run = preprocess + one forward pass with attention + rollout (`explain.explain`); then
each map alone, for the predicted class (rollout, gradient x attention, occlusion), the
faithfulness curves of the gradient map (its deletion and insertion curves and the random
orders'), and one patch's maths; then every figure drawn and rendered to an image: the
per-picture ones (prediction bars, patch grid, rollout, one head's CLS attention, all heads)
and the per-model ones (positional similarity, embedding filters, attention distance), which
the app caches per model. Prints the median and 95th percentile of each part and of the total, in ms of wall time,
and the total's CPU time.
The default model is the app's MNIST default: image 28, patch 7, dim 64, depth 4, heads 4,
mlp 128 (its weights do not change the timing; pass --checkpoint to time a saved one).

Measured 2026-11-28 on the shared 2-core development machine (another developer's
training kept one core busy), 20 runs, dpi 100, 1600x1200 upload:
- 1 torch thread: explain 25 ms, per-picture figures 420 ms, per upload 446 ms
  (p95 570), per-model figures 254 ms, everything 764 ms (p95 932).
- 2 torch threads: explain 408 ms instead of 25: each tiny parallel op waits for a core
  the other process holds. The forward pass alone is <1 ms on one thread.
Matplotlib is the cost: ~40% of drawing is constrained layout, the rest text and
axes; the per-model figures depend only on the weights, so the app should draw them
once per model rather than per upload.
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch
from PIL import Image, ImageDraw

from tools.harness import percentile
from vit_demo import checkpoints, experiments, explain, faithfulness, plots
from vit_demo.model import ViT, ViTConfig
from vit_demo.patch_maths import patch_maths


def uploaded_photo() -> Image.Image:
    """A phone-sized photo of a dark "7" on paper: the preprocessing's heaviest common case."""
    image = Image.new("RGB", (1600, 1200), (228, 225, 218))
    ImageDraw.Draw(image).line([(600, 300), (1000, 300), (720, 950)], fill=(35, 35, 45), width=60)
    return image


def per_picture_figures(model: ViT, explanation: explain.Explanation) -> list:
    shown = explanation.preprocessed.display
    maps = explain.cls_attention_maps(explanation.attentions)[0]
    return [
        plots.plot_patch_grid(shown, model.config),
        plots.plot_attribution(shown, explanation.rollout, explain.ATTRIBUTIONS["rollout"], "every class"),
        plots.plot_token_attention(shown, maps[-1, 0], layer=model.config.depth - 1, head=0, patch=None),
        plots.plot_attention_overview(shown, maps),
    ]


def per_model_figures(model: ViT, explanation: explain.Explanation) -> list:
    config = model.config
    return [
        plots.plot_position_similarity(explain.position_similarity(model)),
        plots.plot_embedding_filters(explain.embedding_filters(model, min(28, config.dim, config.patch_dim))),
        plots.plot_attention_distance(
            explain.attention_distance(explanation.attentions, config.patch_size), config.patch_size, config.image_size
        ),
    ]


def one_run(model: ViT, info: dict, photo: Image.Image, dpi: int) -> dict[str, float]:
    times = {}
    start, start_cpu = time.perf_counter(), time.process_time()
    explanation = explain.explain(model, info, photo)
    times["explain (preprocess + predict + rollout)"] = time.perf_counter() - start
    tensor, target = explanation.preprocessed.tensor, int(explanation.probabilities.argmax())
    fill = experiments.background_value(info)
    maps = {}
    for method in ("rollout", "gradient", "occlusion"):
        begun = time.perf_counter()
        maps[method] = explain.attribution(model, tensor, method, target, fill)
        times[f"map: {method}"] = time.perf_counter() - begun
    begun = time.perf_counter()
    faithfulness.faithfulness(model, tensor, target, maps["gradient"], fill)
    times["faithfulness curves (map + random orders)"] = time.perf_counter() - begun
    begun = time.perf_counter()
    patch_maths(model, tensor, patch=model.config.num_patches // 2)
    times["patch maths"] = time.perf_counter() - begun
    for part, build in (("per-picture figures (5)", per_picture_figures), ("per-model figures (3)", per_model_figures)):
        begun = time.perf_counter()
        for figure in build(model, explanation):
            plots.figure_to_image(figure, dpi)
        times[part] = time.perf_counter() - begun
    per_upload = times["explain (preprocess + predict + rollout)"] + times["per-picture figures (5)"]
    times["per upload (explain + per-picture figures)"] = per_upload
    times["total"] = time.perf_counter() - start
    # On a shared machine wall time includes waiting for a core; this process's own CPU
    # time shows how much of it is the work itself.
    times["total, CPU time of this process"] = time.process_time() - start_cpu
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("--dpi", type=int, default=plots.DEFAULT_DPI)
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads (see the measurements above)")
    parser.add_argument("--checkpoint", help="time a saved model instead of the default architecture")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    if args.checkpoint:
        model, info = checkpoints.load(args.checkpoint)
    else:
        torch.manual_seed(0)
        model = ViT(
            ViTConfig(image_size=28, patch_size=7, num_classes=10, dim=64, depth=4, heads=4, mlp_dim=128, channels=1)
        ).eval()
        info = {**checkpoints.default_info("mnist"), "image_size": 28, "channels": 1}
    photo = uploaded_photo()
    one_run(model, info, photo, args.dpi)  # warm-up: font cache, first-call allocations
    runs = [one_run(model, info, photo, args.dpi) for _ in range(args.runs)]
    print(f"{args.runs} runs, dpi {args.dpi}, {args.threads} torch threads, upload {photo.size[0]}x{photo.size[1]} RGB")
    for part in runs[0]:
        values = [1000 * run[part] for run in runs]
        print(f"{part:44s} median {statistics.median(values):7.1f} ms   p95 {percentile(values, 0.95):7.1f} ms")


if __name__ == "__main__":
    main()
