"""A read-only picture slot for the app's rendered figures (vit_demo.plots draws them at the
app's resolution)."""

from __future__ import annotations

import gradio as gr


def figure_slot(elem_id: str, height: int, placeholder: str | None = None) -> gr.Image:
    """A read-only picture for a rendered figure: PNG (Gradio's default WebP blurs heatmaps and
    text), no label, and no buttons (floating over a figure they hide the end of its title)."""
    return gr.Image(
        format="png",
        interactive=False,
        show_label=False,
        height=height,
        buttons=[],
        elem_id=elem_id,
        placeholder=placeholder,
    )
