"""An SSD model of the Object Detection API run without TensorFlow: its backbone converted to LiteRT, its box decoding
and non-maximum suppression in numpy.

TensorFlow converts the model once (`od_models` does that and checks both halves against the graph); the result is
kept in a cache file that later processes load without importing TensorFlow, which saves each CPU job 3-5 s of
start-up. Nothing here imports TensorFlow.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import importlib.metadata
import os
import queue
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from detector.detections import RawDetections

Predictions = tuple[np.ndarray, np.ndarray]  # the backbone's box encodings (n, anchors, 4) and class logits
Backbone = Callable[[np.ndarray], Predictions]

# The CPUs this process may use when it shares the machine's cores with other jobs (the local stack runs several
# detect jobs at once); unset, every core it may run on.
CPUS_ENV = "DERBY_BATCH_CPUS"
_FORMAT = "litert-ssd@2"  # cache files of another layout are simply not found
_MAX_PREDICTION_DIFF = 1e-3  # LiteRT vs TensorFlow on the check image (measured: about 5e-5)


@dataclass(frozen=True)
class SsdPostprocess:
    """The API's SSD postprocessing, with the parameters read from the graph: box decoding (FasterRcnnBoxCoder),
    score conversion (sigmoid), per-class NMS, a sort over all classes, clipping to the image, dropping empty boxes
    and the top `max_total`, as `BatchMultiClassNonMaxSuppression` does it."""

    anchors: np.ndarray  # (anchors, 4) [y_min, x_min, y_max, x_max]
    scales: np.ndarray  # (4,) the box coder's scale factors for ty, tx, th, tw
    logit_scale: float
    background: int  # classes in the logits before the first real one
    iou_threshold: float
    score_threshold: float
    max_per_class: int
    max_total: int
    label_offset: float

    def __call__(self, encodings: np.ndarray, logits: np.ndarray, min_score: float) -> RawDetections:
        """What the graph outputs, limited to detections scoring at least `min_score`: greedy NMS never lets a box
        suppress a better one, so the boxes under `min_score` change nothing above it, and are not looked at."""
        rows = [self._one(e.reshape(-1, 4), lg, min_score) for e, lg in zip(encodings, logits, strict=True)]
        return RawDetections(*(np.stack(column) for column in zip(*rows, strict=True)))

    def _one(self, encodings: np.ndarray, logits: np.ndarray, min_score: float) -> list[np.ndarray]:
        logits = logits[:, self.background :] / np.float32(self.logit_scale)
        floor = max(min_score, self.score_threshold)
        if floor >= 1.0:
            anchor, cls = np.zeros(0, np.int64), np.zeros(0, np.int64)
        else:  # a logit margin, then the exact test on the scores themselves
            anchor, cls = np.nonzero(logits > np.log(floor / (1.0 - floor)) - 1e-3)
        scores = (1.0 / (1.0 + np.exp(-logits[anchor, cls]))).astype(np.float32)
        keep = (scores > self.score_threshold) & (scores >= min_score)
        anchor, cls, scores = anchor[keep], cls[keep], scores[keep]
        boxes = self._decode(encodings[anchor], self.anchors[anchor])
        selected = [  # per class, in class order, each in NMS order: the graph's concatenation
            i[_nms(boxes[i], scores[i], anchor[i], self.iou_threshold, min(self.max_per_class, len(self.anchors)))]
            for i in (np.flatnonzero(cls == c) for c in np.unique(cls))
        ]
        order = np.concatenate([np.zeros(0, np.int64), *selected])
        order = order[np.argsort(-scores[order], kind="stable")]
        clipped = np.clip(boxes[order], 0.0, 1.0)
        solid = _areas(clipped) > 0
        order, clipped = order[solid], clipped[solid]
        n = min(self.max_total, len(order))
        out_boxes = np.zeros((self.max_total, 4), np.float32)
        out_scores, out_classes = np.zeros(self.max_total, np.float32), np.zeros(self.max_total, np.float32)
        out_boxes[:n], out_scores[:n] = clipped[:n], scores[order[:n]]
        out_classes[:n] = cls[order[:n]].astype(np.float32) + np.float32(self.label_offset)
        return [out_boxes, out_scores, out_classes, np.array(n, np.float32)]

    def _decode(self, encodings: np.ndarray, anchors: np.ndarray) -> np.ndarray:
        ty, tx, th, tw = (encodings / self.scales).T
        ha, wa = anchors[:, 2] - anchors[:, 0], anchors[:, 3] - anchors[:, 1]
        yc, xc = anchors[:, 0] + ha / 2, anchors[:, 1] + wa / 2
        h, w = np.exp(th) * ha, np.exp(tw) * wa
        yc, xc = ty * ha + yc, tx * wa + xc
        return np.stack([yc - h / 2, xc - w / 2, yc + h / 2, xc + w / 2], axis=1).astype(np.float32)

    def params(self) -> np.ndarray:
        """The scalars, for the cache file."""
        params = [self.logit_scale, self.background, self.iou_threshold, self.score_threshold, self.max_per_class]
        return np.array([*params, self.max_total, self.label_offset], np.float64)

    @classmethod
    def from_arrays(cls, saved: Any) -> SsdPostprocess:
        logit_scale, background, iou, score, per_class, total, offset = saved["params"].tolist()
        return cls(
            saved["anchors"], saved["scales"], logit_scale, int(background), iou, score, int(per_class), int(total),
            offset,
        )  # fmt: skip


def _areas(boxes: np.ndarray) -> np.ndarray:
    return (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])


def _nms(boxes: np.ndarray, scores: np.ndarray, anchors: np.ndarray, iou: float, limit: int) -> np.ndarray:
    """Indices kept by greedy NMS, best first, as TensorFlow's NonMaxSuppressionV3 picks them: ties go to the lower
    anchor, a box is dropped when its IoU with a kept one is over `iou`, and a box without area overlaps nothing."""
    remaining = np.lexsort((anchors, -scores))
    lo, hi = np.minimum(boxes[:, :2], boxes[:, 2:]), np.maximum(boxes[:, :2], boxes[:, 2:])
    areas = np.prod(hi - lo, axis=1)
    kept: list[int] = []
    while remaining.size and len(kept) < limit:
        best, rest = remaining[0], remaining[1:]
        kept.append(best)
        sides = np.maximum(np.minimum(hi[rest], hi[best]) - np.maximum(lo[rest], lo[best]), 0.0)
        inter = sides[:, 0] * sides[:, 1]
        with np.errstate(divide="ignore", invalid="ignore"):
            overlap = np.where((areas[rest] > 0) & (areas[best] > 0), inter / (areas[rest] + areas[best] - inter), 0)
        remaining = rest[overlap <= iou]
    return np.array(kept, np.int64)


@dataclass(frozen=True)
class LiteSsd:
    """The converted model: `run(batch, min_score)` on uint8 RGB images of `size` (width, height)."""

    backbone: Backbone
    postprocess: SsdPostprocess
    size: tuple[int, int]

    def run(self, batch: np.ndarray, min_score: float) -> RawDetections:
        return self.postprocess(*self.backbone(batch), min_score)

    def save(self, cache: Path, flatbuffer: bytes, expected: Predictions) -> None:
        """Keep the model with TensorFlow's predictions on the check image, atomically; an unwritable cache only costs
        the next process the conversion."""
        with contextlib.suppress(OSError):
            cache.parent.mkdir(parents=True, exist_ok=True)
            partial = cache.with_name(f".{cache.name}.{os.getpid()}")
            post = self.postprocess
            with partial.open("wb") as out:
                np.savez(
                    out, model=np.frombuffer(flatbuffer, np.uint8), encodings=expected[0], logits=expected[1],
                    size=np.array(self.size), anchors=post.anchors, scales=post.scales, params=post.params(),
                )  # fmt: skip
            os.replace(partial, cache)


@contextlib.contextmanager
def conversion_lock(cache: Path) -> Iterator[None]:
    """Held while a process converts the model kept in `cache` (an flock, released if the process dies); where the
    cache directory cannot be written, nothing is shared and nothing is held."""
    try:
        cache.parent.mkdir(parents=True, exist_ok=True)
        lock = cache.with_name(cache.name + ".lock").open("a")
    except OSError:
        yield
        return
    with lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        yield


def cache_file(graph: bytes) -> Path:
    """Where the converted model of this graph is kept: named by the graph's bytes, this layout and the converter's
    and runtime's versions, under $XDG_CACHE_HOME (default ~/.cache)."""
    versions = [_version(d) for d in ("tensorflow", "tensorflow-cpu", "ai-edge-litert")]
    key = hashlib.sha256(graph + f"{_FORMAT}{versions}".encode()).hexdigest()[:32]
    root = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return root / "derby-batch" / "litert" / f"{key}.npz"


