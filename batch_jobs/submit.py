"""Submit a video: split it by stream copy, upload the chunks, write the video item and the chunk items.

A local file is split here (`submit_file`); an S3 object is split by a CPU job (`submit_s3` writes a `submitted`
video item and submits the pipeline's first step, which runs `split_s3_source` in the job). Either way the video
item is written first and stays `submitted` until every chunk item is written (a local file's carries its chunk
count from the start): a submit interrupted in between leaves a `submitted` video, which the sweep fails, never a
`running` one that can never settle.
Each chunk item is born with `steps = [{<first step>: done}]`; its stream record makes the router submit the next
step. Chunks are uploaded before their items are written, so the router never sees a chunk whose object is missing.
"""

from __future__ import annotations

import re
import secrets
import shutil
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any, NoReturn

from boto3.s3.transfer import TransferConfig

from batch_jobs import control, layout, schema
from batch_jobs.config import StackConfig
from batch_jobs.errors import PipelineError
from batch_jobs.schema import ChunkItem, StepRecord, VideoItem
from batch_jobs.split import ChunkFile, SourceInfo, open_video, split_video
from batch_jobs.stack import Stack
from batch_jobs.store import Conflict, Lease, Store, now_iso

GIB = 1 << 30
SPLIT_DISK_MARGIN = 1 * GIB
TRANSFER = TransferConfig(multipart_threshold=64 << 20, multipart_chunksize=16 << 20)
CHUNK_SECONDS_OPTION = "chunk_seconds"  # kept on the video item of an S3 submit, for the split job
ID_DRAWS = 8
PROGRESS_SECONDS = 30.0  # how often a long upload marks its video's progress (the sweep's grace is 5 minutes)


@dataclass(frozen=True)
class Submitted:
    video_id: str
    name: str
    chunks: int  # 0 until the split job of an S3 submit has run
    frames: int
    duration: float

    def to_json(self) -> dict[str, Any]:
        return {
            "video_id": self.video_id,
            "name": self.name,
            "chunks": self.chunks,
            "frames": self.frames,
            "duration": self.duration,
        }


def new_video_id(file_name: str) -> str:
    """Readable: a slug of the file name plus 24 random bits (fits in a Batch job name). Unique because the video
    item is created conditionally before anything is uploaded (`register_video`), not because of the bits."""
    slug = re.sub(r"[^a-z0-9]+", "-", Path(file_name).stem.lower()).strip("-")[:24] or "video"
    return f"{slug}-{secrets.token_hex(3)}"


def register_video(store: Store, name: str, video_for: Callable[[str], VideoItem]) -> VideoItem:
    """Create the video item under a fresh id, drawing again if the id is taken: two submits of the same file at once
    never share an id, so neither writes the other's objects or items."""
    for _ in range(ID_DRAWS):
        video = video_for(new_video_id(name))
        if store.put_video_once(video):
            return video
    raise PipelineError(f"no free video id for {name!r} after {ID_DRAWS} draws")


def upload_chunks(
    stack: Stack,
    video_id: str,
    chunks: Sequence[ChunkFile],
    options: Mapping[str, Any],
    on_bytes: Callable[[int], None] | None = None,
    write_items: bool = True,
) -> list[ChunkItem]:
    """Upload each chunk (multipart above 64 MiB) and, with `write_items`, write its item once."""
    s3, store, config = stack.s3, stack.store, stack.config
    items = []
    for chunk in chunks:
        key = layout.chunk_key(video_id, chunk.index, chunk.path.suffix)
        s3.upload_file(str(chunk.path), config.bucket, key, Config=TRANSFER, Callback=on_bytes)
        items.append(
            ChunkItem(
                video_id=video_id,
                index=chunk.index,
                key=key,
                start_time=chunk.start_time,
                end_time=chunk.end_time,
                start_frame=chunk.start_frame,
                end_frame=chunk.end_frame,
                steps=(StepRecord(step=config.pipeline[0].name, state=schema.DONE, finished_at=now_iso()),),
                options=dict(options),
            )
        )
    if write_items:
        store.put_chunks_once(items)
    return items


def _video(
    video_id: str,
    name: str,
    source: str,
    config: StackConfig,
    state: str,
    info: SourceInfo | None,
    chunks: int,
    options: Mapping[str, Any],
    size: int,
) -> VideoItem:
    return VideoItem(
        video_id=video_id,
        name=name,
        source=source,
        duration=info.duration if info else 0.0,
        fps=info.fps if info else 0.0,
        size=size,
        chunk_count=chunks,
        pipeline=tuple(s.name for s in config.pipeline),
        created_at=now_iso(),
        state=state,
        options=dict(options),
    )


