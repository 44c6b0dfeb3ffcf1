"""The Explore tab's events: a model chosen, a picture chosen, a view opened, a patch clicked;
and the public "explore" and "predict" endpoints. Each handler reads the values it needs by
name and returns what changes by name (a component's name in `ExploreControls`, or a view's
in `views.VIEWS` with its `Drawing`); `ExploreControls.updates` places them on the page."""

from __future__ import annotations

import itertools
from dataclasses import fields
from pathlib import Path

import gradio as gr

from .. import checkpoints, explain
from ..images import open_image
from ..patch_maths import patch_at
from ..service.library import MINE, UPLOADED, LoadedModel, ModelLibrary, example_images, held_out_examples
from ..views import (
    ALL_HEADS,
    PREDICTED,
    VIEWS,
    Explored,
    RecentlyShown,
    ViewChoices,
    draw,
    drawing_to_image,
    fingerprint,
    label_values,
    seen_image,
)
from .endpoints import placed as place
from .errors import user_errors
from .experiment_tab import wire_experiment_tab
from .explore_tab import ExploreControls, class_choices, head_choices
from .state import SessionState, page_key

# What an explore reads, by name: the public endpoint's parameters first (in this order; the
# states after them are the page's own and not part of the API).
EXPLORE_INPUTS = (
    "model", "fusion", "discard", "layer", "head", "method", "target", "maths_layer", "maths_head",
    "image", "open_view", "mine", "uploaded",
)  # fmt: skip
MODEL_INPUTS = ("model", "mine", "uploaded")
MODEL_OUTPUTS = (
    "model_note",
    "examples",
    "layer",
    "head",
    "target",
    "maths_layer",
    "maths_head",
)  # reset by a new model
CHOICES = tuple(f.name for f in fields(ViewChoices))


def view_choices(values: dict, **overrides) -> ViewChoices:
    return ViewChoices(**{**{n: values[n] for n in CHOICES if n in values}, **overrides})


