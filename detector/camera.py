"""The camera's motion between analyzed frames, measured on the picture (not on the people boxes).

Why: a broadcast camera pans and a tracker that predicts people in image coordinates loses them all at once when it
does; estimating the pan from the matched boxes (their median displacement) needs several people matched first, and a
wrong first association (two people crossing, a missed box) then moves every track. The background (pitch, stands)
says how the picture moved whatever the people do, as BoT-SORT's camera-motion compensation does: here by phase
correlation of two small grey images (a global translation; zoom and rotation are left to the tracker's gates).
Cheap: the frame is subsampled by striding to about `WIDTH` pixels, no resize; and at high frame rates the picture is
correlated every `MEASURE_EVERY_S` only (every second frame at 25 fps, every third at 30), while the frames between
get the camera's last measured velocity (a pan hardly changes speed in a few hundredths of a second, and the next
measurement corrects what the guess missed, so the camera's offset is exact again on every measured frame).
"""

from __future__ import annotations

import math

import cv2
import numpy as np

WIDTH = 128  # pixels across the grey image that is correlated (at most)
MAX_SHIFT = 0.25  # frame heights: a larger jump between measured frames is taken for a wrong peak (or a cut)
MIN_RESPONSE = 0.05  # a weaker peak (no texture, a cut to another shot) measures nothing
# the least time between two measured frames: at 10 fps and below every frame is measured; the correlation is most
# of the tracker's cost, and a frame guessed costs nothing
MEASURE_EVERY_S = 0.07


class CameraMotion:
    """`shift(image, t)` per analyzed frame in time order: how far the picture moved since the previous one, as
    (dx, dy) in frame heights (x scaled by `aspect`, the frame's width / height, as the tracker measures), or None
    when it cannot be told (first frame, another image size, a featureless or cut picture)."""

    def __init__(self, aspect: float) -> None:
        self.aspect = aspect
        self._previous: np.ndarray | None = None  # the last measured frame's grey image
        self._measured_t = 0.0  # its time
        self._t = 0.0  # the last frame's time, measured or guessed
        self._velocity: np.ndarray | None = None  # frame heights per second, from the last measurement
        self._guessed = np.zeros(2, np.float32)  # handed out since the last measured frame
        self._window: np.ndarray | None = None

    def shift(self, image: np.ndarray | None, t: float, people: np.ndarray | None = None) -> np.ndarray | None:
        """`people` (normalized xyxy) are blanked out first: people move on their own, the camera's motion is the
        background's."""
        if image is None:
            self._previous = self._velocity = None
            return None
        if self._velocity is not None and t - self._measured_t < MEASURE_EVERY_S:
            guess = self._velocity * (t - self._t)
            self._guessed += guess
            self._t = t
            return guess
        moved = self._measure(image, people)
        since, guessed = t - self._measured_t, self._guessed
        self._measured_t = self._t = t
        self._guessed = np.zeros(2, np.float32)
        self._velocity = moved / since if moved is not None and since > 0 else None
        return None if moved is None else moved - guessed

    def _measure(self, image: np.ndarray, people: np.ndarray | None) -> np.ndarray | None:
        """How far the picture moved since the last measured frame (frame heights), None when it cannot be told."""
        stride = -(-image.shape[1] // WIDTH)
        grey = image[::stride, ::stride, 1].astype(np.float32)  # green: most of the brightness, a tenth the cost
        grey = grey[: len(grey) // 8 * 8, : grey.shape[1] // 8 * 8]  # sizes the FFT does fast
        if people is not None and len(people):
            height, width = grey.shape
            size = np.array([width, height, width, height], np.float32)
            fill = float(grey.sum()) / grey.size  # the mean (`mean` costs three times as much, on every frame)
            pixels = np.minimum(np.maximum(np.round(people * size), 0), size).astype(int)
            for x0, y0, x1, y1 in pixels.tolist():
                grey[y0:y1, x0:x1] = fill
        previous, self._previous = self._previous, grey
        if previous is None or previous.shape != grey.shape:
            return None
        if self._window is None or self._window.shape != grey.shape:
            self._window = cv2.createHanningWindow((grey.shape[1], grey.shape[0]), cv2.CV_32F)
        (dx, dy), response = cv2.phaseCorrelate(previous, grey, self._window)
        if response < MIN_RESPONSE:
            return None
        height, width = grey.shape
        moved = (dx / width * self.aspect, dy / height)
        return np.array(moved, np.float32) if math.hypot(*moved) <= MAX_SHIFT else None
