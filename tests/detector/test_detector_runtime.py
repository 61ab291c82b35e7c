"""The person model run without TensorFlow (LiteRT backbone, numpy postprocessing) gives the frozen graph's own
detections; other inputs take the TF path."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
from detector_clips import Clip

from detector import litert_ssd, od_models
from detector.detections import RawDetections
from detector.od_models import _load_od_model, default_model_path, load_od_model


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


def test_litert_model_gives_the_graph_detections(sample_clip: Clip) -> None:
    fast = load_od_model(default_model_path())
    plain = load_od_model(default_model_path(), litert=False)
    assert (fast.runtime, plain.runtime) == ("litert", "tensorflow")
    images = _frames(sample_clip, fast.input_size, 16)
    for start in (0, 8):
        batch = images[start : start + 8]
        expected = plain.run(batch, 0.0)
        assert int((expected.scores >= 0.5).sum()) >= 8  # the clip's people are there to compare
        _assert_same(fast.run(batch, 0.2), expected)
    _assert_same(fast.run(images[:1], 0.2), plain.run(images[:1], 0.0))


@pytest.mark.parametrize("min_score", [0.0, 0.5])
def test_numpy_postprocessing_is_the_graph_own(sample_clip: Clip, wide_clip: Clip, min_score: float) -> None:
    """Fed the same predictions, the numpy decoding and NMS give what the graph's postprocessor gives: every one of
    its 100 rows at min_score 0 (all 90 classes), and exactly the rows scoring at least min_score otherwise."""
    path = default_model_path()
    graph = od_models._parse_frozen_graph(path, path.read_bytes())
    postprocess = od_models._postprocess_of(graph)
    assert postprocess is not None
    tf, wrapped = graph.tf, graph.wrapped
    predictions = wrapped.prune(feeds="image_tensor:0", fetches=list(od_models._PREDICTIONS))
    graph_postprocess = wrapped.prune(
        feeds=[*od_models._PREDICTIONS, od_models._TRUE_SHAPES], fetches=od_models._FETCH_TENSORS
    )
    images = np.concatenate([_frames(clip, (300, 300), 4) for clip in (sample_clip, wide_clip)])
    encodings, logits = (t.numpy() for t in predictions(tf.constant(images)))
    shapes = tf.constant(np.tile([[300, 300, 3]], (len(images), 1)), tf.int32)
    expected = RawDetections(
        *(t.numpy() for t in graph_postprocess(tf.constant(encodings), tf.constant(logits), shapes))
    )
    got = postprocess(encodings, logits, min_score)
    assert int(got.counts.sum()) >= (100 * len(images) if min_score == 0 else 8)  # the clips' people at 0.5
    for i in range(len(images)):
        n = int((expected.scores[i][: int(expected.counts[i])] >= min_score).sum())
        assert int(got.counts[i]) == n
        assert np.array_equal(got.classes[i][:n], expected.classes[i][:n])
        assert np.abs(got.scores[i][:n] - expected.scores[i][:n]).max(initial=0) < 1e-6
        assert np.abs(got.boxes[i][:n] - expected.boxes[i][:n]).max(initial=0) < 1e-5


def test_a_converted_model_runs_without_importing_tensorflow(sample_clip: Clip, tmp_path: Path) -> None:
    """Once a process has converted the model, the next one on a machine without a GPU neither imports TensorFlow
    (3 s of CPU) nor prunes the graph: what a CPU job or `detect` pays at start-up."""
    fast = load_od_model(default_model_path())  # converts, or finds this session's conversion
    assert fast.runtime == "litert"
    images = _frames(sample_clip, fast.input_size, 8)
    np.save(tmp_path / "images.npy", images)
    script = (
        "import sys, numpy as np\n"
        "from detector.od_models import default_model_path, load_od_model\n"
        "model = load_od_model(default_model_path())\n"
        f"raw = model.run(np.load({str(tmp_path / 'images.npy')!r}), 0.2)\n"
        f"np.savez({str(tmp_path / 'raw.npz')!r}, **vars(raw))\n"
        "print(model.runtime, 'tensorflow' in sys.modules)\n"
    )
    env = {**os.environ, "DERBY_BATCH_PERSON_RUNTIME": "litert"}  # also where this machine has a GPU
    out = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["litert", "False"]
    with np.load(tmp_path / "raw.npz") as saved:
        _assert_same(RawDetections(**{name: saved[name] for name in saved.files}), fast.run(images, 0.2))


def test_processes_that_start_together_convert_the_model_once(tmp_path: Path) -> None:
    """Jobs starting together on a fresh machine: one converts (importing TensorFlow), the others wait for its
    result and load it without TensorFlow."""
    script = (
        "import sys\n"
        "from detector.od_models import default_model_path, load_od_model\n"
        "model = load_od_model(default_model_path())\n"
        "print(model.runtime, 'tensorflow' in sys.modules)\n"
    )
    env = {**os.environ, "XDG_CACHE_HOME": str(tmp_path), "DERBY_BATCH_PERSON_RUNTIME": "litert"}
    starts = [
        subprocess.Popen([sys.executable, "-c", script], env=env, stdout=subprocess.PIPE, text=True) for _ in range(3)
    ]
    said = sorted(process.communicate()[0].strip() for process in starts)
    assert [process.returncode for process in starts] == [0, 0, 0]
    assert said == ["litert False", "litert False", "litert True"]
    assert len(list((tmp_path / "derby-batch" / "litert").glob("*.npz"))) == 1


def test_other_input_sizes_run_the_whole_graph(sample_clip: Clip) -> None:
    """A full-size frame goes through the graph's own resize, as before (the seed-style loop of `bench` does this)."""
    fast = load_od_model(default_model_path())
    plain = load_od_model(default_model_path(), litert=False)
    frame = _frames(sample_clip, None, 1)
    _assert_same(fast.run(frame, 0.0), plain.run(frame, 0.0))


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
    plain = load_od_model(default_model_path(), litert=False).run(images, 0.0)

    def fresh_load() -> RawDetections:  # as a new process would, past this process's cache of loaded models
        model = _load_od_model.__wrapped__(default_model_path(), True)
        assert model.runtime == "litert"
        return model.run(images, 0.2)

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


@pytest.mark.parametrize(("share", "threads"), [("1", 1), ("3", 3), ("0", None), ("two", None), ("", None)])
def test_a_cpu_share_sizes_the_interpreter_pool(
    monkeypatch: pytest.MonkeyPatch, share: str, threads: int | None
) -> None:
    """A job that shares the machine (DERBY_BATCH_CPUS, set by the local stack) runs that many interpreters; unset or
    not a positive number, one per core it may use."""
    monkeypatch.setenv(litert_ssd.CPUS_ENV, share)
    assert litert_ssd._threads() == (threads or min(16, len(os.sched_getaffinity(0))))
