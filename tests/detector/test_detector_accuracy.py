"""The real models on generated footage with exact ground truth: the accuracy the issue asks for."""

from __future__ import annotations

from pathlib import Path

import pytest
from detector_clips import Clip
from scoring import score

from detector.analyzer import AnalyzeOptions, analyze

pytestmark = pytest.mark.slow


def test_sample_people_and_faces(sample_clip: Clip, tmp_path: Path) -> None:
    out = tmp_path / "sample.json"
    summary = analyze([sample_clip.video], out, AnalyzeOptions(every=2))
    assert summary.tiles == "3x2"  # 720p is more than twice the 300x300 input: auto tiles
    people = score(out, sample_clip.truth, "person")
    faces = score(out, sample_clip.truth, "face")
    assert people.truths == 25 * 4
    assert people.recall >= 0.95 and people.precision >= 0.95, people
    assert faces.recall >= 0.90, faces


@pytest.fixture(scope="module")
def wide_results(wide_clip: Clip, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    out = tmp_path_factory.mktemp("wide")
    results = {}
    for tiles in ("off", "auto"):
        results[tiles] = out / f"{tiles}.json"
        analyze([wide_clip.video], results[tiles], AnalyzeOptions(tiles=tiles, every=3))
    return results


def test_wide_shot_needs_tiles(wide_clip: Clip, wide_results: dict[str, Path]) -> None:
    whole_frame = score(wide_results["off"], wide_clip.truth, "person")
    tiled = score(wide_results["auto"], wide_clip.truth, "person")
    assert whole_frame.truths == tiled.truths == 9 * 16
    assert whole_frame.recall < 0.3, whole_frame
    assert tiled.recall >= 0.90 and tiled.precision >= 0.90, tiled


def test_faces_of_small_people_are_found_inside_their_boxes(wide_clip: Clip, wide_results: dict[str, Path]) -> None:
    faces = score(wide_results["auto"], wide_clip.truth, "face")
    assert faces.recall >= 0.90 and faces.precision >= 0.90, faces


def test_whole_frame_face_search_misses_small_faces(wide_clip: Clip, tmp_path: Path) -> None:
    """Why faces are searched inside people by default: in a wide shot the face model alone sees tiny faces."""
    out = tmp_path / "faces.json"
    analyze([wide_clip.video], out, AnalyzeOptions(detectors=("face",), face_mode="frame", every=6))
    assert score(out, wide_clip.truth, "face").recall < 0.5
