"""One box per person from a frame's tiles and its whole-frame pass.

Three ways a tiled run can report a wrong box, each handled here:
- a person cut by a tile border shows up as pieces: pieces mostly inside a complete box are dropped; pieces that
  neighbouring tiles cut at the same border are joined, but only when they can be one person (both confident, the
  same rows or columns, a joined shape like the frame's people);
- the model itself often puts one box around two people standing side by side (most visible in the whole-frame
  pass, where they are small): a box holding two confident people side by side is dropped, before and after the
  suppression, so neither the suppression nor a join can leave one;
- duplicates from overlapping tiles: one class-aware NMS pass over the frame.

Only boxes scoring at least `confident` count as people that make a box a group, and only they are joined: a
low-score box (when the model runs below the reporting threshold) can neither remove nor grow a confident one.
"""

from __future__ import annotations

import numpy as np

from detector.boxes import intersections, ios, nms
from detector.detections import Detections
from detector.tiling import TileGrid

EDGE_MARGIN = 0.01  # a box this close (fraction of the tile) to an inner tile edge is cut off by it
PARTIAL_IOS = 0.6  # a cut-off box mostly inside a complete box is a part of it
MERGE_IOU = 0.5
JOIN_SPAN_IOU = 0.7  # pieces cut by one vertical border cover the same rows (a horizontal border: the same columns)
JOIN_ASPECT = 1.6  # a joined box at most this much wider (or narrower) for its height than the frame's people
PERSON_ASPECTS = (0.25, 1.25)  # width / height of a joined box when the frame has no complete box to compare with
MEMBER_INSIDE = 0.75  # a box holds a person when this much of the person's box lies inside it,
MEMBER_HEIGHT = 0.6  # the person is at least this share of its height (a part of one person is shorter),
MEMBER_WIDTH = 0.75  # and at most this share of its width
SIDE_BY_SIDE = 0.3  # two people in a box overlap at most this share of the narrower one's width


def merge_tiles(per_tile: list[Detections], grid: TileGrid, confident: float) -> Detections:
    """`per_tile[i]` holds the boxes found in `grid.rects[i]`, normalized to it (the first is the whole frame)."""
    width, height = grid.rects[0][2:]
    if len(grid.rects) == 1:  # the model's own boxes, less those around groups
        whole = per_tile[0]
        pixels = whole.boxes * np.array([width, height, width, height], np.float32)
        return whole[~holds_two(pixels, whole.scores >= confident, np.ones(len(whole), bool))]
    mapped, cuts = [], []
    for dets, (x0, y0, x1, y1) in zip(per_tile, grid.rects, strict=True):
        b = dets.boxes
        cut = np.zeros((len(b), 4), bool)  # cut at the left, top, right, bottom
        cut[:, 0] = (b[:, 0] < EDGE_MARGIN) & (x0 > 0)
        cut[:, 1] = (b[:, 1] < EDGE_MARGIN) & (y0 > 0)
        cut[:, 2] = (b[:, 2] > 1 - EDGE_MARGIN) & (x1 < width)
        cut[:, 3] = (b[:, 3] > 1 - EDGE_MARGIN) & (y1 < height)
        scale = np.array([x1 - x0, y1 - y0, x1 - x0, y1 - y0], np.float32)
        offset = np.array([x0, y0, x0, y0], np.float32)
        frame_boxes = (b * scale + offset) / np.array([width, height, width, height], np.float32)
        mapped.append(Detections(frame_boxes, dets.scores, dets.labels))
        cuts.append(cut)
    dets, cut = Detections.concat(mapped), np.concatenate(cuts)
    frame_size = np.array([width, height, width, height], np.float32)
    kept = []
    for label in sorted(set(dets.labels.tolist())):
        mask = dets.labels == label
        kept.append(_one_label(dets[mask], cut[mask], frame_size, confident))
    return Detections.concat(kept).sorted()


def _one_label(dets: Detections, cut: np.ndarray, frame_size: np.ndarray, confident: float) -> Detections:
    pixels = dets.boxes * frame_size  # aspect checks need pixels, not fractions of a non-square frame
    is_cut = np.asarray(cut.any(axis=1), bool)
    keep = ~holds_two(pixels, dets.scores >= confident, ~is_cut)
    dets, pixels, cut, is_cut = dets[keep], pixels[keep], cut[keep], is_cut[keep]
    if is_cut.any() and (~is_cut).any():
        covered = np.zeros(len(dets), bool)
        covered[is_cut] = (ios(pixels[is_cut], pixels[~is_cut]) > PARTIAL_IOS).any(axis=1)
        dets, pixels, cut, is_cut = dets[~covered], pixels[~covered], cut[~covered], is_cut[~covered]
    complete = pixels[~is_cut & (dets.scores >= confident)]
    sizes = complete[:, 2:] - complete[:, :2]
    lo, hi = PERSON_ASPECTS
    if len(complete):
        median = float(np.median(sizes[:, 0] / np.maximum(sizes[:, 1], 1e-6)))
        lo, hi = median / JOIN_ASPECT, median * JOIN_ASPECT
    joined, joined_scores = _join_pieces(pixels[is_cut], dets.scores[is_cut], cut[is_cut], confident, (lo, hi))
    pixels = np.concatenate([pixels[~is_cut], joined])
    scores = np.concatenate([dets.scores[~is_cut], joined_scores])
    kept = nms(pixels, scores, MERGE_IOU)
    pixels, scores = pixels[kept], scores[kept]
    keep = ~holds_two(pixels, scores >= confident, np.ones(len(pixels), bool))
    return Detections.of(pixels[keep] / frame_size, scores[keep], str(dets.labels[0]))


