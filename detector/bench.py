"""`derby-batch bench`: the same frames through three loops, to show where the time goes.

- pure inference: frames decoded and prepared beforehand, only `VideoAnalyzer.infer` timed (the ceiling);
- end to end: `VideoAnalyzer.run` on the video, decoding in its thread, JSON written (what `detect` does);
- seed style: decode one frame, give the model the full-size frame (and its full-size tiles), repeat, in one thread
  (what the first prototype did).
"""

from __future__ import annotations

import itertools
import tempfile
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import cv2
import numpy as np

from detector.analyzer import AnalyzeOptions, VideoAnalyzer
from detector.errors import DetectorError
from detector.sources import probe
from detector.tiling import merge_tiles


@dataclass(frozen=True)
class BenchResult:
    pure_inference_fps: float
    end_to_end_fps: float
    seed_style_fps: float
    batch_size: int
    tiles: str
    frames: int

    @property
    def end_to_end_vs_pure(self) -> float:
        return self.end_to_end_fps / self.pure_inference_fps

    @property
    def end_to_end_vs_seed(self) -> float:
        return self.end_to_end_fps / self.seed_style_fps

    def to_json(self) -> dict[str, object]:
        return {k: round(v, 2) if isinstance(v, float) else v for k, v in asdict(self).items()}


def run_bench(video: Path, options: AnalyzeOptions, frames: int, rounds: int = 2) -> BenchResult:
    """Measure the three loops on the first `frames` frames of `video`, `rounds` times in turn; keep each loop's best
    round (other processes on the machine only ever make a loop slower)."""
    if frames < 1 or rounds < 1:
        raise DetectorError(f"--frames and --rounds must be at least 1, got {frames} and {rounds}")
    options = replace(options, max_frames=frames, every=1, fps=None)
    analyzer = VideoAnalyzer(options)
    if analyzer.human is None:
        raise DetectorError("bench measures the person model: include the human detector")
    source = probe(video)
    keep_rgb = analyzer.face is not None
    with analyzer.frames([source], keep_rgb) as reader:
        prepared = list(reader)
    batches = [prepared[i : i + options.batch_size] for i in range(0, len(prepared), options.batch_size)]
    analyzer.infer(batches[0])  # warm-up: first calls allocate

    pure = end_to_end = seed = 0.0
    for _ in range(rounds):
        started = time.perf_counter()
        for batch in batches:
            analyzer.infer(batch)
        pure = max(pure, len(prepared) / (time.perf_counter() - started))

        with tempfile.TemporaryDirectory() as tmp:
            started = time.perf_counter()
            summary = analyzer.run([video], Path(tmp) / "bench.json")
            end_to_end = max(end_to_end, summary.frames_analyzed / (time.perf_counter() - started))

        seed = max(seed, len(prepared) / _seed_style_seconds(analyzer, video, len(prepared), keep_rgb))
    grid = analyzer.grid(source.width, source.height).label
    return BenchResult(pure, end_to_end, seed, options.batch_size, grid, len(prepared))


def _seed_style_seconds(analyzer: VideoAnalyzer, video: Path, frames: int, keep_rgb: bool) -> float:
    assert analyzer.human is not None  # checked by run_bench
    capture = cv2.VideoCapture(str(video))
    started = time.perf_counter()
    try:
        for _ in itertools.repeat(None, frames):
            ok, bgr = capture.read()
            if not ok:
                break
            rgb = cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
            height, width = rgb.shape[:2]
            grid = analyzer.grid(width, height)
            whole = analyzer.human.detect(rgb[None])
            tiles = [rgb[y0:y1, x0:x1] for x0, y0, x1, y1 in grid.rects[1:]]
            parts = analyzer.human.detect(np.stack(tiles)) if tiles else []
            people = merge_tiles([*whole, *parts], grid)
            if analyzer.face is not None and keep_rgb:
                analyzer.face.detect_in_people(rgb, people)
    finally:
        capture.release()
    return time.perf_counter() - started
