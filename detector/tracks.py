"""From the tracker's tracklets to the video's tracks: linking, confirmation, teams, and the `tracks` table.

The online tracker forgets a track unseen for `max_lost_s`; a person who leaves the frame and comes back, or hides
behind another for longer, starts a new tracklet. Once the whole video (or chunk) is known, tracklets are linked
offline: B continues A when B starts soon after A ends, near where A was heading, at a similar height, in the same
kit. The per-video stitch uses the same linking for tracklets that meet at a chunk border.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from detector.kits import assign_teams, kit_distance

MIN_FRAMES = 3  # a track seen in fewer frames is not confirmed: its boxes carry no id
LINK_MAX_GAP_S = 10.0  # the longest absence that linking bridges (a pan can leave someone out of view that long)
LINK_GATE = 1.0  # the largest centre distance, in box heights, at the moment B starts...
LINK_GATE_PER_S = 0.6  # ...widening by this per second of absence
LINK_AHEAD_S = 0.5  # how far A's last velocity is followed into the gap (and B's first one back)
# A's end velocity counts in full once A was followed this long, less before: a few frames' motion is mostly noise
# (two people's boxes merging, a partly hidden one), and at a chunk's start every tracklet is that young
LINK_TRUST_S = 1.0
LINK_TURN_S = 0.2  # cost of B starting at another velocity than A ended with: box heights per (box height per s)
KIT_GATE = 14.0  # the largest kit colour distance (Lab, lightness half) between linked tracklets
MAX_KIT_SAMPLES = 64  # per track: enough for a stable median, bounded memory on long videos


@dataclass(frozen=True)
class Segment:
    """A tracklet as linking sees it: its life, its end boxes (normalized xyxy), velocity at the end (per second)."""

    id: int
    first_t: float
    last_t: float
    first_box: np.ndarray
    last_box: np.ndarray
    velocity: np.ndarray
    frames: int
    kit: np.ndarray | None  # voted kit colour (KIT_DIMENSIONS,), None when never sampled
    first_velocity: np.ndarray | None = None  # velocity over the segment's first moments, when known


@dataclass(frozen=True)
class Track:
    """One row of the output's `tracks` table."""

    id: int
    first_t: float
    last_t: float
    frames: int
    team: str | None
    kit: np.ndarray | None

    def to_json(self) -> dict[str, Any]:
        row: dict[str, Any] = {
            "id": self.id,
            "first_t": round(self.first_t, 6),
            "last_t": round(self.last_t, 6),
            "frames": self.frames,
            "team": self.team,
        }
        if self.kit is not None:
            row["kit"] = [round(float(v), 3) for v in self.kit]
        return row

    @classmethod
    def from_json(cls, row: Mapping[str, Any]) -> Track:
        kit = row.get("kit")
        return cls(
            int(row["id"]),
            float(row["first_t"]),
            float(row["last_t"]),
            int(row["frames"]),
            row.get("team"),
            np.array(kit, np.float32) if kit is not None else None,
        )


@dataclass(frozen=True)
class Resolution:
    """Tracklet id -> the video's track id (confirmed tracks only), and the table."""

    ids: dict[int, int]
    tracks: list[Track]

    @property
    def teams(self) -> dict[int, str | None]:
        return {t.id: t.team for t in self.tracks}


class KitVotes:
    """Kit colour samples per tracklet (a bounded number each), voted by median."""

    def __init__(self) -> None:
        self._samples: dict[int, list[np.ndarray]] = {}

    def wants(self, track: int, frames: int) -> bool:
        """Sample each track's first frames, then every fifth: the vote settles early, the cost stays small."""
        taken = len(self._samples.get(track, ()))
        return taken < MAX_KIT_SAMPLES and (taken < 10 or frames % 5 == 0)

    def add(self, tracks: np.ndarray, kits: np.ndarray) -> None:
        for track, kit in zip(tracks.tolist(), kits, strict=True):
            if not np.isnan(kit).any():
                self._samples.setdefault(track, []).append(kit)

    def vote(self, tracks: Sequence[int]) -> np.ndarray | None:
        samples = [s for t in tracks for s in self._samples.get(t, ())]
        return np.median(np.array(samples), axis=0).astype(np.float32) if samples else None


def _centre(box: np.ndarray) -> np.ndarray:
    return np.array([(box[0] + box[2]) / 2, (box[1] + box[3]) / 2], np.float32)