class ExploreHandlers:
    def __init__(self, library: ModelLibrary, examples_dir: Path):
        self.library = library
        self.examples_dir = examples_dir
        self._shown = RecentlyShown()
        # Two explores of one page can run at once and end in either order: only the newest
        # is shown, or an example explored as the tab opened could cover the picture just uploaded.
        self._newest = RecentlyShown(4096)  # page -> the number of its newest explore
        self._numbers = itertools.count()

    def examples(self, loaded: LoadedModel) -> list[tuple[str, str]]:
        """The shipped examples of the model's dataset, or a person's own held-out pictures."""
        shipped = example_images(self.examples_dir, loaded.spec.key)
        return shipped or loaded.cached("examples", lambda: held_out_examples(loaded))

    def _model(self, values: dict) -> LoadedModel:
        return self.library.resolve(values["model"], values.get("mine"), values.get("uploaded"))

    def _draw(self, view: str, explored: Explored, choices: ViewChoices):
        return draw(view, explored, choices, lambda: [path for path, _ in self.examples(explored.loaded)])

    # ------------------------------------------------------------------ the model

    def choose_model(self, values: dict) -> dict:
        """About the chosen model, its examples, and layer, head and class choices that fit it."""
        try:
            loaded = self._model(values)
        except ValueError as error:
            return {"model_note": f"⚠️ {error}"}
        depth, heads = loaded.model.config.depth, loaded.model.config.heads
        note = loaded.describe()
        if loaded.spec.channels == 3:
            note += " Drawing works best for the greyscale datasets; try an example or an upload."
        return {
            "model_note": note,
            "examples": gr.Gallery(value=self.examples(loaded)),
            "layer": gr.Radio(choices=list(range(1, depth + 1)), value=depth),
            "head": gr.Radio(choices=head_choices(heads), value=ALL_HEADS),
            "target": gr.Dropdown(choices=class_choices(loaded.info["class_names"]), value=PREDICTED),
            "maths_layer": gr.Radio(choices=list(range(1, depth + 1)), value=1),
            "maths_head": gr.Radio(choices=list(range(1, heads + 1)), value=1),
        }

    @user_errors
    def upload_checkpoint(self, values: dict) -> dict:
        """A checkpoint (.zip of a checkpoint folder, or .pt) -> the session's uploaded model."""
        path = values["checkpoint"]
        if path is None:
            return {}
        model, info = checkpoints.load(path)  # CheckpointError says what is wrong with it
        return {"uploaded": LoadedModel(UPLOADED, model, info, f"uploaded ({Path(path).name})"), "model": UPLOADED}

    # ------------------------------------------------------------------ the picture

    @user_errors
    def use_upload(self, values: dict) -> dict:
        return {} if values["upload"] is None else {"image": open_image(values["upload"])}

    @user_errors
    def use_drawing(self, values: dict) -> dict:
        """The drawing, once something is drawn (a blank canvas leaves the picture as it was)."""
        drawing = drawing_to_image(values["sketch"])
        return {} if drawing is None else {"image": drawing}

    @user_errors
    def use_example(self, values: dict, *, event: gr.SelectData) -> dict:
        path, _ = self.examples(self._model(values))[event.index]
        return {"image": open_image(path)}

    # ------------------------------------------------------------------ explaining and the views

    @user_errors
    def explore(self, values: dict, *, request: gr.Request = None) -> dict:
        """Predict and explain the picture (the dataset's first example when there is none yet)
        with the chosen model: the picture, the prediction, what the model sees, the explored
        picture, no patch chosen, and the open view drawn (the others cleared: drawn when opened);
        nothing if a newer explore of the page began meanwhile."""
        page, number = page_key(request), next(self._numbers)
        self._newest.put(page, number)
        loaded, image, open_view = self._model(values), values["image"], values["open_view"]
        if image is None:
            examples = self.examples(loaded)
            if not examples:
                raise ValueError("Choose a picture first: draw one or upload one")
            image = open_image(examples[0][0])
        choices = view_choices(values, patch=None)
        # A class explores the shipped models on the same examples: each is explained and drawn once.
        shipped = loaded is self.library.models.get(values["model"])
        key = (values["model"], fingerprint(image), open_view, choices) if shipped else None
        shown = self._shown.get(key) if key else None
        if shown is None:
            explanation = explain.explain(loaded.model, loaded.info, image, choices.fusion, float(choices.discard))
            explored = Explored(loaded, explanation)
            shown = {
                "label": label_values(explanation.probabilities, explanation.class_names),
                "seen": seen_image(explanation),
                "explored": explored,
                "patch": None,
                **{view: self._draw(view, explored, choices) if view == open_view else None for view in VIEWS},
            }
            if key:
                self._shown.put(key, shown)
        if request is not None and self._newest.get(page) != number:
            return {}
        return {"image": image, **shown}

    def open_tab(self, values: dict, *, request: gr.Request = None) -> dict:
        """Opening the tab: explore (the first example, if no picture is chosen) unless
        something is on show already, or there is no model to show yet (the note under the
        menu says how to get one)."""
        if values["explored"] is not None:
            return {}
        try:
            self._model(values)
        except ValueError:
            return {}
        return self.explore(values, request=request)

    def view_opener(self, view: str):
        """The handler for `view` opened (or its controls changed): drawn for the explored picture."""

        @user_errors
        def open_view(values: dict) -> dict:
            explored = values["explored"]
            if explored is None:
                return {"open_view": view}
            return {"open_view": view, view: self._draw(view, explored, view_choices(values))}

        return open_view

    @user_errors
    def show_cls(self, values: dict) -> dict:
        """Back from a clicked patch to the CLS token in "Each head"."""
        explored = values["explored"]
        if explored is None:
            return {"patch": None}
        return {"patch": None, "heads": self._draw("heads", explored, view_choices(values, patch=None))}

    @user_errors
    def choose_patch(self, values: dict, *, event: gr.SelectData) -> dict:
        """A click on *What it sees*: that patch, in "Each head" and "The maths". The open view
        stays if it is one of those two, else "Each head" opens."""
        explored = values["explored"]
        if explored is None or not isinstance(event.index, (list, tuple)):
            return {}
        x, y = event.index
        patch = patch_at(x, y, seen_image(explored.explanation).width, explored.config.grid_size)
        choices = view_choices(values, patch=patch)
        shown = values["open_view"] if values["open_view"] in ("heads", "maths") else "heads"
        return {
            "patch": patch,
            "open_view": shown,
            "views": gr.Tabs(selected=shown),
            "heads": self._draw("heads", explored, choices),
            "maths": self._draw("maths", explored, choices),
        }

    @user_errors
    def predict(
        self, image_file: str | None, model_name: str, mine: LoadedModel | None = None, uploaded=None
    ) -> dict[str, float]:
        """The predict API: an image file and a model name -> every class's probability."""
        if image_file is None:
            raise ValueError("no image was given: pass an image file")
        loaded = self.library.resolve(model_name, mine, uploaded)
        image = open_image(image_file)
        predictions = explain.predict(loaded.model, loaded.info, image, top_k=loaded.model.config.num_classes)
        return dict(predictions)


