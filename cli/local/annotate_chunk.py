"""The annotated MP4 of one chunk: its frames with the boxes its detect step found, for a human to look at."""

from __future__ import annotations

import json
import tempfile
from pathlib import Path
from typing import Any

import av

from batch_jobs.config import StackConfig
from batch_jobs.schema import ChunkItem
from detector.annotate import AnnotatedVideo
from detector.detections import Detections

DETECT_ACTION = "detect"


def detect_position(config: StackConfig) -> int | None:
    """Index of the pipeline's detect step (None for a pipeline without one, such as the probe test pipeline)."""
    return next((i for i, step in enumerate(config.pipeline) if step.action == DETECT_ACTION), None)


def annotate_chunk(s3: Any, config: StackConfig, chunk: ChunkItem, out: Path) -> Path | None:
    """Draw the chunk's detect result on its frames into `out`; None when the chunk has no detect result."""
    pos = detect_position(config)
    result = chunk.steps[pos].result if pos is not None and pos < len(chunk.steps) else None
    if result is None:
        return None
    document = json.loads(s3.get_object(Bucket=result.bucket, Key=result.key)["Body"].read())
    found = {int(f["index"]): f for f in document.get("frames", [])}
    out.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="derby-annotate-") as tmp:
        video = Path(tmp) / ("chunk" + Path(chunk.key).suffix)
        s3.download_file(config.bucket, chunk.key, str(video))
        with av.open(str(video)) as container, AnnotatedVideo(out) as annotated:
            stream = container.streams.video[0]
            for index, frame in enumerate(container.decode(stream)):
                if index in found:
                    frame_result = found[index]
                    annotated.add(frame.to_ndarray(format="rgb24"), Detections.from_json(frame_result["detections"]),
                                  float(frame_result["t"]))  # fmt: skip
    return out
