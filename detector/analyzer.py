"""`analyze`: run the selected detectors over videos and images and write one detections document.

Decoding and input preparation run in a background thread (`ThreadedReader`); this thread batches prepared frames,
hands two batches at a time to the models (`infer_batches`) and writes results in order, so the models are busy nearly
all the time. See docs/detector.md.
"""

from __future__ import annotations

import contextlib
import itertools
import time
from collections import Counter, deque
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from detector.annotate import AnnotatedVideo, annotate_document
from detector.base import Detector
from detector.boxes import iou
from detector.detections import Detections, FrameDetections
from detector.errors import DetectorError
from detector.face import FaceDetector
from detector.human import HumanDetector
from detector.output import DetectionsWriter, read_detections
from detector.reader import ThreadedReader
from detector.registry import DETECTORS, create_detector
from detector.sampling import Sampler
from detector.scenes import Scene, ScenePlanner
from detector.sources import DecodedFrame, SourceInfo, decode, open_sources
from detector.tile_merge import merge_tiles
from detector.tiling import TileGrid, check_overlap, cut_tiles, parse_tiles
from detector.tracking import LOW_SCORE
from detector.video_tracks import VideoTracks

FACE_MODES = ("people", "frame")
IN_FLIGHT = 2  # batches inferred at once (see VideoAnalyzer.infer_batches)
IMAGE_SECONDS = 1.0  # how long each image shows in an annotated video
DEFAULT_TEAMS = 2


@dataclass(frozen=True)
class AnalyzeOptions:
    """What to run and how. `face_mode="people"` searches faces inside person boxes (people are found even when
    `human` is not among the reported detectors); `max_frames` stops after that many analyzed frames. `track`: people
    of a single video input get track ids (images and several inputs stay untracked); `teams` (default 2 when
    tracking) is how many teams the tracks are split into, besides officials."""

    detectors: tuple[str, ...] = ("human", "face")
    every: int = 1
    fps: float | None = None
    tiles: str = "auto"
    tile_overlap: float = 0.2
    batch_size: int = 8
    model: Path | None = None
    threshold: float = 0.5
    face_mode: str = "people"
    max_frames: int | None = None
    track: bool = True
    teams: int | None = None


@dataclass(frozen=True)
class Progress:
    frames_analyzed: int
    frames_expected: int | None
    elapsed_s: float

    @property
    def fps(self) -> float:
        return self.frames_analyzed / self.elapsed_s if self.elapsed_s > 0 else 0.0


@dataclass(frozen=True)
class AnalysisSummary:
    frames_analyzed: int
    seconds: float
    fps: float
    detectors: list[dict[str, object]]
    counts: dict[str, int] = field(default_factory=dict)  # detections per label
    tiles: str = "off"  # the grids used, in order, without repeats ("4x3" or "4x3, 8x6")
    scenes: tuple[Scene, ...] = ()  # every grid decision (detector.scenes)
    model_inputs_per_frame: float = 0.0  # person-model inputs per analyzed frame, probes included
    out_json: Path | None = None
    annotate: Path | None = None
    tracks: int | None = None  # confirmed tracks, None when untracked
    tracking_seconds: float = 0.0  # of `seconds`, spent tracking


@dataclass(frozen=True)
class PreparedFrame:
    """A decoded frame plus its model inputs; `rgb` is kept only when faces or annotation need the full frame."""

    source: SourceInfo
    index: int
    t: float
    rgb: np.ndarray | None
    grid: TileGrid
    inputs: np.ndarray | None  # None when no person model runs


Inferred = tuple[list[PreparedFrame], list[Detections]]  # a batch and its detections, frame by frame


def _batched(items: Iterator[PreparedFrame], size: int) -> Iterator[list[PreparedFrame]]:
    while batch := list(itertools.islice(items, size)):
        yield batch