def _version(distribution: str) -> str | None:
    try:
        return importlib.metadata.version(distribution)
    except importlib.metadata.PackageNotFoundError:
        return None


def load_cached(cache: Path) -> LiteSsd | None:
    """The model converted by an earlier process, if its backbone still gives the predictions TensorFlow gave then."""
    try:
        with np.load(cache) as saved:
            flatbuffer, expected = saved["model"].tobytes(), (saved["encodings"], saved["logits"])
            width, height = saved["size"].tolist()
            postprocess = SsdPostprocess.from_arrays(saved)
    except (OSError, ValueError, KeyError):
        return None
    backbone = interpreters(flatbuffer, (width, height))
    if backbone is None or not matches(expected, backbone(check_image((width, height)))):
        return None
    return LiteSsd(backbone, postprocess, (width, height))


def check_image(size: tuple[int, int]) -> np.ndarray:
    width, height = size
    return np.random.default_rng(0).integers(0, 256, (1, height, width, 3), dtype=np.uint8)


def matches(expected: Predictions, got: Predictions) -> bool:
    pairs = zip(expected, got, strict=True)
    return all(e.shape == g.shape and np.abs(e - g).max() <= _MAX_PREDICTION_DIFF for e, g in pairs)


def interpreters(flatbuffer: bytes, size: tuple[int, int]) -> Backbone | None:
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


def _threads() -> int:
    """LiteRT interpreters, one thread each: the cores this process may use (or its share, `DERBY_BATCH_CPUS`), at
    most 16 (two batches of 8 in flight never keep more busy). Images run side by side, not one image over all cores:
    that costs the same CPU, and a core taken by the decoder then stalls one image, not all of them."""
    share = os.environ.get(CPUS_ENV, "")
    if share.isdigit() and int(share) > 0:
        return min(16, int(share))
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        cores = os.cpu_count() or 1
    return max(1, min(16, cores))
