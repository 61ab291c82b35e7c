"""Detectors by name, as the CLI's `--detectors` and the pipeline's step options spell them."""

from __future__ import annotations

from pathlib import Path

from detector.base import Detector
from detector.errors import DetectorError

DETECTORS = ("human", "face")


def create_detector(name: str, *, model: Path | None = None, threshold: float = 0.5) -> Detector:
    """Build a detector; models are loaded once per process and shared. `model` applies to `human` only."""
    if name == "human":
        from detector.human import HumanDetector

        return HumanDetector(model, threshold)
    if name == "face":
        from detector.face import FaceDetector

        return FaceDetector(threshold)
    raise DetectorError(f"unknown detector {name!r}: choose from {', '.join(DETECTORS)}")
