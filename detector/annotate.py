"""An H.264 MP4 with the boxes drawn, for a human to check the detections: of the analyzed frames as they are found,
or of a whole video from a detections document (track ids, team colours)."""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path
from types import TracebackType
from typing import Any

import av
import cv2
import numpy as np

from detector.detections import Detections
from detector.kits import OFFICIAL
from detector.output import AtomicFile
from detector.sampling import Sampler
from detector.sources import decode, probe

COLOURS = {"person": (0, 200, 255), "face": (255, 64, 160)}  # RGB
TEAM_COLOURS = [(255, 80, 40), (40, 160, 255), (250, 220, 30), (190, 90, 255), (60, 220, 120)]  # A, B, C... (RGB)
OFFICIAL_COLOUR = (255, 255, 255)
UNTRACKED_COLOUR = (150, 150, 150)
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
        image = self._image(rgb)
        h, w = image.shape[:2]
        for box, score, label in zip(detections.boxes, detections.scores, detections.labels, strict=True):
            x0, y0, x1, y1 = (box * [w, h, w, h]).round().astype(int)
            colour = COLOURS.get(str(label), (255, 255, 255))
            cv2.rectangle(image, (x0, y0), (x1, y1), colour, 2)
            cv2.putText(image, f"{label} {score:.2f}", (x0, max(12, y0 - 4)), cv2.FONT_HERSHEY_SIMPLEX, 0.45, colour, 1)
        self._write(image, t)

    def add_tracked(self, rgb: np.ndarray, detections: list[dict[str, Any]], t: float) -> None:
        """Boxes of a detections document's frame: people in their team's colour with their track id."""
        image = self._image(rgb)
        h, w = image.shape[:2]
        for det in detections:
            x0, y0, x1, y1 = (np.array(det["box"]) * [w, h, w, h]).round().astype(int)
            colour = _track_colour(det)
            cv2.rectangle(image, (x0, y0), (x1, y1), colour, 2 if det["label"] == "person" else 1)
            if det["label"] == "person":
                text = f"#{det['track']} {det.get('team') or ''}" if "track" in det else f"{det['score']:.2f}"
                cv2.putText(image, text, (x0, max(12, y0 - 4)), cv2.FONT_HERSHEY_SIMPLEX, 0.5, colour, 1)
        self._write(image, t)

    def _image(self, rgb: np.ndarray) -> np.ndarray:
        """A copy of the frame at the stream's size (the first frame sets it)."""
        height, width = rgb.shape[0] // 2 * 2, rgb.shape[1] // 2 * 2  # yuv420p needs even sizes
        if self._stream is None:
            self._stream = self._container.add_stream("libx264", rate=30, options={"preset": "veryfast", "crf": "23"})
            self._stream.width, self._stream.height, self._stream.pix_fmt = width, height, "yuv420p"
            self._stream.codec_context.time_base = self._stream.time_base = TIME_BASE
        size = (self._stream.width, self._stream.height)
        image: np.ndarray = rgb[:height, :width].copy() if (width, height) == size else cv2.resize(rgb, size)
        return image

    def _write(self, image: np.ndarray, t: float) -> None:
        if self._stream is None:
            raise RuntimeError("_image opens the stream before the first write")
        frame = av.VideoFrame.from_ndarray(image.astype(np.uint8, copy=False), format="rgb24")
        self._last_pts = max(self._last_pts + 1, round(t / TIME_BASE))
        frame.pts, frame.time_base = self._last_pts, TIME_BASE
        for packet in self._stream.encode(frame):
            self._container.mux(packet)


def _track_colour(det: dict[str, Any]) -> tuple[int, int, int]:
    team = det.get("team")
    if team == OFFICIAL:
        return OFFICIAL_COLOUR
    if det["label"] != "person":
        return COLOURS.get(det["label"], UNTRACKED_COLOUR)
    if team is None:
        return UNTRACKED_COLOUR if "track" not in det else COLOURS["person"]
    index = ord(team[0]) - ord("A") if len(team) == 1 else int(team[1:]) - 1
    return TEAM_COLOURS[index % len(TEAM_COLOURS)]


def annotate_document(video: Path, document: dict[str, Any], out: Path) -> None:
    """Every frame of `video` with the boxes of the document's frame of the same index; a frame not analyzed (with
    `--every`) shows the last analyzed frame's boxes."""
    by_index = {int(f["index"]): f["detections"] for f in document["frames"]}
    current: list[dict[str, Any]] = []
    with AnnotatedVideo(out) as annotated:
        for frame in decode(probe(video), Sampler()):
            current = by_index.get(frame.index, current)
            annotated.add_tracked(frame.rgb(), current, frame.t)
