"""Figures become PNG images for gr.Image at one resolution across the app.

At 90 dpi the library's figures (sized in inches, fonts of 10 pt and up) fill the
panels of a 1366x768 projector without being scaled down much, so their text stays
readable from the back of a classroom.
"""

from __future__ import annotations

from matplotlib.figure import Figure
from PIL import Image

from .. import plots

FIGURE_DPI = 90


def render(figure: Figure) -> Image.Image:
    return plots.figure_to_image(figure, dpi=FIGURE_DPI)
