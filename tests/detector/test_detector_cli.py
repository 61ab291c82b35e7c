"""`derby-batch sample`, `detect` and `bench` through Typer, as a user runs them."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import av
import pytest
from detector_clips import Clip, CliResult

from detector.bench import BenchResult
from detector.output import read_detections
from devtools.scoring import score

pytestmark = pytest.mark.slow


def test_sample_writes_h264_clip_and_ground_truth(tmp_path: Path, run_cli: Callable[..., CliResult]) -> None:
    out = tmp_path / "clip.mp4"
    result = run_cli("sample", out, "--seconds", "0.4", "--people", "3", "--size", "320x240", "--seed", "7")
    assert result.exit_code == 0, result
    with av.open(str(out)) as container:
        stream = container.streams.video[0]
        assert (stream.codec_context.name, stream.width, stream.height, stream.frames) == ("h264", 320, 240, 10)
    truth = read_detections(tmp_path / "clip.gt.json")
    assert len(truth["frames"]) == 10
    labels = sorted(d["label"] for d in truth["frames"][0]["detections"])
    assert labels == ["face"] * 3 + ["person"] * 3

    again = tmp_path / "again.mp4"
    run_cli("sample", again, "--seconds", "0.4", "--people", "3", "--size", "320x240", "--seed", "7")
    assert (tmp_path / "again.gt.json").read_text() == (tmp_path / "clip.gt.json").read_text().replace(
        "clip.mp4", "again.mp4"
    )


def test_wide_sample_has_small_people(tmp_path: Path, run_cli: Callable[..., CliResult]) -> None:
    assert run_cli("sample", tmp_path / "wide.mp4", "--wide", "--seconds", "0.2").exit_code == 0
    truth = read_detections(tmp_path / "wide.gt.json")
    people = [d["box"] for d in truth["frames"][0]["detections"] if d["label"] == "person"]
    assert truth["video"]["width"] == 1920 and len(people) >= 12
    assert all(0.08 <= box[3] - box[1] <= 0.12 for box in people)


def test_detect_json_summary(small_clip: Clip, tmp_path: Path, run_cli: Callable[..., CliResult]) -> None:
    out = tmp_path / "out.json"
    result = run_cli("detect", small_clip.video, "-o", out, "--every", "5", "--batch-size", "2", "--json")
    assert result.exit_code == 0, result
    summary = json.loads(result.stdout)
    assert summary["frames_analyzed"] == 5 and summary["output"] == str(out)
    labels = [d["label"] for f in read_detections(out)["frames"] for d in f["detections"]]
    assert summary["detections"] == {label: labels.count(label) for label in set(labels)}
    assert score(out, small_clip.truth, "person").recall >= 0.8


def test_bench_json_reports_three_loops(small_clip: Clip, run_cli: Callable[..., CliResult]) -> None:
    result = run_cli("bench", small_clip.video, "--frames", "8", "--batch-size", "4", "--rounds", "1", "--json")
    assert result.exit_code == 0, result
    report = json.loads(result.stdout)
    assert set(report) == {
        "pure_inference_fps",
        "end_to_end_fps",
        "seed_style_fps",
        "batch_size",
        "tiles",
        "frames",
        "model_inputs_per_frame",
        "tracking_share",
    }
    assert 0 < report["tracking_share"] < 1
    assert (report["frames"], report["batch_size"], report["tiles"]) == (8, 4, "off")
    assert all(report[k] > 0 for k in ("pure_inference_fps", "end_to_end_fps", "seed_style_fps"))
    assert report["model_inputs_per_frame"] == 1.0  # the whole frame only


def test_bench_json_gives_the_tracking_share_to_three_places() -> None:
    """Rounded to two, a share of 0.034 would read as the 0.03 goal met."""
    result = BenchResult(100.123, 90.456, 40.789, 8, "off", 120, 1.0, tracking_share=0.03449)
    report = result.to_json()
    assert report["tracking_share"] == 0.034
    assert (report["pure_inference_fps"], report["end_to_end_fps"]) == (100.12, 90.46)


def test_bench_with_auto_tiles_prints_the_grid_and_its_cost(
    small_clip: Clip, run_cli: Callable[..., CliResult]
) -> None:
    result = run_cli(
        "bench", small_clip.video, "--tiles", "auto", "--frames", "8", "--batch-size", "4", "--rounds", "1"
    )
    assert result.exit_code == 0, result
    assert "auto tiles at frame 0:" in result.stdout and "(2 people, median" in result.stdout
    assert "probe 1 inputs" in result.stdout and "model inputs per frame" in result.stdout
