"""The decode thread: bounded read-ahead (flat memory on long videos), errors reach the consumer, early stop."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator

import pytest

from detector.errors import DetectorError
from detector.reader import ThreadedReader


def test_producer_stays_a_bounded_distance_ahead() -> None:
    produced: list[int] = []

    def produce() -> Iterator[int]:
        for i in range(1000):
            produced.append(i)
            yield i

    with ThreadedReader(produce, lambda x: x * 2, depth=4) as reader:
        items = iter(reader)
        assert next(items) == 0
        time.sleep(0.3)
        assert len(produced) <= 1 + 4 + 1  # consumed, queued, and one waiting to be queued
        assert list(items) == [2 * i for i in range(1, 1000)]


def test_an_error_in_the_thread_is_raised_to_the_consumer() -> None:
    def produce() -> Iterator[int]:
        yield 1
        raise DetectorError("cannot decode video x.mp4")

    with ThreadedReader(produce, lambda x: x, depth=2) as reader, pytest.raises(DetectorError, match=r"x\.mp4"):
        list(reader)


def test_leaving_early_stops_the_thread() -> None:
    def produce() -> Iterator[int]:
        yield from range(10**9)

    before = threading.active_count()
    with ThreadedReader(produce, lambda x: x, depth=2) as reader:
        next(iter(reader))
    assert threading.active_count() == before
