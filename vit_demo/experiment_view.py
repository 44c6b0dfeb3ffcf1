"""Explore's "Experiments" view: change the explored picture (shuffle its patches, hide
some of them, leave out `pos_embedding`) and compare the prediction and the attention with
the original's; and the sanity baselines (the same model untrained, attention spread
evenly) that show which structure is real. No Gradio here: `ui/experiment_tab.py` lays it out.

The lesson: a ViT reads a sequence of patches, and where a patch was comes only from
`pos_embedding`. Without it, shuffling the patches leaves the prediction exactly as it was.
The numbers come from `vit_demo.experiments`.
"""

from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass

import torch

from . import experiments, plots
from .explain import attention_rollout
from .plots import figure_to_image as render
from .service.library import LoadedModel
from .views import Drawing, Explored

TRAINED = "trained model"
UNTRAINED = "untrained twin (random weights)"
UNIFORM = "uniform attention (flat baseline)"
BASELINES = (TRAINED, UNTRAINED, UNIFORM)


@dataclass(frozen=True)
class ExperimentChoices:
    """The view's controls, each named as its control on the page."""

    shuffle: bool = True
    seed: int = 0
    occlude: str = ""  # the patches to hide: "0, 5, 12-15"
    drop_position: bool = False
    baseline: str = TRAINED


def parse_patches(text: str | None, num_patches: int) -> list[int]:
    """ "0, 5, 12-15" -> [0, 5, 12, 13, 14, 15]; a ValueError that says what is wrong."""
    chosen: list[int] = []
    for part in filter(None, re.split(r"[\s,;]+", (text or "").strip())):
        match = re.fullmatch(r"(\d+)(?:-(\d+))?", part)
        if match is None:
            raise ValueError(f"'{part}' is not a patch number: write numbers like 0, 5, 12-15")
        low, high = int(match[1]), int(match[2] or match[1])
        if low > high or high >= num_patches:
            raise ValueError(
                f"patch numbers go from 0 to {num_patches - 1} for this model (see Tokens); '{part}' is outside"
            )
        chosen += [i for i in range(low, high + 1) if i not in chosen]
    return chosen


@dataclass(frozen=True)
class ExperimentResult:
    original: experiments.ExperimentView
    changed: experiments.ExperimentView
    max_logit_change: float  # largest |change| of any class's probability, in percentage points
    # When the patches are shuffled *and* pos_embedding is dropped, `changed` differs from
    # `original` in two ways at once. The unshuffled picture without pos_embedding separates
    # them: against it, shuffling alone changes nothing.
    blind_unshuffled: experiments.ExperimentView | None = None

    @property
    def order_change(self) -> float | None:
        """What shuffling alone did to the model without pos_embedding, in percentage points."""
        if self.blind_unshuffled is None:
            return None
        return (self.changed.probabilities - self.blind_unshuffled.probabilities).abs().max().item() * 100


def run_experiment(loaded: LoadedModel, tensor: torch.Tensor, choices: ExperimentChoices) -> ExperimentResult:
    """The experiment on one model (or baseline) for one normalised input (1, C, S, S)."""
    model = loaded.model
    if choices.baseline == UNTRAINED:
        model = loaded.cached("untrained twin", lambda: experiments.untrained_twin(loaded.model, seed=0))
    occluded = parse_patches(choices.occlude, model.config.num_patches)
    use_position = not choices.drop_position
    original, changed = experiments.patch_experiment(
        model,
        loaded.info,
        tensor,
        shuffle_seed=int(choices.seed or 0) if choices.shuffle else None,
        occluded=occluded,
        use_position=use_position,
    )
    if choices.baseline == UNIFORM:
        flat = attention_rollout(experiments.uniform_attention(model))[0]
        original = dataclasses.replace(original, rollout=flat, title="original, uniform attention")
        changed = dataclasses.replace(changed, rollout=flat)
    change = (changed.probabilities - original.probabilities).abs().max().item() * 100
    blind_unshuffled = None
    if choices.shuffle and not use_position:
        _, blind_unshuffled = experiments.patch_experiment(
            model, loaded.info, tensor, occluded=occluded, use_position=False
        )
    return ExperimentResult(original, changed, change, blind_unshuffled)


def describe_experiment(result: ExperimentResult, class_names, baseline: str) -> str:
    def guess(view):
        i = int(view.probabilities.argmax())
        return f"**{class_names[i]}** ({view.probabilities[i]:.0%})"

    def verdict(before, after):
        same = int(before.probabilities.argmax()) == int(after.probabilities.argmax())
        return "the same guess" if same else "a **different** guess"

    if result.blind_unshuffled is None:
        text = (
            f"{guess(result.original)} → {guess(result.changed)}: {verdict(result.original, result.changed)}; "
            f"the probabilities moved by at most **{result.max_logit_change:.2f}** percentage points."
        )
    else:
        blind = result.blind_unshuffled
        text = (
            f"Without `pos_embedding`, in order {guess(blind)} → shuffled {guess(result.changed)}: "
            f"{verdict(blind, result.changed)}; the probabilities moved by at most **{result.order_change:.4f}** "
            f"points. Without `pos_embedding` the model cannot tell where a patch was: the order does not matter. "
            f"(The original picture, with `pos_embedding`: {guess(result.original)}.)"
        )
    if baseline == UNTRAINED:
        text += " *Baseline: the same shape with random weights, so its maps show what no learning looks like.*"
    elif baseline == UNIFORM:
        text += (
            " *Baseline: attention spread evenly, so the rollout is flat; any structure in a real rollout was learned.*"
        )
    return text


def draw_experiment(explored: Explored, choices: ExperimentChoices) -> Drawing:
    """The experiment on the explored picture: one figure (before and after) and its sentence."""
    loaded, explanation = explored.loaded, explored.explanation
    result = run_experiment(loaded, explanation.preprocessed.tensor, choices)
    changed_display = experiments.to_display(result.changed.images, loaded.info)
    figure = plots.plot_patch_experiment(
        result.original, result.changed, explanation.class_names, explanation.preprocessed.display, changed_display
    )
    return Drawing((render(figure),), describe_experiment(result, explanation.class_names, choices.baseline))