class VideoAnalyzer:
    """Loads the models once; `run` can be called many times (tests and the benchmark reuse one analyzer)."""

    def __init__(self, options: AnalyzeOptions) -> None:
        unknown = [name for name in options.detectors if name not in DETECTORS]
        if unknown or not options.detectors:
            raise DetectorError(
                f"unknown detector(s) {', '.join(unknown) or '(none)'}: choose from {', '.join(DETECTORS)}"
            )
        if options.face_mode not in FACE_MODES:
            raise DetectorError(f"face mode must be one of {', '.join(FACE_MODES)}, got {options.face_mode!r}")
        if options.batch_size < 1:
            raise DetectorError(f"--batch-size must be at least 1, got {options.batch_size}")
        if not 0.0 < options.threshold < 1.0:
            raise DetectorError(f"--threshold must be between 0 and 1, got {options.threshold}")
        if options.teams is not None and options.teams < 1:
            raise DetectorError(f"--teams must be at least 1, got {options.teams}")
        if options.teams is not None and not options.track:
            raise DetectorError("--teams needs tracking: drop --no-track")
        parse_tiles(options.tiles)
        check_overlap(options.tile_overlap)
        Sampler(options.every, options.fps)
        self.options = options
        wants_faces = "face" in options.detectors
        needs_people = "human" in options.detectors or (wants_faces and options.face_mode == "people")
        human = create_detector("human", model=options.model, threshold=options.threshold) if needs_people else None
        self.human: HumanDetector | None = human if isinstance(human, HumanDetector) else None
        face = create_detector("face", threshold=options.threshold) if wants_faces else None
        self.face: FaceDetector | None = face if isinstance(face, FaceDetector) else None
        self.last_tracking_share = 0.0  # of the last run's CPU time (all threads), the share spent tracking
        # person boxes down to LOW_SCORE too, for the tracker's second association (set per run)
        self.weak_people = options.track and "human" in options.detectors and options.threshold > LOW_SCORE

    @property
    def reported(self) -> list[Detector]:
        return [d for d in (self.human, self.face) if d is not None and d.name in self.options.detectors]

    def planner(self) -> ScenePlanner:
        """A new run's tile decisions."""
        return ScenePlanner(self.human, self.options.tiles, self.options.tile_overlap)

    def prepare(self, frame: DecodedFrame, keep_rgb: bool, planner: ScenePlanner) -> PreparedFrame:
        """Choose the grid, cut and resize the model inputs (runs in the decode thread)."""
        grid = planner.grid(frame)
        inputs = cut_tiles(frame, grid, self.human.input_size) if self.human is not None else None
        return PreparedFrame(frame.source, frame.index, frame.t, frame.rgb() if keep_rgb else None, grid, inputs)

    def infer(self, batch: list[PreparedFrame]) -> list[Detections]:
        """All detectors on a batch of prepared frames. The person model gets about `batch_size` images per call,
        frames or tiles alike (on a CPU, calls of dozens of images ran far slower per image than calls of a few), but
        never a frame split over two calls: on a GPU all the tiles of a frame go in one batch."""
        people: list[Detections] = [Detections.empty()] * len(batch)
        weak: list[Detections] = [Detections.empty()] * len(batch)
        if self.human is not None:
            calls = _whole_frames([p.inputs for p in batch if p.inputs is not None], self.options.batch_size)
            floor = LOW_SCORE if self.weak_people else None
            found = [d for call in calls for d in self.human.detect(call, floor)]
            start = 0
            for i, p in enumerate(batch):
                tiles = len(p.grid.rects)
                people[i], weak[i] = _strong_and_weak(found[start : start + tiles], p.grid, self.human.threshold)
                start += tiles
        results = []
        for p, persons, weaker in zip(batch, people, weak, strict=True):
            parts = [persons, weaker] if "human" in self.options.detectors else []
            if self.face is not None and p.rgb is not None:
                if self.options.face_mode == "people":
                    parts.append(self.face.detect_in_people(p.rgb, persons))
                else:
                    parts.append(self.face.detect(p.rgb[None])[0])
            results.append(Detections.concat(parts).sorted())
        return results

    def infer_batches(self, batches: Iterator[list[PreparedFrame]]) -> Iterator[Inferred]:
        """Each batch with its detections, in order, with IN_FLIGHT batches being inferred at once: while one is in
        the serial part of `infer` (the graph's NMS, tile merging, faces), the next keeps the model's cores busy."""
        with ThreadPoolExecutor(IN_FLIGHT, thread_name_prefix="infer") as pool:
            pending: deque[tuple[list[PreparedFrame], Future[list[Detections]]]] = deque()
            for batch in batches:
                pending.append((batch, pool.submit(self.infer, batch)))
                if len(pending) == IN_FLIGHT:
                    done, future = pending.popleft()
                    yield done, future.result()
            for done, future in pending:
                yield done, future.result()

    def frames(
        self, sources: list[SourceInfo], keep_rgb: bool, planner: ScenePlanner
    ) -> ThreadedReader[DecodedFrame, PreparedFrame]:
        """Prepared frames of all sources from a background thread (use as a context manager, then iterate)."""
        sampler = Sampler(self.options.every, self.options.fps)

        def produce() -> Iterator[DecodedFrame]:
            decoded = itertools.chain.from_iterable(decode(source, sampler) for source in sources)
            yield from itertools.islice(decoded, self.options.max_frames)

        return ThreadedReader(produce, lambda f: self.prepare(f, keep_rgb, planner), depth=2 * self.options.batch_size)

    def run(
        self,
        inputs: list[Path],
        out_json: Path,
        annotate: Path | None = None,
        on_progress: Callable[[Progress], None] | None = None,
    ) -> AnalysisSummary:
        sources = open_sources(inputs)
        expected = _expected_frames(sources, Sampler(self.options.every, self.options.fps), self.options.max_frames)
        tracked = self.options.track and "human" in self.options.detectors and _one_video(sources)
        if self.options.teams is not None and not tracked:
            raise DetectorError("--teams applies to people tracked in one video input (not images, not several)")
        self.weak_people = tracked and self.options.threshold > LOW_SCORE
        teams = self.options.teams or DEFAULT_TEAMS
        tracks = VideoTracks(self.options.threshold, teams, sources[0].width / sources[0].height) if tracked else None
        name_frames = len(sources) > 1 or sources[0].kind == "image"
        offsets = dict(
            zip(
                (s.path for s in sources),
                itertools.accumulate((s.duration_s or IMAGE_SECONDS for s in sources), initial=0.0),
                strict=False,
            )
        )
        keep_rgb = annotate is not None or self.face is not None
        counts: Counter[str] = Counter()
        analyzed = inputs_used = 0
        planner = self.planner()
        started, cpu_started = time.perf_counter(), time.process_time()
        with DetectionsWriter(out_json) as writer:
            with contextlib.ExitStack() as stack:
                video = stack.enter_context(AnnotatedVideo(annotate)) if annotate and not tracks else None
                reader = stack.enter_context(self.frames(sources, keep_rgb, planner))
                for batch, found in self.infer_batches(_batched(iter(reader), self.options.batch_size)):
                    if tracks is not None:
                        images = [p.rgb if p.rgb is not None else _whole_frame(p) for p in batch]
                        found = tracks.step_batch(list(zip(found, [p.t for p in batch], images, strict=True)))
                    for p, dets in zip(batch, found, strict=True):
                        source = str(p.source.path) if name_frames else None
                        writer.add(FrameDetections(p.index, p.t, dets, source))
                        if tracks is None:  # tracked: counted as written, once tracks are confirmed
                            counts.update(dets.labels.tolist())
                        inputs_used += 0 if p.inputs is None else len(p.inputs)
                        if video is not None and p.rgb is not None:
                            video.add(p.rgb, dets, offsets[p.source.path] + p.t)
                    analyzed += len(batch)
                    if on_progress:
                        on_progress(Progress(analyzed, expected, time.perf_counter() - started))
            if analyzed == 0:
                raise DetectorError("no frames were analyzed (check --every / --fps against the input length)")
            seconds = time.perf_counter() - started
            fps = analyzed / seconds if seconds > 0 else 0.0
            detectors = [d.describe() for d in self.reported]
            scenes = tuple(planner.scenes)
            per_frame = (inputs_used + sum(s.probe_inputs for s in scenes)) / analyzed
            header = {
                "source": _source_block(sources),
                "video": _video_block(sources),
                "detectors": detectors,
                "tiling": [s.to_json() for s in scenes],
            }
            stats = {
                "frames_analyzed": analyzed,
                "seconds": round(seconds, 3),
                "fps": round(fps, 2),
                "model_inputs_per_frame": round(per_frame, 2),
            }
            if tracks is None:
                writer.finish(header, stats)
            else:
                resolution, relabel = tracks.resolve()
                table = [t.to_json() for t in resolution.tracks]

                def relabel_and_count(detections: list[dict[str, Any]]) -> list[dict[str, Any]]:
                    final = relabel(detections)
                    counts.update(d["label"] for d in final)
                    return final

                writer.finish({**header, "teams": tracks.teams}, stats, table, relabel_and_count)
        cpu = time.process_time() - cpu_started
        self.last_tracking_share = tracks.seconds / cpu if tracks is not None and cpu > 0 else 0.0
        if tracks is not None and annotate is not None:
            annotate_document(sources[0].path, read_detections(out_json), annotate)
        grids = ", ".join(dict.fromkeys(s.grid.label for s in scenes)) if self.human else "off"
        return AnalysisSummary(
            analyzed,
            seconds,
            fps,
            detectors,
            dict(counts),
            grids,
            scenes,
            per_frame,
            out_json,
            annotate,
            len(resolution.tracks) if tracks is not None else None,
            tracks.seconds if tracks is not None else 0.0,
        )


