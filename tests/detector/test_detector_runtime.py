"""The person model's LiteRT backbone gives the frozen graph's own detections; other inputs take the TF path."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
from detector_clips import Clip

from detector.od_models import RawDetections, default_model_path, load_od_model


def _frames(clip: Clip, size: tuple[int, int] | None, count: int) -> np.ndarray:
    capture = cv2.VideoCapture(str(clip.video))
    frames = []
    try:
        while len(frames) < count:
            ok, bgr = capture.read()
            assert ok
            rgb = cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
            frames.append(cv2.resize(rgb, size, interpolation=cv2.INTER_AREA) if size else rgb)
    finally:
        capture.release()
    return np.stack(frames)


def _assert_same(got: RawDetections, expected: RawDetections, min_score: float = 0.2) -> None:
    """Every detection scoring at least `min_score` (well under the default threshold 0.5) is in both, with the same
    class, score and box to 1e-4. (Far down the list, detections of nearly equal low scores may swap places.)"""
    assert len(got.counts) == len(expected.counts)
    for i in range(len(expected.counts)):
        want = expected.scores[i] >= min_score
        have = got.scores[i] >= min_score
        assert have.sum() == want.sum()
        boxes, scores, classes = got.boxes[i][have], got.scores[i][have], got.classes[i][have]
        for box, score, cls in zip(
            expected.boxes[i][want], expected.scores[i][want], expected.classes[i][want], strict=True
        ):
            near = (np.abs(scores - score) < 1e-4) & (np.abs(boxes - box).max(axis=1) < 1e-4)
            assert (classes[near] == cls).any(), (box, score, cls)


def test_litert_backbone_gives_the_graph_detections(sample_clip: Clip) -> None:
    fast = load_od_model(default_model_path())
    plain = load_od_model(default_model_path(), litert=False)
    assert (fast.runtime, plain.runtime) == ("litert", "tensorflow")
    images = _frames(sample_clip, fast.input_size, 16)
    for start in (0, 8):
        batch = images[start : start + 8]
        expected = plain.run(batch)
        assert int((expected.scores >= 0.5).sum()) >= 8  # the clip's people are there to compare
        _assert_same(fast.run(batch), expected)
    _assert_same(fast.run(images[:1]), plain.run(images[:1]))


def test_other_input_sizes_run_the_whole_graph(sample_clip: Clip) -> None:
    """A full-size frame goes through the graph's own resize, as before (the seed-style loop of `bench` does this)."""
    fast = load_od_model(default_model_path())
    plain = load_od_model(default_model_path(), litert=False)
    frame = _frames(sample_clip, None, 1)
    _assert_same(fast.run(frame), plain.run(frame))


def test_runtime_environment_variable_turns_litert_off(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DERBY_BATCH_PERSON_RUNTIME", "tensorflow")
    assert load_od_model(default_model_path()).runtime == "tensorflow"


def test_litert_is_the_default_only_without_a_gpu(monkeypatch: pytest.MonkeyPatch) -> None:
    """On a GPU instance TensorFlow keeps the model (LiteRT's XNNPACK runs on the CPU only)."""
    import tensorflow as tf

    monkeypatch.delenv("DERBY_BATCH_PERSON_RUNTIME", raising=False)
    expected = "tensorflow" if tf.config.list_physical_devices("GPU") else "litert"
    assert load_od_model(default_model_path()).runtime == expected
    monkeypatch.setenv("DERBY_BATCH_PERSON_RUNTIME", "litert")
    assert load_od_model(default_model_path()).runtime == "litert"
