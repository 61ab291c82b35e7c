"""Merging chunk results: absolute indices and times, each source frame at most once, frames in order."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any, cast

import pytest

from batch_jobs import schema
from batch_jobs.errors import PipelineError
from batch_jobs.merge import SourceVideo, frames_step, merge_documents, merge_results, write_document
from batch_jobs.pipeline import load_pipeline, parse_pipeline
from batch_jobs.schema import ChunkItem, ResultRef, StepRecord, VideoItem
from batch_jobs.store import Store

GAME = SourceVideo(video_id="g-1", name="game.mp4", fps=25.0, duration_s=4.0, frames=100)


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
    merged: dict[str, Any] = merge_documents([second, first, duplicate], GAME)
    assert [(f["index"], f["t"]) for f in merged["frames"]] == [
        (0, 0.0), (10, 0.4), (49, 1.96), (50, 2.0), (60, 2.4), (99, 3.96)
    ]  # fmt: skip
    assert all("source" not in f for f in merged["frames"])
    assert merged["source"] == {"kind": "video", "inputs": ["game.mp4"], "video_id": "g-1"}
    assert merged["schema"] == "derby-batch/detections@1" and merged["detectors"] == [{"name": "human"}]
    assert [c["index"] for c in merged["chunks"]] == [0, 1, 1]


def test_the_header_describes_the_whole_source_not_a_chunk() -> None:
    """Each detect result's `video` block is its chunk's (50 frames, 2 s); the merged one is the source's."""
    chunk_video = {"width": 640, "height": 360, "fps": 25.0, "frames": 50, "duration_s": 2.0}
    first = {**_doc(0, 0, 50, 0.0, [(0, 0.0)]), "video": chunk_video}
    second = {**_doc(1, 50, 100, 2.0, [(0, 0.0)]), "video": chunk_video}
    video = VideoItem("g-1", "game.mp4", "/v/game.mp4", 4.0, 25.0, 1000, 2, ("timesplit",), "now", schema.DONE)
    steps = (StepRecord("timesplit", schema.DONE),)
    chunks = [
        ChunkItem("g-1", 0, "a.mp4", 0.0, 2.0, 0, 50, steps),
        ChunkItem("g-1", 1, "b.mp4", 2.0, 4.0, 50, 100, steps),
    ]
    source = SourceVideo.of(video, chunks)
    assert source == GAME
    merged = merge_documents([first, second], source)
    assert merged["video"] == {"width": 640, "height": 360, "fps": 25.0, "frames": 100, "duration_s": 4.0}


def test_every_chunks_tiling_lands_on_the_source_timeline() -> None:
    def scene(grid: str, index: int, t: float) -> dict[str, Any]:
        return {"source": "chunk.mp4", "index": index, "t": t, "grid": grid, "tile": [400, 300], "people": 3}

    first = {**_doc(0, 0, 50, 0.0, [(0, 0.0)]), "tiling": [scene("4x3", 0, 0.0)]}
    second = {**_doc(1, 50, 100, 2.0, [(0, 0.0)]), "tiling": [scene("6x4", 0, 0.0), scene("2x1", 25, 1.0)]}
    merged = merge_documents([second, first], GAME)
    assert [(s["chunk"], s["index"], s["t"], s["grid"]) for s in merged["tiling"]] == [
        (0, 0, 0.0, "4x3"), (1, 50, 2.0, "6x4"), (1, 75, 3.0, "2x1")
    ]  # fmt: skip
    assert all("source" not in s for s in merged["tiling"])


def test_nothing_to_merge_and_no_frame_step_are_errors() -> None:
    with pytest.raises(PipelineError, match="no chunk results"):
        merge_documents([], GAME)
    assert frames_step(load_pipeline()).name == "detect"
    with pytest.raises(PipelineError, match="no step that produces frames"):
        frames_step(parse_pipeline([{"name": "timesplit", "action": "split"}, {"name": "s", "action": "summarize"}]))


class _Body:
    def __init__(self, data: bytes) -> None:
        self.data = data

    def read(self) -> bytes:
        return self.data


class _S3:
    """get_object over a dict of keys (what merge_results reads of S3)."""

    def __init__(self, objects: dict[str, dict[str, Any]]) -> None:
        self.objects = objects

    def get_object(self, Bucket: str, Key: str) -> dict[str, Any]:  # boto3's parameter names
        return {"Body": _Body(json.dumps(self.objects[f"{Bucket}/{Key}"]).encode())}


