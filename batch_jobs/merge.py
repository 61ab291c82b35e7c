"""Results of all chunks as one document on the source's timeline, and the people-per-second plot.

Each chunk's result carries its frames with chunk-relative `index` and `t` plus the chunk's place in the source
(`start_frame`, `start_time`); merging shifts them back. A frame outside its chunk's range, or one a previous chunk
already gave, is dropped, so each source frame appears at most once.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from batch_jobs import schema
from batch_jobs.actions import people_per_second
from batch_jobs.errors import PipelineError
from batch_jobs.pipeline import Pipeline, Step
from batch_jobs.schema import ChunkItem, ResultRef, VideoItem

if TYPE_CHECKING:
    from batch_jobs.store import Store

FRAME_ACTIONS = ("detect", "probe")  # actions whose results list frames
FRAME_SIZE_KEYS = ("width", "height")  # the same in every chunk (stream copy): taken from a chunk's `video` block


@dataclass(frozen=True)
class SourceVideo:
    """The whole source as its items describe it; a chunk's own `video` block counts only that chunk's frames."""

    video_id: str
    name: str
    fps: float
    duration_s: float
    frames: int

    @classmethod
    def of(cls, video: VideoItem, chunks: Sequence[ChunkItem]) -> SourceVideo:
        """Frames are the sum over every chunk (the split conserves them), done or not."""
        frames = sum(c.end_frame - c.start_frame for c in chunks)
        return cls(video.video_id, video.name, video.fps, video.duration, frames)


def frames_step(pipeline: Pipeline) -> Step:
    """The step whose results `results` merges: the last one that lists frames."""
    for step in reversed(pipeline):
        if step.action in FRAME_ACTIONS:
            return step
    raise PipelineError("the pipeline has no step that produces frames (detect or probe)")


def merge_documents(documents: Sequence[dict[str, Any]], video: SourceVideo) -> dict[str, Any]:
    """One document in the chunks' schema whose `video` header describes the whole source."""
    if not documents:
        raise PipelineError("no chunk results to merge")
    ordered = sorted(documents, key=lambda d: int(d["chunk"]["start_frame"]))
    seen: set[int] = set()
    frames: list[dict[str, Any]] = []
    rows: list[dict[str, Any]] = []  # the chunks' track tables, ids made unique over the video
    renumbered = 0
    for doc in ordered:
        chunk = doc["chunk"]
        start, end, offset = int(chunk["start_frame"]), int(chunk["end_frame"]), float(chunk["start_time"])
        rows += [{**row, "id": renumbered + int(row["id"])} for row in doc.get("tracks", [])]
        for frame in doc.get("frames", []):
            index = start + int(frame["index"])
            if index >= end or index in seen:
                continue
            seen.add(index)
            merged = {k: v for k, v in frame.items() if k != "source"}
            merged["detections"] = [_renumbered(d, renumbered) for d in frame["detections"]]
            frames.append({**merged, "index": index, "t": round(offset + float(frame["t"]), 6)})
        renumbered += max((int(row["id"]) for row in doc.get("tracks", [])), default=0)
    frames.sort(key=lambda f: f["index"])
    first = ordered[0]
    header = {k: v for k, v in first.items() if k not in {"frames", "stats", "chunk", "attempt", "step", "source"}}
    tiling = [_scene_on_source(scene, d["chunk"]) for d in ordered for scene in d.get("tiling", [])]
    if tiling:
        header["tiling"] = tiling  # every chunk decides its own grid
    tracked = any("tracks" in doc for doc in ordered)
    if tracked:
        from detector.stitch import stitch  # numpy and OpenCV: only where results are merged, never in the router

        header.pop("tracks", None)
    return {
        **header,
        "source": {"kind": "video", "inputs": [video.name], "video_id": video.video_id},
        "video": {
            **{k: v for k, v in (first.get("video") or {}).items() if k in FRAME_SIZE_KEYS},
            "fps": round(video.fps, 3),
            "frames": video.frames,
            "duration_s": round(video.duration_s, 3),
        },
        "chunks": [
            {k: d["chunk"][k] for k in ("index", "start_frame", "end_frame", "start_time", "end_time")} for d in ordered
        ],
        "frames": frames,
        **({"tracks": stitch(frames, rows, int(first.get("teams") or 0), _aspect(first))} if tracked else {}),
        "stats": {"frames_analyzed": len(frames), "chunks": len(ordered)},
    }


