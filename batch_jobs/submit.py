"""Submit a local video: split it by stream copy, upload the chunks, write the video item and the chunk items.

Each chunk item is born with `steps = [{timesplit: done}]`; its stream record makes the router submit the next step.
Chunks are uploaded before any item is written, so the router never sees a chunk whose object is not there yet.
"""

from __future__ import annotations

import re
import secrets
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from boto3.s3.transfer import TransferConfig

from batch_jobs import layout, schema
from batch_jobs.config import StackConfig
from batch_jobs.schema import ChunkItem, StepRecord, VideoItem
from batch_jobs.split import split_video
from batch_jobs.store import Store, now_iso

TRANSFER = TransferConfig(multipart_threshold=64 << 20, multipart_chunksize=16 << 20)


@dataclass(frozen=True)
class Submitted:
    video_id: str
    name: str
    chunks: int
    frames: int
    duration: float

    def to_json(self) -> dict[str, Any]:
        return {"video_id": self.video_id, "name": self.name, "chunks": self.chunks, "frames": self.frames,
                "duration": self.duration}  # fmt: skip


def new_video_id(file_name: str) -> str:
    """Readable and unique: a slug of the file name plus 6 random hex digits (fits in a Batch job name)."""
    slug = re.sub(r"[^a-z0-9]+", "-", Path(file_name).stem.lower()).strip("-")[:24] or "video"
    return f"{slug}-{secrets.token_hex(3)}"


def submit_file(
    s3: Any,
    store: Store,
    config: StackConfig,
    path: Path,
    work_dir: Path,
    chunk_seconds: float = 30.0,
    options: Mapping[str, Any] | None = None,
    on_bytes: Callable[[int], None] | None = None,
) -> Submitted:
    """Split, upload and register one video; `on_bytes` gets upload progress (multipart above 64 MiB)."""
    info, chunks = split_video(path, work_dir, chunk_seconds)
    video_id = new_video_id(path.name)
    keys = []
    for chunk in chunks:
        key = layout.chunk_key(video_id, chunk.index, chunk.path.suffix)
        s3.upload_file(str(chunk.path), config.bucket, key, Config=TRANSFER, Callback=on_bytes)
        keys.append(key)
    first = config.pipeline[0].name
    store.put_video(
        VideoItem(
            video_id=video_id,
            name=path.name,
            source=str(path.resolve()),
            duration=info.duration,
            fps=info.fps,
            size=info.size,
            chunk_count=len(chunks),
            pipeline=tuple(s.name for s in config.pipeline),
            created_at=now_iso(),
            state=schema.RUNNING,
            options=dict(options or {}),
        )
    )
    for chunk, key in zip(chunks, keys, strict=True):
        store.put_chunk(
            ChunkItem(
                video_id=video_id,
                index=chunk.index,
                key=key,
                start_time=chunk.start_time,
                end_time=chunk.end_time,
                start_frame=chunk.start_frame,
                end_frame=chunk.end_frame,
                steps=(StepRecord(step=first, state=schema.DONE, finished_at=now_iso()),),
                options=dict(options or {}),
            )
        )
    return Submitted(video_id, path.name, len(chunks), info.frames, info.duration)
