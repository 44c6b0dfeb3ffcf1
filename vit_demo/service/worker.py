"""Trainings in a process of their own, streaming what they report back to the server.

A training and a web server in one Python process share one interpreter lock: each
figure the server draws and each update it serialises holds it, and the training's step
threads wait meanwhile. Measured on 2 cores, a drawing loop that kept one core 25 % busy
cost a training in the same process 24 % of its speed, and 15 % from another process
(benchmarks/RESULTS.md). So the app trains in a `TrainingProcess`: spawned once, kept warm
(torch imported, the datasets decoded and cached).

One process runs several trainings at once, **report by report**, in **lanes**: threads
that each take one report of one running job at a time (a training reports after each
~0.4 s of its own work), so with seven students training, each sees a curve point within a
few seconds. There are as many lanes as the cores hold at the process's threads per
operation: on two cores, where the app gives a training one thread per operation, two. A
training alone splits each step over both cores (`step.BatchSplitter`), and beside another
it takes one core, with the same numbers. Two trainings side by side do more than one split over both
cores, because a step's optimizer, clipping and batch are one thread's work and its split
halves wait for each other: measured on 2 cores, three runs started together trained
1.37-1.41x as many images a second on two lanes as on one with AVX-512 kernels, 1.14x with
AVX2 ones (benchmarks/side_by_side.py).

A job's turns are weighted by its `share` (the pages following it, `sessions.Followers`):
the machine is shared per student, not per run (stride scheduling: the job that has had
the fewest turns for its share goes next). A job is in one lane at a time, so the run that
24 students of a class share keeps a lane to itself while the runs one student each follows
share the other, and it ends first. One process, not one per training: a warm training
process holds ~0.5-0.9 GB (torch and the datasets), which a class's worth of them could
not afford, and threads in one process train side by side nearly as fast as processes.

The process runs at a lower priority than the server (`NICENESS`). A page's requests (an
exploration, a live update) are short and someone waits for each; nobody waits for a
training's next step in particular. So the kernel gives the server's threads a core as soon
as they want one, and the trainings everything else, which is most of it (the server used
35-46 CPU-seconds of a class's 360-460). Measured in the class benchmark: explore p50 from
137-227 ms to 81-89 ms, p95 from 3.7-4.5 s to 2.4-3.9 s, the trainings as fast as before
(benchmarks/RESULTS.md).

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

import multiprocessing
import os
import pickle
import queue
import signal
import threading
from collections.abc import Callable, Iterator
from multiprocessing.connection import Connection

# The training process's Unix niceness: the kernel then runs the server's threads first.
NICENESS = 10
# Reports a new job gets before it takes turns with the others: its starting point (the
# untrained model's scores) and its first report of training steps.
FIRST_REPORTS = 2


class TrainingProcessDied(RuntimeError):
    """The process running a training ended without finishing it."""


def lanes_for(threads: int) -> int:
    """The lanes a training process takes by default: as many as the cores hold at `threads`
    threads per operation."""
    from ..machine import available_cores

    return max(1, available_cores() // threads)


def _serve(connection: Connection, threads: int | None, lanes: int | None, niceness: int) -> None:
    """The child: `lanes` threads take the running jobs' turns (`_Lanes`), and this one
    takes the server's messages: ("start", job, function, args, kwargs, share) adds a job,
    ("cancel", job) closes one at once."""
    if niceness and hasattr(os, "nice"):  # Unix; first, so that every thread started here inherits it
        os.nice(niceness)
    import torch

    from ..machine import configure_threads

    configure_threads(threads)
    threads = torch.get_num_threads()
    board = _Lanes(connection)
    for number in range(lanes or lanes_for(threads)):
        threading.Thread(target=board.lane, args=(threads,), name=f"vit-demo-lane-{number}", daemon=True).start()
    while True:
        try:
            message = _receive(connection)
        except EOFError:  # the server went away
            return
        board.take(message)


class _Job:
    """A running job in the child: what it yields, its share, and its turns so far."""

    def __init__(self, values: Iterator, share: Callable[[], float] | None, start: float):
        self.values = values
        self.share = share
        self.reports = 0
        self.turns = start  # turns taken, each counted as 1 / share: the stride scheduler's clock
        self.in_lane = False  # a lane is taking its turn now
        self.cancelled = False  # the server let go of it during that turn

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


class _Lanes:
    """The child's running jobs, and the lanes that take their turns: threads that each take
    one turn (one report) of one job at a time, counted by `step.training_on_this_thread`. A
    job is in one lane at a time, so the job with the largest share keeps a lane to itself
    and the others share the rest."""

    def __init__(self, connection: Connection):
        self.connection = connection
        self.jobs: dict[int, _Job] = {}
        self.changed = threading.Condition()  # the table of jobs; lanes wait on it for work
        self.sending = threading.Lock()  # one message at a time up the pipe

    def send(self, message) -> None:
        with self.sending:
            _send(self.connection, message)

    def send_error(self, job: int, error: Exception) -> None:
        try:
            self.send(("error", job, error))
        except Exception:  # noqa: BLE001 - an exception that cannot be pickled
            self.send(("error", job, RuntimeError(f"{type(error).__name__}: {error}")))

    def take(self, message: tuple) -> None:
        """A message from the server."""
        kind, job, *payload = message
        if kind == "cancel":
            with self.changed:
                state = self.jobs.get(job)
                if state is not None and state.in_lane:
                    state.cancelled = True  # its lane closes it after this turn
                    return
                self.jobs.pop(job, None)
            self._close(job, state)
            return
        function, args, kwargs, share = payload
        try:
            values = iter(function(*args, **kwargs))
        except Exception as error:  # noqa: BLE001 - every failure goes back to the server, as itself
            self.send_error(job, error)
            return
        with self.changed:
            # A newcomer starts level with the jobs running now: it has no turns saved up.
            start = min((state.turns for state in self.jobs.values()), default=0.0)
            self.jobs[job] = _Job(values, share, start)
            self.changed.notify()

    def lane(self, threads: int) -> None:
        """One lane: take the next job's turn, send what it yields, and on to the next."""
        from ..machine import use_threads_on_this_thread
        from ..step import training_on_this_thread

        use_threads_on_this_thread(threads)
        while True:
            job, state = self._next_job()
            try:
                with training_on_this_thread():
                    value = next(state.values)
                state.took_turn()
                self.send(("update", job, value))
            except StopIteration:
                self._drop(job)
                self.send(("end", job, None))
            except Exception as error:  # noqa: BLE001 - as above
                self._drop(job)
                self.send_error(job, error)
            else:
                self._put_back(job, state)

    def _next_job(self) -> tuple[int, _Job]:
        with self.changed:
            while True:
                waiting = {job: state for job, state in self.jobs.items() if not state.in_lane}
                if waiting:
                    job = _next_turn(waiting)
                    self.jobs[job].in_lane = True
                    return job, self.jobs[job]
                self.changed.wait()

    def _put_back(self, job: int, state: _Job) -> None:
        with self.changed:
            state.in_lane = False
            if not state.cancelled:
                self.changed.notify()
                return
            del self.jobs[job]
        self._close(job, state)

    def _close(self, job: int, state: _Job | None) -> None:
        """End a job the server let go of (None: it had ended already) and tell the server."""
        if state is not None:
            state.values.close()  # the job's own clean-up (its `finally`) runs now
        self.send(("end", job, None))

    def _drop(self, job: int) -> None:
        with self.changed:
            del self.jobs[job]