def placed(e: ExploreControls, names: tuple[str, ...], handler) -> tuple:
    """Gradio's (fn, inputs) for a handler of this tab: its named results placed on it."""
    return place(names, handler, e.component, e.updates)


def wire_explore_tab(
    handlers: ExploreHandlers, e: ExploreControls, tab: gr.Tab, state: SessionState, new_model_events: list, limit: int
) -> None:
    """A model chosen, a picture chosen, a view opened, a patch clicked: each explains and
    draws. `new_model_events`: events after which the session has a new model of its own (a
    training ended), each an event method (`finished.change`, `event.success`) to chain the
    same steps to. `limit`: explores served at once."""
    exploring = {"concurrency_id": "explore", "concurrency_limit": limit}
    shown = {**exploring, "show_progress": "minimal"}
    event = {**shown, "api_visibility": "private"}
    private = {"api_visibility": "private", "show_progress": "hidden"}
    outputs = e.outputs(("image", "label", "seen", "explored", "patch", *VIEWS))
    explore = (*placed(e, EXPLORE_INPUTS, handlers.explore), outputs)
    describe = (*placed(e, MODEL_INPUTS, handlers.choose_model), e.outputs(MODEL_OUTPUTS))
    # A model chosen in the menu is described, then shown on the current picture: the public
    # "explore" endpoint. Training and checkpoint uploads choose a model too (a value set by
    # the server raises no `input` event, so they chain the same steps).
    e.model.input(*describe, **private).success(*explore, api_name="explore", **shown)
    uploaded = e.checkpoint.upload(
        *placed(e, ("checkpoint",), handlers.upload_checkpoint), e.outputs(("uploaded", "model")), **private
    )
    trained = [listen(lambda: MINE, None, e.model, queue=False, **private) for listen in new_model_events]
    described = [*(done.then(*describe, **private) for done in trained), uploaded.success(*describe, **private)]
    pictures = [
        e.examples.select(*placed(e, MODEL_INPUTS, handlers.use_example), e.image, **private),
        e.upload.upload(*placed(e, ("upload",), handlers.use_upload), e.image, **private),
        e.sketch.change(*placed(e, ("sketch",), handlers.use_drawing), e.image, trigger_mode="always_last", **private),
    ]
    for chosen in (*described, *pictures):
        chosen.success(*explore, **event)
    tab.select(*placed(e, (*EXPLORE_INPUTS, "explored"), handlers.open_tab), outputs, **event)
    view_inputs = ("explored", *CHOICES)
    # Only a person's own moves redraw (`input`, `release`): a new model resets the layer
    # and head choices, and that must not switch the open view.
    redraw = {
        "where": [e.method.input, e.target.input, e.fusion.input, e.discard.release],
        "heads": [e.layer.input, e.head.input],
        "maths": [e.maths_layer.input, e.maths_head.input],
    }
    for view in VIEWS:
        gr.on(
            [e.view_tabs[view].select, *redraw.get(view, [])],
            *placed(e, view_inputs, handlers.view_opener(view)),
            e.outputs(("open_view", view)),
            trigger_mode="always_last",
            **event,
        )
    e.seen.select(
        *placed(e, (*view_inputs, "open_view"), handlers.choose_patch),
        e.outputs(("patch", "open_view", "views", "heads", "maths")),
        trigger_mode="always_last",
        **event,
    )
    e.show_cls.click(*placed(e, view_inputs, handlers.show_cls), e.outputs(("patch", "heads")), **event)
    wire_experiment_tab(e.experiment, e.explored, e.open_view, **shown)
    _wire_predict_api(handlers, e, state, exploring)


def _wire_predict_api(handlers: ExploreHandlers, e: ExploreControls, state: SessionState, exploring: dict) -> None:
    """The public "predict" endpoint: a picture file and a model name, every class's probability."""
    # The scripting API's own inputs: any file (so a bad one gets the app's message rather
    # than a file-type refusal) and a model named as in the Explore menu.
    api_image, api_model, api_label = gr.File(visible=False), gr.Textbox(visible=False), gr.Label(visible=False)
    gr.Button(visible=False).click(
        handlers.predict, [api_image, api_model, state.my_model, e.uploaded], api_label, api_name="predict", **exploring
    )
