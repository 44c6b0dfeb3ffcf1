"""What one browser session keeps between events, shared by the tabs that read or write it."""

from __future__ import annotations

from dataclasses import dataclass

import gradio as gr

from .models import remove_files


@dataclass
class SessionState:
    my_model: gr.State  # the model this session trained (a models.LoadedModel), for Explore and Mistakes
    my_timeline: gr.State  # its training timeline (train_tab.TimelineRecord), for the slider and the GIF
    my_runs: gr.State  # the last two runs' summaries (compare.RunSummary), for Compare

    @classmethod
    def create(cls) -> SessionState:
        """The states, inside an open gr.Blocks. A session's model files go when the session does."""
        return cls(gr.State(None, delete_callback=remove_files), gr.State(None), gr.State([]))
