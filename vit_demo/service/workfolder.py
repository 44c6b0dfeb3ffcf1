"""The app's own folder (VIT_DEMO_WORK_DIR), and its bounds: nothing a page leaves behind
outlives it, and the whole folder stays under VIT_DEMO_MAX_WORK_MB.

    sessions/<page>/    the page's copy of its run's zip (its download) and its model's files
    timelines/<page>/   the page's timeline GIF
    stop/<page>         the page's stop flag
    runs/               shared runs' folders, bounded by the run cache (shared_runs.RunHub)
    gradio/             Gradio's own cache of uploads and served pictures (its delete_cache)

A page that leaves (its tab closed or reloaded) keeps its files for `grace` seconds (a download
under way finishes), then they go; any page's files go once they are `max_age` old; and while
the folder is over its bound, the oldest files of pages that are not training go first.
"""

from __future__ import annotations

import shutil
import threading
import time
from pathlib import Path

PAGE_KINDS = ("sessions", "timelines", "stop")
GRACE_SECONDS = 120.0
MAX_AGE_SECONDS = 24 * 3600.0


def folder_bytes(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file()) if path.exists() else 0


class WorkFolder:
    def __init__(
        self,
        root: Path,
        max_bytes: int,
        grace: float = GRACE_SECONDS,
        max_age: float = MAX_AGE_SECONDS,
        clock=time.time,
    ):
        self.root, self.max_bytes, self.grace, self.max_age, self.clock = root, max_bytes, grace, max_age, clock
        self._left: dict[str, float] = {}  # page -> when it left
        self._lock = threading.Lock()

    def page_path(self, kind: str, page: str) -> Path:
        return self.root / kind / page

    def fresh(self, kind: str, page: str) -> Path:
        """An empty folder for the page's files of `kind` (its previous ones were served already).
        A page that left stays left: its run may still write here as it winds down, and a page
        never comes back (a reload is a new page)."""
        folder = self.page_path(kind, page)
        shutil.rmtree(folder, ignore_errors=True)
        folder.mkdir(parents=True)
        return folder

    def left(self, page: str) -> None:
        with self._lock:
            self._left[page] = self.clock()

    def _remove(self, page: str) -> int:
        """Remove the page's files; the bytes they held."""
        freed = 0
        for kind in PAGE_KINDS:
            path = self.page_path(kind, page)
            if path.is_dir():
                freed += folder_bytes(path)
                shutil.rmtree(path, ignore_errors=True)
            elif path.is_file():
                freed += path.stat().st_size
                path.unlink(missing_ok=True)
        return freed

    def sweep(self, busy: set[str] = frozenset()) -> list[str]:
        """Remove what pages left behind; the pages whose files went. `busy`: pages training now."""
        now = self.clock()
        with self._lock:
            gone = [page for page, when in self._left.items() if now - when >= self.grace and page not in busy]
            for page in gone:
                del self._left[page]
        pages = {p.name: p for kind in PAGE_KINDS for p in (self.root / kind).glob("*")}
        ages = {name: now - path.stat().st_mtime for name, path in pages.items() if path.exists()}
        gone += [name for name, age in ages.items() if age >= self.max_age and name not in busy and name not in gone]
        for page in gone:
            self._remove(page)
        oldest_first = sorted(
            (name for name in ages if name not in gone and name not in busy), key=ages.get, reverse=True
        )
        held = folder_bytes(self.root)  # measured once, then less what each removal frees
        while oldest_first and held > self.max_bytes:
            page = oldest_first.pop(0)
            held -= self._remove(page)
            gone.append(page)
        return gone
