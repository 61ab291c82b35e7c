"""Actors interleaved at AWS-call boundaries, one at a time, in an order a seed decides.

Each actor (a router invocation, a job, the sweep, a user's submit, retry or cancel) runs the real code on a thread
of its own, but only while the scheduler lets it: a botocore `before-call` hook parks it before each AWS call and
hands control back. So every interleaving of the actors' calls, and a crash before any one of them, is a choice of the
seed, and a schedule replays exactly. Calls made on other threads (s3transfer's workers) are not parked.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any


class Killed(BaseException):
    """Raised inside an actor at a parked call: its process, invocation or command dies there."""


@dataclass
class Actor:
    kind: str  # "stream", "event", "job", "sweep", "submit", "retry", "cancel"
    name: str
    body: Callable[[], Any]
    meta: dict[str, Any] = field(default_factory=dict)
    calls: int = 0  # AWS calls made so far (parked before each)
    done_call: str = ""  # the operation of the last call it made, e.g. "SubmitJob"
    next_call: str = ""  # the operation it is parked before
    held: bool = False  # not scheduled until released (a job that Batch lost track of, still running somewhere)
    done: bool = False
    result: Any = None
    error: BaseException | None = None
    writes: list[tuple[str, str]] = field(default_factory=list)  # (what, key) of every write it sent
    _kill: BaseException | None = None
    _go: threading.Semaphore = field(default_factory=lambda: threading.Semaphore(0))
    _back: threading.Semaphore = field(default_factory=lambda: threading.Semaphore(0))
    _thread: threading.Thread | None = None


class Scheduler:
    """Runs one actor at a time; `current` is the actor now running (None while the scheduler itself runs)."""

    def __init__(self) -> None:
        self.current: Actor | None = None
        self.live: list[Actor] = []

    def spawn(self, actor: Actor) -> Actor:
        def run() -> None:
            actor._go.acquire()
            try:
                actor.result = actor.body()
            except BaseException as exc:  # the actor's own failure, or the kill we injected
                actor.error = exc
            finally:
                actor.done = True
                actor._back.release()

        actor._thread = threading.Thread(target=run, name=f"sim-{actor.name}", daemon=True)
        actor._thread.start()
        self.live.append(actor)
        return actor

    def step(self, actor: Actor, kill: BaseException | None = None) -> None:
        """Let the actor run to its next AWS call (or its end); with `kill`, it dies where it is parked instead."""
        actor._kill = kill
        self.current = actor
        actor._go.release()
        actor._back.acquire()
        self.current = None
        if actor.done:
            self.live.remove(actor)
            actor._thread.join() if actor._thread else None

    def finish(self, actor: Actor) -> None:
        while not actor.done:
            self.step(actor)

    def park(self, model: Any, **_: Any) -> None:
        """The `before-call` hook: park the running actor (on its own thread only) before this call."""
        actor = self.current
        if actor is None or threading.current_thread() is not actor._thread:
            return
        actor.done_call, actor.next_call = actor.next_call, model.name
        actor._back.release()
        actor._go.acquire()
        actor.calls += 1
        if actor._kill is not None:
            kill, actor._kill = actor._kill, None
            raise kill