def submit_file(
    stack: Stack,
    path: Path,
    work_dir: Path,
    chunk_seconds: float = 30.0,
    options: Mapping[str, Any] | None = None,
    on_bytes: Callable[[int], None] | None = None,
) -> Submitted:
    """Split, register, upload and write the items of one local video; `on_bytes` gets upload progress.

    The video item comes first (`submitted`, conditional on its id being free), so nothing is uploaded under an id
    another submit owns; the upload and the items then mark its progress, so the sweep tells a slow submit from an
    interrupted one. A video the sweep failed meanwhile stops the submit with one line."""
    store, config = stack.store, stack.config
    info, chunks = split_video(path, work_dir, chunk_seconds)
    video = register_video(
        store,
        path.name,
        lambda video_id: _video(
            video_id, path.name, str(path.resolve()), config, schema.SUBMITTED, info, len(chunks), options or {},
            info.size,
        ),
    )  # fmt: skip
    video_id, marked = video.video_id, time.monotonic()

    def progress(sent: int) -> None:
        nonlocal marked
        if on_bytes:
            on_bytes(sent)
        if time.monotonic() - marked >= PROGRESS_SECONDS:
            marked = time.monotonic()
            if not store.mark_progress(video_id):
                _stopped(store, video_id)

    items = upload_chunks(stack, video_id, chunks, options or {}, progress, write_items=False)
    if not store.put_chunks(video_id, items):
        _stopped(store, video_id)
    started = store.start_video(video_id)
    if not isinstance(started, Conflict):
        # chunks that finished before the video was running
        control.advance(store, stack.batch, stack.config, VideoItem.from_item(started), Lease.fresh("submit"))
    return Submitted(video_id, path.name, len(chunks), info.frames, info.duration)


def _stopped(store: Store, video_id: str) -> NoReturn:
    video = store.get_video(video_id)
    raise PipelineError(f"video {video_id} became {video.state} while it was submitted: {video.error or 'no reason'}")


def _s3_size(s3: Any, uri: str) -> int:
    bucket, key = layout.parse_s3_uri(uri)
    try:
        return int(s3.head_object(Bucket=bucket, Key=key)["ContentLength"])
    except s3.exceptions.ClientError as exc:
        raise PipelineError(f"cannot read {uri}: {exc.response.get('Error', {}).get('Message') or exc}") from None


def check_source(s3: Any, source: str) -> None:
    """Fail on a bad input before anything of a several-video submit is uploaded: a readable video file with a
    video stream, or an S3 object that exists. (A file damaged past its header still fails later, in the split.)"""
    if source.startswith("s3://"):
        _s3_size(s3, source)
    else:
        open_video(Path(source)).close()


def submit_s3(
    stack: Stack,
    uri: str,
    chunk_seconds: float = 30.0,
    options: Mapping[str, Any] | None = None,
) -> Submitted:
    """Register an S3 video and submit its split as a CPU job of the pipeline's first step. A refused SubmitJob
    fails the video with the reason; a crash before it leaves a `submitted` video without a job, which the sweep
    fails."""
    store, config = stack.store, stack.config
    size = _s3_size(stack.s3, uri)
    name = PurePosixPath(layout.parse_s3_uri(uri)[1]).name
    video_options = {**(options or {}), CHUNK_SECONDS_OPTION: chunk_seconds}
    video_id = register_video(
        store, name, lambda vid: _video(vid, name, uri, config, schema.SUBMITTED, None, 0, video_options, size)
    ).video_id
    try:
        control.submit_split(stack, video_id, 1)
    except PipelineError as exc:
        raise PipelineError(f"{uri}: {exc}") from None
    return Submitted(video_id, name, 0, 0, 0.0)


def check_disk(work_dir: Path, source_size: int) -> None:
    """The split holds the source and its chunks (about as large again) on the job's disk: refuse at once, with the
    sizes, rather than fail an hour into the download. The CPU job's disk is `cpu_job.ephemeral_storage_gib`."""
    need = 2 * source_size + SPLIT_DISK_MARGIN
    free = shutil.disk_usage(work_dir).free
    if free < need:
        raise PipelineError(
            f"the split needs {need / GIB:.1f} GiB of disk for a {source_size / GIB:.1f} GiB source and has"
            f" {free / GIB:.1f} GiB: raise cpu_job.ephemeral_storage_gib (at most 200) or submit the file in parts"
        )


def split_s3_source(stack: Stack, video: VideoItem, work_dir: Path) -> dict[str, Any]:
    """The split job's work: download the source, split, upload, write chunk items; returns the video's new fields."""
    s3 = stack.s3
    bucket, key = layout.parse_s3_uri(video.source)
    source = work_dir / PurePosixPath(key).name
    check_disk(work_dir, video.size)
    try:
        s3.download_file(bucket, key, str(source), Config=TRANSFER)
    except s3.exceptions.ClientError as exc:
        raise PipelineError(
            f"cannot read {video.source}: {exc.response.get('Error', {}).get('Message') or exc}"
        ) from None
    options = {k: v for k, v in video.options.items() if k != CHUNK_SECONDS_OPTION}
    info, chunks = split_video(source, work_dir / "chunks", float(video.options.get(CHUNK_SECONDS_OPTION, 30.0)))
    upload_chunks(stack, video.video_id, chunks, options)
    return {"duration": info.duration, "fps": info.fps, "chunk_count": len(chunks)}
