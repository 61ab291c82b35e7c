"""Merging tiles: pieces are joined only when they can be one person, and no box that holds two people survives."""

from __future__ import annotations

import numpy as np
import pytest

from detector.detections import Detections
from detector.scenes import probe_grids, tiles_for_people
from detector.tile_merge import holds_two, merge_tiles
from detector.tiling import TileGrid, plan_tiles

SIZE = np.array([1000, 500, 1000, 500], np.float32)
GRID = plan_tiles(1000, 500, (300, 300), "2x1", 0.2)  # tiles x 0-556 and 444-1000


def in_tile(box: list[float], rect: tuple[int, int, int, int]) -> list[float]:
    """A pixel box as the tile sees it: clipped to the tile, normalized to it."""
    x0, y0, x1, y1 = rect
    clipped = [max(box[0], x0), max(box[1], y0), min(box[2], x1), min(box[3], y1)]
    return [
        (clipped[0] - x0) / (x1 - x0),
        (clipped[1] - y0) / (y1 - y0),
        (clipped[2] - x0) / (x1 - x0),
        (clipped[3] - y0) / (y1 - y0),
    ]


def dets(boxes: list[list[float]], scores: list[float] | None = None) -> Detections:
    return Detections.of(np.array(boxes, np.float32).reshape(-1, 4), np.array(scores or [0.8] * len(boxes)), "person")


def merged_pixels(per_tile: list[Detections], grid: TileGrid = GRID) -> list[list[float]]:
    merged = merge_tiles(per_tile, grid, confident=0.5)
    return sorted((merged.boxes * SIZE).round().tolist())


def test_two_people_side_by_side_across_a_border_stay_two() -> None:
    a, b = [380, 100, 470, 300], [490, 100, 580, 300]  # each crosses one tile edge (444 and 556)
    left, right = GRID.rects[1], GRID.rects[2]
    whole = dets([[v / s for v, s in zip([380, 100, 580, 300], SIZE, strict=True)]], [0.9])  # the model's group box
    found = merged_pixels(
        [whole, dets([in_tile(a, left), in_tile(b, left)]), dets([in_tile(a, right), in_tile(b, right)])]
    )
    assert found == [a, b]


def test_group_pieces_facing_across_a_border_are_not_joined_into_a_group() -> None:
    """Each tile puts one box around a whole person and the other's visible part; their union would be a box
    around both. A third person gives the frame's person shape, which the union does not have."""
    group, c = [380, 100, 580, 300], [100, 100, 190, 300]  # the group: people at 380-470 and 490-580
    left, right = GRID.rects[1], GRID.rects[2]
    per_tile = [Detections.empty(), dets([in_tile(group, left), in_tile(c, left)]), dets([in_tile(group, right)])]
    found = merged_pixels(per_tile)
    assert group not in found and c in found


def test_one_person_cut_by_a_border_is_joined_only_from_confident_pieces() -> None:
    person = [400, 100, 600, 300]  # wider than the overlap: cut in both tiles
    left, right = GRID.rects[1], GRID.rects[2]
    assert merged_pixels([Detections.empty(), dets([in_tile(person, left)]), dets([in_tile(person, right)])]) == [
        person
    ]
    weak = merged_pixels([Detections.empty(), dets([in_tile(person, left)]), dets([in_tile(person, right)], [0.3])])
    assert weak == [[400, 100, 556, 300]]  # the confident piece alone (NMS removed the weak one)


def test_a_box_holding_two_people_is_dropped_but_a_person_with_a_part_inside_is_not() -> None:
    boxes = np.array(
        [
            [0, 0, 200, 200],  # a group box ...
            [0, 10, 90, 200],  # ... around two people side by side
            [110, 0, 200, 195],
            [300, 0, 400, 300],  # a person ...
            [310, 0, 390, 120],  # ... and their upper body, found on its own in a tile
        ],
        np.float32,
    )
    all_sure = np.ones(len(boxes), bool)
    assert holds_two(boxes, all_sure, all_sure).tolist() == [True, False, False, False, False]
    unsure = all_sure.copy()
    unsure[2] = False  # a low-score box is not a person that makes a group
    assert not holds_two(boxes, unsure, all_sure).any()


@pytest.mark.parametrize(("width", "height"), [(1920, 1080), (3072, 1728)])
def test_auto_tiles_follow_the_people_not_the_frame(width: int, height: int) -> None:
    small = tiles_for_people(width, height, (300, 300), np.full(20, 0.06 * height), 0.2)
    large = tiles_for_people(width, height, (300, 300), np.full(20, 0.25 * height), 0.2)
    frame_rule = plan_tiles(width, height, (300, 300), "auto", 0.2)
    assert len(small.rects) > len(frame_rule.rects) > len(large.rects)
    tile_h = small.rects[1][3] - small.rects[1][1]
    assert 0.06 * height * 300 / tile_h >= 0.25  # small people reach the model at a height it finds
    # the probe reaches down to tiles of half the input (people of about 0.13 of the input at 2x)
    assert probe_grids(width, height, (300, 300), 0.2)[-1].rects[1][3] >= 150
