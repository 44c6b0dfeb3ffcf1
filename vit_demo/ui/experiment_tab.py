"""Explore's "Experiments" view on the page: its controls, and the events that draw it
(`vit_demo.experiment_view` decides what it shows). Inputs are read and outputs placed by
name, as in the rest of Explore."""

from __future__ import annotations

from dataclasses import dataclass, fields

import gradio as gr

from ..experiment_view import BASELINES, TRAINED, ExperimentChoices, draw_experiment
from .endpoints import placed as place
from .errors import user_errors
from .figures import figure_slot

EXPERIMENT_VIEW = "experiment"
CHOICES = tuple(f.name for f in fields(ExperimentChoices))


@user_errors
def experiment(values: dict) -> dict:
    """The experiment on the explored picture: its figure and summary, by name."""
    if values["explored"] is None:
        return {"summary": "Choose a picture first: an example, a drawing or an upload."}
    # An emptied control (a cleared seed) reads as its default.
    choices = ExperimentChoices(**{n: values[n] for n in CHOICES if values[n] is not None})
    drawing = draw_experiment(values["explored"], choices)
    return {"figure": drawing.figures[0], "summary": drawing.summary}


def open_experiment(values: dict) -> dict:
    return {"open_view": EXPERIMENT_VIEW, **experiment(values)}


def experiment_if_open(values: dict) -> dict:
    """A new picture redraws the experiment only while its view is open."""
    return experiment(values) if values["open_view"] == EXPERIMENT_VIEW else {}


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
    components = {"explored": explored, "open_view": open_view, **{n: getattr(x, n) for n in CHOICES}}
    components.update(figure=x.figure, summary=x.summary)

    def updates(changes: dict) -> dict:
        return {components[name]: value for name, value in changes.items()}

    def placed(handler, names: tuple[str, ...]) -> tuple:
        return place(names, handler, components.__getitem__, updates)

    inputs = ("explored", *CHOICES)
    shown = [x.figure, x.summary]
    private = {"api_visibility": "private", **event}
    x.tab.select(*placed(open_experiment, inputs), [open_view, *shown], **private)
    gr.on(
        [x.run.click, x.shuffle.input, x.seed.submit, x.occlude.submit, x.drop_position.input, x.baseline.input],
        *placed(experiment, inputs),
        shown,
        trigger_mode="always_last",
        **private,
    )
    explored.change(*placed(experiment_if_open, ("open_view", *inputs)), shown, **private)