def _whole_frames(inputs: list[np.ndarray], size: int) -> Iterator[np.ndarray]:
    """Model calls of whole frames' inputs: frames are added to a call until it holds at least `size` images."""
    start = 0
    for end in range(1, len(inputs) + 1):
        if end == len(inputs) or sum(len(i) for i in inputs[start:end]) >= size:
            yield np.concatenate(inputs[start:end])
            start = end


def _one_video(sources: list[SourceInfo]) -> bool:
    return len(sources) == 1 and sources[0].kind == "video"


def _whole_frame(p: PreparedFrame) -> np.ndarray | None:
    """The model's whole-frame input (the frame scaled to it): kit colours when the full frame is not kept."""
    return p.inputs[0] if p.inputs is not None else None


def _strong_and_weak(per_tile: list[Detections], grid: TileGrid, threshold: float) -> tuple[Detections, Detections]:
    """People at or above the threshold, merged across tiles exactly as without tracking, and the weaker boxes (from
    a lower model floor) merged apart, less those that duplicate a strong one."""
    strong = merge_tiles([d[d.scores >= threshold] for d in per_tile], grid, threshold)
    if all(bool((d.scores >= threshold).all()) for d in per_tile):
        return strong, Detections.empty()
    weak = merge_tiles([d[d.scores < threshold] for d in per_tile], grid, threshold)
    if len(strong) and len(weak):
        weak = weak[iou(weak.boxes, strong.boxes).max(axis=1) <= 0.5]
    return strong, weak


