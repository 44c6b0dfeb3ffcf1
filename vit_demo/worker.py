"""Trainings in a process of their own, streaming what they report back to the server.

A training and a web server in one Python process share one interpreter lock: each
figure the server draws and each update it serialises holds it, and the training's step
threads wait meanwhile. Measured on 2 cores, a drawing loop that kept one core 25 % busy
cost a training in the same process 24 % of its speed, and 15 % from another process
(benchmarks/RESULTS.md). So the app trains in a `TrainingProcess`: spawned once, kept warm
(torch imported, the datasets decoded and cached).

One process runs several trainings at once, **report by report**: it takes one report of
a running job at a time (a training reports after each ~0.4 s of its own work), so with seven students
training, each sees a curve point within a few seconds and the machine's cores always work
on one training at full speed. A job's turns are weighted by its `share` (the pages
following it, `sessions.Followers`): the machine is shared per student, not per run, so the
run that 24 students of a class share gets 24 turns for each turn of a run one student
follows, and ends first (stride scheduling: the job that has had the fewest turns for its
share goes next). One process, not one per training: a warm training process
holds ~0.5-0.9 GB (torch and the datasets), which a class's worth of them could not afford.

A job is a generator function named by reference (it must live at a module's top level)
with picklable arguments; each value it yields is pickled back. Plain pickle, by value:
multiprocessing's own pickler would hand tensors over as shared memory that the sender
may free (and the next update reuse) before the server maps it. The same contract is what
a ZeroGPU Space needs of the function it lends a GPU to (`spaces.GPU` runs it in a forked
worker and pickles arguments and yields both ways), so `sessions.run_training` is written
once for both.

Stopping crosses the process boundary as a file (`sessions.StopFlag`): a job that takes a
`stop` keyword gets it. When the server stops reading a job early (the browser tab was
closed) the job is closed at its next report, its other jobs going on. A process that dies
(killed for memory, say) is reported to every job it ran as `TrainingProcessDied` and
replaced by a fresh one for the next job.
"""

from __future__ import annotations

import itertools
import multiprocessing
import pickle
import queue
import signal
import threading
from collections.abc import Callable, Iterator
from multiprocessing.connection import Connection

POLL_SECONDS = 0.5
# Reports a new job gets before it takes turns with the others: its starting point (the
# untrained model's scores) and its first report of training steps.
FIRST_REPORTS = 2


class TrainingProcessDied(RuntimeError):
    """The process running a training ended without finishing it."""


def _serve(connection: Connection, threads: int | None) -> None:
    """The child's loop: start jobs as they come, and take one value of each running job in
    turn, sending back ("update", job, value), then ("end", job, None) or ("error", job,
    exception). ("cancel", job) closes a job at once."""
    from .step import configure_threads

    configure_threads(threads)
    jobs: dict[int, _Job] = {}
    while True:
        try:
            while connection.poll(0 if jobs else None):  # wait for work only when there is none
                _take_message(connection, jobs)
        except EOFError:  # the server went away
            return
        job = _next_turn(jobs)
        try:
            value = next(jobs[job].values)
            jobs[job].took_turn()
            _send(connection, ("update", job, value))
        except StopIteration:
            del jobs[job]
            _send(connection, ("end", job, None))
        except Exception as error:  # noqa: BLE001 - every failure goes back to the server, as itself
            del jobs[job]
            _send_error(connection, job, error)


class _Job:
    """A running job in the child: what it yields, its share, and its turns so far."""

    def __init__(self, values: Iterator, share: Callable[[], float] | None, start: float):
        self.values = values
        self.share = share
        self.reports = 0
        self.turns = start  # turns taken, each counted as 1 / share: the stride scheduler's clock

    def took_turn(self) -> None:
        self.reports += 1
        if self.reports > FIRST_REPORTS:
            self.turns += 1 / max(self.share() if self.share is not None else 1, 1)


def _next_turn(jobs: dict[int, _Job]) -> int:
    """A job that has not reported a training step yet goes first (a student who just pressed
    Start sees the model learn within seconds, not after everyone's turn); else the job with
    the fewest turns for its share, the oldest on a tie."""
    starting = [job for job, state in jobs.items() if state.reports < FIRST_REPORTS]
    if starting:
        return starting[0]
    return min(jobs, key=lambda job: (jobs[job].turns, job))


def _take_message(connection: Connection, jobs: dict[int, _Job]) -> None:
    kind, job, *payload = _receive(connection)
    if kind == "cancel":
        state = jobs.pop(job, None)
        if state is not None:
            state.values.close()  # the job's own clean-up (its `finally`) runs now
        _send(connection, ("end", job, None))
        return
    function, args, kwargs, share = payload
    try:
        # A newcomer starts level with the jobs running now: it has no turns saved up.
        start = min((state.turns for state in jobs.values()), default=0.0)
        jobs[job] = _Job(iter(function(*args, **kwargs)), share, start)
    except Exception as error:  # noqa: BLE001 - as above
        _send_error(connection, job, error)


