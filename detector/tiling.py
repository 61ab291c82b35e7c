"""Tiled inference: overlapping tiles plus the whole frame, run as one batch, merged back into one set of boxes.

A 1080p wide shot squeezed into a 300x300 input leaves players a few pixels tall; tiles keep them large enough to
find, and the whole-frame pass keeps people that are larger than a tile. Like supervision's InferenceSlicer, tiles
sit on a grid, all the same size (the last row and column end at the frame edge).
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Protocol

import numpy as np

from detector.boxes import ios, nms
from detector.detections import Detections
from detector.errors import DetectorError

# `auto` tiles are at most the size of a typical COCO image (640x480) scaled to the model input: the SSD models saw
# COCO images squashed by about these factors in training, so people in such tiles look like the people it learned.
AUTO_SCALE = (640 / 300, 480 / 300)
EDGE_MARGIN = 0.01  # a box this close (fraction of the tile) to an inner tile edge is cut off by it
PARTIAL_IOS = 0.6  # a cut-off box mostly inside a complete box is a part of it
MERGE_IOU = 0.5


@dataclass(frozen=True)
class TileGrid:
    """`rects` are pixel `(x0, y0, x1, y1)`; the first is always the whole frame."""

    cols: int
    rows: int
    rects: tuple[tuple[int, int, int, int], ...]

    @property
    def label(self) -> str:
        return "off" if self.cols * self.rows == 1 else f"{self.cols}x{self.rows}"


def parse_tiles(spec: str) -> str | tuple[int, int]:
    """`auto`, `off` or `COLSxROWS`."""
    if spec in ("auto", "off"):
        return spec
    match = re.fullmatch(r"(\d+)x(\d+)", spec)
    if not match or int(match[1]) < 1 or int(match[2]) < 1:
        raise DetectorError(f"--tiles must be auto, off or COLSxROWS like 3x2, got {spec!r}")
    return int(match[1]), int(match[2])


def _count(length: int, tile: float, overlap: float) -> int:
    """Fewest tiles of at most `tile` pixels covering `length` with the given overlap."""
    if length <= tile:
        return 1
    return math.ceil((length / tile - overlap) / (1.0 - overlap))


def _starts(length: int, count: int, overlap: float) -> list[tuple[int, int]]:
    if count == 1:
        return [(0, length)]
    size = math.ceil(length / (count - (count - 1) * overlap))
    step = (length - size) / (count - 1)
    return [(round(i * step), round(i * step) + size) for i in range(count)]


def plan_tiles(width: int, height: int, input_size: tuple[int, int], spec: str, overlap: float) -> TileGrid:
    """The grid for a frame size. `auto` tiles frames larger than about twice the model input, with the fewest
    tiles no larger than AUTO_SCALE x the input (1080p: 4x3 for a 300x300 model)."""
    if not 0.0 <= overlap < 0.9:
        raise DetectorError(f"--tile-overlap must be in [0, 0.9), got {overlap}")
    parsed = parse_tiles(spec)
    whole = (0, 0, width, height)
    if parsed == "off":
        return TileGrid(1, 1, (whole,))
    if isinstance(parsed, tuple):
        cols, rows = parsed
    else:
        cols = _count(width, AUTO_SCALE[0] * input_size[0], overlap)
        rows = _count(height, AUTO_SCALE[1] * input_size[1], overlap)
    if cols * rows == 1:
        return TileGrid(1, 1, (whole,))
    rects = [(x0, y0, x1, y1) for y0, y1 in _starts(height, rows, overlap) for x0, x1 in _starts(width, cols, overlap)]
    return TileGrid(cols, rows, (whole, *rects))


class Scalable(Protocol):
    """A frame that can produce itself at any size (a decoded video frame scales straight from YUV)."""

    @property
    def width(self) -> int: ...

    @property
    def height(self) -> int: ...

    def resized(self, width: int, height: int) -> np.ndarray: ...


def cut_tiles(frame: Scalable, grid: TileGrid, input_size: tuple[int, int]) -> np.ndarray:
    """(tiles, h, w, 3) model inputs, run in the decode thread. The whole frame is scaled once to the input; for the
    tiles it is scaled once more so that each tile becomes exactly input-sized, and tiles are slices of that."""
    in_w, in_h = input_size
    out = np.empty((len(grid.rects), in_h, in_w, 3), np.uint8)
    out[0] = frame.resized(in_w, in_h)
    if len(grid.rects) > 1:
        x0, y0, x1, y1 = grid.rects[1]
        sx, sy = in_w / (x1 - x0), in_h / (y1 - y0)
        canvas = frame.resized(round(frame.width * sx), round(frame.height * sy))
        for i, (tx, ty, _, _) in enumerate(grid.rects[1:], start=1):
            cx = min(round(tx * sx), canvas.shape[1] - in_w)
            cy = min(round(ty * sy), canvas.shape[0] - in_h)
            out[i] = canvas[cy : cy + in_h, cx : cx + in_w]
    return out


def merge_tiles(per_tile: list[Detections], grid: TileGrid) -> Detections:
    """Map each tile's boxes to the frame, drop boxes cut by an inner tile edge when a fuller box covers them,
    then one class-aware suppression pass over the frame."""
    if len(grid.rects) == 1:
        return per_tile[0]
    width, height = grid.rects[0][2:]
    mapped, partial = [], []
    for dets, (x0, y0, x1, y1) in zip(per_tile, grid.rects, strict=True):
        b = dets.boxes
        cut = np.zeros(len(b), bool)
        if (x0, y0, x1, y1) != (0, 0, width, height):
            cut |= (b[:, 0] < EDGE_MARGIN) & (x0 > 0)
            cut |= (b[:, 1] < EDGE_MARGIN) & (y0 > 0)
            cut |= (b[:, 2] > 1 - EDGE_MARGIN) & (x1 < width)
            cut |= (b[:, 3] > 1 - EDGE_MARGIN) & (y1 < height)
        scale = np.array([x1 - x0, y1 - y0, x1 - x0, y1 - y0], np.float32)
        offset = np.array([x0, y0, x0, y0], np.float32)
        frame_boxes = (b * scale + offset) / np.array([width, height, width, height], np.float32)
        mapped.append(Detections(frame_boxes, dets.scores, dets.labels))
        partial.append(cut)
    merged, is_partial = Detections.concat(mapped), np.concatenate(partial)
    return _suppress(merged, is_partial)


def _suppress(dets: Detections, is_partial: np.ndarray) -> Detections:
    kept = []
    for label in sorted(set(dets.labels.tolist())):
        mask = dets.labels == label
        group, cut = dets[mask], is_partial[mask]
        if cut.any() and (~cut).any():
            covered = (ios(group.boxes[cut], group.boxes[~cut]) > PARTIAL_IOS).any(axis=1)
            drop = np.zeros(len(group), bool)
            drop[np.flatnonzero(cut)[covered]] = True
            group, cut = group[~drop], cut[~drop]
        if cut.sum() > 1:
            group = Detections.concat([group[~cut], _merge_parts(group[cut])])
        kept.append(group[nms(group.boxes, group.scores, MERGE_IOU)])
    return Detections.concat(kept).sorted()


def _merge_parts(parts: Detections) -> Detections:
    """Non-max merge of cut-off boxes: pieces of one person seen by neighbouring tiles, each cut by its tile's edge,
    overlap heavily inside the tiles' overlap band; their union is the whole person."""
    boxes, scores = parts.boxes.copy(), parts.scores.copy()
    alive = np.ones(len(parts), bool)
    for i in np.argsort(-scores, kind="stable"):
        if not alive[i]:
            continue
        joins = alive & (ios(boxes[i : i + 1], boxes)[0] > PARTIAL_IOS)
        joins[i] = False
        if joins.any():
            group = boxes[joins | (np.arange(len(boxes)) == i)]
            boxes[i] = [*group[:, :2].min(axis=0), *group[:, 2:].max(axis=0)]
            alive &= ~joins
    return Detections(boxes[alive], scores[alive], parts.labels[alive])
