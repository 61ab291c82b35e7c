"""`make eval-tracking`: tracking, teams and chunk borders scored on generated match footage with known identities.

Each scene (`detector.sample_match`: two kits, a striped official, crossings, occlusions, someone leaving and coming
back) is analyzed twice: by `detect` in one pass, and by the pipeline on the embedded local stack with 15 s chunks
(each chunk tracked on its own, then stitched by `results`). Goals: IDF1 >= 0.90, team accuracy >= 0.95, no identity
switch at a chunk border, pipeline IDF1 >= 0.95 of the single pass. ByteTrack over the boxes the single pass's
tracker was given is scored beside it (`devtools.bytetrack_baseline`).
"""

from __future__ import annotations

import argparse
import dataclasses
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from batch_jobs import schema
from batch_jobs.merge import merge_results, write_document
from batch_jobs.submit import submit_file
from cli.local.paths import LocalPaths
from cli.local.runtime import LocalSettings, LocalStack
from detector.analyzer import AnalyzeOptions, VideoAnalyzer
from detector.output import read_detections
from detector.sample_match import MatchSpec
from detector.sources import probe
from devtools.bytetrack_baseline import bytetrack_frames
from devtools.tracking_metrics import TrackingScore, score_tracking
from devtools.tracking_replay import record

GOALS = {"idf1": 0.90, "team_accuracy": 0.95, "border_switches": 0, "pipeline_vs_single": 0.95}
SCENES = {
    "crossing, fixed camera, 10 fps": MatchSpec(seconds=30.0, fps=10.0, seed=0),
    "panning camera, 7 fps": MatchSpec(seconds=30.0, fps=7.0, pan=0.15, seed=1),
}


@dataclass(frozen=True)
class SceneResult:
    name: str
    single: TrackingScore
    bytetrack: TrackingScore  # over the same boxes as the single pass's tracker
    pipeline: TrackingScore | None
    chunks: int
    tracking_share: float  # of the single pass's detect time


def _pipeline(clip: Path, work: Path, chunk_seconds: float) -> tuple[dict[str, Any], list[int]]:
    """The merged, stitched results of the clip through the local stack, and the chunks' first frames."""
    stack = LocalStack(LocalSettings(LocalPaths(work / "stack")))
    stack.start()
    try:
        clients = stack.clients()
        submitted = submit_file(clients, clip, work / "split", chunk_seconds)
        while clients.store.get_video(submitted.video_id).state in schema.ACTIVE:
            time.sleep(0.5)
        video = clients.store.get_video(submitted.video_id)
        if video.state != schema.DONE:
            raise SystemExit(f"the local stack did not finish {clip.name}: {video}")
        merged = merge_results(clients.s3, clients.store, clients.config.pipeline, submitted.video_id)
        borders = [c.start_frame for c in clients.store.chunks(submitted.video_id)][1:]
    finally:
        stack.stop()
    return merged.document, borders


def evaluate(name: str, spec: MatchSpec, work: Path, chunk_seconds: float, analyzer: VideoAnalyzer) -> SceneResult:
    given = record(spec, work, analyzer)  # clip.mp4 has a keyframe a second, where the split cuts
    clip, truth = work / "clip.mp4", read_detections(Path(given["truth"]))
    single_out = read_detections(work / "single.json")
    single = score_tracking(single_out, truth)
    frames = [(f["index"], d, t) for f, (d, t) in zip(single_out["frames"], given["frames"], strict=True)]
    source = probe(clip)
    baseline = bytetrack_frames(frames, source.width, source.height, analyzer.options.threshold)
    bytetrack = score_tracking({"frames": baseline}, truth)
    pipeline, chunks = None, 1
    if chunk_seconds < spec.seconds:
        merged, borders = _pipeline(clip, work, chunk_seconds)
        pipeline, chunks = score_tracking(merged, truth, borders), len(borders) + 1
        write_document(merged, work / "pipeline.json")
    return SceneResult(name, single, bytetrack, pipeline, chunks, analyzer.last_tracking_share)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--chunk-seconds", type=float, default=15.0, help="pipeline chunks (0: single pass only)")
    parser.add_argument("--seconds", type=float, default=None, help="scene length (default 30 s)")
    parser.add_argument("--keep", type=Path, help="keep each scene's clip, truth and results in this directory")
    args = parser.parse_args(argv)
    analyzer = VideoAnalyzer(AnalyzeOptions())  # what `detect` and the pipeline's detect step run
    results = []
    with tempfile.TemporaryDirectory(prefix="derby-eval-tracking-") as tmp:
        for n, (name, spec) in enumerate(SCENES.items()):
            spec = dataclasses.replace(spec, seconds=args.seconds or spec.seconds)
            work = (args.keep or Path(tmp)) / f"scene-{n}"
            work.mkdir(parents=True, exist_ok=True)
            chunk_seconds = args.chunk_seconds or float("inf")
            results.append(evaluate(name, spec, work, chunk_seconds, analyzer))
            _report(results[-1])
    _summary(results)


def _report(r: SceneResult) -> None:
    s = r.single
    print(f"{r.name}: {s.truth_ids} people")
    print(f"  single pass: IDF1 {s.idf1:.3f}, switches {s.id_switches}, recall {s.recall:.3f}, precision "
          f"{s.precision:.3f}, team accuracy {s.team_accuracy:.3f}, tracks {s.track_ids}, tracking "
          f"{100 * r.tracking_share:.1f}% of detect time")  # fmt: skip
    b = r.bytetrack
    print(f"  ByteTrack over the same boxes: IDF1 {b.idf1:.3f}, switches {b.id_switches}, recall {b.recall:.3f}, "
          f"precision {b.precision:.3f}, tracks {b.track_ids}")  # fmt: skip
    if r.pipeline is not None:
        p = r.pipeline
        print(f"  pipeline ({r.chunks} chunks): IDF1 {p.idf1:.3f} ({p.idf1 / s.idf1:.2f} of single), switches "
              f"{p.id_switches} ({p.border_switches} at chunk borders), team accuracy {p.team_accuracy:.3f}, "
              f"tracks {p.track_ids}")  # fmt: skip


def _summary(results: list[SceneResult]) -> None:
    idf1 = min(r.single.idf1 for r in results)
    teams = min(min(r.single.team_accuracy, r.pipeline.team_accuracy if r.pipeline else 1.0) for r in results)
    piped = [r for r in results if r.pipeline is not None]
    print(f"worst IDF1 {idf1:.3f} (goal >= {GOALS['idf1']}), worst team accuracy {teams:.3f} "
          f"(goal >= {GOALS['team_accuracy']})")  # fmt: skip
    if piped:
        border = sum(r.pipeline.border_switches for r in piped if r.pipeline)
        ratio = min(r.pipeline.idf1 / r.single.idf1 for r in piped if r.pipeline)
        print(f"identity switches at chunk borders {border} (goal {GOALS['border_switches']}), worst pipeline / "
              f"single-pass IDF1 {ratio:.2f} (goal >= {GOALS['pipeline_vs_single']})")  # fmt: skip


if __name__ == "__main__":
    main()
