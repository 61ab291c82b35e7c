"""Merging chunk results: absolute indices and times, each source frame at most once, frames in order."""

from __future__ import annotations

from typing import Any

import pytest

from batch_jobs.errors import PipelineError
from batch_jobs.merge import frames_step, merge_documents
from batch_jobs.pipeline import load_pipeline, parse_pipeline


def _doc(index: int, start_frame: int, end_frame: int, start_time: float, frames: list[tuple[int, float]]) -> dict:
    person = {"label": "person", "score": 0.9, "box": [0.1, 0.1, 0.2, 0.5]}
    return {
        "schema": "derby-batch/detections@1",
        "detectors": [{"name": "human"}],
        "chunk": {"index": index, "start_frame": start_frame, "end_frame": end_frame, "start_time": start_time,
                  "end_time": start_time + (end_frame - start_frame) / 25},
        "frames": [{"index": i, "t": t, "source": "chunk.mp4", "detections": [person]} for i, t in frames],
    }  # fmt: skip


def test_frames_land_once_on_the_source_timeline() -> None:
    second = _doc(1, 50, 100, 2.0, [(0, 0.0), (10, 0.4), (49, 1.96), (50, 2.0)])  # index 50 is past its chunk
    first = _doc(0, 0, 50, 0.0, [(0, 0.0), (10, 0.4), (49, 1.96)])
    duplicate = _doc(1, 50, 100, 2.0, [(0, 0.0)])  # e.g. an old attempt's result read twice
    merged: dict[str, Any] = merge_documents([second, first, duplicate], {"name": "game.mp4", "video_id": "g-1"})
    assert [(f["index"], f["t"]) for f in merged["frames"]] == [
        (0, 0.0), (10, 0.4), (49, 1.96), (50, 2.0), (60, 2.4), (99, 3.96)
    ]  # fmt: skip
    assert all("source" not in f for f in merged["frames"])
    assert merged["source"] == {"kind": "video", "inputs": ["game.mp4"], "video_id": "g-1"}
    assert merged["schema"] == "derby-batch/detections@1" and merged["detectors"] == [{"name": "human"}]
    assert [c["index"] for c in merged["chunks"]] == [0, 1, 1]


def test_nothing_to_merge_and_no_frame_step_are_errors() -> None:
    with pytest.raises(PipelineError, match="no chunk results"):
        merge_documents([], {})
    assert frames_step(load_pipeline()).name == "detect"
    with pytest.raises(PipelineError, match="no step that produces frames"):
        frames_step(parse_pipeline([{"name": "timesplit", "action": "split"}, {"name": "s", "action": "summarize"}]))
