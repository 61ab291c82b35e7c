"""Inputs: video files, image files and directories of images, opened and decoded with PyAV / OpenCV.

Every failure to open or decode becomes a one-line `DetectorError` naming the file.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import av
import cv2
import numpy as np
from av.video.reformatter import VideoReformatter

from detector.errors import DetectorError
from detector.sampling import Sampler

IMAGE_SUFFIXES = frozenset({".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff"})


@dataclass(frozen=True)
class SourceInfo:
    """One input as the output's `video` block describes it; `fps`/`duration_s` are None for images."""

    path: Path
    kind: str  # "video" | "image"
    width: int
    height: int
    fps: float | None
    frames: int | None
    duration_s: float | None


@dataclass(frozen=True)
class DecodedFrame:
    """A frame chosen by the sampler; `index` counts all decoded frames of its source, `t` is seconds from the first
    frame's presentation time. Pixels are converted only on request: `resized` scales straight from the decoder's
    YUV with libswscale (area averaging) so a model input never pays for a full-size RGB conversion."""

    source: SourceInfo
    index: int
    t: float
    picture: av.VideoFrame | np.ndarray  # decoder output, or an image already in RGB

    @property
    def width(self) -> int:
        return self.picture.width if isinstance(self.picture, av.VideoFrame) else self.picture.shape[1]

    @property
    def height(self) -> int:
        return self.picture.height if isinstance(self.picture, av.VideoFrame) else self.picture.shape[0]

    def rgb(self) -> np.ndarray:
        if isinstance(self.picture, av.VideoFrame):
            return self.picture.to_ndarray(format="rgb24")
        return self.picture

    def resized(self, width: int, height: int) -> np.ndarray:
        if isinstance(self.picture, av.VideoFrame):
            scaler = _scaler(width, height)
            return scaler.reformat(
                self.picture, width=width, height=height, format="rgb24", interpolation="AREA"
            ).to_ndarray()
        return cv2.resize(self.picture, (width, height), interpolation=cv2.INTER_AREA)


_scalers = threading.local()


def _scaler(width: int, height: int) -> VideoReformatter:
    """This thread's reformatter for one output size. A reformatter keeps its libswscale context while the sizes stay
    the same; `VideoFrame.reformat` builds a new one per call, which costs more than the scaling (1.6 vs 0.5 ms at
    720p to 300x300)."""
    by_size: dict[tuple[int, int], VideoReformatter] = _scalers.__dict__.setdefault("by_size", {})
    return by_size.setdefault((width, height), VideoReformatter())


def expand_inputs(inputs: list[Path]) -> list[Path]:
    """Files as given; directories become their image files in name order."""
    if not inputs:
        raise DetectorError("no input given")
    paths: list[Path] = []
    for path in inputs:
        if path.is_dir():
            images = sorted(p for p in path.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())
            if not images:
                raise DetectorError(f"no images ({', '.join(sorted(IMAGE_SUFFIXES))}) in directory {path}")
            paths.extend(images)
        elif not path.exists():
            raise DetectorError(f"input not found: {path}")
        elif path.stat().st_size == 0:
            raise DetectorError(f"input is empty (0 bytes): {path}")
        else:
            paths.append(path)
    return paths


def open_sources(inputs: list[Path]) -> list[SourceInfo]:
    """Check and describe every input before any model loads, so bad input fails fast."""
    return [probe(path) for path in expand_inputs(inputs)]


def _av_error(path: Path, exc: Exception) -> DetectorError:
    reason = " ".join(str(getattr(exc, "strerror", None) or exc).split())
    return DetectorError(f"cannot decode video {path} (not a video, or corrupt or truncated): {reason}")


def probe(path: Path) -> SourceInfo:
    if path.suffix.lower() in IMAGE_SUFFIXES:
        image = _read_image(path)
        return SourceInfo(path, "image", image.shape[1], image.shape[0], None, 1, None)
    try:
        with av.open(str(path)) as container:
            if not container.streams.video:
                raise DetectorError(f"no video stream in {path}")
            stream = container.streams.video[0]
            rate = stream.average_rate or stream.guessed_rate
            if stream.duration is not None and stream.time_base is not None:
                duration = float(stream.duration * stream.time_base)
            elif container.duration:
                duration = container.duration / av.time_base
            else:
                duration = None
            return SourceInfo(
                path,
                "video",
                stream.codec_context.width,
                stream.codec_context.height,
                float(rate) if rate else None,
                stream.frames or None,
                duration,
            )
    except av.FFmpegError as exc:
        raise _av_error(path, exc) from exc


def _read_image(path: Path) -> np.ndarray:
    image = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if image is None:
        raise DetectorError(f"cannot read image {path}")
    return cv2.cvtColor(image, cv2.COLOR_BGR2RGB)


def decode(source: SourceInfo, sampler: Sampler) -> Iterator[DecodedFrame]:
    """Frames the sampler wants, in presentation order. Skipped frames are decoded but never converted."""
    if source.kind == "image":
        yield DecodedFrame(source, 0, 0.0, _read_image(source.path))
        return
    sampler.reset()
    count = 0
    try:
        with av.open(str(source.path)) as container:
            stream = container.streams.video[0]
            stream.thread_type = "AUTO"
            start: int | None = None
            for frame in container.decode(stream):
                if frame.pts is not None and frame.time_base is not None:
                    start = frame.pts if start is None else start
                    t = float((frame.pts - start) * frame.time_base)
                else:
                    t = count / (source.fps or 1.0)
                if sampler.wants(count, t):
                    yield DecodedFrame(source, count, t, frame)
                count += 1
    except av.FFmpegError as exc:
        raise _av_error(source.path, exc) from exc
    if count == 0:
        raise DetectorError(f"no frames could be decoded from {source.path} (corrupt or truncated video)")
    if source.frames and count < source.frames - max(2, source.frames // 100):
        # the container's index lists frames whose data is missing: a cut-off download or copy
        raise DetectorError(f"video {source.path} is truncated: decoded {count} of {source.frames} frames")
