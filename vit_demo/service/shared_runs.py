"""Identical trainings, trained once: a class where most students press Start on the same
settings shares one run instead of queueing thirty.

A run's result depends on its dataset, model, training settings (with its length in steps),
seed and the machine it runs on (`RunKey`). The first request for a key starts a `SharedRun`;
every later request for the same key, while it runs or after it has finished, follows that
run instead: it sees every report from the first (a finished run replays at once) and gets
the same model, and the run's share of the training process grows with each page that
follows it (`SharedRun.share`). A run nobody follows any more is stopped; a stopped or failed run is never
shared (its result is not what its settings promise). Finished runs are kept in a bounded
cache (`RunHub`: at most `max_runs`, at most `max_bytes` of reports), least recently used
out first; each may own a folder under the hub's own, removed with it.

Nothing here knows what a report is: the app publishes what its pages draw. Nothing here
imports gradio.
"""

from __future__ import annotations

import hashlib
import itertools
import shutil
import threading
from collections import OrderedDict
from collections.abc import Callable, Iterator
from dataclasses import astuple, dataclass
from pathlib import Path

from .jobs import Followers, StopFlag

# TrainConfig fields that do not change what a run learns.
NOT_IN_KEY = ("data_dir", "device", "report_every")


@dataclass(frozen=True)
class RunKey:
    dataset: str
    model: tuple  # (name, value) pairs of the model's settings, sorted
    training: tuple  # (name, value) pairs of the TrainConfig fields that shape the result, sorted
    machine: str  # the training device, as `machine.Machine.describe()` says it
    max_seconds: float | None  # the server's cap on one run

    @classmethod
    def of(cls, model_settings: dict, config, machine: str, max_seconds: float | None = None) -> RunKey:
        training = {k: v for k, v in vars(config).items() if k not in NOT_IN_KEY}
        return cls(
            config.dataset, tuple(sorted(model_settings.items())), tuple(sorted(training.items())), machine, max_seconds
        )

    @property
    def digest(self) -> str:
        """A short name for the key, for its runs' folders."""
        return hashlib.sha256(repr(astuple(self)).encode()).hexdigest()[:16]


class SharedRun:
    """One training that any number of pages follow. The producer publishes items; a follower
    gets every item from the first, then each new one as it comes. Only the newest `window`
    items are kept one by one; before them, everything published is kept merged into one item
    (`merge(older, newer)`, the app's: newer values replace older ones), which is what a late
    follower (or a slow one) gets first. So a run's memory stays bounded however long it is,
    and a finished run is one merged item."""

    def __init__(
        self,
        key: RunKey,
        folder: Path,
        merge: Callable[[object, object], object],
        size: Callable[[object], int] = lambda item: 0,
        window: int = 64,
    ):
        self.key = key
        self.folder = folder
        self.stop = StopFlag(folder / "stop")  # crosses into the training process
        self.share = Followers(folder / "followers")  # so does its share of the machine
        self._merge, self._size, self._window = merge, size, window
        self._condition = threading.Condition()
        self._merged = None  # everything before `_recent`, merged
        self._recent: list = []
        self._count = 0  # items published in all
        self._done = False
        self.complete = False  # ran to its end as its settings promise: shareable
        self.error: BaseException | None = None
        self.followers = 0
        self.details = None  # what the app needs to show the run to a page that did not start it

    # ------------------------------------------------------------------ the producer's side

    def publish(self, item) -> None:
        with self._condition:
            self._recent.append(item)
            self._count += 1
            if len(self._recent) > self._window:
                oldest = self._recent.pop(0)
                self._merged = oldest if self._merged is None else self._merge(self._merged, oldest)
            self._condition.notify_all()

    def finish(self, complete: bool, error: BaseException | None = None) -> None:
        """The run is over: `complete` when it ran to its end (not stopped, not failed). What it
        published is merged into one item: all a later follower needs."""
        with self._condition:
            for item in self._recent:
                self._merged = item if self._merged is None else self._merge(self._merged, item)
            self._recent = []
            self._done, self.complete, self.error = True, complete and error is None, error
            self._condition.notify_all()

    def request_stop(self) -> None:
        self.stop.request()

    @property
    def stop_requested(self) -> bool:
        return self.stop()

    # ------------------------------------------------------------------ the followers' side

    @property
    def done(self) -> bool:
        with self._condition:
            return self._done

    @property
    def nbytes(self) -> int:
        with self._condition:
            kept = ([] if self._merged is None else [self._merged]) + self._recent
        return sum(self._size(item) for item in kept)

    def follow(self, wait: float = 0.5) -> Iterator:
        """Everything published, then each new item as it comes, until the run is over; None
        every `wait` seconds without news, so a follower can check on its own page (a Stop, a
        closed tab). Raises the run's error at the end, if it failed."""
        seen = 0
        while True:
            with self._condition:
                if seen >= self._count and not self._done:
                    self._condition.wait(wait)
                first_recent = self._count - len(self._recent)
                if seen < first_recent:  # joined late or fell behind: what came before, merged
                    batch = [self._merged, *self._recent]
                else:
                    batch = self._recent[seen - first_recent :]
                seen, done = self._count, self._done
            yield from batch
            if not batch and not done:
                yield None
            if done:
                if self.error is not None:
                    raise self.error
                return


