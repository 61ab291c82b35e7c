"""Tracking inside `detect`: each analyzed frame's people through the tracker, faces to their person's track, kit
colours sampled for the teams; at the end, tracklets linked into the video's tracks. Times itself, so `bench` can
say what tracking costs."""

from __future__ import annotations

import itertools
import time
from collections.abc import Callable
from typing import Any

import numpy as np

from detector.boxes import intersections, paired_ios
from detector.camera import CameraMotion
from detector.detections import Detections
from detector.kits import kit_samples, torso_regions
from detector.tracking import DUPLICATE_IOS, ByteTracker, TrackerOptions
from detector.tracks import KitVotes, Resolution, Segment, relabel, resolve

# The tracker associates in full (and kit colours are sampled) at most this often: every frame up to 11 analyzed
# frames a second, every third at 25 and 30. The frames between are carried over when they plainly continue the last
# one (`ByteTracker.carry`), and tracked in full when they do not. Why: at broadcast rates a frame moves people a few
# pixels, and a full association on every one costs the most while helping the least (eighteen recorded 25 fps scenes
# scored the same within their spread, and the tracker's CPU fell by a third: docs/detector.md)
TRACK_EVERY_S = 0.09


class VideoTracks:
    """Use `step_batch` on every analyzed frame in time order, then `resolve` once."""

    def __init__(self, threshold: float, teams: int, aspect: float) -> None:
        self.threshold = threshold
        self.teams = teams
        self.tracker = ByteTracker(TrackerOptions(high=threshold, aspect=aspect))
        self.kits = KitVotes()
        self.camera = CameraMotion(aspect)
        self._scheduled_t = -float("inf")  # the last frame scheduled for a full association
        # CPU time spent tracking, for `bench`: this thread's own (wall time would also count the waits for the GIL
        # while the inference threads run their numpy parts)
        self.seconds = 0.0

    def step_batch(self, frames: list[tuple[Detections, float, np.ndarray | None]]) -> list[Detections]:
        """Each (detections, t, image) of a batch, in time order: the frame's detections with tracks. Person boxes
        below the threshold are kept only when they continue a track; a face takes the track of the person box that
        holds most of it. `image` (RGB, any scale) gives the kit colours, sampled for the batch's frames scheduled for a
        full association at once (see TRACK_EVERY_S)."""
        started = time.thread_time()
        split = _people_and_faces([detections for detections, _, _ in frames])
        full = []
        for _, t, _ in frames:
            full.append(t - self._scheduled_t >= TRACK_EVERY_S)
            if full[-1]:
                self._scheduled_t = t
        pictures = {i: image for i, (_, _, image) in enumerate(frames) if full[i] and image is not None}
        kits = dict(
            zip(pictures, self._kits([(frames[i][0], *split[i], image) for i, image in pictures.items()]), strict=True)
        )
        tracked = [
            self._step(detections, *split[i], kits.get(i), t, image, full[i])
            for i, (detections, t, image) in enumerate(frames)
        ]
        self.seconds += time.thread_time() - started
        return tracked

    def _step(
        self,
        detections: Detections,
        people: np.ndarray,
        faces: np.ndarray,
        owner: np.ndarray,
        kits: np.ndarray | None,
        t: float,
        image: np.ndarray | None,
        full: bool,
    ) -> Detections:
        """One frame, rows kept in their order (best score first): the tracked people and every face. `full`: the
        frame is scheduled for a full association (`kits` were sampled); else it is carried over if it can be."""
        boxes, scores = detections.boxes[people], detections.scores[people]
        camera = self.camera.shift(image, t, boxes)
        ids = None if full else self.tracker.carry(boxes, scores, t, camera)
        if ids is None:
            if not full and image is not None:  # not carried: its kit colours are wanted after all
                kits = self._kits([(detections, people, faces, owner, image)])[0]
            ids = self.tracker.update(boxes, scores, t, kits, camera)
        tracks = np.full(len(detections), -1, np.int32)
        tracks[people] = ids
        if len(ids):
            tracks[faces] = np.where(owner >= 0, ids[owner], -1)
        if kits is not None:
            records = self.tracker.tracklets
            wanted = np.array(  # a low-score box's kit sample is often someone else's (see tracking.LOW_SCORE)
                [i >= 0 and s >= self.threshold and self.kits.wants(int(i), records[int(i)].frames)
                 for i, s in zip(ids.tolist(), scores.tolist(), strict=True)]
            )  # fmt: skip
            self.kits.add(ids[wanted], kits[wanted])
        keep = tracks >= 0
        keep[faces] = True
        return detections[keep].with_tracks(tracks[keep])

    @staticmethod
    def _kits(
        frames: list[tuple[Detections, np.ndarray, np.ndarray, np.ndarray, np.ndarray]],
    ) -> list[np.ndarray | None]:
        """Kit colours of each (detections, people, faces, owner, image)'s people, None where it has none; sampled
        for all the frames at once (numpy's per-call cost is most of it)."""
        regions = [torso_regions(d.boxes[people], d.boxes[faces], owner) for d, people, faces, owner, _ in frames]
        samples = kit_samples([image for *_, image in frames], regions)
        return [kit if len(kit) else None for kit in samples]

    def resolve(self) -> tuple[Resolution, Callable[[list[dict[str, Any]]], list[dict[str, Any]]]]:
        """The video's tracks, and the rewrite of each frame's detections that gives them their final ids."""
        started = time.thread_time()
        segments = [  # boxes in the scene's frame: less how far the camera had moved
            Segment(
                r.id,
                r.first_t,
                r.last_t,
                r.first_box - np.tile(r.first_camera, 2),
                r.last_box - np.tile(r.last_camera, 2),
                r.velocity,
                r.frames,
                self.kits.vote([r.id]),
                r.first_velocity,
            )
            for r in self.tracker.tracklets.values()
        ]
        resolution = resolve(segments, self.kits.vote, self.teams)
        self.seconds += time.thread_time() - started
        return resolution, lambda dets: relabel(dets, resolution, self.threshold)


