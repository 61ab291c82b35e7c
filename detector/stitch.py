"""Video-wide track ids from chunks tracked on their own: the chunk-local tracks are linked across chunk borders the
way `detect` links tracklets inside a video (`detector.tracks.resolve`: position, height, kit colour), then the teams
are clustered again over the whole video, so "A" means the same team in every chunk."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from detector.tracking import FIRST_VELOCITY_S
from detector.tracks import Segment, relabel, resolve


def stitch(
    frames: Sequence[dict[str, Any]], rows: Sequence[dict[str, Any]], teams: int, aspect: float
) -> list[dict[str, Any]]:
    """`frames` (on the source's timeline, in order) carry chunk tracks already renamed to ids unique over the
    video, `rows` the chunks' `tracks` tables with those ids; `aspect` is the frame's width / height (linking
    measures in frame heights). Rewrites each frame's detections to the video's track ids and teams, and returns
    the video's `tracks` table."""
    scale = np.array([aspect, 1, aspect, 1], np.float32)
    seen: dict[int, list[tuple[float, np.ndarray]]] = {}
    for frame in frames:
        for det in frame["detections"]:
            if det["label"] == "person" and "track" in det:
                seen.setdefault(int(det["track"]), []).append((float(frame["t"]), np.array(det["box"]) * scale))
    kits = {int(r["id"]): np.array(r["kit"], np.float32) for r in rows if r.get("kit") is not None}
    segments = [_segment(track, appearances, kits.get(track)) for track, appearances in seen.items()]

    def vote(ids: list[int]) -> np.ndarray | None:
        weighted = [(kits[i], len(seen[i])) for i in ids if i in kits]
        if not weighted:
            return None
        return np.average(np.array([k for k, _ in weighted]), axis=0, weights=[w for _, w in weighted])

    resolution = resolve(segments, vote, teams)
    for frame in frames:
        frame["detections"] = relabel(frame["detections"], resolution, 0.0)
    return [t.to_json() for t in resolution.tracks]


def _segment(track: int, appearances: list[tuple[float, np.ndarray]], kit: np.ndarray | None) -> Segment:
    (first_t, first_box), (last_t, last_box) = appearances[0], appearances[-1]
    velocity = np.zeros(2, np.float32)
    if len(appearances) >= 2:
        (t0, b0), (t1, b1) = appearances[-2], appearances[-1]
        if t1 > t0:
            velocity = (((b1[:2] + b1[2:]) - (b0[:2] + b0[2:])) / 2 / (t1 - t0)).astype(np.float32)
    first_velocity = None  # over the track's first moments, as the tracker measures it (linking checks both ends)
    for t, box in appearances[1:]:
        if t - first_t >= FIRST_VELOCITY_S:
            first_velocity = (((box[:2] + box[2:]) - (first_box[:2] + first_box[2:])) / 2 / (t - first_t)).astype(
                np.float32
            )
            break
    return Segment(track, first_t, last_t, first_box, last_box, velocity, len(appearances), kit, first_velocity)
