"""The sweep's pass over open videos: what a lost settle (or an interrupted submit) leaves undone.

Chunks are counted by the chunk pass (`sweep.py`), which runs first; every count puts its video in the open index, so
a video whose settling write was lost (a crash right after the last count) is settled here. A video that a late
count put back after it settled leaves the index.

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
from typing import TYPE_CHECKING

from batch_jobs import schema
from batch_jobs.control import settle, split_spec
from batch_jobs.schema import MalformedItem, VideoItem
from router.core import Router

if TYPE_CHECKING:
    from router.sweep import Budget, SweepReport

log = logging.getLogger("derby_batch.sweep")
_SETTLED_FROM = frozenset({schema.RUNNING, schema.FAILED})


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
    for item in router.store.open_items(schema.OPEN_VIDEO):
        if budget.spent():
            report.complete = False
            return
        try:
            video = VideoItem.from_item(item)
        except MalformedItem:
            continue  # `status` shows it; nothing here can repair it
        try:
            if video.state == schema.SUBMITTED:
                written = len(router.store.chunk_items(video.video_id))
                report.interrupted += _repair_submit(router, video, written, submitted_before)
            elif video.state in _SETTLED_FROM:
                settle(router.store, video)
            else:
                router.store.leave_open_index(video.video_id)
        except Exception:
            log.exception("sweep: video %s", video.video_id)
            report.errors += 1
