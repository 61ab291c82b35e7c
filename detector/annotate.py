"""An H.264 MP4 of the analyzed frames with their boxes drawn, for a human to check the detections."""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path
from types import TracebackType

import av
import cv2
import numpy as np

from detector.detections import Detections
from detector.output import AtomicFile

COLOURS = {"person": (0, 200, 255), "face": (255, 64, 160)}  # RGB
TIME_BASE = Fraction(1, 1000)


class AnnotatedVideo:
    """Frames are timed by their presentation time (ms), so a sampled or variable-rate input plays at true speed.
    Written to a temporary file and moved into place on success, like the JSON."""

    def __init__(self, path: Path) -> None:
        self._file = AtomicFile(path, path.suffix)
        self._container = av.open(str(self._file.tmp), "w", format="mp4")
        self._stream: av.VideoStream | None = None
        self._last_pts = -1

    def __enter__(self) -> AnnotatedVideo:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if exc_type is None and self._stream is not None:
            for packet in self._stream.encode():
                self._container.mux(packet)
        self._container.close()
        self._file.__exit__(exc_type, exc, tb)

    def add(self, rgb: np.ndarray, detections: Detections, t: float) -> None:
        height, width = rgb.shape[0] // 2 * 2, rgb.shape[1] // 2 * 2  # yuv420p needs even sizes
        if self._stream is None:
            self._stream = self._container.add_stream("libx264", rate=30, options={"preset": "veryfast", "crf": "23"})
            self._stream.width, self._stream.height, self._stream.pix_fmt = width, height, "yuv420p"
            self._stream.codec_context.time_base = self._stream.time_base = TIME_BASE
        size = (self._stream.width, self._stream.height)
        image: np.ndarray = rgb[:height, :width].copy() if (width, height) == size else cv2.resize(rgb, size)
        h, w = image.shape[:2]
        for box, score, label in zip(detections.boxes, detections.scores, detections.labels, strict=True):
            x0, y0, x1, y1 = (box * [w, h, w, h]).round().astype(int)
            colour = COLOURS.get(str(label), (255, 255, 255))
            cv2.rectangle(image, (x0, y0), (x1, y1), colour, 2)
            cv2.putText(image, f"{label} {score:.2f}", (x0, max(12, y0 - 4)), cv2.FONT_HERSHEY_SIMPLEX, 0.45, colour, 1)
        frame = av.VideoFrame.from_ndarray(image.astype(np.uint8, copy=False), format="rgb24")
        self._last_pts = max(self._last_pts + 1, round(t / TIME_BASE))
        frame.pts, frame.time_base = self._last_pts, TIME_BASE
        for packet in self._stream.encode(frame):
            self._container.mux(packet)
