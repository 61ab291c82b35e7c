"""`--tiles auto`: tiles sized so that the people in the footage reach the model at the height it finds best, decided
again for every scene.

The person model finds people by their height in its input, not in the frame (`python -m devtools.person_scale`,
generated people on a field, a 4:3 clip squashed into the 300x300 input as tiles are): recall 0.29 at 40 px (0.13 of
the input), 0.79 at 64, 0.92 at 80, 0.93 at 100, 0.99 at 110 and 1.00 from 120 px (0.40) up. Tiles sized from the
frame alone leave a 1080p wide shot's 50-100 px players at 0.12-0.24 of the input, where most are missed.

So at the first frame of each input (each chunk of a Batch job) and every SCENE_SECONDS after, a probe measures the
people: the frame goes to the model as a pyramid of grids (tiles PROBE_STEP times smaller at each level, down to
tiles of half the input), which finds people of any height from about 0.13 of the input up; their confident boxes
(never the low-score ones: those would size tiles to noise) give the heights. The tiles are then as large as they
can be while the median person reaches TARGET_HEIGHT of the input and the shortest tenth FLOOR_HEIGHT: the heights
where one view finds about 9 and 7 people in 10. Overlapping tiles and the whole frame give each person more than one
view, and larger targets cost more than they find: on generated crowds (`python -m devtools.eval_crowds`), 0.40 / 0.25
found no more people than 0.30 / 0.20 with 1.6 times the tiles; 0.24 / 0.16 found 0.89 of them instead of 0.95-0.98.
A probe that finds nobody leaves the frame-size grid (`tiling.plan_tiles`); one that finds one or two people gets
no larger tiles than that grid's. Each scene's grid and the probe's cost,
in model inputs, are recorded in the output (`tiling`).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from detector.base import Detector
from detector.boxes import nms
from detector.detections import Detections
from detector.sources import DecodedFrame
from detector.tile_merge import MERGE_IOU, merge_tiles
from detector.tiling import AUTO_SCALE, TileGrid, cut_tiles, plan_tiles, tiles_of_size

SCENE_SECONDS = 10.0  # how long one grid is kept before the people are measured again
TARGET_HEIGHT = 0.30  # the median person's height in the model input, as a share of it (one view: recall 0.9)
FLOOR_HEIGHT = 0.20  # the shortest tenth of the people at least this (one view: recall about 0.7)
MAX_UPSCALE = 2.0  # tiles no smaller than half the input: enlarging further adds no detail to find
PROBE_STEP = 2.5  # the model's band (0.33-0.9 of its input) spans almost 3x: levels this far apart leave no gap
FEW_PEOPLE = 3  # fewer people than this say little about the scene: tiles no larger than the frame-size grid's


@dataclass(frozen=True)
class Scene:
    """One grid decision: from frame `index` (time `t`) of `source` on."""

    source: Path
    index: int
    t: float
    grid: TileGrid
    people: int  # confident people the probe found (0 without a probe)
    person_height: float | None  # their median height, pixels of the frame
    probe_inputs: int  # model inputs the probe cost

    def to_json(self) -> dict[str, object]:
        x0, y0, x1, y1 = self.grid.rects[-1]
        return {
            "source": str(self.source),
            "index": self.index,
            "t": round(self.t, 6),
            "grid": self.grid.label,
            "tile": [x1 - x0, y1 - y0],
            "people": self.people,
            "person_height": None if self.person_height is None else round(self.person_height, 1),
            "probe_inputs": self.probe_inputs,
        }


def tiles_for_people(
    width: int, height: int, input_size: tuple[int, int], heights: np.ndarray, overlap: float
) -> TileGrid:
    """The largest 4:3 tiles that bring the people (`heights`, pixels) to TARGET_HEIGHT / FLOOR_HEIGHT of the input."""
    tile_h = min(float(np.median(heights)) / TARGET_HEIGHT, float(np.quantile(heights, 0.1)) / FLOOR_HEIGHT)
    tile_h = max(tile_h, input_size[1] / MAX_UPSCALE)
    tile_w = tile_h * AUTO_SCALE[0] / AUTO_SCALE[1] * input_size[0] / input_size[1]
    return tiles_of_size(width, height, (tile_w, tile_h), overlap)


def probe_grids(width: int, height: int, input_size: tuple[int, int], overlap: float) -> list[TileGrid]:
    """The probe's pyramid: grids of 4:3 tiles PROBE_STEP times smaller at each level (each with the whole frame)."""
    grids = []
    tile_h = height / PROBE_STEP
    while tile_h >= input_size[1] / MAX_UPSCALE:
        grids.append(tiles_of_size(width, height, (tile_h * AUTO_SCALE[0] / AUTO_SCALE[1], tile_h), overlap))
        tile_h /= PROBE_STEP
    return grids or [plan_tiles(width, height, input_size, "off", overlap)]


class ScenePlanner:
    """The grid for each frame, in decoding order (runs in the decode thread; one planner per run). With a fixed
    `--tiles` every input keeps the grid of its frame size; `auto` measures the people at each scene's start."""

    def __init__(self, human: Detector | None, spec: str, overlap: float) -> None:
        self.human, self.spec, self.overlap = human, spec, overlap
        self.scenes: list[Scene] = []

    def grid(self, frame: DecodedFrame) -> TileGrid:
        last = self.scenes[-1] if self.scenes else None
        same_source = last is not None and last.source == frame.source.path
        if last is not None and same_source and (self.spec != "auto" or frame.t < last.t + SCENE_SECONDS):
            return last.grid
        self.scenes.append(self._decide(frame))
        return self.scenes[-1].grid

    def _decide(self, frame: DecodedFrame) -> Scene:
        path, size = frame.source.path, (frame.width, frame.height)
        if self.human is None or self.spec != "auto":
            input_size = self.human.input_size if self.human else size
            return Scene(path, frame.index, frame.t, plan_tiles(*size, input_size, self.spec, self.overlap), 0, None, 0)
        people, cost = probe(self.human, frame, self.overlap)
        heights = (people.boxes[:, 3] - people.boxes[:, 1]) * frame.height
        fallback = plan_tiles(*size, self.human.input_size, "auto", self.overlap)
        if not len(heights):
            return Scene(path, frame.index, frame.t, fallback, 0, None, cost)
        grid = tiles_for_people(*size, self.human.input_size, heights, self.overlap)
        if len(heights) < FEW_PEOPLE and len(grid.rects) < len(fallback.rects):
            grid = fallback  # one large person near the camera must not blind the scene to the others
        return Scene(path, frame.index, frame.t, grid, len(heights), float(np.median(heights)), cost)


def probe(human: Detector, frame: DecodedFrame, overlap: float) -> tuple[Detections, int]:
    """The confident people of `frame` found by the pyramid (one box per person), and the model inputs spent. Each
    level is one model call (one batch on a GPU)."""
    found, cost = [], 0
    for grid in probe_grids(frame.width, frame.height, human.input_size, overlap):
        inputs = cut_tiles(frame, grid, human.input_size)
        found.append(merge_tiles(human.detect(inputs), grid, human.threshold))
        cost += len(inputs)
    people = Detections.concat(found)
    people = people[people.scores >= human.threshold]
    pixels = people.boxes * np.array([frame.width, frame.height] * 2, np.float32)
    return people[nms(pixels, people.scores, MERGE_IOU)], cost
