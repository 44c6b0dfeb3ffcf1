"""What one browser page keeps between events, shared by the tabs that read or write it,
and the page's name for the service."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

import gradio as gr

from ..service.library import remove_files


def page_key(request: gr.Request | None) -> str:
    """A file-name-safe name for the page's session (one name for calls outside a session)."""
    session = getattr(request, "session_hash", None) or "no-session"
    return hashlib.sha256(session.encode()).hexdigest()[:16]


@dataclass
class SessionState:
    my_model: gr.State  # the model this page trained (a library.LoadedModel), for Explore and Mistakes
    my_timeline: gr.State  # its training timeline (frames.TimelineRecord), for the slider and the GIF
    my_runs: gr.State  # the last two runs' summaries (compare.RunSummary), for Compare

    @classmethod
    def create(cls) -> SessionState:
        """The states, inside an open gr.Blocks. A page's model files go when the page does."""
        return cls(gr.State(None, delete_callback=remove_files), gr.State(None), gr.State([]))