class _Store:
    def __init__(self, video: VideoItem, chunks: list[ChunkItem]) -> None:
        self.video, self._chunks = video, chunks

    def get_video(self, video_id: str) -> VideoItem:
        assert video_id == self.video.video_id
        return self.video

    def chunks(self, video_id: str) -> list[ChunkItem]:
        return self._chunks


def test_merge_results_reads_each_done_result_and_lists_the_missing(tmp_path: Path) -> None:
    """What `derby-batch results` and the local stack's outputs both call: the done results of the pipeline's frame
    step, read from S3; a chunk without one is listed, not merged."""
    pipeline = parse_pipeline([{"name": "timesplit", "action": "split"}, {"name": "probe", "action": "probe"}])
    video = VideoItem("g-1", "game.mp4", "/v/game.mp4", 4.0, 25.0, 1000, 2, ("timesplit",), "now", schema.RUNNING)
    split = StepRecord("timesplit", schema.DONE)
    done = StepRecord("probe", schema.DONE, result=ResultRef("b", "r/0.json"))
    chunks = [
        ChunkItem("g-1", 0, "a.mp4", 0.0, 2.0, 0, 50, (split, done)),
        ChunkItem("g-1", 1, "b.mp4", 2.0, 4.0, 50, 100, (split, StepRecord("probe", schema.RUNNING))),
    ]
    s3 = _S3({"b/r/0.json": _doc(0, 0, 50, 0.0, [(0, 0.0), (10, 0.4)])})
    merged = merge_results(s3, cast(Store, _Store(video, chunks)), pipeline, "g-1")
    assert (merged.step, merged.chunks, merged.missing) == ("probe", 1, (1,))
    assert merged.document["missing_chunks"] == [1] and [f["index"] for f in merged.document["frames"]] == [0, 10]
    assert merged.document["video"] == {"fps": 25.0, "frames": 100, "duration_s": 4.0}

    out = tmp_path / "deep" / "merged.json"
    write_document(merged.document, out)
    assert json.loads(out.read_text()) == merged.document and list(out.parent.iterdir()) == [out]


def _tracked(index: int, start_frame: int, people: dict[int, tuple[float, list[float]]]) -> dict:
    """A chunk's tracked detect result: chunk-local track id -> (x speed per frame, kit), ten frames of 1/25 s."""
    doc = _doc(index, start_frame, start_frame + 10, start_frame / 25, [(i, i / 25) for i in range(10)])
    doc["schema"], doc["teams"] = "derby-batch/detections@2", 2
    for frame in doc["frames"]:
        frame["detections"] = [
            {"label": "person", "score": 0.9, "box": [x, 0.3, x + 0.1, 0.55], "track": track, "team": "A"}
            for track, (speed, _) in people.items()
            for x in [0.1 + 0.4 * (track - 1) + speed * (start_frame + frame["index"])]
        ]
    doc["tracks"] = [
        {"id": t, "first_t": 0.0, "last_t": 0.36, "frames": 10, "team": "A", "kit": kit}
        for t, (_, kit) in people.items()
    ]
    return doc


def test_chunk_tracks_are_stitched_into_video_tracks() -> None:
    """Two people walk across a chunk border: the chunks numbered them in their own order and called both team "A";
    the merged document has one id per person over the whole video and tells the kits apart."""
    red, blue = [45.0, 50.0, 35.0, 0.0], [40.0, 15.0, -45.0, 0.0]
    first = _tracked(0, 0, {1: (0.005, red), 2: (-0.005, blue)})
    second = _tracked(1, 10, {1: (0.005, red), 2: (-0.005, blue)})
    second["tracks"].reverse()  # the table's order means nothing
    merged = merge_documents([first, second], dataclasses.replace(GAME, frames=20))
    ids = [[d["track"] for d in f["detections"]] for f in merged["frames"]]
    assert ids == [[1, 2]] * 20
    assert [(t["id"], t["frames"], t["first_t"], t["last_t"]) for t in merged["tracks"]] == [
        (1, 20, 0.0, 0.76), (2, 20, 0.0, 0.76)
    ]  # fmt: skip
    teams = {d["track"]: d["team"] for f in merged["frames"] for d in f["detections"]}
    assert sorted(teams.values()) == ["A", "B"]
    assert merged["schema"] == "derby-batch/detections@2"


def test_untracked_chunks_merge_without_tracks() -> None:
    merged = merge_documents([_doc(0, 0, 50, 0.0, [(0, 0.0)])], GAME)
    assert "tracks" not in merged
