"""The person model's LiteRT backbone gives the frozen graph's own detections; other inputs take the TF path."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest
from detector_clips import Clip

from detector.od_models import RawDetections, _load_od_model, default_model_path, load_od_model


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


def test_the_conversion_is_kept_and_a_spoilt_copy_replaced(
    sample_clip: Clip, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A second process loads the converted backbone instead of converting again; a cache file that does not give
    TensorFlow's predictions any more is converted anew, and the detections stay the graph's own throughout."""
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    images = _frames(sample_clip, (300, 300), 4)
    plain = load_od_model(default_model_path(), litert=False).run(images)

    def fresh_load() -> RawDetections:  # as a new process would, past this process's cache of loaded models
        model = _load_od_model.__wrapped__(default_model_path(), True)
        assert model.runtime == "litert"
        return model.run(images)

    _assert_same(fresh_load(), plain)
    (kept,) = (tmp_path / "derby-batch" / "litert").glob("*.npz")
    converted = kept.stat()
    _assert_same(fresh_load(), plain)
    assert kept.stat().st_mtime_ns == converted.st_mtime_ns and kept.stat().st_ino == converted.st_ino
    with np.load(kept) as saved:
        spoilt = {name: saved[name] for name in saved.files}
    spoilt["logits"] = spoilt["logits"] + 1.0  # what TensorFlow said no longer matches what the model gives
    with kept.open("wb") as out:
        np.savez(out, **spoilt)
    _assert_same(fresh_load(), plain)
    with np.load(kept) as saved:
        assert np.abs(saved["logits"] - spoilt["logits"]).max() >= 0.99  # rewritten from a new conversion
    kept.write_bytes(b"not a model")
    _assert_same(fresh_load(), plain)
    with np.load(kept) as saved:
        assert saved["model"].size > 1_000_000
