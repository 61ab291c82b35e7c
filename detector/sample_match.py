"""Generated match footage for tracking: two teams in coloured kits and a striped official who cross, hide behind
each other, leave the frame and come back, optionally under a panning camera; ground truth has each person's track
id, team and visible share.

Built on `detector.sample` (the same real photo as the person, the same field, the same writer). People walk to and
fro along three lanes at their own speeds: people in one lane cross, the nearer (lower in the frame) hiding the other.
`visibility` is the share of a person's pixels that shows (in the frame, not covered).
"""

from __future__ import annotations

import functools
import math
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from detector.kits import OFFICIAL, team_name
from detector.sample import FACE_IN_SPRITE, SPRITE_CROP, field_background, sprite, write_clip

KITS = ((200, 35, 35), (35, 80, 210))  # RGB of team A's and team B's jackets
JACKET_FROM = 0.52  # the jacket is the dark part of the photo below this share of its height
LANES = 3


@dataclass(frozen=True)
class MatchSpec:
    """`pan`: the camera's sway, as a share of the frame width (0: fixed camera); `leavers`: people whose walk takes
    them out of the frame for a while."""

    width: int = 1280
    height: int = 720
    seconds: float = 10.0
    fps: float = 25.0
    per_team: int = 2
    officials: int = 1
    leavers: int = 1
    person_height: tuple[float, float] = (0.22, 0.26)
    pan: float = 0.0
    seed: int = 0
    official_kit: tuple[int, int, int] | None = None  # the officials' plain jackets, RGB (None: black-white stripes)


@dataclass(frozen=True)
class _Walker:
    track: int
    team: str
    image: np.ndarray
    lane_y: int
    x_range: tuple[float, float]
    speed: float  # pixels per second
    phase: float  # seconds
    sway: tuple[float, float]  # vertical sway amplitude (px) and period (s)

    def position(self, t: float) -> tuple[int, int]:
        lo, hi = self.x_range
        span = hi - lo
        s = (self.speed * (t + self.phase)) % (2 * span)
        x = lo + (s if s < span else 2 * span - s)
        y = self.lane_y + self.sway[0] * math.sin(2 * math.pi * t / self.sway[1])
        return round(x), round(y)


