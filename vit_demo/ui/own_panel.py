"""The Build tab's third source: a person's own pictures, as a zip of class folders or taken
with the webcam (or drawn, or uploaded) one by one. What is done with them is the service's
(service/own_sets.py); this lays out the panel and words its answers."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import gradio as gr

from ..own_data import MAX_PICTURES, OwnDataError, read_archive
from ..service.own_sets import MAX_COLLECTED, TINY_DATA, collect, counted, from_collected, keep

LAYOUT = (
    "A zip of one folder per class, as torchvision's ImageFolder reads it: `cats/1.jpg`, `dogs/7.png`, … "
    f"(2 to 20 classes, at least 2 pictures each, {MAX_PICTURES:,} at most). A fifth of each class is held out "
    "to test on. Your pictures stay on this page: no one else sees them."
)


@dataclass
class OwnPanel:
    archive: gr.File
    camera: gr.Image
    class_name: gr.Textbox
    add: gr.Button
    collected: gr.State  # class name -> prepared pictures, this page's
    counts: gr.Markdown
    use: gr.Button
    status: gr.Markdown


def render_own_panel() -> OwnPanel:
    with gr.Accordion("Your own pictures", open=False, elem_id="own-pictures"):
        with gr.Tabs():
            with gr.Tab("A zip of class folders"):
                gr.Markdown(LAYOUT)
                archive = gr.File(file_types=[".zip"], label="Your dataset (.zip)", elem_id="own-archive")
            with gr.Tab("Take or draw pictures"):
                camera = gr.Image(
                    sources=["webcam", "upload", "clipboard"],
                    type="pil",
                    label="A picture",
                    height=260,
                    elem_id="own-camera",
                )
                with gr.Row():
                    class_name = gr.Textbox(label="Its class", placeholder="e.g. thumbs up", elem_id="own-class")
                    add = gr.Button("Add", elem_id="own-add")
                counts = gr.Markdown(counted({}), elem_id="own-counts")
                use = gr.Button(f"Train on these pictures (up to {MAX_COLLECTED})", elem_id="own-use")
        status = gr.Markdown(elem_id="own-status")
        gr.Markdown(TINY_DATA)
    return OwnPanel(archive, camera, class_name, add, gr.State({}), counts, use, status)


def added(panel: OwnPanel, values: dict) -> dict:
    """A picture taken: into this page's collection, or a sentence saying why not."""
    try:
        collected = collect(values[panel.collected], values[panel.class_name], values[panel.camera])
    except OwnDataError as error:
        return {panel.status: f"⚠️ {error}"}
    return {panel.collected: collected, panel.counts: counted(collected), panel.status: "", panel.camera: None}


def opened(source: str | dict | None) -> tuple[tuple[str, str] | None, str]:
    """A zip's path, or the page's collection -> ((its Dataset choice), what to say); (None, why)
    when it cannot be used."""
    if not source:
        return None, ""
    try:
        own = read_archive(source, Path(source).name) if isinstance(source, str) else from_collected(source)
    except OwnDataError as error:
        return None, f"⚠️ {error}"
    said = f"**{own.title}**: {own.describe()}. Choose a preset and **Train this model**."
    return (f"Your pictures: {own.title}", keep(own)), said
