"""The `Detector` interface every model adapter implements."""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import ClassVar

import numpy as np

from detector.detections import Detections


class Detector(ABC):
    """A model that finds one kind of thing in RGB images.

    `input_size` is the (width, height) the model looks at: callers resize frames and tiles to it ahead of time
    (in the decode thread) so the inference thread does nothing but inference.
    """

    name: ClassVar[str]
    label: ClassVar[str]

    def __init__(self, model: str, threshold: float, input_size: tuple[int, int]) -> None:
        if not 0.0 < threshold < 1.0:
            raise ValueError(f"threshold must be between 0 and 1, got {threshold}")
        self.model = model
        self.threshold = threshold
        self.input_size = input_size

    @abstractmethod
    def detect(self, images: np.ndarray) -> list[Detections]:
        """One `Detections` per image of the (n, h, w, 3) uint8 RGB batch, boxes normalized to that image."""

    def describe(self) -> dict[str, object]:
        """The entry for the output's `detectors` list."""
        return {"name": self.name, "model": self.model, "threshold": self.threshold}
