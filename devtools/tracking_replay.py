"""Tracking replayed on cached detections: iterate on the tracker, linking and teams in seconds, not minutes.

`record` runs `detect` once on a generated match scene (`detector.sample_match`) and keeps what the tracker was given
(each frame's people and faces before tracking, with their scores); `replay` feeds the same detections and the same
decoded frames (kit colours) to the current `VideoTracks`, in one pass and in chunks stitched as `results` does, and
scores both against the truth, next to ByteTrack over the same boxes (`devtools.bytetrack_baseline`). The pipeline's
chunks are cut at the same frame indices, but each chunk's detections are the single pass's (the real pipeline runs
detect on each chunk: `make eval-tracking` measures that).

    python -m devtools.tracking_replay --cache /tmp/replay --scene pan:1 --scene pan:2 --scene fixed:0
"""

from __future__ import annotations

import argparse
import dataclasses
import pickle
import time
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

import detector.analyzer as analyzer_module
from cli.local.clips import with_keyframes
from detector.analyzer import AnalyzeOptions, VideoAnalyzer
from detector.detections import Detections
from detector.output import FrameDetections, frame_json, read_detections
from detector.sample_match import MatchSpec, write_match
from detector.sampling import Sampler
from detector.sources import decode, probe
from detector.stitch import stitch
from detector.video_tracks import VideoTracks
from devtools.bytetrack_baseline import bytetrack_frames
from devtools.tracking_metrics import TrackingScore, score_tracking

CACHE = "detections.pkl"  # in a scene's folder: what the tracker was given
KINDS = {
    "fixed": MatchSpec(seconds=30.0, fps=10.0),
    "pan": MatchSpec(seconds=30.0, fps=7.0, pan=0.15),
    "black": MatchSpec(seconds=30.0, fps=10.0, official_kit=(25, 25, 25)),  # a plain-coloured official
    "yellow": MatchSpec(seconds=30.0, fps=7.0, pan=0.15, official_kit=(235, 205, 40)),
    "players": MatchSpec(seconds=30.0, fps=10.0, per_team=3, officials=0),  # no official: none may be found
}


def scene_spec(name: str) -> MatchSpec:
    """`kind:seed`, e.g. `pan:1` (the pan scene of `make eval-tracking`) or `fixed:0`."""
    kind, _, seed = name.partition(":")
    return dataclasses.replace(KINDS[kind], seed=int(seed or 0))


class _Recording(VideoTracks):
    frames: ClassVar[list[tuple[Detections, float]]] = []

    def step_batch(self, frames: list[tuple[Detections, float, np.ndarray | None]]) -> list[Detections]:
        _Recording.frames.extend((detections, t) for detections, t, _ in frames)
        return super().step_batch(frames)


def record(spec: MatchSpec, work: Path, analyzer: VideoAnalyzer) -> dict[str, Any]:
    """Write the scene's clip, truth, `detect`'s output (single.json) and the detections the tracker is given to
    `work`; returns what `recorded` reads back: `frames` (each analyzed frame's detections and time), `truth` (the
    truth file's path) and `fps`."""
    work.mkdir(parents=True, exist_ok=True)
    raw, clip = work / "raw.mp4", work / "clip.mp4"
    truth = write_match(raw, spec)
    with_keyframes(raw, clip, spec.fps, 1.0)
    _Recording.frames = []
    analyzer_module.VideoTracks = _Recording  # type: ignore[misc]
    try:
        analyzer.run([clip], work / "single.json")
    finally:
        analyzer_module.VideoTracks = VideoTracks  # type: ignore[misc]
    data = {"frames": _Recording.frames, "truth": str(truth), "fps": spec.fps}
    (work / CACHE).write_bytes(pickle.dumps(data))
    return data


def recorded(work: Path) -> dict[str, Any]:
    """What `record` kept in `work`."""
    data: dict[str, Any] = pickle.loads((work / CACHE).read_bytes())
    return data


def _track(
    frames: list[tuple[int, Detections, float, np.ndarray]], threshold: float, aspect: float
) -> tuple[list[dict[str, Any]], list[dict[str, Any]], float]:
    """Frames (schema form) and the tracks table of one tracked pass, and the CPU seconds tracking took."""
    tracks = VideoTracks(threshold, 2, aspect)
    out = []
    for index, dets, t, image in frames:
        tracked = tracks.step_batch([(dets, t, image)])[0]
        out.append(frame_json(FrameDetections(index, t, tracked, None)))
    resolution, relabel = tracks.resolve()
    for frame in out:
        frame["detections"] = relabel(frame["detections"])
    return out, [t.to_json() for t in resolution.tracks], tracks.seconds