def _followable(run: SharedRun) -> bool:
    """A page may follow `run`: it is going, or it ran to its end."""
    return run.complete or not (run.done or run.stop_requested)


class RunHub:
    """The runs of one server, by key: at most one per key. Finished, complete runs stay for
    later requests until the cache's bounds push the least recently used out."""

    def __init__(
        self,
        folder: Path,
        merge: Callable[[object, object], object],
        size: Callable[[object], int] = lambda item: 0,
        max_runs: int = 16,
        max_bytes: int = 256 * 2**20,
    ):
        self.folder = folder
        self._merge, self._size = merge, size
        self.max_runs = max_runs
        self.max_bytes = max_bytes
        self._lock = threading.Lock()
        self._runs: OrderedDict[RunKey, SharedRun] = OrderedDict()
        self._numbers = itertools.count(1)
        self.class_run: SharedRun | None = None  # the lesson's run every page of a class run shows

    def join(self, key: RunKey, start: Callable[[SharedRun], None]) -> tuple[SharedRun, bool]:
        """The run for `key` and whether it was already there (running, or finished and
        complete); else a new one, handed to `start`, which must set it going (on a thread of
        its own) and end it with `finish`. The caller follows it; `leave` when done."""
        with self._lock:
            run = self._runs.get(key)
            shared = run is not None and (run.complete or not (run.done or run.stop_requested))
            if not shared:
                # A folder of its own: a stopped run of the same key may still be winding down in its own.
                folder = self.folder / f"{key.digest}-{next(self._numbers)}"
                run = SharedRun(key, folder, self._merge, self._size)
                self._runs[key] = run
            self._runs.move_to_end(key)
            self._count(run, +1)
        if not shared:
            start(run)
        return run, shared

    def attach(self, run: SharedRun) -> bool:
        """One more follower for `run` (a page shown a run it did not ask for: a class run);
        False when the run is no longer to be followed (stopped, or failed)."""
        with self._lock:
            if not _followable(run):
                return False
            self._count(run, +1)
            return True

    def choose_class_run(self, run: SharedRun | None) -> bool:
        """Make `run` the class run (the teacher's choice); False when it can no longer be
        followed (stopped, failed, or out of the cache with its files)."""
        with self._lock:
            if run is None or self._runs.get(run.key) is not run or not _followable(run):
                return False
            self.class_run = run
            return True

    def leave(self, run: SharedRun) -> int:
        """A follower is done with `run`; the followers left. With none left, a run still
        going is asked to stop and forgotten (its result would not be what its key promises);
        a forgotten run that is over loses its folder."""
        with self._lock:
            self._count(run, -1)
            if run.followers == 0:
                if not run.done:
                    run.request_stop()
                    self._forget(run)
                elif self._runs.get(run.key) is not run:
                    shutil.rmtree(run.folder, ignore_errors=True)
            return run.followers

    def stop(self, run: SharedRun) -> None:
        """Stop `run` for everyone following it (its only follower's Stop). It still ends with
        a report of the model so far; it is never shared."""
        with self._lock:
            run.request_stop()
            self._forget(run)

    def finished(self, run: SharedRun) -> None:
        """The producer's last call, after `finish`: a complete run stays for later requests,
        within the cache's bounds; one that is not is forgotten."""
        with self._lock:
            if not run.complete:
                self._forget(run)
                if run.followers == 0:
                    shutil.rmtree(run.folder, ignore_errors=True)
            self._trim()

    def runs(self) -> list[SharedRun]:
        with self._lock:
            return list(self._runs.values())

    @staticmethod
    def _count(run: SharedRun, change: int) -> None:
        run.followers += change
        if not run.done:  # the training process weights the run's turns by it
            run.share.set(run.followers)

    def _forget(self, run: SharedRun) -> None:
        if self._runs.get(run.key) is run:
            del self._runs[run.key]

    def _trim(self) -> None:
        """Drop the least recently used finished runs nobody follows, until within bounds."""

        def over() -> bool:
            kept = list(self._runs.values())
            return len(kept) > self.max_runs or sum(r.nbytes for r in kept) > self.max_bytes

        for key, run in list(self._runs.items()):
            if not over():
                return
            if run.done and run.followers == 0:
                del self._runs[key]
                shutil.rmtree(run.folder, ignore_errors=True)


__all__ = ["NOT_IN_KEY", "RunHub", "RunKey", "SharedRun"]