def link_cost(a: Segment, b: Segment) -> float:
    """How well `b` continues `a` (lower is better); inf when it cannot."""
    gap = b.first_t - a.last_t
    if not 0.0 < gap <= LINK_MAX_GAP_S:
        return float("inf")
    ha, hb = a.last_box[3] - a.last_box[1], b.first_box[3] - b.first_box[1]
    if not 0.6 < hb / max(ha, 1e-6) < 1 / 0.6:
        return float("inf")
    ahead = min(gap, LINK_AHEAD_S)
    height = max((ha + hb) / 2, 1e-6)
    velocity = a.velocity * min(1.0, (a.last_t - a.first_t) / LINK_TRUST_S)
    distance = float(np.linalg.norm(_centre(b.first_box) - _centre(a.last_box) - velocity * ahead)) / height
    if b.first_velocity is not None:  # B followed back in time should meet A too, and move as A did
        back = float(np.linalg.norm(_centre(a.last_box) - _centre(b.first_box) + b.first_velocity * ahead)) / height
        turn = float(np.linalg.norm(b.first_velocity - velocity)) / height * LINK_TURN_S
        distance = (distance + back) / 2 + turn
    kit = 0.0 if a.kit is None or b.kit is None else float(kit_distance(a.kit[None], b.kit[None])[0, 0])
    if distance > LINK_GATE + LINK_GATE_PER_S * gap or kit > KIT_GATE:
        return float("inf")
    return distance + kit / KIT_GATE + 0.1 * gap


def link(segments: Sequence[Segment]) -> dict[int, int]:
    """Segment id -> the id of the first segment of its chain. Greedy on cost: each segment continues at most one
    and is continued by at most one."""
    by_time = sorted(segments, key=lambda s: (s.first_t, s.id))
    candidates = sorted(
        (cost, a.id, b.id)
        for a in by_time
        for b in by_time
        if b.first_t > a.last_t and np.isfinite(cost := link_cost(a, b))
    )
    successor: dict[int, int] = {}
    predecessor: dict[int, int] = {}
    for _, a_id, b_id in candidates:
        if a_id not in successor and b_id not in predecessor:
            successor[a_id], predecessor[b_id] = b_id, a_id
    head: dict[int, int] = {}
    for s in by_time:
        head[s.id] = head[predecessor[s.id]] if s.id in predecessor else s.id
    return head


def resolve(segments: Sequence[Segment], vote: Callable[[list[int]], np.ndarray | None], teams: int) -> Resolution:
    """Link the segments, keep chains seen in MIN_FRAMES frames or more, number them 1.. by first appearance and
    label their teams (`teams` 0: none) from each chain's kit, `vote(segment ids)`."""
    head = link(segments)
    chains: dict[int, list[Segment]] = {}
    for s in segments:
        chains.setdefault(head[s.id], []).append(s)
    confirmed = sorted(
        (c for c in chains.values() if sum(s.frames for s in c) >= MIN_FRAMES),
        key=lambda c: (min(s.first_t for s in c), min(s.id for s in c)),
    )
    kits = {n: vote([s.id for s in c]) for n, c in enumerate(confirmed, start=1)}
    voted = {n: k for n, k in kits.items() if k is not None}
    spans = {n: (min(s.first_t for s in c), max(s.last_t for s in c)) for n, c in enumerate(confirmed, start=1)}
    labels = assign_teams(voted, teams, spans) if teams else {}
    tracks = [
        Track(n, *spans[n], sum(s.frames for s in c), labels.get(n), kits[n]) for n, c in enumerate(confirmed, start=1)
    ]
    ids = {s.id: n for n, c in enumerate(confirmed, start=1) for s in c}
    return Resolution(ids, tracks)


def relabel(detections: list[dict[str, Any]], resolution: Resolution, high: float) -> list[dict[str, Any]]:
    """A frame's detections (output JSON) with tracklet ids replaced by the video's track ids and teams added. A box
    of an unconfirmed tracklet loses its id; a low-score person box (one the tracker kept to continue a track) is
    dropped with it."""
    teams = resolution.teams
    out = []
    for det in detections:
        track = det.get("track")
        if track is None:
            out.append(det)
            continue
        final = resolution.ids.get(int(track))
        if final is None:
            if det["label"] == "person" and det["score"] < high:
                continue
            out.append({k: v for k, v in det.items() if k != "track"})
            continue
        out.append({**det, "track": final, "team": teams.get(final)})
    return out