def _send_error(connection: Connection, job: int, error: Exception) -> None:
    try:
        _send(connection, ("error", job, error))
    except Exception:  # noqa: BLE001 - an exception that cannot be pickled
        _send(connection, ("error", job, RuntimeError(f"{type(error).__name__}: {error}")))


def _send(connection: Connection, message) -> None:
    connection.send_bytes(pickle.dumps(message, protocol=pickle.HIGHEST_PROTOCOL))


def _receive(connection: Connection):
    return pickle.loads(connection.recv_bytes())


class TrainingProcess:
    """One spawned process that runs jobs, several at once. It starts on first use; a reader
    thread hands each job its own messages."""

    def __init__(self, threads: int | None = None):
        self.threads = threads
        self._process = None
        self._connection: Connection | None = None
        self._lock = threading.Lock()  # the process and the table of jobs (never held while sending)
        self._sending = threading.Lock()  # one message at a time down the pipe
        self._jobs: dict[int, queue.Queue] = {}
        self._numbers = itertools.count(1)

    def _start(self) -> None:
        context = multiprocessing.get_context("spawn")
        ours, theirs = context.Pipe(duplex=True)
        self._process = context.Process(
            target=_serve, args=(theirs, self.threads), name="vit-demo-training", daemon=True
        )
        self._process.start()
        theirs.close()
        self._connection = ours
        threading.Thread(
            target=self._read, args=(self._process, ours), name="vit-demo-training-reader", daemon=True
        ).start()

    def _read(self, process, connection: Connection) -> None:
        """Hand each message to its job, until the process is gone; then tell every job left."""
        while True:
            try:
                kind, job, value = _receive(connection)
            except (EOFError, OSError):
                break
            with self._lock:
                mailbox = self._jobs.get(job)
            if mailbox is not None:
                mailbox.put((kind, value))
        process.join(5)
        died = self._died(process.exitcode)
        with self._lock:
            if self._process is process:  # not already replaced (or closed) by the server
                self._process = self._connection = None
            orphans = list(self._jobs.values())
        for mailbox in orphans:
            mailbox.put(("died", died))

    @staticmethod
    def _died(code: int | None) -> TrainingProcessDied:
        killed = ""
        if code is not None and code < 0:
            signal_name = signal.Signals(-code).name if -code in signal.valid_signals() else f"signal {-code}"
            # The kernel's out-of-memory killer sends SIGKILL; a SIGTERM is someone ending it on purpose.
            killed = f": {signal_name}" + (", most likely for lack of memory" if -code == signal.SIGKILL else "")
        return TrainingProcessDied(
            f"the training process ended unexpectedly (exit code {code}{killed}). Try a smaller model or batch size."
        )

    @property
    def alive(self) -> bool:
        return self._process is not None and self._process.is_alive()

    @property
    def pid(self) -> int | None:
        return self._process.pid if self._process is not None else None

    @property
    def jobs(self) -> int:
        """Jobs running now."""
        with self._lock:
            return len(self._jobs)

    def start(self) -> None:
        """Start the process now (it imports torch: seconds) instead of at the first job."""
        with self._lock:
            if not self.alive:
                self._start()

    def run(
        self, function: Callable[..., Iterator], *args, share: Callable[[], float] | None = None, **kwargs
    ) -> Iterator:
        """Run `function(*args, **kwargs)` in the process, beside its other jobs, yielding what
        it yields. `share` (picklable, read in the process at each turn; default 1) weights the
        job's turns against the others'."""
        mailbox: queue.Queue = queue.Queue()
        with self._lock:
            if not self.alive:
                self._start()
            job = next(self._numbers)
            self._jobs[job] = mailbox
            connection = self._connection
        with self._sending:
            _send(connection, ("start", job, function, args, kwargs, share))
        finished = False
        try:
            while True:
                kind, value = mailbox.get()
                if kind == "update":
                    yield value
                    continue
                finished = True
                if kind in ("error", "died"):
                    raise value
                return
        finally:
            with self._lock:
                self._jobs.pop(job, None)
                cancel = not finished and self._connection is connection and self.alive
            if cancel:  # the reader left: the job ends at once
                with self._sending:
                    try:
                        _send(connection, ("cancel", job))
                    except OSError:  # the process ended meanwhile
                        pass

    def close(self) -> None:
        with self._lock:
            process, connection = self._process, self._connection
            self._process = self._connection = None
        if connection is not None:
            connection.close()
        if process is not None and process.is_alive():
            process.terminate()
            process.join(5)


__all__ = ["TrainingProcess", "TrainingProcessDied"]
