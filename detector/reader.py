"""Decoding in its own thread, feeding a bounded queue, so inference never waits for the decoder.

The thread also prepares each frame's model inputs (resize, tiles): the consumer only batches and runs models.
The queue bound keeps memory flat on videos of any length; an error in the thread reaches the consumer as itself.
"""

from __future__ import annotations

import contextlib
import queue
import threading
from collections.abc import Callable, Iterable, Iterator
from types import TracebackType
from typing import Generic, TypeVar

S = TypeVar("S")
T = TypeVar("T")
_DONE = object()


class _Failed:
    def __init__(self, exc: BaseException) -> None:
        self.exc = exc


class ThreadedReader(Generic[S, T]):
    """Iterate `prepare(item)` for each item of `produce()`, produced in a background thread at most `depth` ahead."""

    def __init__(self, produce: Callable[[], Iterable[S]], prepare: Callable[[S], T], depth: int) -> None:
        self._queue: queue.Queue[object] = queue.Queue(maxsize=max(1, depth))
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._work, args=(produce, prepare), name="decode", daemon=True)

    def __enter__(self) -> ThreadedReader[S, T]:
        self._thread.start()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def close(self) -> None:
        """Stop the producer (it may be blocked on a full queue) and wait for it."""
        self._stop.set()
        while self._thread.is_alive():
            with contextlib.suppress(queue.Empty):
                self._queue.get(timeout=0.05)
        self._thread.join()

    def _put(self, item: object) -> bool:
        while not self._stop.is_set():
            try:
                self._queue.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def _work(self, produce: Callable[[], Iterable[S]], prepare: Callable[[S], T]) -> None:
        try:
            for item in produce():
                if not self._put(prepare(item)):
                    return
        except BaseException as exc:  # handed to the consumer, which re-raises it
            self._put(_Failed(exc))
            return
        self._put(_DONE)

    def __iter__(self) -> Iterator[T]:
        while True:
            item = self._queue.get()
            if item is _DONE:
                return
            if isinstance(item, _Failed):
                raise item.exc
            yield item  # type: ignore[misc]
