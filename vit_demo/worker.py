"""Trainings in a process of their own, streaming what they report back to the server.

A training and a web server in one Python process share one interpreter lock: each
figure the server draws and each update it serialises holds it, and the training's step
threads wait meanwhile. Measured on 2 cores, a drawing loop that kept one core 25 % busy
cost a training in the same process 24 % of its speed, and 15 % from another process
(benchmarks/RESULTS.md). So the app trains in `TrainingProcess`es: spawned once, kept
warm (torch imported, the datasets decoded and cached), one training at a time each.

A job is a generator function named by reference (it must live at a module's top level)
with picklable arguments; each value it yields is pickled back. Plain pickle, by value:
multiprocessing's own pickler would hand tensors over as shared memory that the sender
may free (and the next update reuse) before the server maps it. The same contract is what
a ZeroGPU Space needs of the function it lends a GPU to (`spaces.GPU` runs it in a forked
worker and pickles arguments and yields both ways), so `sessions.run_training` is written
once for both.

Stopping crosses the process boundary as a file (`sessions.StopFlag`): a job that takes a
`stop` keyword gets it; when the server stops reading a job early (the browser tab was
closed) it raises that flag and lets the job finish its step before the next job starts.
A process that dies (killed for memory, say) is reported as `TrainingProcessDied` and
replaced by a fresh one for the next job.
"""

from __future__ import annotations

import multiprocessing
import pickle
import queue
import signal
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from multiprocessing.connection import Connection

# How long a job that was abandoned may take to notice its stop flag and end, before its
# process is killed and replaced (a stop lands after one step; a stopped run then scores
# a 2,000-image slice).
ABANDON_SECONDS = 30.0
POLL_SECONDS = 0.5


class TrainingProcessDied(RuntimeError):
    """The process running a training ended without finishing it."""


def _serve(connection: Connection, threads: int | None) -> None:
    """The child's loop: run each job, send back ("update", value) per yield, then ("end", None)
    or ("error", exception)."""
    from .step import configure_threads

    configure_threads(threads)
    while True:
        try:
            function, args, kwargs = _receive(connection)
        except EOFError:  # the server went away
            return
        try:
            for value in function(*args, **kwargs):
                _send(connection, ("update", value))
            _send(connection, ("end", None))
        except Exception as error:  # noqa: BLE001 - every failure goes back to the server, as itself
            try:
                _send(connection, ("error", error))
            except Exception:  # noqa: BLE001 - an exception that cannot be pickled
                _send(connection, ("error", RuntimeError(f"{type(error).__name__}: {error}")))


def _send(connection: Connection, message) -> None:
    connection.send_bytes(pickle.dumps(message, protocol=pickle.HIGHEST_PROTOCOL))


def _receive(connection: Connection):
    return pickle.loads(connection.recv_bytes())


class TrainingProcess:
    """One spawned process that runs jobs one at a time. It starts on first use."""

    def __init__(self, threads: int | None = None):
        self.threads = threads
        self._process = None
        self._connection: Connection | None = None
        self._starting = threading.Lock()  # the background start and a first job may race

    def _start(self) -> None:
        context = multiprocessing.get_context("spawn")
        ours, theirs = context.Pipe(duplex=True)
        self._process = context.Process(
            target=_serve, args=(theirs, self.threads), name="vit-demo-training", daemon=True
        )
        self._process.start()
        theirs.close()
        self._connection = ours

    @property
    def alive(self) -> bool:
        return self._process is not None and self._process.is_alive()

    @property
    def pid(self) -> int | None:
        return self._process.pid if self._process is not None else None

    def start(self) -> None:
        """Start the process now (it imports torch: seconds) instead of at the first job."""
        with self._starting:
            if not self.alive:
                self._start()

    def run(self, function: Callable[..., Iterator], *args, **kwargs) -> Iterator:
        """Run `function(*args, **kwargs)` in the process, yielding what it yields."""
        self.start()
        _send(self._connection, (function, args, kwargs))
        finished = False
        try:
            while True:
                kind, value = self._receive()
                if kind == "update":
                    yield value
                    continue
                finished = True
                if kind == "error":
                    raise value
                return
        finally:
            if not finished:
                self._abandon(kwargs.get("stop"))

    def _receive(self) -> tuple[str, object]:
        while not self._connection.poll(POLL_SECONDS):
            if not self._process.is_alive():
                raise self._died()
        try:
            return _receive(self._connection)
        except EOFError:  # the process is gone: its end of the pipe closed with it
            raise self._died() from None

    def _died(self) -> TrainingProcessDied:
        self._process.join(5)
        code = self._process.exitcode
        self._replace()
        killed = ""
        if code is not None and code < 0:
            signal_name = signal.Signals(-code).name if -code in signal.valid_signals() else f"signal {-code}"
            # The kernel's out-of-memory killer sends SIGKILL; a SIGTERM is someone ending it on purpose.
            killed = f": {signal_name}" + (", most likely for lack of memory" if -code == signal.SIGKILL else "")
        return TrainingProcessDied(
            f"the training process ended unexpectedly (exit code {code}{killed}). Try a smaller model or batch size."
        )

    def _abandon(self, stop) -> None:
        """The reader left mid-job: ask the job to stop and read it to its end, so the
        process is free for the next one; kill and replace a process that does not end."""
        if not self.alive:
            return
        if stop is not None:
            stop.request()
        deadline = time.monotonic() + ABANDON_SECONDS
        try:
            while time.monotonic() < deadline:
                if self._connection.poll(POLL_SECONDS):
                    kind, _ = _receive(self._connection)
                    if kind in ("end", "error"):
                        return
                elif not self._process.is_alive():
                    break
        except (EOFError, OSError):  # the process ended, or the server closed it meanwhile
            pass
        self._replace()

    def _replace(self) -> None:
        self.close()
        self._process = self._connection = None

    def close(self) -> None:
        if self._connection is not None:
            self._connection.close()
        if self._process is not None and self._process.is_alive():
            self._process.terminate()
            self._process.join(5)


class TrainingProcesses:
    """`count` training processes; `take()` lends an idle one for the length of a job."""

    def __init__(self, count: int, threads: int | None = None):
        if count < 1:
            raise ValueError(f"at least one training process is needed, got {count}")
        self.processes = [TrainingProcess(threads) for _ in range(count)]
        self._idle: queue.Queue[TrainingProcess] = queue.Queue()
        for process in self.processes:
            self._idle.put(process)

    def start(self) -> None:
        """Start every process in the background (each imports torch: seconds)."""
        for process in self.processes:
            threading.Thread(target=process.start, name="vit-demo-training-start", daemon=True).start()

    @contextmanager
    def take(self) -> Iterator[TrainingProcess]:
        process = self._idle.get()
        try:
            yield process
        finally:
            self._idle.put(process)

    def run(self, function: Callable[..., Iterator], *args, **kwargs) -> Iterator:
        """Run a job on an idle process (waiting for one if all are busy)."""
        with self.take() as process:
            yield from process.run(function, *args, **kwargs)

    def close(self) -> None:
        for process in self.processes:
            process.close()


__all__ = ["TrainingProcess", "TrainingProcessDied", "TrainingProcesses"]
