"""What each step does to one chunk. An action gets the downloaded chunk and returns the result document + metrics.

Result documents share one frame layout, `{"frames": [{"index", "t", "detections": [...]}]}` with chunk-relative
index and time, so `merge.py` can put any of them on the source's timeline. Only `detect` imports the detector
(and so TensorFlow), lazily.
"""

from __future__ import annotations

import json
import math
import statistics
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from batch_jobs.errors import PipelineError
from batch_jobs.pipeline import Step
from batch_jobs.schema import ChunkItem
from batch_jobs.split import open_video

# What a job process may import before it knows its step, for a host that forks jobs from a warm interpreter (the
# local stack's): the job command and the detect action's detector and runtime; never TensorFlow.
WARM_IMPORTS = ("batch_jobs.job", "detector.analyzer", "ai_edge_litert.interpreter")
PROBE_SCHEMA = "derby-batch/probe@1"
SUMMARY_SCHEMA = "derby-batch/summary@1"


@dataclass(frozen=True)
class StepContext:
    step: Step
    chunk: ChunkItem
    chunk_path: Path
    work_dir: Path
    previous_result: Callable[[], dict[str, Any]]  # the result document of the step before this one


@dataclass(frozen=True)
class ActionResult:
    document: dict[str, Any]
    metrics: Mapping[str, Any] = field(default_factory=dict, hash=False)


def probe(ctx: StepContext) -> ActionResult:
    """Decode the chunk and list its frames: proves download, decode and timing without TensorFlow."""
    started = time.monotonic()
    frames: list[dict[str, Any]] = []
    with open_video(ctx.chunk_path) as container:
        stream = container.streams.video[0]
        first: int | None = None
        for frame in container.decode(stream):
            first = frame.pts if first is None else first
            frames.append(
                {"index": len(frames), "t": round(float((frame.pts - first) * stream.time_base), 6), "detections": []}
            )
    if not frames:
        raise PipelineError(f"chunk {ctx.chunk.index} has no decodable frames")
    seconds = time.monotonic() - started
    metrics = {"frames": len(frames), "seconds": round(seconds, 3), "fps": round(len(frames) / max(seconds, 1e-6), 1)}
    return ActionResult({"schema": PROBE_SCHEMA, "frames": frames}, {**metrics, "model": "none"})


def detect(ctx: StepContext) -> ActionResult:
    """Run the detector on the chunk (people and faces by default); its JSON is the result document."""
    from detector.analyzer import AnalyzeOptions, analyze

    options = AnalyzeOptions(
        detectors=tuple(ctx.step.options.get("detectors", ("human", "face"))),
        every=int(ctx.chunk.options.get("every", 1)),
        fps=ctx.chunk.options.get("fps"),
    )
    out = ctx.work_dir / "detections.json"
    summary = analyze([ctx.chunk_path], out, options)
    metrics = {
        "frames": summary.frames_analyzed,
        "fps": round(float(summary.fps), 2),
        "seconds": round(float(summary.seconds), 3),
        "model": ",".join(str(d["model"]) for d in summary.detectors),
    }
    if summary.tracks is not None:
        metrics["tracks"] = summary.tracks  # the chunk's own: `status` shows them, `results` stitches them
    return ActionResult(json.loads(out.read_text()), metrics)


def people_per_second(frames: list[dict[str, Any]], offset: float = 0.0, team: str | None = None) -> dict[int, int]:
    """People on screen in each whole second. Tracked frames: the confirmed tracks seen in that second (of `team`
    when given), so a missed or extra box in one frame does not move it. Untracked: the median box count over its
    frames (the lower one of an even number). `offset` puts chunk times on the source's timeline."""
    counts: dict[int, list[int]] = {}
    tracks: dict[int, set[int]] = {}
    tracked = any("track" in d for frame in frames for d in frame.get("detections", []))
    for frame in frames:
        second = math.floor(float(frame["t"]) + offset)
        people = [d for d in frame.get("detections", []) if d.get("label") == "person"]
        counts.setdefault(second, []).append(len(people))
        ids = tracks.setdefault(second, set())
        ids.update(int(d["track"]) for d in people if "track" in d and (team is None or d.get("team") == team))
    if tracked:
        return {second: len(ids) for second, ids in tracks.items()}
    return {second: statistics.median_low(seen) for second, seen in counts.items()}


def summarize(ctx: StepContext) -> ActionResult:
    """People per second of the chunk from the previous step's frames (no TensorFlow)."""
    started = time.monotonic()
    document = ctx.previous_result()
    frames = document.get("frames")
    if not isinstance(frames, list):
        raise PipelineError("previous result has no frames list")
    counts = people_per_second(frames, ctx.chunk.start_time)
    seconds = [{"second": s, "people": n} for s, n in sorted(counts.items())]
    took = time.monotonic() - started
    metrics = {"frames": len(frames), "seconds": round(took, 3), "fps": round(len(frames) / max(took, 1e-6), 1)}
    return ActionResult({"schema": SUMMARY_SCHEMA, "people_per_second": seconds}, {**metrics, "model": "none"})


ACTIONS: Mapping[str, Callable[[StepContext], ActionResult]] = {
    "probe": probe,
    "detect": detect,
    "summarize": summarize,
}


def action_for(step: Step) -> Callable[[StepContext], ActionResult]:
    try:
        return ACTIONS[step.action]
    except KeyError:
        raise PipelineError(f"step {step.name!r}: action {step.action!r} does not run as a chunk job") from None
