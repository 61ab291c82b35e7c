"""Tile grids: overlapping tiles plus the whole frame, cut from a frame as one batch of model inputs.

A 1080p wide shot squeezed into a 300x300 input leaves players a few pixels tall; tiles keep them large enough to
find, and the whole-frame pass keeps people that are larger than a tile. Like supervision's InferenceSlicer, tiles
sit on a grid, all the same size (the last row and column end at the frame edge). How big the tiles are is decided
in `detector.scenes` (`auto`); the boxes are merged back in `detector.tile_merge`.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Protocol

import numpy as np

from detector.errors import DetectorError

# Without people to size them by, `auto` tiles are at most the size of a typical COCO image (640x480) scaled to the
# model input: the SSD models saw COCO images squashed by about these factors in training, so people in such tiles
# look like the people it learned. Tiles sized by people keep this 4:3 shape.
AUTO_SCALE = (640 / 300, 480 / 300)


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


def check_overlap(overlap: float) -> None:
    if not 0.0 <= overlap < 0.9:
        raise DetectorError(f"--tile-overlap must be in [0, 0.9), got {overlap}")


def plan_tiles(width: int, height: int, input_size: tuple[int, int], spec: str, overlap: float) -> TileGrid:
    """The grid for a frame size alone. `auto` here (what `detector.scenes` falls back to when it finds no people)
    tiles frames larger than about twice the model input, with the fewest tiles no larger than AUTO_SCALE x the
    input (1080p: 4x3 for a 300x300 model)."""
    check_overlap(overlap)
    parsed = parse_tiles(spec)
    if parsed == "off":
        return TileGrid(1, 1, ((0, 0, width, height),))
    if isinstance(parsed, tuple):
        return _grid(width, height, parsed, (overlap, overlap))
    return tiles_of_size(width, height, (AUTO_SCALE[0] * input_size[0], AUTO_SCALE[1] * input_size[1]), overlap)


def tiles_of_size(width: int, height: int, tile: tuple[float, float], overlap: float | tuple[float, float]) -> TileGrid:
    """The fewest tiles no larger than `tile` (pixels) covering the frame; `overlap` may differ across and down."""
    ox, oy = overlap if isinstance(overlap, tuple) else (overlap, overlap)
    return _grid(width, height, (_count(width, tile[0], ox), _count(height, tile[1], oy)), (ox, oy))


def _grid(width: int, height: int, counts: tuple[int, int], overlap: tuple[float, float]) -> TileGrid:
    cols, rows = counts
    whole = (0, 0, width, height)
    if cols * rows == 1:
        return TileGrid(1, 1, (whole,))
    rects = [
        (x0, y0, x1, y1) for y0, y1 in _starts(height, rows, overlap[1]) for x0, x1 in _starts(width, cols, overlap[0])
    ]
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
