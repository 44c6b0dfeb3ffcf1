"""Every failure reaches the person as a sentence, never as a stack trace.

`user_errors` wraps an event handler: the library's own errors (bad settings, unusable
checkpoints, missing datasets, unreadable uploads) are shown with their message, which
already says what to do; anything unexpected is logged with its traceback for whoever
runs the server and shown as a short apology, and the app keeps serving.
"""

from __future__ import annotations

import functools
import html
import inspect
import logging

import gradio as gr

from ..checkpoints import CheckpointError
from ..data import DatasetCorruptError, DatasetNotFoundError
from ..service.worker import TrainingProcessDied

log = logging.getLogger("vit_demo.ui")

# ValueError covers the model's and the trainer's settings checks, CheckpointError and
# images.ImageError; the dataset errors name the missing files and how to set VIT_DEMO_DATA;
# a training process that died says what to try.
EXPECTED_ERRORS = (ValueError, CheckpointError, DatasetNotFoundError, DatasetCorruptError, TrainingProcessDied)


def _as_html(message: str) -> str:
    # The page renders messages as HTML: "<urlopen error ...>" in a download failure would
    # vanish as an unknown tag, and line breaks (a list of missing files) would run together.
    return html.escape(message).replace("\n", "<br>")


def as_user_error(error: Exception) -> gr.Error:
    if isinstance(error, gr.Error):
        return error
    if isinstance(error, EXPECTED_ERRORS):
        return gr.Error(_as_html(str(error)), print_exception=False)
    if isinstance(error, MemoryError) or "out of memory" in str(error).lower():
        return gr.Error("The server ran out of memory: try a smaller model or batch size.", print_exception=False)
    log.exception("unexpected error in a handler")
    return gr.Error(
        f"Something went wrong on the server ({type(error).__name__}). The app is still running: "
        f"try again, or reload the page.",
        print_exception=False,
    )


def user_errors(handler):
    """Decorate an event handler (function or generator) so its errors read as sentences."""
    if inspect.isgeneratorfunction(handler):

        @functools.wraps(handler)
        def generator_wrapper(*args, **kwargs):
            try:
                yield from handler(*args, **kwargs)
            except Exception as error:
                raise as_user_error(error) from error

        return generator_wrapper

    @functools.wraps(handler)
    def wrapper(*args, **kwargs):
        try:
            return handler(*args, **kwargs)
        except Exception as error:
            raise as_user_error(error) from error

    return wrapper
