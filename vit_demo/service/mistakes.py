"""The Train tab's misclassification gallery: pick a true class and a guessed class (the
most frequent mix-up is chosen when training ends) and see those test images, each next
to its attention rollout, so a class can ask "where was it looking when it got it wrong?".

The images are the very test images the final score used: the whole test slice for a
finished run, the seeded evaluation slice for a stopped one (as `training.train` picks
them). Predictions are computed once per trained model and kept with it.
"""

from __future__ import annotations

import matplotlib
import numpy as np
import torch
from PIL import Image

from ..data import Split, load_split, normalize, to_picture
from ..explain import attention_rollout
from ..training import EVAL_SUBSET, batched_logits, evaluation_slice
from .library import LoadedModel

SHOWN = 12
TILE = 112  # pixels per image in the gallery (28 px digits blown up 4x)
ROLLOUT_CMAP = matplotlib.colormaps["inferno"]
BATCH = 500


def final_test_split(loaded: LoadedModel, data_dir, test_limit: int | None) -> Split:
    """The test images the trained model's final score used (see `training.train`)."""
    run = loaded.info.get("training", {})
    spec = loaded.spec
    test = load_split(spec, train=False, data_dir=data_dir, limit=run.get("test_limit", test_limit))
    if not run.get("stopped_early"):
        return test
    return evaluation_slice(test, int(run.get("seed", 0)), int(run.get("eval_subset", EVAL_SUBSET)))


@torch.inference_mode()
def predictions(model, split: Split, spec) -> torch.Tensor:
    model.eval()
    guesses = [logits.argmax(1).cpu() for logits, _ in batched_logits(model, split, spec, BATCH)]
    return torch.cat(guesses) if guesses else torch.zeros(0, dtype=torch.long)


def most_confused(confusion: torch.Tensor) -> tuple[int, int] | None:
    """(true, guessed) of the most frequent mistake; None when there is none."""
    off = confusion.clone()
    off.fill_diagonal_(0)
    if int(off.max()) == 0:
        return None
    index = int(off.argmax())
    return divmod(index, off.shape[1])


def tile(pixels: torch.Tensor, rollout: torch.Tensor) -> Image.Image:
    """uint8 (C, S, S) and a (grid, grid) rollout -> the picture and its rollout overlay, side by side."""
    picture = to_picture(pixels).convert("RGB")
    picture = picture.resize((TILE, TILE), Image.Resampling.NEAREST)
    heat = rollout.float().numpy()
    heat = heat / max(float(heat.max()), 1e-8)
    colours = (ROLLOUT_CMAP(heat)[..., :3] * 255).astype(np.uint8)
    heat_image = Image.fromarray(colours).resize((TILE, TILE), Image.Resampling.NEAREST)
    overlay = Image.blend(picture, heat_image, 0.55)
    both = Image.new("RGB", (2 * TILE + 4, TILE), "white")
    both.paste(picture, (0, 0))
    both.paste(overlay, (TILE + 4, 0))
    return both


def gallery(
    mine: LoadedModel | None, true_name: str | None, guessed_name: str | None, data_dir, test_limit: int | None
) -> tuple[list, str]:
    """[(tile, caption)] of test images of class `true_name` the model took for `guessed_name`."""
    if mine is None:
        return [], "Train a model first: its mistakes on the test images appear here."
    spec = mine.spec
    names = list(spec.class_names)
    if true_name not in names or guessed_name not in names:
        return [], "Choose a true class and a guess."
    true, guessed = names.index(true_name), names.index(guessed_name)
    split, guesses = mine.cached("test predictions", lambda: _scored(mine, data_dir, test_limit))
    chosen = torch.nonzero((split.labels == true) & (guesses == guessed)).flatten()
    total = len(chosen)
    kind = "right" if true == guessed else "mistaken"
    if total == 0:
        return [], f"No test image of **{true_name}** was taken for **{guessed_name}** (of {len(split):,} scored)."
    chosen = chosen[:SHOWN]
    with torch.inference_mode():
        images = split.images[chosen]
        logits, attentions = mine.model(
            normalize(images.to(next(mine.model.parameters()).device), spec), return_attention=True
        )
        rollouts = attention_rollout([a.cpu() for a in attentions])
        confidence = logits.float().softmax(-1)[:, guessed].cpu()
    mark = "✓" if true == guessed else "✗"  # right or wrong in a symbol too, not only a colour
    items = [(tile(images[i], rollouts[i]), f"{mark} {guessed_name}: {confidence[i]:.0%}") for i in range(len(chosen))]
    shown = f"; the first {len(chosen)} shown" if total > len(chosen) else ""
    return items, (
        f"**{total:,}** test images of **{true_name}** the model called **{guessed_name}** ({kind}), "
        f"of {len(split):,} scored{shown}. Left: the picture; right: where it looked (attention rollout)."
    )


def _scored(mine: LoadedModel, data_dir, test_limit):
    split = final_test_split(mine, data_dir, test_limit)
    return split, predictions(mine.model, split, mine.spec)