def _expected_frames(sources: list[SourceInfo], sampler: Sampler, cap: int | None) -> int | None:
    counts = [1 if s.kind == "image" else sampler.expected(s.frames, s.duration_s) for s in sources]
    if any(c is None for c in counts):
        return cap
    total = sum(c for c in counts if c is not None)
    return min(total, cap) if cap else total


def _source_block(sources: list[SourceInfo]) -> dict[str, object]:
    kinds = {s.kind for s in sources}
    kind = "video" if kinds == {"video"} else "images" if kinds == {"image"} else "mixed"
    return {"kind": kind, "inputs": [str(s.path) for s in sources]}


def _video_block(sources: list[SourceInfo]) -> dict[str, object]:
    """The single input's properties; for several inputs the first one's size, and totals."""
    first = sources[0]
    rates = {s.fps for s in sources}
    durations = [s.duration_s for s in sources]
    return {
        "width": first.width,
        "height": first.height,
        "fps": round(first.fps, 3) if len(rates) == 1 and first.fps else None,
        "frames": sum(s.frames or 0 for s in sources) or None,
        "duration_s": round(sum(d for d in durations if d), 3) if all(durations) else None,
    }


def analyze(
    inputs: list[Path],
    out_json: Path,
    options: AnalyzeOptions,
    annotate: Path | None = None,
    on_progress: Callable[[Progress], None] | None = None,
) -> AnalysisSummary:
    """Analyze `inputs` into `out_json` (written atomically). Raises DetectorError with a one-line message."""
    open_sources(inputs)
    return VideoAnalyzer(options).run(inputs, out_json, annotate, on_progress)