@dataclasses.dataclass(frozen=True)
class Replayed:
    single: TrackingScore
    pipeline: TrackingScore
    bytetrack: TrackingScore
    seconds: float
    frames: int


def replay(work: Path, chunk_seconds: float, threshold: float = 0.5) -> Replayed:
    data = recorded(work)
    truth = read_detections(Path(data["truth"]))
    source = probe(work / "clip.mp4")
    aspect = source.width / source.height
    decoded = [(f.index, f.rgb()) for f in decode(source, Sampler())]
    frames = [
        (index, dets, t, rgb) for (index, rgb), (dets, t) in zip(decoded, data["frames"], strict=True)
    ]  # fmt: skip
    single, _, seconds = _track(frames, threshold, aspect)
    single_score = score_tracking({"frames": single}, truth)
    baseline = bytetrack_frames([(i, d, t) for i, d, t, _ in frames], source.width, source.height, threshold)
    per_chunk = max(1, round(chunk_seconds * data["fps"]))
    starts = list(range(0, len(frames), per_chunk))
    merged: list[dict[str, Any]] = []
    rows: list[dict[str, Any]] = []
    renumbered = 0
    for start in starts:
        chunk = frames[start : start + per_chunk]
        offset = chunk[0][2]
        local = [(i - start, d, t - offset, rgb) for i, d, t, rgb in chunk]
        out, table, _ = _track(local, threshold, aspect)
        rows += [{**row, "id": renumbered + int(row["id"])} for row in table]
        for frame in out:
            dets = [{**d, "track": renumbered + int(d["track"])} if "track" in d else d for d in frame["detections"]]
            merged.append({"index": start + frame["index"], "t": round(offset + frame["t"], 6), "detections": dets})
        renumbered += max((int(row["id"]) for row in table), default=0)
    stitch(merged, rows, 2, aspect)
    pipeline_score = score_tracking({"frames": merged}, truth, starts[1:])
    return Replayed(single_score, pipeline_score, score_tracking({"frames": baseline}, truth), seconds, len(frames))


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--cache", type=Path, required=True, help="where scenes and their detections are kept")
    parser.add_argument(
        "--scene", action="append", help=f"kind:seed (kinds: {', '.join(KINDS)}); default pan:1 and fixed:0"
    )
    parser.add_argument("--chunk-seconds", type=float, default=15.0)
    args = parser.parse_args(argv)
    names = args.scene or ["fixed:0", "pan:1"]
    analyzer: VideoAnalyzer | None = None
    replayed = []
    for name in names:
        work = args.cache / name.replace(":", "-")
        if not (work / CACHE).exists():
            analyzer = analyzer or VideoAnalyzer(AnalyzeOptions())
            started = time.perf_counter()
            record(scene_spec(name), work, analyzer)
            print(f"{name}: recorded in {time.perf_counter() - started:.0f} s")
        r = replay(work, args.chunk_seconds)
        replayed.append(r)
        s, p, b = r.single, r.pipeline, r.bytetrack
        print(f"{name}: IDF1 {s.idf1:.3f}, switches {s.id_switches}, recall {s.recall:.3f}, precision "
              f"{s.precision:.3f}, teams {s.team_accuracy:.3f}, tracks {s.track_ids}/{s.truth_ids}; chunked IDF1 "
              f"{p.idf1:.3f}, switches {p.id_switches} ({p.border_switches} at borders), teams {p.team_accuracy:.3f}; "
              f"tracking {1000 * r.seconds / r.frames:.2f} ms/frame; ByteTrack IDF1 {b.idf1:.3f}, switches "
              f"{b.id_switches}, recall {b.recall:.3f}, precision {b.precision:.3f}")  # fmt: skip
    print(f"worst IDF1 {min(r.single.idf1 for r in replayed):.3f}, "
          f"border switches {sum(r.pipeline.border_switches for r in replayed)}")  # fmt: skip
    for label, scores in [("tracker", [r.single for r in replayed]), ("ByteTrack", [r.bytetrack for r in replayed])]:
        print(f"mean of {len(scores)} scenes, {label}: IDF1 {np.mean([s.idf1 for s in scores]):.3f}, switches "
              f"{sum(s.id_switches for s in scores)}, recall {np.mean([s.recall for s in scores]):.3f}, precision "
              f"{np.mean([s.precision for s in scores]):.3f}")  # fmt: skip


if __name__ == "__main__":
    main()
