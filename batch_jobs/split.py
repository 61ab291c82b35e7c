"""Split a video into chunks by stream copy (no re-encode), cutting at the keyframe nearest each chunk boundary.

A chunk can only start at a keyframe, so its length is the chunk length asked give or take half the keyframe
interval. A source whose keyframes are too sparse for that (a chunk over twice the length asked, and over two minutes)
is refused with one line: the jobs' timeouts are sized for chunks of about the chunk length, and one chunk holding
an hour of footage would run past them. Re-encoding it with a keyframe every few seconds is the remedy.

Only the first video stream is copied (the detector needs nothing else). Each chunk records its true start and end
from packet times and its frame range in the source, so results can be put back on the source's timeline; the
chunks' frame counts add up to the source's because every packet lands in exactly one chunk.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any

import av

from batch_jobs.errors import PipelineError

MAX_CHUNK_FACTOR = 2.0  # a chunk may be this many times the chunk length asked...
MAX_CHUNK_FLOOR = 120.0  # ...or this many seconds, whichever is longer
MAX_CHUNKS = 99_999  # chunk indexes have five digits in item keys, S3 keys and job names


@dataclass(frozen=True)
class ChunkFile:
    index: int
    path: Path
    start_time: float  # seconds from the source's first frame
    end_time: float
    start_frame: int
    end_frame: int  # exclusive

    @property
    def frames(self) -> int:
        return self.end_frame - self.start_frame


@dataclass(frozen=True)
class SourceInfo:
    duration: float
    fps: float
    frames: int
    size: int
    codec: str


@dataclass
class _Open:
    """The chunk being written; times in stream ticks."""

    index: int
    path: Path
    container: Any
    stream: Any
    dts_base: int
    start_frame: int
    min_pts: int
    max_end: int
    frames: int = 0

    @classmethod
    def start(cls, index: int, path: Path, template: Any, dts: int, pts: int, start_frame: int) -> _Open:
        container = av.open(str(path), "w")
        return cls(index, path, container, container.add_stream_from_template(template), dts, start_frame, pts, pts)

    def mux(self, packet: Any, dts: int, duration: int) -> None:
        """Copy the packet with its times shifted so the chunk's decode times start at 0."""
        self.min_pts = min(self.min_pts, packet.pts)
        self.max_end = max(self.max_end, packet.pts + duration)
        packet.pts -= self.dts_base
        packet.dts = dts - self.dts_base
        packet.stream = self.stream
        self.container.mux(packet)
        self.frames += 1


def open_video(path: Path) -> Any:
    """Open a file with PyAV; unreadable, empty or non-video files become one-line PipelineErrors."""
    if not path.is_file():
        raise PipelineError(f"no such file: {path}")
    if path.stat().st_size == 0:
        raise PipelineError(f"empty file (0 bytes): {path}")
    try:
        container = av.open(str(path))
    except (av.FFmpegError, UnicodeDecodeError) as exc:
        reason = getattr(exc, "strerror", None) or exc
        raise PipelineError(f"not a readable video: {path.name}: {reason}") from None
    if not container.streams.video:
        container.close()
        raise PipelineError(f"no video stream in {path.name}")
    return container


def _chunk_file(chunk: _Open, origin: int, time_base: Fraction) -> ChunkFile:
    return ChunkFile(
        index=chunk.index,
        path=chunk.path,
        start_time=float((chunk.min_pts - origin) * time_base),
        end_time=float((chunk.max_end - origin) * time_base),
        start_frame=chunk.start_frame,
        end_frame=chunk.start_frame + chunk.frames,
    )


def max_chunk_seconds(chunk_seconds: float) -> float:
    return max(MAX_CHUNK_FACTOR * chunk_seconds, MAX_CHUNK_FLOOR)


Gop = list[tuple[Any, int, int]]  # (packet, dts, duration) from a keyframe up to the next one


