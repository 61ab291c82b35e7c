"""Box arithmetic on (n, 4) `[x_min, y_min, x_max, y_max]` arrays: overlap measures and suppression."""

from __future__ import annotations

import numpy as np


def areas(boxes: np.ndarray) -> np.ndarray:
    return np.maximum(boxes[..., 2] - boxes[..., 0], 0) * np.maximum(boxes[..., 3] - boxes[..., 1], 0)


def intersections(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """(len(a), len(b)) intersection areas."""
    return _intersections(a[:, None], b[None, :])


def iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """(len(a), len(b)) intersection over union."""
    inter = intersections(a, b)
    union = areas(a)[:, None] + areas(b)[None, :] - inter
    return np.where(union > 0, inter / np.maximum(union, 1e-12), 0.0)


def ios(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """(len(a), len(b)) intersection over the smaller box: 1 when one box lies inside the other (a cut-off part)."""
    return paired_ios(a[:, None], b[None, :])


def paired_ios(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """`ios` of boxes paired by broadcasting: of a[i] and b[i] for two (n, 4) arrays (not all n x n pairs)."""
    smaller = np.minimum(areas(a), areas(b))
    return np.where(smaller > 0, _intersections(a, b) / np.maximum(smaller, 1e-12), 0.0)


def _intersections(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    size = np.maximum(np.minimum(a[..., 2:], b[..., 2:]) - np.maximum(a[..., :2], b[..., :2]), 0)
    return size[..., 0] * size[..., 1]


def nms(boxes: np.ndarray, scores: np.ndarray, threshold: float) -> np.ndarray:
    """Indices kept by greedy non-maximum suppression (best score first)."""
    order = np.argsort(-scores, kind="stable")
    overlaps = iou(boxes, boxes)
    keep: list[int] = []
    suppressed = np.zeros(len(boxes), bool)
    for i in order:
        if suppressed[i]:
            continue
        keep.append(int(i))
        suppressed |= overlaps[i] > threshold
    return np.array(keep, dtype=np.int64)


def weighted_nms(boxes: np.ndarray, scores: np.ndarray, threshold: float) -> tuple[np.ndarray, np.ndarray]:
    """MediaPipe's weighted suppression: each kept box is the score-weighted mean of the boxes it suppresses.

    Anchor-based face models fire on many neighbouring anchors; averaging them gives steadier boxes than keeping one.
    """
    order = np.argsort(-scores, kind="stable")
    overlaps = iou(boxes, boxes)
    remaining = np.ones(len(boxes), bool)
    out_boxes, out_scores = [], []
    for i in order:
        if not remaining[i]:
            continue
        group = remaining & (overlaps[i] > threshold)
        group[i] = True
        weights = scores[group]
        out_boxes.append((boxes[group] * weights[:, None]).sum(0) / weights.sum())
        out_scores.append(scores[i])
        remaining &= ~group
    if not out_boxes:
        return np.zeros((0, 4), np.float32), np.zeros(0, np.float32)
    return np.array(out_boxes, np.float32), np.array(out_scores, np.float32)
