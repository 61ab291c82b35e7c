"""Generated test footage with exact ground truth: people (a real photo) moving over a playing-field background.

The person sprite is matplotlib's bundled `grace_hopper.jpg`, cropped to the person; its face box was labelled once by
hand on that photo. Each person moves inside their own cell of a grid, so nobody is occluded and every person and face
in the ground truth is fully visible.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Iterator
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any

import av
import cv2
import numpy as np

from detector.detections import Detections, FrameDetections
from detector.errors import DetectorError
from detector.output import AtomicFile, DetectionsWriter, frame_json

SPRITE_CROP = (0, 16, 512, 600)  # x0, y0, x1, y1 of the person in grace_hopper.jpg (512x600)
FACE_IN_SPRITE = (160, 104, 366, 312)  # the face box, in sprite pixels


@dataclass(frozen=True)
class SampleSpec:
    width: int = 1280
    height: int = 720
    seconds: float = 3.0
    fps: int = 25
    people: int = 4
    person_height: tuple[float, float] = (0.25, 0.38)  # fraction of the frame height
    seed: int = 0
    crowd: bool = False  # people side by side in groups (see _crowd) instead of one per cell
    gaps: tuple[float, float] = (0.03, 0.15)  # between neighbours in a crowd's group, share of a person's width

    @classmethod
    def wide(cls, seconds: float = 3.0, people: int = 16, seed: int = 0) -> SampleSpec:
        """A wide shot: 1080p, people 8-12% of the frame height (what tiling is for)."""
        return cls(1920, 1080, seconds, 25, people, (0.08, 0.12), seed)

    @classmethod
    def crowded(
        cls,
        size: tuple[int, int] = (1920, 1080),
        people: int = 40,
        person_height: tuple[float, float] = (0.06, 0.12),
        seconds: float = 2.0,
        seed: int = 0,
        gaps: tuple[float, float] = (0.03, 0.15),
    ) -> SampleSpec:
        """A crowded wide shot: groups of 2-5 people side by side, small gaps between them, so that neighbours
        often stand on both sides of a tile border (what merging across tiles must not fuse)."""
        return cls(size[0], size[1], seconds, 25, people, person_height, seed, crowd=True, gaps=gaps)


@dataclass(frozen=True)
class _Person:
    sprite: np.ndarray
    flipped: bool
    x_range: tuple[int, int]
    y_range: tuple[int, int]
    period_s: tuple[float, float]
    phase: tuple[float, float]

    def position(self, t: float) -> tuple[int, int]:
        def along(lo_hi: tuple[int, int], period: float, phase: float) -> int:
            lo, hi = lo_hi
            return round(lo + (hi - lo) * 0.5 * (1 + math.sin(2 * math.pi * t / period + phase)))

        return along(self.x_range, self.period_s[0], self.phase[0]), along(
            self.y_range, self.period_s[1], self.phase[1]
        )


@functools.lru_cache(maxsize=1)
def sprite() -> np.ndarray:
    from matplotlib import cbook

    path = cbook.get_sample_data("grace_hopper.jpg", asfileobj=False)
    bgr = cv2.imread(str(path))
    if bgr is None:
        raise DetectorError(f"cannot read matplotlib's sample photo {path}")
    image = cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
    x0, y0, x1, y1 = SPRITE_CROP
    return np.ascontiguousarray(image[y0:y1, x0:x1])


def field_background(width: int, height: int, rng: np.random.Generator) -> np.ndarray:
    """Grass stripes with noise and white field lines: texture, but nothing person-like."""
    stripes = ((np.arange(width) // max(1, width // 12)) % 2).astype(np.float32)
    green = np.empty((height, width, 3), np.float32)
    green[:] = np.array([40, 120, 45], np.float32) + stripes[None, :, None] * np.array([10, 18, 8], np.float32)
    green += rng.normal(0, 6, (height, width, 1)).astype(np.float32)
    field = np.clip(green, 0, 255).astype(np.uint8)
    line = (235, 235, 235)
    thickness = max(2, height // 200)
    cv2.rectangle(field, (width // 20, height // 20), (width - width // 20, height - height // 20), line, thickness)
    cv2.line(field, (width // 2, height // 20), (width // 2, height - height // 20), line, thickness)
    cv2.circle(field, (width // 2, height // 2), height // 6, line, thickness)
    return field


def _person(h: int, rng: np.random.Generator) -> tuple[np.ndarray, bool]:
    """The sprite scaled to `h` pixels tall, mirrored or not."""
    photo = sprite()
    image = cv2.resize(photo, (round(h * photo.shape[1] / photo.shape[0]), h), interpolation=cv2.INTER_AREA)
    flipped = bool(rng.random() < 0.5)
    return np.ascontiguousarray(image[:, ::-1] if flipped else image), flipped


def _people(spec: SampleSpec, rng: np.random.Generator) -> list[_Person]:
    if spec.crowd:
        return _crowd(spec, rng)
    photo = sprite()
    aspect = photo.shape[1] / photo.shape[0]
    # people stay off the frame border: a person cut by the frame edge is ambiguous even to a human labeller
    left, top = spec.width // 25, spec.height // 25
    inner_w, inner_h = spec.width - 2 * left, spec.height - 2 * top
    cols = max(1, round(math.sqrt(spec.people * inner_w / inner_h / aspect / 1.5)))
    rows = math.ceil(spec.people / cols)
    cell_w, cell_h = inner_w // cols, inner_h // rows
    people = []
    for i in range(spec.people):
        col, row = i % cols, i // cols
        h = int(min(rng.uniform(*spec.person_height) * spec.height, cell_h * 0.8, cell_w * 0.8 / aspect))  # keep gaps
        if h < 16:
            raise DetectorError(
                f"{spec.people} people do not fit in {spec.width}x{spec.height}: use fewer or a larger size"
            )
        image, flipped = _person(h, rng)
        w = image.shape[1]
        x0, y0 = left + col * cell_w, top + row * cell_h
        people.append(
            _Person(
                image,
                flipped,
                (x0, x0 + cell_w - w),
                (y0, y0 + cell_h - h),
                (rng.uniform(2.0, 4.0), rng.uniform(2.0, 4.0)),
                (rng.uniform(0, 2 * math.pi), rng.uniform(0, 2 * math.pi)),
            )
        )
    return people


def _crowd(spec: SampleSpec, rng: np.random.Generator) -> list[_Person]:
    """Lanes of groups. A group is 2-5 people side by side, `spec.gaps` of a person's width apart, moving together (so
    the gaps stay); lanes are a tallest person plus 30% apart, so nobody is occluded. Up to `spec.people` people."""
    left, top = spec.width // 25, spec.height // 25
    inner_w, inner_h = spec.width - 2 * left, spec.height - 2 * top
    tallest = round(spec.person_height[1] * spec.height)
    lane_h = round(tallest * 1.3)
    people: list[_Person] = []
    for lane in range(inner_h // lane_h):
        lane_top, x = top + lane * lane_h, left + round(rng.uniform(0, 0.05) * inner_w)
        while len(people) < spec.people:
            members = [
                _person(round(rng.uniform(*spec.person_height) * spec.height), rng)
                for _ in range(min(int(rng.integers(2, 6)), spec.people - len(people)))
            ]
            gaps = [round(rng.uniform(*spec.gaps) * image.shape[1]) for image, _ in members]
            travel = round(rng.uniform(0.02, 0.06) * inner_w)
            width = sum(image.shape[1] for image, _ in members) + sum(gaps[:-1])
            if x + width + travel > left + inner_w:
                break
            period = (rng.uniform(2.0, 4.0), rng.uniform(2.0, 4.0))
            phase = (rng.uniform(0, 2 * math.pi), rng.uniform(0, 2 * math.pi))
            slack = lane_h - tallest
            for (image, flipped), gap in zip(members, gaps, strict=True):
                feet = lane_top + tallest - image.shape[0]  # heads differ, feet on one line
                people.append(_Person(image, flipped, (x, x + travel), (feet, feet + slack), period, phase))
                x += image.shape[1] + gap
            x += travel + round(rng.uniform(0.3, 1.5) * tallest)
    if not people:
        raise DetectorError(f"no crowd fits in {spec.width}x{spec.height}: use a smaller person height")
    return people


def _truth(person: _Person, x: int, y: int, width: int, height: int) -> tuple[list[float], list[float]]:
    h, w = person.sprite.shape[:2]
    sprite_w = SPRITE_CROP[2] - SPRITE_CROP[0]
    fx0, fy0, fx1, fy1 = (v * w / sprite_w for v in FACE_IN_SPRITE)
    if person.flipped:
        fx0, fx1 = w - fx1, w - fx0
    size = [width, height, width, height]
    return [v / s for v, s in zip((x, y, x + w, y + h), size, strict=True)], [
        v / s for v, s in zip((x + fx0, y + fy0, x + fx1, y + fy1), size, strict=True)
    ]


def write_sample(out: Path, spec: SampleSpec = SampleSpec()) -> Path:
    """Write the H.264 clip to `out` and its ground truth to `<out stem>.gt.json`; returns the ground-truth path."""
    rng = np.random.default_rng(spec.seed)
    background = field_background(spec.width, spec.height, rng)
    people = _people(spec, rng)

    def frames() -> Iterator[tuple[np.ndarray, dict[str, Any]]]:
        for index in range(round(spec.seconds * spec.fps)):
            t = index / spec.fps
            canvas = background.copy()
            boxes, kinds = [], []
            for person in people:
                x, y = person.position(t)
                h, w = person.sprite.shape[:2]
                canvas[y : y + h, x : x + w] = person.sprite
                person_box, face_box = _truth(person, x, y, spec.width, spec.height)
                boxes += [person_box, face_box]
                kinds += ["person", "face"]
            dets = Detections(np.array(boxes, np.float32), np.ones(len(boxes), np.float32), np.array(kinds))
            yield canvas, frame_json(FrameDetections(index, t, dets))

    return write_clip(out, spec.width, spec.height, spec.fps, spec.seed, frames())


def write_clip(
    out: Path, width: int, height: int, fps: float, seed: int, frames: Iterator[tuple[np.ndarray, dict[str, Any]]]
) -> Path:
    """Encode the canvases to `out` (H.264) and their truth to `<out stem>.gt.json` in the detections schema."""
    gt_path = out.with_name(out.stem + ".gt.json")
    rate = Fraction(fps).limit_denominator(1000)
    count = 0
    with AtomicFile(out, out.suffix) as video_file, DetectionsWriter(gt_path) as truth:
        with av.open(str(video_file.tmp), "w", format="mp4") as container:
            stream = container.add_stream("libx264", rate=rate, options={"preset": "veryfast", "crf": "18"})
            stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
            for index, (canvas, truth_frame) in enumerate(frames):
                frame = av.VideoFrame.from_ndarray(canvas, format="rgb24")
                frame.pts, frame.time_base = index, 1 / rate
                for packet in stream.encode(frame):
                    container.mux(packet)
                truth.add_json(truth_frame)
                count += 1
            for packet in stream.encode():
                container.mux(packet)
        truth.finish(
            {
                "source": {"kind": "generated", "inputs": [out.name], "seed": seed},
                "video": {
                    "width": width,
                    "height": height,
                    "fps": fps,
                    "frames": count,
                    "duration_s": count / fps,
                },
                "detectors": [{"name": "ground_truth", "model": "derby-batch sample", "threshold": None}],
            },
            {"frames_analyzed": count, "seconds": 0.0, "fps": 0.0},
        )
    return gt_path
