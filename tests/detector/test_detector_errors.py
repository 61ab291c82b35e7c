"""Bad input gives one readable line and exit code 1, and leaves no output (not even a partial or temporary file)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import av
import pytest
from detector_clips import Clip, CliResult

pytestmark = pytest.mark.slow


def _faststart_copy(src: Path, dst: Path) -> None:
    """Remux with the index at the front, so a truncated copy opens and fails only part way through decoding."""
    with av.open(str(src)) as inp, av.open(str(dst), "w", options={"movflags": "faststart"}) as out:
        stream = out.add_stream_from_template(inp.streams.video[0])
        for packet in inp.demux(inp.streams.video[0]):
            if packet.dts is not None:
                packet.stream = stream
                out.mux(packet)


def _bad_input(kind: str, small_clip: Clip, folder: Path) -> Path:
    if kind == "missing":
        return folder / "missing.mp4"
    path = folder / "bad.mp4"
    if kind == "empty":
        path.touch()
    elif kind == "text":
        path.write_text("this is not a video\n" * 100)
    elif kind == "truncated":
        data = small_clip.video.read_bytes()
        path.write_bytes(data[: len(data) // 2])
    elif kind == "truncated-faststart":
        _faststart_copy(small_clip.video, folder / "full.mp4")
        data = (folder / "full.mp4").read_bytes()
        (folder / "full.mp4").unlink()
        path.write_bytes(data[: len(data) * 2 // 3])
    return path


@pytest.mark.parametrize(
    ("kind", "message"),
    [
        ("missing", "input not found"),
        ("empty", "input is empty (0 bytes)"),
        ("text", "cannot decode video"),
        ("truncated", "cannot decode video"),
        ("truncated-faststart", "is truncated"),
    ],
)
def test_bad_video_is_one_line_and_leaves_nothing(
    kind: str, message: str, small_clip: Clip, tmp_path: Path, run_cli: Callable[..., CliResult]
) -> None:
    video = _bad_input(kind, small_clip, tmp_path)
    before = sorted(os.listdir(tmp_path))
    out, annotated = tmp_path / "out.json", tmp_path / "out.mp4"
    result = run_cli("detect", video, "-o", out, "--annotate", annotated, "--detectors", "human")
    assert result.exit_code == 1
    assert message in result.error and str(video) in result.error
    assert "\n" not in result.error
    assert sorted(os.listdir(tmp_path)) == before  # no output, no temporary file


@pytest.mark.parametrize("kind", ["missing", "garbage"])
def test_unreadable_model_is_one_line(
    kind: str, small_clip: Clip, tmp_path: Path, run_cli: Callable[..., CliResult]
) -> None:
    model = tmp_path / "model.pb"
    if kind == "garbage":
        model.write_bytes(os.urandom(4096))
    result = run_cli("detect", small_clip.video, "-o", tmp_path / "out.json", "--model", model)
    assert result.exit_code == 1
    assert ("model not found" if kind == "missing" else "not a TensorFlow frozen graph") in result.error
    assert not (tmp_path / "out.json").exists()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--tiles", "many"], "--tiles must be auto, off or COLSxROWS"),
        (["--every", "2", "--fps", "5"], "either --every or --fps"),
        (["--detectors", "human,cars"], "unknown detector(s) cars"),
        (["--threshold", "1.5"], "--threshold must be between 0 and 1"),
    ],
)
def test_bad_options_are_one_line(
    args: list[str], message: str, small_clip: Clip, tmp_path: Path, run_cli: Callable[..., CliResult]
) -> None:
    result = run_cli("detect", small_clip.video, "-o", tmp_path / "out.json", *args)
    assert result.exit_code == 1 and message in result.error


def test_existing_output_survives_a_failed_run(
    small_clip: Clip, tmp_path: Path, run_cli: Callable[..., CliResult]
) -> None:
    out = tmp_path / "out.json"
    out.write_text("previous result")
    bad = _bad_input("truncated-faststart", small_clip, tmp_path)
    assert run_cli("detect", bad, "-o", out, "--detectors", "human").exit_code == 1
    assert out.read_text() == "previous result"


def test_installed_entry_point_prints_one_line(tmp_path: Path) -> None:
    """Through `derby-batch` itself (cli/app.py turns DetectorError into one line and exit code 1)."""
    pytest.importorskip("cli.pipeline_cmd", reason="cli/app.py imports cli.pipeline_cmd, not written yet")
    entry = shutil.which("derby-batch", path=str(Path(sys.executable).parent))
    assert entry is not None
    proc = subprocess.run(
        [entry, "detect", str(tmp_path / "nope.mp4"), "-o", str(tmp_path / "o.json")],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 1
    lines = [line for line in proc.stderr.splitlines() if line.startswith("error:")]
    assert lines == [f"error: input not found: {tmp_path / 'nope.mp4'}"]
    assert not (tmp_path / "o.json").exists()
