"""Recall and precision of detections against generated ground truth (greedy one-to-one matching by IoU), and how
many boxes hold two or more true people (a box around a group is never a match, and hides a person)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from detector.boxes import areas, intersections, iou
from detector.output import frames_of, read_detections


@dataclass(frozen=True)
class Score:
    truths: int
    found: int
    matched: int
    merged: int = 0  # found boxes that hold two or more true people

    @property
    def merged_share(self) -> float:
        return self.merged / self.found if self.found else 0.0

    @property
    def recall(self) -> float:
        return self.matched / self.truths if self.truths else 1.0

    @property
    def precision(self) -> float:
        return self.matched / self.found if self.found else 1.0


def _matches(truth: np.ndarray, found: np.ndarray, threshold: float) -> int:
    if not len(truth) or not len(found):
        return 0
    overlaps = iou(truth, found)
    matched = 0
    while overlaps.size and overlaps.max() >= threshold:
        t, f = np.unravel_index(np.argmax(overlaps), overlaps.shape)
        matched += 1
        overlaps[t, :] = -1
        overlaps[:, f] = -1
    return matched


HOLDS = 0.5  # a box holds a true person when at least this share of the person's box lies inside it


def _merged(truth: np.ndarray, found: np.ndarray) -> int:
    if not len(truth) or not len(found):
        return 0
    inside = intersections(found, truth) / np.maximum(areas(truth), 1e-12)[None, :]
    return int(((inside >= HOLDS).sum(axis=1) >= 2).sum())


def score(result: Path, truth: Path, label: str, min_iou: float = 0.5) -> Score:
    """Compare the frames `result` analyzed with the same frames (by index) of `truth`."""
    truth_frames = {f.index: f.detections.with_label(label) for f in frames_of(read_detections(truth))}
    totals = np.zeros(4, int)
    for frame in frames_of(read_detections(result)):
        expected, found = truth_frames[frame.index], frame.detections.with_label(label)
        matched = _matches(expected.boxes, found.boxes, min_iou)
        totals += (len(expected.boxes), len(found.boxes), matched, _merged(expected.boxes, found.boxes))
    return Score(*map(int, totals))
