"""`results --annotate`: the whole video, chunk after chunk, with the merged results' boxes, track ids and team
colours (the chunks are what the stack keeps of the video: stream copies, so their frames are the source's)."""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

from batch_jobs.config import StackConfig
from batch_jobs.schema import ChunkItem
from detector.annotate import AnnotatedVideo
from detector.sampling import Sampler
from detector.sources import decode, probe


def annotate_results(s3: Any, config: StackConfig, chunks: list[ChunkItem], document: dict[str, Any], out: Path) -> int:
    """Draw `document` (merged, source frame indices) on every frame of the chunks into `out`; a frame that was not
    analyzed shows the last analyzed frame's boxes. Returns the frames written."""
    by_index = {int(f["index"]): f["detections"] for f in document["frames"]}
    current: list[dict[str, Any]] = []
    written = 0
    with tempfile.TemporaryDirectory(prefix="derby-annotate-") as tmp, AnnotatedVideo(out) as annotated:
        for chunk in sorted(chunks, key=lambda c: c.start_frame):
            video = Path(tmp) / ("chunk" + Path(chunk.key).suffix)
            s3.download_file(config.bucket, chunk.key, str(video))
            for frame in decode(probe(video), Sampler()):
                current = by_index.get(chunk.start_frame + frame.index, current)
                annotated.add_tracked(frame.rgb(), current, chunk.start_time + frame.t)
                written += 1
            video.unlink()
    return written
