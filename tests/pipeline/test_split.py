"""Split is a stream copy at keyframes: every source frame lands in exactly one chunk, bytes untouched."""

from __future__ import annotations

import hashlib
import subprocess
import sys
from pathlib import Path

import av
import pytest
from pipeline_clips import decoded_times, make_clip

from batch_jobs.errors import PipelineError
from batch_jobs.split import max_chunk_seconds, split_video
from batch_jobs.submit import check_disk


def _packet_digests(path: Path) -> list[str]:
    with av.open(str(path)) as container:
        return [hashlib.sha1(bytes(p)).hexdigest() for p in container.demux(video=0) if p.size]


@pytest.mark.parametrize(("seconds", "gop", "chunk_seconds"), [(10, 25, 3.0), (7, 40, 2.0), (4, 25, 60.0)])
def test_frames_are_conserved_and_placed(tmp_path: Path, seconds: int, gop: int, chunk_seconds: float) -> None:
    source = tmp_path / "src.mp4"
    frames = make_clip(source, seconds=seconds, gop=gop)
    info, chunks = split_video(source, tmp_path / "chunks", chunk_seconds)
    source_times = decoded_times(source)
    assert info.frames == frames == len(source_times)
    assert sum(c.frames for c in chunks) == frames
    assert [c.start_frame for c in chunks] == [0, *[c.end_frame for c in chunks[:-1]]]
    rebuilt: list[float] = []
    for chunk in chunks:
        times = decoded_times(chunk.path)
        assert len(times) == chunk.frames
        rebuilt.extend(round(chunk.start_time + t - times[0], 6) for t in times)
        assert chunk.start_time == pytest.approx(source_times[chunk.start_frame])
        assert chunk.end_time == pytest.approx(source_times[chunk.end_frame - 1] + 1 / 25)
    assert rebuilt == pytest.approx(source_times)
    # each cut at the keyframe nearest its chunk's boundary: within half a GOP of it
    keyframes = [i / 25 for i in range(0, frames, gop)]
    for chunk in chunks[:-1]:
        boundary = chunk.start_time + chunk_seconds
        nearest = min(keyframes, key=lambda k: abs(k - boundary))
        assert chunk.end_time == pytest.approx(nearest)
        assert abs(chunk.end_time - boundary) <= gop / 25 / 2 + 1e-6


def test_sparse_keyframes_are_refused_in_one_line(tmp_path: Path) -> None:
    """A 10 s clip with one keyframe cannot be cut into 2 s chunks: past the limit, it is refused, not sent as one
    chunk that could outrun the job's timeout."""
    source = tmp_path / "sparse.mp4"
    make_clip(source, seconds=10, gop=250)
    with pytest.raises(PipelineError) as refused:
        split_video(source, tmp_path / "chunks", chunk_seconds=2.0, max_seconds=4.0)
    message = str(refused.value)
    assert "\n" not in message and "a chunk would be 10 s long (at most 4 s at 2 s chunks)" in message
    assert "re-encode" in message
    _, chunks = split_video(source, tmp_path / "ok", chunk_seconds=2.0)  # within the default limit of 120 s
    assert len(chunks) == 1 and max_chunk_seconds(2.0) == 120.0


def test_the_split_job_refuses_a_source_its_disk_cannot_hold(tmp_path: Path) -> None:
    with pytest.raises(PipelineError, match=r"the split needs .* GiB of disk for a .* GiB source and has"):
        check_disk(tmp_path, 1 << 50)
    check_disk(tmp_path, 1 << 20)


def test_split_is_a_stream_copy(tmp_path: Path) -> None:
    source = tmp_path / "src.mp4"
    make_clip(source, seconds=6)
    _, chunks = split_video(source, tmp_path / "chunks", 2.0)
    copied = [d for c in chunks for d in _packet_digests(c.path)]
    assert copied == _packet_digests(source)


@pytest.mark.parametrize(
    ("content", "message"),
    [(b"", "empty file"), (b"\x1a\x45\xdf\xa3garbage" * 100, "not a readable video"), (b"plain text", "readable")],
)
def test_unreadable_input_is_one_clear_error(tmp_path: Path, content: bytes, message: str) -> None:
    path = tmp_path / "bad.mkv"
    path.write_bytes(content)
    with pytest.raises(PipelineError, match=message):
        split_video(path, tmp_path / "chunks", 2.0)


def test_audio_only_input_has_no_video_stream(tmp_path: Path) -> None:
    path = tmp_path / "tone.wav"
    with av.open(str(path), "w") as container:
        stream = container.add_stream("pcm_s16le", rate=8000)
        frame = av.AudioFrame(format="s16", layout="mono", samples=800)
        frame.sample_rate = 8000
        for plane in frame.planes:
            plane.update(bytes(plane.buffer_size))
        for packet in stream.encode(frame):
            container.mux(packet)
    with pytest.raises(PipelineError, match="no video stream"):
        split_video(path, tmp_path / "chunks", 2.0)


def test_router_never_imports_tensorflow_detector_or_pyav() -> None:
    code = (
        "import sys, router.handler, router.sweep\n"
        "bad = [m for m in ('tensorflow', 'detector', 'av', 'batch_jobs.split') if m in sys.modules]\n"
        "assert not bad, bad"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)
