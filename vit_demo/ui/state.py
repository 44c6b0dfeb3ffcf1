"""What one browser page keeps between events, shared by the tabs that read or write it,
and the page's name for the service."""

from __future__ import annotations

import asyncio
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
    timeline and runs) for an hour, and its copy of the page's layout until 500 newer pages
    pushed it out: both go with the files."""

    def __init__(self, demo: gr.Blocks, runs):
        self.demo, self.runs = demo, runs
        self._sessions: dict[str, str] = {}  # page key -> Gradio's session hash
        self._loop: asyncio.AbstractEventLoop | None = None  # Gradio's, where its sessions are changed
        runs.gone_hooks.append(self.gone)

    async def closed(self, request: gr.Request) -> None:
        """The page's unload event (on Gradio's event loop: a coroutine runs there)."""
        self._loop = asyncio.get_running_loop()
        page = page_key(request)
        self._sessions[page] = request.session_hash
        self.runs.leave(page)

    def gone(self, page: str) -> None:
        """The sweep removed the page's files (on the sweep's thread): its session goes too."""
        session_hash = self._sessions.pop(page, None)
        if session_hash is not None and self._loop is not None and not self._loop.is_closed():
            self._loop.call_soon_threadsafe(self._forget, session_hash)

    def _forget(self, session_hash: str) -> None:
        # On Gradio's loop, between its own once-a-second clean-ups, which read the same table.
        holder = self.demo.state_holder
        session = holder.session_data.get(session_hash)
        if session is None or not session.is_closed:
            return
        holder.delete_state(session_hash)  # the states' delete callbacks (the model's files)
        with holder.lock:
            holder.session_data.pop(session_hash, None)
            holder.time_last_used.pop(session_hash, None)
