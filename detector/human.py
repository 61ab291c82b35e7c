"""The `human` detector: people (COCO class 1) from a TF Object Detection API model."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from detector.base import Detector
from detector.detections import Detections
from detector.od_models import default_model_path, load_od_model

COCO_PERSON = 1


class HumanDetector(Detector):
    """Frames go in as RGB, the colour order the COCO models were trained on."""

    name = "human"
    label = "person"

    def __init__(self, model: Path | None = None, threshold: float = 0.5) -> None:
        loaded = load_od_model((model or default_model_path()).expanduser().resolve())
        super().__init__(
            str(model) if model else f"ssdlite_mobilenet_v2_coco ({loaded.path.name})", threshold, loaded.input_size
        )
        self._run = loaded.run

    def detect(self, images: np.ndarray, min_score: float | None = None) -> list[Detections]:
        """`min_score` below the threshold also returns weaker boxes (what the tracker's second association uses)."""
        floor = self.threshold if min_score is None else min_score
        raw = self._run(images, floor)
        results = []
        for boxes, scores, classes, count in zip(raw.boxes, raw.scores, raw.classes, raw.counts, strict=True):
            n = int(count)
            keep = (classes[:n].astype(np.int64) == COCO_PERSON) & (scores[:n] >= floor)
            yxyx = boxes[:n][keep]
            results.append(Detections.of(np.clip(yxyx[:, [1, 0, 3, 2]], 0.0, 1.0), scores[:n][keep], self.label))
        return results
