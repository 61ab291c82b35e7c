"""People per second is what a viewer would count: one frame's false or missed box does not change it."""

from __future__ import annotations

from typing import Any

from batch_jobs.actions import people_per_second


def frame(t: float, people: int, faces: int = 0) -> dict[str, Any]:
    boxes = [{"label": "person", "score": 0.9, "box": [0.1, 0.1, 0.2, 0.5]}] * people
    boxes += [{"label": "face", "score": 0.8, "box": [0.12, 0.1, 0.15, 0.14]}] * faces
    return {"index": round(t * 4), "t": t, "detections": boxes}


def test_one_odd_frame_does_not_move_a_second() -> None:
    frames = [frame(0.0, 2), frame(0.25, 3), frame(0.5, 2, faces=2), frame(0.75, 2)]  # one false person box
    frames += [frame(1.0, 1), frame(1.25, 0), frame(1.5, 1)]  # one missed person
    frames += [frame(2.0, 4), frame(2.5, 3)]  # an even count: the lower middle, never more than seen
    assert people_per_second(frames) == {0: 2, 1: 1, 2: 3}


def test_chunk_times_are_put_on_the_source_timeline() -> None:
    assert people_per_second([frame(0.0, 1), frame(0.5, 2), frame(0.9, 2)], offset=29.6) == {29: 1, 30: 2}