def _scene_on_source(scene: dict[str, Any], chunk: dict[str, Any]) -> dict[str, Any]:
    """A chunk's grid decision on the source's timeline, with its chunk (its `source` named the chunk's file)."""
    return {
        **{k: v for k, v in scene.items() if k != "source"},
        "chunk": int(chunk["index"]),
        "index": int(chunk["start_frame"]) + int(scene["index"]),
        "t": round(float(chunk["start_time"]) + float(scene["t"]), 6),
    }


def _aspect(document: dict[str, Any]) -> float:
    video = document.get("video") or {}
    return float(video["width"]) / float(video["height"]) if video.get("width") and video.get("height") else 1.0


def _renumbered(detection: dict[str, Any], offset: int) -> dict[str, Any]:
    if "track" not in detection:
        return detection
    return {**detection, "track": offset + int(detection["track"])}


@dataclass(frozen=True)
class MergedResults:
    """A video's merged document, what it was made of and what it still lacks."""

    document: dict[str, Any]
    step: str  # the step whose results were merged (`frames_step`)
    chunks: int  # chunk results merged
    missing: tuple[int, ...]  # chunks without a done result of that step (also in the document's `missing_chunks`)


def read_json(s3: Any, ref: ResultRef) -> dict[str, Any]:
    """A result document; a missing or malformed object is a one-line error."""
    try:
        data = json.loads(s3.get_object(Bucket=ref.bucket, Key=ref.key)["Body"].read())
    except s3.exceptions.NoSuchKey:
        raise PipelineError(f"missing S3 object s3://{ref.bucket}/{ref.key}") from None
    if not isinstance(data, dict):
        raise PipelineError(f"s3://{ref.bucket}/{ref.key} is not a JSON object")
    return data


def merge_results(s3: Any, store: Store, pipeline: Pipeline, video_id: str) -> MergedResults:
    """The video's results: the document its per-video stitch step wrote once that step is done (one read), else
    the chunks' done results merged here (a video still running, or failed: what there is so far)."""
    video = store.get_video(video_id)
    stitched = next((s for s in reversed(video.steps) if s.state == schema.DONE and s.result), None)
    if stitched is None or stitched.result is None:
        return merge_chunk_results(s3, store, pipeline, video_id)
    document = read_json(s3, stitched.result)
    return MergedResults(document, stitched.step, len(document.get("chunks", [])), ())


def merge_chunk_results(s3: Any, store: Store, pipeline: Pipeline, video_id: str) -> MergedResults:
    """Read the done results of the pipeline's frame step of every chunk from S3 and merge them; chunks without one
    are listed in the document's `missing_chunks`. Raises PipelineError for an unknown video or no result at all."""
    video = store.get_video(video_id)
    step = frames_step(pipeline)
    pos = [s.name for s in pipeline].index(step.name)
    documents, missing = [], []
    chunks = store.chunks(video_id)
    for chunk in chunks:
        record = chunk.steps[pos] if len(chunk.steps) > pos else None
        if record is None or record.state != schema.DONE or record.result is None:
            missing.append(chunk.index)
            continue
        documents.append(read_json(s3, record.result))
    merged = merge_documents(documents, SourceVideo.of(video, chunks))
    if missing:
        merged["missing_chunks"] = missing
    return MergedResults(merged, step.name, len(documents), tuple(missing))


def write_document(document: dict[str, Any], path: Path) -> None:
    """Write JSON atomically (a temporary file beside it, then a rename), creating the directory."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps(document))
    tmp.replace(path)


def plot_people(merged: dict[str, Any], path: Path) -> None:
    """People per second as a PNG (`people_per_second`: tracks seen, or the median box count when untracked); with
    teams, one line per team besides the total. Agg needs no display."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    counts = people_per_second(merged["frames"])
    seconds = sorted(counts)
    fig, ax = plt.subplots(figsize=(10, 3), dpi=100)
    ax.bar(seconds, [counts[s] for s in seconds], width=1.0, align="edge", color="#3a7ca5", label="all")
    for team in sorted({str(t["team"]) for t in merged.get("tracks", []) if t.get("team")}):
        by_team = people_per_second(merged["frames"], team=team)
        ax.step([s + 0.5 for s in seconds], [by_team.get(s, 0) for s in seconds], where="mid", label=team)
    if merged.get("tracks"):
        ax.legend(loc="upper right", fontsize="small")
    ax.set_xlabel("time in video (s)")
    ax.set_ylabel("people")
    ax.set_title(f"people per second: {merged['source']['inputs'][0]}")
    ax.set_xlim(0, max(seconds, default=0) + 1)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
