"""Figures become PNG images for gr.Image at one resolution across the app.

At 90 dpi the library's figures (sized in inches, fonts of 10 pt and up) fill the
panels of a 1366x768 projector without being scaled down much, so their text stays
readable from the back of a classroom.
"""

from __future__ import annotations

import gradio as gr
from matplotlib.figure import Figure
from PIL import Image

from .. import plots

FIGURE_DPI = 90


def render(figure: Figure) -> Image.Image:
    return plots.figure_to_image(figure, dpi=FIGURE_DPI)


def render_with_box(figure: Figure) -> tuple[Image.Image, tuple[float, ...]]:
    """`render`, and where the figure's first axes lie in the picture (plots.figure_to_image_and_box)."""
    return plots.figure_to_image_and_box(figure, dpi=FIGURE_DPI)


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
