"""Tracking, teams and the @2 output on the real models over generated match footage with known identities."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import av
import cv2
import numpy as np
import pytest
from detector_clips import Clip, CliResult

from detector.analyzer import AnalyzeOptions, analyze
from detector.errors import DetectorError
from detector.mot import mot_lines
from detector.output import SCHEMA, read_detections
from devtools.tracking_metrics import score_tracking


@pytest.fixture(scope="module")
def tracked(match_clip: Clip, tmp_path_factory: pytest.TempPathFactory) -> dict:
    out = tmp_path_factory.mktemp("tracked") / "match.json"
    analyze([match_clip.video], out, AnalyzeOptions())
    return read_detections(out)


def test_identities_and_teams_are_found(tracked: dict, match_clip: Clip) -> None:
    score = score_tracking(tracked, json.loads(match_clip.truth.read_text()))
    assert score.idf1 >= 0.8, score
    assert score.team_accuracy >= 0.9, score
    assert score.precision >= 0.9, score


def test_every_person_box_has_a_track_and_faces_follow_their_person(tracked: dict) -> None:
    assert tracked["schema"] == SCHEMA and tracked["teams"] == 2
    ids = {t["id"] for t in tracked["tracks"]}
    for frame in tracked["frames"]:
        people = {d["track"]: d for d in frame["detections"] if d["label"] == "person" and "track" in d}
        assert len(people) == sum(d["label"] == "person" and "track" in d for d in frame["detections"])  # one box each
        assert set(people) <= ids
        for face in (d for d in frame["detections"] if d["label"] == "face" and "track" in d):
            assert face["track"] in people  # the face's person is in the same frame
        for person in people.values():
            assert person["team"] in {"A", "B", "official"}


def test_the_tracks_table_agrees_with_the_frames(tracked: dict) -> None:
    seen: dict[int, list[float]] = {}
    for frame in tracked["frames"]:
        for d in frame["detections"]:
            if d["label"] == "person" and "track" in d:
                seen.setdefault(d["track"], []).append(frame["t"])
    table = {t["id"]: t for t in tracked["tracks"]}
    assert set(table) == set(seen)
    for track, times in seen.items():
        row = table[track]
        assert (row["first_t"], row["last_t"], row["frames"]) == (min(times), max(times), len(times))
    assert [t["id"] for t in tracked["tracks"]] == list(range(1, len(table) + 1))  # numbered by first appearance
    assert [t["first_t"] for t in tracked["tracks"]] == sorted(t["first_t"] for t in tracked["tracks"])


def test_low_score_boxes_only_continue_tracks(tracked: dict) -> None:
    """ByteTrack's second association: boxes under the threshold are reported only as part of a track."""
    weak = [d for f in tracked["frames"] for d in f["detections"] if d["label"] == "person" and d["score"] < 0.5]
    assert all("track" in d for d in weak)


def test_mot_csv(tracked: dict) -> None:
    lines = mot_lines(tracked)
    boxes = sum(1 for f in tracked["frames"] for d in f["detections"] if d["label"] == "person" and "track" in d)
    assert len(lines) == boxes
    frame, track, left, top, width, height, _score, *rest = lines[0].split(",")
    first = next(f for f in tracked["frames"] if any("track" in d for d in f["detections"]))
    assert int(frame) == first["index"] + 1 and rest == ["-1", "-1", "-1"]
    x0, y0, x1, y1 = next(d["box"] for d in first["detections"] if d.get("track") == int(track))
    assert (float(left), float(top)) == pytest.approx((x0 * 1280, y0 * 720), abs=0.01)
    assert (float(width), float(height)) == pytest.approx(((x1 - x0) * 1280, (y1 - y0) * 720), abs=0.01)


def test_untracked_runs_and_bad_options(
    match_clip: Clip, small_clip: Clip, tmp_path: Path, run_cli: Callable[..., CliResult]
) -> None:
    out = tmp_path / "out.json"
    assert run_cli("detect", match_clip.video, "-o", out, "--no-track", "--every", "10").exit_code == 0
    doc = read_detections(out)
    assert "tracks" not in doc and all("track" not in d for f in doc["frames"] for d in f["detections"])
    with pytest.raises(DetectorError, match="no tracks"):
        mot_lines(doc)
    image = tmp_path / "frame.png"
    cv2.imwrite(str(image), _first_frame(small_clip.video))
    assert run_cli("detect", image, "-o", out).exit_code == 0
    assert "tracks" not in read_detections(out)  # images stay untracked
    for args, message in [
        (("--teams", "0"), "--teams must be at least 1"),
        (("--teams", "2", "--no-track"), "--teams needs tracking"),
    ]:
        result = run_cli("detect", match_clip.video, "-o", out, *args)
        assert result.exit_code == 1 and message in result.error and "\n" not in result.error
    result = run_cli("detect", image, "-o", out, "--teams", "2")
    assert result.exit_code == 1 and "--teams applies to" in result.error and "\n" not in result.error


def _first_frame(video: Path) -> np.ndarray:
    with av.open(str(video)) as container:
        return next(container.decode(video=0)).to_ndarray(format="bgr24")