def holds_two(boxes: np.ndarray, confident: np.ndarray, complete: np.ndarray) -> np.ndarray:
    """Which boxes hold two confident, complete people side by side (pixel boxes): a box around a group, not a
    person. A member lies mostly inside the box, is nearly as tall (a part of a person, like the upper body, is
    not) and clearly narrower; two members overlap little horizontally."""
    n = len(boxes)
    out = np.zeros(n, bool)
    candidates = confident & complete
    if candidates.sum() < 2:
        return out
    sizes = boxes[:, 2:] - boxes[:, :2]
    inside = intersections(boxes, boxes) / np.maximum(sizes[:, 0] * sizes[:, 1], 1e-6)[None, :]  # [box, member]
    member = (
        candidates[None, :]
        & (inside >= MEMBER_INSIDE)
        & (sizes[None, :, 1] >= MEMBER_HEIGHT * sizes[:, None, 1])
        & (sizes[None, :, 0] <= MEMBER_WIDTH * sizes[:, None, 0])
    )
    np.fill_diagonal(member, False)
    for i in np.flatnonzero(member.sum(axis=1) >= 2):
        m = boxes[member[i]]
        overlap = np.clip(np.minimum(m[:, None, 2], m[None, :, 2]) - np.maximum(m[:, None, 0], m[None, :, 0]), 0, None)
        narrower = np.minimum(m[:, None, 2] - m[:, None, 0], m[None, :, 2] - m[None, :, 0])
        apart = overlap <= SIDE_BY_SIDE * np.maximum(narrower, 1e-6)
        np.fill_diagonal(apart, False)
        out[i] = bool(apart.any())
    return out


def _span_iou(a: np.ndarray, b: np.ndarray) -> float:
    """IoU of two 1-D intervals."""
    inter = max(0.0, min(a[1], b[1]) - max(a[0], b[0]))
    union = max(a[1], b[1]) - min(a[0], b[0])
    return inter / union if union > 0 else 0.0


def _pieces_of_one(a: np.ndarray, ca: np.ndarray, b: np.ndarray, cb: np.ndarray) -> bool:
    """Whether box `a` (cut at the sides `ca`) and box `b` can be the two sides of one border's cut."""
    for low, high, along in ((0, 2, (1, 3)), (1, 3, (0, 2))):  # a vertical border, then a horizontal one
        for first, second, cf, cs in ((a, b, ca, cb), (b, a, cb, ca)):
            facing = cf[high] and cs[low] and second[low] < first[high] and first[low] < second[low]
            if facing and _span_iou(first[list(along)], second[list(along)]) >= JOIN_SPAN_IOU:
                return True
    return False


def _join_pieces(
    boxes: np.ndarray, scores: np.ndarray, cut: np.ndarray, confident: float, aspects: tuple[float, float]
) -> tuple[np.ndarray, np.ndarray]:
    """Union of each group of confident pieces that neighbouring tiles cut at a shared border (non-max merge, like
    supervision's NMM), when the union is shaped like one of the frame's people. Everything else stays as it is."""
    parent = list(range(len(boxes)))

    def root(i: int) -> int:
        while parent[i] != i:
            i = parent[i]
        return i

    sure = np.flatnonzero(scores >= confident).tolist()
    for k, i in enumerate(sure):
        for j in sure[k + 1 :]:
            if root(i) != root(j) and _pieces_of_one(boxes[i], cut[i], boxes[j], cut[j]):
                parent[root(j)] = root(i)
    out_boxes, out_scores = [], []
    for r in sorted({root(i) for i in range(len(boxes))}):
        group = [i for i in range(len(boxes)) if root(i) == r]
        union = np.array([*boxes[group, :2].min(axis=0), *boxes[group, 2:].max(axis=0)], np.float32)
        shape = (union[2] - union[0]) / max(union[3] - union[1], 1e-6)
        if len(group) == 1 or not aspects[0] <= shape <= aspects[1]:
            out_boxes += list(boxes[group])
            out_scores += list(scores[group])
        else:
            out_boxes.append(union)
            out_scores.append(scores[group].max())
    return np.array(out_boxes, np.float32).reshape(-1, 4), np.array(out_scores, np.float32)
