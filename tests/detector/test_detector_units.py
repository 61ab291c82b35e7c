"""The pure-numpy parts: the data model, box suppression, tile planning and merging, frame sampling."""

from __future__ import annotations

import numpy as np
import pytest

from detector.analyzer import _whole_frames
from detector.boxes import iou, nms, weighted_nms
from detector.detections import Detections
from detector.errors import DetectorError
from detector.face import anchors, head_region
from detector.sampling import Sampler
from detector.tile_merge import merge_tiles
from detector.tiling import plan_tiles


def test_detections_check_shapes_and_select_by_mask() -> None:
    with pytest.raises(ValueError, match=r"boxes must have shape \(n, 4\), got \(2, 3\)"):
        Detections(np.zeros((2, 3)), np.zeros(2), np.array(["a", "b"]))
    with pytest.raises(ValueError, match=r"scores must have shape \(2,\)"):
        Detections(np.zeros((2, 4)), np.zeros(3), np.array(["a", "b"]))
    dets = Detections(
        np.array([[0, 0, 1, 1], [0, 0, 0.5, 0.5]], np.float32), np.array([0.2, 0.9]), np.array(["a", "b"])
    )
    picked = dets[dets.scores > 0.5]
    assert len(picked) == 1 and picked.labels.tolist() == ["b"]
    assert dets.sorted().scores.tolist() == pytest.approx([0.9, 0.2])
    assert Detections.from_json(dets.to_json()).labels.tolist() == ["a", "b"]


def test_nms_keeps_best_of_overlapping_and_separate_boxes() -> None:
    boxes = np.array([[0, 0, 10, 10], [1, 1, 10, 10], [20, 20, 30, 30]], np.float32)
    assert sorted(nms(boxes, np.array([0.5, 0.9, 0.7]), 0.5).tolist()) == [1, 2]
    merged, scores = weighted_nms(boxes, np.array([0.5, 0.5, 0.7], np.float32), 0.5)
    assert scores.tolist() == pytest.approx([0.7, 0.5])
    assert merged[1].tolist() == pytest.approx([0.5, 0.5, 10, 10])  # mean of the two overlapping boxes


@pytest.mark.parametrize(("width", "height", "expected"), [(640, 360, "off"), (1280, 720, "3x2"), (1920, 1080, "4x3")])
def test_auto_tiles_only_frames_much_larger_than_the_model_input(width: int, height: int, expected: str) -> None:
    assert plan_tiles(width, height, (300, 300), "auto", 0.2).label == expected


def test_tiles_are_equal_overlapping_and_cover_the_frame() -> None:
    grid = plan_tiles(1920, 1080, (300, 300), "4x3", 0.25)
    assert grid.rects[0] == (0, 0, 1920, 1080) and len(grid.rects) == 13
    tiles = np.array(grid.rects[1:])
    assert len({(x1 - x0, y1 - y0) for x0, y0, x1, y1 in tiles}) == 1
    covered = np.zeros((1080, 1920), int)
    for x0, y0, x1, y1 in tiles:
        covered[y0:y1, x0:x1] += 1
    assert covered.min() == 1 and covered.max() == 4
    xs = sorted({x0 for x0, *_ in tiles})
    width = tiles[0, 2] - tiles[0, 0]
    assert xs[1] - xs[0] == pytest.approx(width * 0.75, abs=1)


def test_bad_tile_specs_are_one_line_errors() -> None:
    with pytest.raises(DetectorError, match="COLSxROWS"):
        plan_tiles(100, 100, (300, 300), "3by2", 0.2)
    with pytest.raises(DetectorError, match="tile-overlap"):
        plan_tiles(100, 100, (300, 300), "2x2", 0.95)


def test_merge_drops_cut_pieces_and_joins_a_person_split_by_a_tile_border() -> None:
    grid = plan_tiles(1000, 500, (300, 300), "2x1", 0.2)  # tiles x 0-556 and 444-1000
    (_, _, left_end, _), (right_start, *_) = grid.rects[1][:4], grid.rects[2][:4]
    person = np.array([400, 100, 600, 300], np.float32)
    assert left_end < person[2] and right_start > person[0]  # wider than the overlap: cut in both tiles

    def in_tile(box: np.ndarray, rect: tuple[int, int, int, int]) -> np.ndarray:
        x0, y0, x1, y1 = rect
        clipped = np.array([max(box[0], x0), box[1], min(box[2], x1), box[3]], np.float32)
        return (clipped - [x0, y0, x0, y0]) / [x1 - x0, y1 - y0, x1 - x0, y1 - y0]

    def dets(*boxes: np.ndarray) -> Detections:
        return Detections.of(np.array(boxes), np.full(len(boxes), 0.8), "person")

    whole_frame_miss = Detections.empty()
    merged = merge_tiles(
        [whole_frame_miss, dets(in_tile(person, grid.rects[1])), dets(in_tile(person, grid.rects[2]))], grid, 0.5
    )
    assert len(merged) == 1
    assert merged.boxes[0] * [1000, 500, 1000, 500] == pytest.approx(person, abs=1)

    # a complete box from the whole frame wins over the pieces
    full = dets(person / [1000, 500, 1000, 500])
    merged = merge_tiles([full, dets(in_tile(person, grid.rects[1])), Detections.empty()], grid, 0.5)
    assert len(merged) == 1 and iou(merged.boxes, full.boxes)[0, 0] > 0.99


def test_sampler_every_and_fps() -> None:
    every = Sampler(every=3)
    assert [i for i in range(10) if every.wants(i, i / 30)] == [0, 3, 6, 9]
    per_second = Sampler(fps=2.0)
    times = [0.0, 0.1, 0.45, 0.5, 0.52, 0.9, 1.01, 1.6]  # uneven spacing
    assert [t for i, t in enumerate(times) if per_second.wants(i, t)] == [0.0, 0.5, 1.01, 1.6]
    with pytest.raises(DetectorError, match="either --every or --fps"):
        Sampler(every=2, fps=1.0)


def test_blazeface_anchor_grid_and_head_region() -> None:
    grid = anchors()
    assert grid.shape == (2304, 2)
    assert grid[0] == pytest.approx([0.5 / 48, 0.5 / 48]) and grid[1, 0] > grid[0, 0]
    # a standing person (1:3): the search region is the upper part of the box, widened a little
    x0, y0, x1, y1 = head_region(np.array([0.4, 0.2, 0.5, 0.8]), 1000, 1000)
    assert (x0, x1) == (390, 510) and y0 == 190 and y1 < 520


def test_model_calls_never_split_a_frames_tiles() -> None:
    """On a GPU a call is a batch: all of a frame's tiles go in one, small frames share one up to the batch size."""
    frames = [np.zeros((n, 2, 2, 3), np.uint8) for n in (13, 13, 1, 1, 1)]
    assert [len(call) for call in _whole_frames(frames, 8)] == [13, 13, 3]
    assert [len(call) for call in _whole_frames(frames[2:], 2)] == [2, 1]
