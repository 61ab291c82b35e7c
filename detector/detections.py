"""The one detections data model: column-wise arrays, like Roboflow supervision's `Detections`.

Boxes are normalized `[x_min, y_min, x_max, y_max]` in the frame they were found in, so they survive resizing and
are what the output schema stores.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class RawDetections:
    """A detection model's outputs for a batch, as the TF Object Detection API gives them: boxes (n, k, 4) as
    normalized [y_min, x_min, y_max, x_max], scores (n, k), 1-based classes (n, k), and the valid rows (n,)."""

    boxes: np.ndarray
    scores: np.ndarray
    classes: np.ndarray
    counts: np.ndarray


@dataclass(frozen=True)
class Detections:
    """`n` detections: `boxes` (n, 4) float32, `scores` (n,) float32, `labels` (n,) str, and optionally `tracks` (n,)
    int32, the track each box belongs to (-1: none)."""

    boxes: np.ndarray
    scores: np.ndarray
    labels: np.ndarray
    tracks: np.ndarray | None = None

    def __post_init__(self) -> None:
        n = len(self.boxes)
        if self.boxes.ndim != 2 or self.boxes.shape[1] != 4:
            raise ValueError(f"boxes must have shape (n, 4), got {self.boxes.shape}")
        if self.scores.shape != (n,):
            raise ValueError(f"scores must have shape ({n},), got {self.scores.shape}")
        if self.labels.shape != (n,):
            raise ValueError(f"labels must have shape ({n},), got {self.labels.shape}")
        if self.tracks is not None and self.tracks.shape != (n,):
            raise ValueError(f"tracks must have shape ({n},), got {self.tracks.shape}")

    @property
    def track_ids(self) -> np.ndarray:
        """The tracks column, -1 everywhere when the detections are untracked."""
        return self.tracks if self.tracks is not None else np.full(len(self), -1, np.int32)

    def with_tracks(self, tracks: np.ndarray) -> Detections:
        return Detections(self.boxes, self.scores, self.labels, np.asarray(tracks, np.int32))

    @classmethod
    def empty(cls) -> Detections:
        return cls(np.zeros((0, 4), np.float32), np.zeros(0, np.float32), np.zeros(0, dtype=str))

    @classmethod
    def of(cls, boxes: np.ndarray, scores: np.ndarray, label: str) -> Detections:
        """Detections that all carry one label (what a single-class model returns)."""
        boxes = np.asarray(boxes, np.float32).reshape(-1, 4)
        return cls(boxes, np.asarray(scores, np.float32).reshape(-1), np.full(len(boxes), label))

    @classmethod
    def concat(cls, parts: Sequence[Detections]) -> Detections:
        if not parts:
            return cls.empty()
        tracked = any(p.tracks is not None for p in parts)
        return cls(
            np.concatenate([p.boxes for p in parts]).astype(np.float32, copy=False),
            np.concatenate([p.scores for p in parts]).astype(np.float32, copy=False),
            np.concatenate([p.labels for p in parts]),
            np.concatenate([p.track_ids for p in parts]).astype(np.int32, copy=False) if tracked else None,
        )

    def __len__(self) -> int:
        return len(self.boxes)

    def __getitem__(self, index: np.ndarray | slice) -> Detections:
        """Select by boolean mask or index array; returns a new object."""
        tracks = self.tracks[index] if self.tracks is not None else None
        return Detections(self.boxes[index], self.scores[index], self.labels[index], tracks)

    def with_label(self, label: str) -> Detections:
        return self[self.labels == label]

    def sorted(self) -> Detections:
        """Best score first, ties broken by box, so the output order never depends on the tile or batch order."""
        order = np.lexsort((self.boxes[:, 1], self.boxes[:, 0], -self.scores))
        return self[order]

    def to_json(self) -> list[dict[str, object]]:
        items: list[dict[str, object]] = [
            {"label": str(label), "score": round(float(score), 4), "box": [round(float(v), 5) for v in box]}
            for box, score, label in zip(self.boxes, self.scores, self.labels, strict=True)
        ]
        if self.tracks is not None:
            for item, track in zip(items, self.tracks.tolist(), strict=True):
                if track >= 0:
                    item["track"] = track
        return items

    @classmethod
    def from_json(cls, items: Sequence[dict[str, object]]) -> Detections:
        """Reads both schemas: `track` (@2) becomes the tracks column when any box has one."""
        if not items:
            return cls.empty()
        tracked = any("track" in item for item in items)
        return cls(
            np.array([item["box"] for item in items], np.float32),
            np.array([item["score"] for item in items], np.float32),
            np.array([item["label"] for item in items], dtype=str),
            np.array([item.get("track", -1) for item in items], np.int32) if tracked else None,
        )


@dataclass(frozen=True)
class FrameDetections:
    """What was found in one analyzed frame. `t` is seconds from the stream start (presentation time)."""

    index: int
    t: float
    detections: Detections
    source: str | None = None