@functools.lru_cache(maxsize=8)
def _kit_sprite(kit: tuple[int, int, int] | None) -> np.ndarray:
    """The photo with its jacket in a plain colour (RGB) or, with None, in black and white stripes."""
    image = sprite().copy()
    h, w = image.shape[:2]
    lab = cv2.cvtColor(image, cv2.COLOR_RGB2LAB)
    jacket = np.zeros((h, w), bool)
    jacket[int(JACKET_FROM * h) :] = lab[int(JACKET_FROM * h) :, :, 0] < 70
    shade = 0.75 + lab[..., 0:1].astype(np.float32) / 255.0  # keep the folds
    if kit is not None:
        colour = np.broadcast_to(np.array(kit, np.float32), image.shape)
    else:
        stripes = (np.arange(w) // max(2, w // 12)) % 2 == 0
        colour = np.where(stripes[None, :, None], 235.0, 20.0) * np.ones(image.shape, np.float32)
    image[jacket] = np.clip(colour * shade, 0, 255)[jacket].astype(np.uint8)
    return image


def _walkers(spec: MatchSpec, rng: np.random.Generator) -> list[_Walker]:
    teams = [team_name(i) for i in range(2) for _ in range(spec.per_team)] + [OFFICIAL] * spec.officials
    order = rng.permutation(len(teams))
    walkers = []
    for n, i in enumerate(order):
        team = teams[i]
        h = round(rng.uniform(*spec.person_height) * spec.height)
        photo = _kit_sprite(spec.official_kit if team == OFFICIAL else KITS[ord(team) - ord("A")])
        w = round(h * photo.shape[1] / photo.shape[0])
        image = cv2.resize(photo, (w, h), interpolation=cv2.INTER_AREA)
        lane = n % LANES  # people in one lane cross each other; lanes hardly overlap (stacked busts look like one)
        lane_y = round(
            spec.height * 0.03
            + (spec.height * (0.97 - spec.person_height[1]) - 0.03 * spec.height) * lane / (LANES - 1)
        )
        leaves = n < spec.leavers
        margin = spec.width * 0.02
        x_range = (margin, spec.width + 0.35 * spec.width if leaves else spec.width - w - margin)
        speed = rng.uniform(0.08, 0.16) * spec.width
        walkers.append(
            _Walker(
                n + 1,
                team,
                image,
                lane_y,
                x_range,
                speed,
                rng.uniform(0, 20),
                (rng.uniform(0.005, 0.015) * spec.height, rng.uniform(3, 6)),
            )
        )
    return walkers


def write_match(out: Path, spec: MatchSpec = MatchSpec()) -> Path:
    """Write the clip to `out` and its ground truth (detections schema, boxes with `track`, `team`, `visibility`) to
    `<out stem>.gt.json`; returns the ground-truth path."""
    rng = np.random.default_rng(spec.seed)
    sway = round(spec.pan * spec.width)
    field = field_background(spec.width + 2 * sway, spec.height, rng)
    walkers = _walkers(spec, rng)

    def frames() -> Iterator[tuple[np.ndarray, dict[str, Any]]]:
        for index in range(round(spec.seconds * spec.fps)):
            t = index / spec.fps
            camera = round(sway * math.sin(2 * math.pi * t / 6.0))  # the camera's offset from the field's centre
            canvas = field[:, sway + camera : sway + camera + spec.width].copy()
            owner = np.zeros((spec.height, spec.width), np.int32)
            placed = []
            for walker in sorted(walkers, key=lambda w: w.lane_y + w.image.shape[0]):  # far first, near on top
                x, y = walker.position(t)
                x -= camera
                placed.append((walker, x, y, _paste(canvas, owner, walker, x, y)))
            yield canvas, {"index": index, "t": round(t, 6), "detections": _truth(spec, owner, placed)}

    return write_clip(out, spec.width, spec.height, spec.fps, spec.seed, frames())


def _paste(canvas: np.ndarray, owner: np.ndarray, walker: _Walker, x: int, y: int) -> int:
    """Draw the walker at (x, y) clipped to the frame; returns how many of its pixels were drawn."""
    h, w = walker.image.shape[:2]
    x0, y0, x1, y1 = max(x, 0), max(y, 0), min(x + w, canvas.shape[1]), min(y + h, canvas.shape[0])
    if x1 <= x0 or y1 <= y0:
        return 0
    canvas[y0:y1, x0:x1] = walker.image[y0 - y : y1 - y, x0 - x : x1 - x]
    owner[y0:y1, x0:x1] = walker.track
    return (x1 - x0) * (y1 - y0)


def _truth(spec: MatchSpec, owner: np.ndarray, placed: list[tuple[_Walker, int, int, int]]) -> list[dict[str, Any]]:
    size = np.array([spec.width, spec.height, spec.width, spec.height], np.float64)
    shown = np.bincount(owner.ravel(), minlength=len(placed) + 1)
    items = []
    for walker, x, y, drawn in placed:
        if drawn == 0:
            continue
        h, w = walker.image.shape[:2]
        box = np.clip(np.array([x, y, x + w, y + h], np.float64), 0, size) / size
        visibility = shown[walker.track] / (h * w)
        common = {"score": 1.0, "track": walker.track, "team": walker.team, "visibility": round(float(visibility), 3)}
        items.append({"label": "person", "box": [round(float(v), 5) for v in box], **common})
        scale = w / (SPRITE_CROP[2] - SPRITE_CROP[0])
        fx0, fy0, fx1, fy1 = (v * scale for v in FACE_IN_SPRITE)
        face = np.array([x + fx0, y + fy0, x + fx1, y + fy1])
        inside = (face[:2] >= 0).all() and face[2] <= spec.width and face[3] <= spec.height
        if inside and np.mean(owner[int(face[1]) : int(face[3]), int(face[0]) : int(face[2])] == walker.track) > 0.5:
            items.append({"label": "face", "box": [round(float(v), 5) for v in face / size], **common})
    return items
