"""A first-come queue for training seats: at most `capacity` trainings at once, everyone
else waits in line and sees their place and an estimated start."""

from __future__ import annotations

import heapq
import itertools
import threading
import time
from dataclasses import dataclass


@dataclass(frozen=True)
class Ticket:
    """One person's request for a training seat."""

    number: int


class TrainingQueue:
    """At most `capacity` trainings at once; the rest wait first come, first served."""

    def __init__(self, capacity: int):
        if capacity < 1:
            raise ValueError(f"at least one training must be allowed at a time, got {capacity}")
        self.capacity = capacity
        self._numbers = itertools.count(1)
        self._condition = threading.Condition()
        self._waiting: list[Ticket] = []
        self._running: dict[Ticket, float | None] = {}  # ticket -> when it expects to end (monotonic)
        self._durations: dict[Ticket, float | None] = {}  # ticket -> the seconds it expects to train

    def join(self, expected_seconds: float | None = None) -> Ticket:
        """A place at the end of the line, for a training expected to take `expected_seconds`
        (which estimates the start of everyone behind it)."""
        with self._condition:
            ticket = Ticket(next(self._numbers))
            self._waiting.append(ticket)
            self._durations[ticket] = expected_seconds
            return ticket

    def wait_turn(self, ticket: Ticket, timeout: float) -> int:
        """Wait up to `timeout` seconds for a seat: 0 once `ticket` holds one, else its
        place in line (1: next to start)."""
        with self._condition:
            self._condition.wait_for(lambda: self._may_start(ticket), timeout)
            if ticket in self._running:
                return 0
            if self._may_start(ticket):
                self._waiting.remove(ticket)
                self._running[ticket] = None
                return 0
            return self._waiting.index(ticket) + 1

    def _may_start(self, ticket: Ticket) -> bool:
        if ticket in self._running:
            return True
        free = self.capacity - len(self._running)
        return ticket in self._waiting[:free]

    def expect_end(self, ticket: Ticket, seconds_left: float) -> None:
        """A running training says how long it still needs (for the people waiting)."""
        with self._condition:
            if ticket in self._running:
                self._running[ticket] = time.monotonic() + max(seconds_left, 0.0)

    def estimated_start(self, ticket: Ticket) -> float | None:
        """Seconds until `ticket` should get a seat: the seats free up as the running trainings
        expect to end, and each one ahead in line then takes its expected time. None while some
        of that is not known yet; 0 once it holds a seat."""
        with self._condition:
            if ticket in self._running:
                return 0.0
            if ticket not in self._waiting:
                return None
            now = time.monotonic()
            free_at = [end for end in self._running.values()]
            free_at += [now] * (self.capacity - len(free_at))
            if any(end is None for end in free_at):
                return None
            heapq.heapify(free_at)
            for ahead in self._waiting:
                start = max(heapq.heappop(free_at), now)
                if ahead == ticket:
                    return start - now
                duration = self._durations.get(ahead)
                if duration is None:
                    return None
                heapq.heappush(free_at, start + duration)
        return None

    def leave(self, ticket: Ticket) -> None:
        """Give up a seat or a place in line (safe to call more than once)."""
        with self._condition:
            self._durations.pop(ticket, None)
            self._running.pop(ticket, None)
            if ticket in self._waiting:
                self._waiting.remove(ticket)
            self._condition.notify_all()

    @property
    def running(self) -> int:
        with self._condition:
            return len(self._running)

    @property
    def waiting(self) -> int:
        with self._condition:
            return len(self._waiting)
