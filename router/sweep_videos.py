"""The sweep's pass over active videos: what only a lost final record (or an interrupted submit) leaves undone.

A chunk's last record (done at the last step, failed, cancelled, malformed) is what counts it on its video; if that
record is lost (expired, or sent to the dead-letter queue) the video stays `running` forever. Here each active
video's chunks are read and the finished ones it has not counted are counted (`Router.finish_chunk`, idempotent),
which settles it. A local submit writes its video `submitted` and makes it `running` after its last chunk item: one
still `submitted` after the grace period was interrupted, and fails. So does an S3 video still `submitted` with no
split job (none started, none found by its name): its submit (or `retry`) stopped between the video item and
SubmitJob. Failing it, rather than submitting the job, keeps the sweep from starting work nobody saw an id for (the
interrupted submit printed none); `retry` splits it if wanted.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from batch_jobs import schema
from batch_jobs.control import settle, split_spec
from batch_jobs.schema import ChunkItem, MalformedItem, VideoItem
from batch_jobs.store import Conflict
from router.core import Router


@dataclass(frozen=True)
class VideoRepairs:
    counted: int  # finished chunks the stream never counted on their video
    interrupted: int  # submits that never wrote all their chunk items, or never submitted their split job: failed


def _finished(raw: dict[str, Any], steps: int) -> bool | None:
    """True or False when the chunk has finished done or failed (as its last record would count it), else None."""
    if raw.get("error"):
        return False
    try:
        chunk = ChunkItem.from_item(raw)
    except MalformedItem:
        return False  # its record gets the error recorded and counts it failed
    if chunk.last.state == schema.DONE:
        return True if len(chunk.steps) == steps else None
    return False if chunk.last.state in schema.FINAL else None


def _fail_interrupted(router: Router, video: VideoItem, written: int, before: datetime) -> bool:
    if datetime.fromisoformat(video.claimed_at or video.created_at) > before:
        return False  # a young submit may still be writing its chunk items, or submitting its split job
    if video.source.startswith("s3://"):
        if video.split_job_id or router.batch.find_job(split_spec(router.config, video.video_id, video.split_attempt)):
            return False  # the split job exists: it (or its Batch event) ends the wait
        reason = "submit interrupted: the split job was never submitted"
        failed = router.store.fail_split(video.video_id, None, reason, video.split_attempt)
        return not isinstance(failed, Conflict)
    reason = f"submit interrupted: {written} of {video.chunk_count} chunk items written"
    router.store.set_video_state(video.video_id, schema.FAILED, reason)
    return True


def repair_videos(router: Router, submitted_before: datetime) -> VideoRepairs:
    counted = interrupted = 0
    steps = len(router.config.pipeline)
    for item in router.store.video_items():
        try:
            video = VideoItem.from_item(item)
        except MalformedItem:
            continue  # `status` shows it; nothing here can repair it
        if video.state not in schema.ACTIVE:
            continue
        chunks = router.store.chunk_items(video.video_id)
        if video.state == schema.SUBMITTED:
            interrupted += _fail_interrupted(router, video, len(chunks), submitted_before)
            continue
        seen = video.chunks_done | video.chunks_failed
        for raw in chunks:
            index, ok = schema.chunk_index(str(raw.get("sk", ""))), _finished(raw, steps)
            if index is not None and ok is not None and index not in seen:
                router.finish_chunk(video.video_id, index, ok)  # the last one settles the video
                counted += 1
        settle(router.store, video)  # every chunk was counted, but the settling write was lost
    return VideoRepairs(counted, interrupted)