def _gops(container: Any, stream: Any, frame_ticks: int) -> Iterator[tuple[Gop, int | None]]:
    """Each group of packets from a keyframe to the next, with the next keyframe's pts (None after the last)."""
    gop: Gop = []
    for packet in container.demux(stream):
        if packet.size == 0 or packet.pts is None:
            continue  # the demuxer's final flush packet, or a packet without time
        if packet.is_keyframe and gop:
            yield gop, packet.pts
            gop = []
        dts = packet.dts if packet.dts is not None else packet.pts
        gop.append((packet, dts, packet.duration or frame_ticks))
    if gop:
        yield gop, None


def _cuts_here(current: _Open | None, start: int, next_start: int | None, cut_every: int) -> bool:
    """Whether a chunk starts at this keyframe: the first one, or the keyframe nearest the current chunk's boundary
    (this one, if the boundary falls nearer to it than to the next keyframe)."""
    if current is None:
        return True
    boundary = current.min_pts + cut_every
    if start >= boundary:
        return True
    return next_start is not None and next_start > boundary and boundary - start < next_start - boundary


def split_video(
    source: Path, out_dir: Path, chunk_seconds: float, max_seconds: float | None = None
) -> tuple[SourceInfo, list[ChunkFile]]:
    """Write `out_dir/<index:05d><ext>` chunks of about `chunk_seconds` each, cut at the nearest keyframes; a chunk
    longer than `max_seconds` (default `max_chunk_seconds`) is refused."""
    if chunk_seconds <= 0:
        raise PipelineError(f"chunk length must be positive, got {chunk_seconds}")
    out_dir.mkdir(parents=True, exist_ok=True)
    ext = source.suffix.lower() or ".mp4"
    written: list[_Open] = []
    with open_video(source) as container:
        stream = container.streams.video[0]
        time_base = stream.time_base
        rate = stream.average_rate or stream.guessed_rate
        frame_ticks = int(1 / (rate * time_base)) if rate else 0  # for a last packet without a duration
        cut_every = int(chunk_seconds / time_base)
        frames = 0
        try:
            for gop, next_start in _gops(container, stream, frame_ticks):
                first, first_dts, _ = gop[0]
                current = written[-1] if written else None
                if _cuts_here(current, first.pts, next_start, cut_every):
                    if len(written) == MAX_CHUNKS:
                        raise PipelineError(
                            f"{source.name}: more than {MAX_CHUNKS} chunks of {chunk_seconds:g} s; split it with a"
                            " longer --chunk-seconds"
                        )
                    if current is not None:
                        current.container.close()
                    path = out_dir / f"{len(written):05d}{ext}"
                    written.append(_Open.start(len(written), path, stream, first_dts, first.pts, frames))
                for packet, dts, duration in gop:
                    written[-1].mux(packet, dts, duration)
                    frames += 1
        except av.FFmpegError as exc:
            raise PipelineError(f"corrupt video {source.name}: {getattr(exc, 'strerror', None) or exc}") from None
        finally:
            if written:
                written[-1].container.close()
        if not written:
            raise PipelineError(f"no video frames in {source.name}")
        origin = written[0].min_pts
        chunks = [_chunk_file(chunk, origin, time_base) for chunk in written]
        _refuse_long_chunks(source, chunks, chunk_seconds, max_seconds or max_chunk_seconds(chunk_seconds))
        info = SourceInfo(
            duration=chunks[-1].end_time,
            fps=float(rate) if rate else frames / max(chunks[-1].end_time, 1e-9),
            frames=frames,
            size=source.stat().st_size,
            codec=stream.codec_context.name,
        )
    return info, chunks


def _refuse_long_chunks(source: Path, chunks: list[ChunkFile], chunk_seconds: float, limit: float) -> None:
    longest = max(chunks, key=lambda c: c.end_time - c.start_time)
    length = longest.end_time - longest.start_time
    if length > limit:
        raise PipelineError(
            f"{source.name}: no keyframe between {longest.start_time:.1f} s and {longest.end_time:.1f} s, so a chunk"
            f" would be {length:.0f} s long (at most {limit:.0f} s at {chunk_seconds:g} s chunks); re-encode it with"
            " a keyframe every few seconds (e.g. ffmpeg -i IN -c:v libx264 -g 50 OUT) and submit that"
        )