def _send(connection: Connection, message) -> None:
    connection.send_bytes(pickle.dumps(message, protocol=pickle.HIGHEST_PROTOCOL))


def _receive(connection: Connection):
    return pickle.loads(connection.recv_bytes())


class TrainingProcess:
    """One spawned process that runs jobs, several at once. It starts on first use; a reader
    thread hands each job its own messages."""

    def __init__(self, threads: int | None = None, lanes: int | None = None, niceness: int = NICENESS):
        """`threads`: per operation (default: every core); `lanes`: trainings taking turns side
        by side (default: `lanes_for` the threads); `niceness`: how far
        below the server the process's priority is (module docstring)."""
        self.threads = threads
        self.lanes = lanes
        self.niceness = niceness
        self._process = None
        self._connection: Connection | None = None
        self._lock = threading.Lock()  # the process and the table of jobs (never held while sending)
        self._sending = threading.Lock()  # one message at a time down the pipe
        self._jobs: dict[int, queue.Queue] = {}
        self._started = 0  # jobs started so far: the last one's number

    def _start(self) -> None:
        context = multiprocessing.get_context("spawn")
        ours, theirs = context.Pipe(duplex=True)
        self._process = context.Process(
            target=_serve, args=(theirs, self.threads, self.lanes, self.niceness), name="vit-demo-training", daemon=True
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

    @property
    def started(self) -> int:
        """Jobs started since this object was made."""
        with self._lock:
            return self._started

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
            self._started += 1
            job = self._started
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


__all__ = ["TrainingProcess", "TrainingProcessDied", "lanes_for"]
