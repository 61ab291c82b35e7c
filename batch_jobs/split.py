"""Split a video into chunks by stream copy (no re-encode), cutting at the first keyframe past each chunk length.

Only the first video stream is copied (the detector needs nothing else). Each chunk records its true start and end
from packet times and its frame range in the source, so results can be put back on the source's timeline; the
chunks' frame counts add up to the source's because every packet lands in exactly one chunk.
"""

from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any

import av

from batch_jobs.errors import PipelineError


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


def split_video(source: Path, out_dir: Path, chunk_seconds: float) -> tuple[SourceInfo, list[ChunkFile]]:
    """Write `out_dir/<index:05d><ext>` chunks of about `chunk_seconds` each (at least that, up to one GOP more)."""
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
            for packet in container.demux(stream):
                if packet.size == 0 or packet.pts is None:
                    continue  # the demuxer's final flush packet, or a packet without time
                dts = packet.dts if packet.dts is not None else packet.pts
                current = written[-1] if written else None
                if current is None or (packet.is_keyframe and packet.pts - current.min_pts >= cut_every):
                    if current is not None:
                        current.container.close()
                    path = out_dir / f"{len(written):05d}{ext}"
                    written.append(_Open.start(len(written), path, stream, dts, packet.pts, frames))
                written[-1].mux(packet, dts, packet.duration or frame_ticks)
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
        info = SourceInfo(
            duration=chunks[-1].end_time,
            fps=float(rate) if rate else frames / max(chunks[-1].end_time, 1e-9),
            frames=frames,
            size=source.stat().st_size,
            codec=stream.codec_context.name,
        )
    return info, chunks