def _people_and_faces(batch: list[Detections]) -> list[tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """For each frame of a batch: the rows of its person boxes (less duplicates) and of its other boxes (faces), and
    each face's holder: its person's position among those rows (see `_holder`). The duplicates are found for the
    whole batch in one pass (numpy's per-call cost, not the arithmetic, is most of it)."""
    counts = np.array([len(detections) for detections in batch])
    ends = np.cumsum(counts)
    is_person = np.concatenate([detections.labels for detections in batch]) == "person"
    people, faces = np.flatnonzero(is_person), np.flatnonzero(~is_person)
    boxes = np.concatenate([detections.boxes for detections in batch])[people]
    scores = np.concatenate([detections.scores for detections in batch])[people]
    people = people[_unique(boxes, scores, np.searchsorted(ends, people, side="right"))]
    split = []
    for detections, start, (p0, p1), (f0, f1) in zip(
        batch, (ends - counts).tolist(), _bounds(people, ends), _bounds(faces, ends), strict=True
    ):
        rows, others = people[p0:p1] - start, faces[f0:f1] - start
        split.append((rows, others, _holder(detections.boxes[others], detections.boxes[rows])))
    return split


def _bounds(rows: np.ndarray, ends: np.ndarray) -> list[tuple[int, int]]:
    """Where each frame's rows start and end in `rows` (sorted rows of the batch; a frame's rows end at `ends`)."""
    cuts = [0, *np.searchsorted(rows, ends).tolist()]
    return list(itertools.pairwise(cuts))


def _holder(faces: np.ndarray, people: np.ndarray) -> np.ndarray:
    """For each face box, the row of the person box holding most of it (-1 when none holds half of it)."""
    if not len(faces) or not len(people):
        return np.full(len(faces), -1, np.int64)
    inside = intersections(faces, people)
    area = np.maximum((faces[:, 2] - faces[:, 0]) * (faces[:, 3] - faces[:, 1]), 1e-12)
    best = np.argmax(inside, axis=1)
    held = inside[np.arange(len(faces)), best] / area >= 0.5
    return np.where(held, best, -1)


def _unique(boxes: np.ndarray, scores: np.ndarray, frame: np.ndarray) -> np.ndarray:
    """Which person boxes to keep: not those lying mostly inside a better-scoring one of their frame (a second box on
    one person: with two, the tracker would follow both, and the team vote would see the wrong part of the kit).
    `frame`: each box's frame, ascending; every pair of boxes of a frame is compared (not all pairs of the batch)."""
    per_frame = np.bincount(frame)
    sizes, first = per_frame[frame], (np.cumsum(per_frame) - per_frame)[frame]
    rows = np.repeat(np.arange(len(boxes)), sizes)
    others = np.repeat(first, sizes) + np.arange(len(rows)) - np.repeat(np.cumsum(sizes) - sizes, sizes)
    covered = (paired_ios(boxes[rows], boxes[others]) >= DUPLICATE_IOS) & (scores[others] > scores[rows])
    return np.bincount(rows[covered], minlength=len(boxes)) == 0
