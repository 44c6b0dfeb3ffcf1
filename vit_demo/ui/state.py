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


class ClosedPages:
    """A page closed (or reloaded): the service lets its run go at once and its files after a
    grace period (`Runs.leave`, `Runs.sweep`). Gradio would keep the page's state (its model,
    timeline and runs) for an hour: it goes with the files."""

    def __init__(self, demo: gr.Blocks, runs):
        self.demo, self.runs = demo, runs
        self._sessions: dict[str, str] = {}  # page key -> Gradio's session hash
        runs.gone_hooks.append(self.gone)

    def closed(self, request: gr.Request) -> None:
        """The page's unload event."""
        self._sessions[page_key(request)] = request.session_hash
        self.runs.leave(page_key(request))

    def gone(self, page: str) -> None:
        session_hash = self._sessions.pop(page, None)
        holder = getattr(self.demo, "state_holder", None)
        session = holder.session_data.get(session_hash) if holder is not None and session_hash else None
        if session is not None and session.is_closed:
            session.STATE_TTL_WHEN_CLOSED = 0  # Gradio's own once-a-second clean-up deletes it now
