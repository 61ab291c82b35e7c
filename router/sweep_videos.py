"""The sweep's pass over active videos: what only a lost final record (or an interrupted submit) leaves undone.

A chunk's last record (done at the last step, failed, cancelled, malformed) is what counts it on its video; if that
record is lost (expired, or sent to the dead-letter queue) the video stays `running` forever. Here each active
video's chunks are read and the finished ones it has not counted are counted (`Router.finish_chunk`, idempotent),
which settles it. A failed video is read too: a retry may have reopened chunks whose count was lost.

A local submit writes its video `submitted`, its chunk items in transactions that each mark the video's
`progress_at`, then makes it `running`. One still `submitted` with every chunk item written is started here; one with
items missing and no progress for the grace period was interrupted, and fails, conditional on the progress mark it
read (a slow submit that wrote more meanwhile is left alone). An S3 video still `submitted` with no split job (none
started, none found by its name) fails too: its submit (or `retry`) stopped between the video item and SubmitJob.
Failing it, rather than submitting the job, keeps the sweep from starting work nobody saw an id for; `retry` splits
it if wanted.
"""

from __future__ import annotations

import logging
from datetime import datetime
from typing import TYPE_CHECKING, Any

from batch_jobs import schema
from batch_jobs.control import settle, split_spec
from batch_jobs.lifecycle import outcome
from batch_jobs.schema import ChunkItem, MalformedItem, VideoItem
from router.core import Router

if TYPE_CHECKING:
    from router.sweep import Budget, SweepReport

log = logging.getLogger("derby_batch.sweep")
_REPAIRED = frozenset({schema.SUBMITTED, schema.RUNNING, schema.FAILED})


def _finished(router: Router, raw: dict[str, Any]) -> bool | None:
    """True or False when the chunk has finished done or failed (as its last record would count it), else None."""
    if raw.get("error"):
        return False
    try:
        return outcome(ChunkItem.from_item(raw), router.config.pipeline)
    except MalformedItem:
        return False  # its record gets the error recorded and counts it failed


def _repair_submit(router: Router, video: VideoItem, written: int, before: datetime) -> bool:
    """True when an interrupted submit was failed."""
    if video.source.startswith("s3://"):
        if datetime.fromisoformat(video.claimed_at or video.created_at) > before:
            return False  # a young submit may still be submitting its split job
        if video.split_job_id or router.batch.find_job(split_spec(router.config, video.video_id, video.split_attempt)):
            return False  # the split job exists: it (or its Batch event) ends the wait
        reason = "submit interrupted: the split job was never submitted"
        return isinstance(router.store.fail_split(video.video_id, None, reason, video.split_attempt), dict)
    if written == video.chunk_count:
        started = router.store.start_video(video.video_id)  # every item is there: only the last write was lost
        if isinstance(started, dict):
            settle(router.store, VideoItem.from_item(started))
        return False
    if datetime.fromisoformat(video.progress_at or video.created_at) > before:
        return False  # a submit that wrote items within the grace is still at work
    reason = f"submit interrupted: {written} of {video.chunk_count} chunk items written; submit the file again"
    return isinstance(router.store.fail_interrupted(video, reason), dict)


def repair_videos(router: Router, submitted_before: datetime, budget: Budget, report: SweepReport) -> None:
    for item in router.store.video_items():
        if budget.spent():
            report.complete = False
            return
        try:
            video = VideoItem.from_item(item)
        except MalformedItem:
            continue  # `status` shows it; nothing here can repair it
        if video.state not in _REPAIRED:
            continue
        try:
            _repair_video(router, video, submitted_before, report)
        except Exception:
            log.exception("sweep: video %s", video.video_id)
            report.errors += 1


def _repair_video(router: Router, video: VideoItem, submitted_before: datetime, report: SweepReport) -> None:
    chunks = router.store.chunk_items(video.video_id)
    if video.state == schema.SUBMITTED:
        report.interrupted += _repair_submit(router, video, len(chunks), submitted_before)
        return
    for raw in chunks:
        index, ok = schema.chunk_index(str(raw.get("sk", ""))), _finished(router, raw)
        if index is None or ok is None or index in video.chunks_done:
            continue
        if ok or index not in video.chunks_failed:  # a retried chunk that ended done was counted failed before
            router.finish_chunk(video.video_id, index, ok)  # the last one settles the video
            report.counted += 1
    settle(router.store, router.store.get_video(video.video_id))  # all were counted, but the settling write was lost
