"""Explore's "Experiments" view: change the explored picture (shuffle its patches,
hide some of them, leave out `pos_embedding`) and see the prediction and the attention
next to the original's; and the sanity baselines (the same model untrained, attention
spread evenly) that show which structure is real.

The lesson: a ViT reads a sequence of patches, and where a patch was comes only from
`pos_embedding`. Without it, shuffling the patches leaves the prediction exactly as it
was. The numbers come from `vit_demo.experiments` (tested there); this module only
reads the controls and draws.
"""

from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass

import gradio as gr
import torch

from .. import experiments, plots
from ..explain import attention_rollout
from ..plots import figure_to_image as render
from .errors import user_errors
from .figures import figure_slot

TRAINED = "trained model"
UNTRAINED = "untrained twin (random weights)"
UNIFORM = "uniform attention (flat baseline)"
BASELINES = (TRAINED, UNTRAINED, UNIFORM)
EXPERIMENT_VIEW = "experiment"


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


def run(
    loaded, tensor: torch.Tensor, *, shuffle: bool, seed, occluded: list[int], use_position: bool, baseline: str
) -> ExperimentResult:
    """The experiment on one model (or baseline) for one normalised input (1, C, S, S)."""
    model = loaded.model
    if baseline == UNTRAINED:
        model = loaded.cached("untrained twin", lambda: experiments.untrained_twin(loaded.model, seed=0))
    original, changed = experiments.patch_experiment(
        model,
        loaded.info,
        tensor,
        shuffle_seed=int(seed or 0) if shuffle else None,
        occluded=occluded,
        use_position=use_position,
    )
    if baseline == UNIFORM:
        flat = attention_rollout(experiments.uniform_attention(model))[0]
        original = dataclasses.replace(original, rollout=flat, title="original, uniform attention")
        changed = dataclasses.replace(changed, rollout=flat)
    change = (changed.probabilities - original.probabilities).abs().max().item() * 100
    blind_unshuffled = None
    if shuffle and not use_position:
        _, blind_unshuffled = experiments.patch_experiment(
            model, loaded.info, tensor, occluded=occluded, use_position=False
        )
    return ExperimentResult(original, changed, change, blind_unshuffled)


def summary(result: ExperimentResult, class_names, baseline: str) -> str:
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


@user_errors
def experiment(explored, shuffle: bool, seed, occlude: str, drop_position: bool, baseline: str) -> tuple:
    """Explore's patch experiment on the explored picture: (figure, summary)."""
    if explored is None:
        return gr.skip(), "Choose a picture first: an example, a drawing or an upload."
    loaded, explanation = explored.loaded, explored.explanation
    config = loaded.model.config
    occluded = parse_patches(occlude, config.num_patches)
    result = run(
        loaded,
        explanation.preprocessed.tensor,
        shuffle=bool(shuffle),
        seed=seed,
        occluded=occluded,
        use_position=not drop_position,
        baseline=baseline or TRAINED,
    )
    changed_display = experiments.to_display(result.changed.images, loaded.info)
    figure = plots.plot_patch_experiment(
        result.original, result.changed, explanation.class_names, explanation.preprocessed.display, changed_display
    )
    return render(figure), summary(result, explanation.class_names, baseline)


def experiment_if_open(open_view: str, explored, *controls) -> tuple:
    """A new picture redraws the experiment only while its view is open."""
    if open_view != EXPERIMENT_VIEW:
        return gr.skip(), gr.skip()
    return experiment(explored, *controls)


def open_experiment(explored, *controls) -> tuple:
    return (EXPERIMENT_VIEW, *experiment(explored, *controls))


@dataclass
class ExperimentControls:
    tab: gr.Tab
    shuffle: gr.Checkbox
    seed: gr.Number
    occlude: gr.Textbox
    drop_position: gr.Checkbox
    baseline: gr.Dropdown
    run: gr.Button
    figure: gr.Image
    summary: gr.Markdown

    def inputs(self) -> list:
        return [self.shuffle, self.seed, self.occlude, self.drop_position, self.baseline]


def render_experiment_tab() -> ExperimentControls:
    """The view's components, inside Explore's view tabs."""
    with gr.Tab("Experiments", id=EXPERIMENT_VIEW) as tab:
        with gr.Row(equal_height=True):
            shuffle = gr.Checkbox(label="Shuffle the patches", value=True, min_width=120, elem_id="experiment-shuffle")
            seed = gr.Number(
                value=0, precision=0, minimum=0, label="Shuffle seed", min_width=90, elem_id="experiment-seed"
            )
            occlude = gr.Textbox(
                label="Hide patches",
                placeholder="e.g. 0, 5, 12-15 (see Tokens)",
                min_width=180,
                elem_id="experiment-occlude",
            )
            drop_position = gr.Checkbox(
                label="Drop pos_embedding", value=False, min_width=120, elem_id="experiment-drop-position"
            )
        with gr.Row(equal_height=True):
            baseline = gr.Dropdown(
                list(BASELINES),
                value=TRAINED,
                label="Model (or a sanity baseline)",
                scale=3,
                elem_id="experiment-baseline",
            )
            run_button = gr.Button(
                "Run the experiment", variant="primary", scale=1, min_width=140, size="md", elem_id="experiment-run"
            )
        summary_md = gr.Markdown(elem_id="experiment-summary")
        figure = figure_slot("experiment-figure", 420)
    return ExperimentControls(tab, shuffle, seed, occlude, drop_position, baseline, run_button, figure, summary_md)


def wire_experiment_tab(x: ExperimentControls, explored: gr.State, open_view: gr.State, **event) -> None:
    """Opening the view, any change of its controls, or a new picture while it is open runs
    the experiment on the explored picture. `event`: Explore's queue settings."""
    private = {"api_visibility": "private", **event}
    x.tab.select(open_experiment, [explored, *x.inputs()], [open_view, x.figure, x.summary], **private)
    gr.on(
        [x.run.click, x.shuffle.input, x.seed.submit, x.occlude.submit, x.drop_position.input, x.baseline.input],
        experiment,
        [explored, *x.inputs()],
        [x.figure, x.summary],
        trigger_mode="always_last",
        **private,
    )
    explored.change(experiment_if_open, [open_view, explored, *x.inputs()], [x.figure, x.summary], **private)
