"""The sweep's pass over open videos: what a lost settle (or an interrupted submit) leaves undone.

Chunks are counted by the chunk pass (`sweep.py`), which runs first; every count puts its video in the open index, so
a video whose settling write was lost (a crash right after the last count) is settled here, and one whose per-video
step was claimed but never submitted (past the grace), or whose job's end event was lost, moves on here. A video that
a late count put back after it settled leaves the index.

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
from batch_jobs.control import split_spec
from batch_jobs.lifecycle import JOB_FAILED, JOB_FINISHED
from batch_jobs.schema import MalformedItem, VideoItem
from batch_jobs.store import Lease
from router.core import Router
from router.events import JobStateChange

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
            router.advance(VideoItem.from_item(started), Lease.fresh("sweep"))
        return False
    if datetime.fromisoformat(video.progress_at or video.created_at) > before:
        return False  # a submit that wrote items within the grace is still at work
    reason = f"submit interrupted: {written} of {video.chunk_count} chunk items written; submit the file again"
    return isinstance(router.store.fail_interrupted(video, reason), dict)


def repair_videos(
    router: Router, submitted_before: datetime, lease: Lease, budget: Budget, report: SweepReport
) -> None:
    watched: dict[str, VideoItem] = {}  # job id -> the video whose active per-video step it owns
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
                _repair_video_steps(router, video, submitted_before, lease, watched)
            else:
                router.store.leave_open_index(video.video_id)
        except Exception:
            log.exception("sweep: video %s", video.video_id)
            report.errors += 1
    _end_lost_video_jobs(router, watched, report)


def _repair_video_steps(
    router: Router, video: VideoItem, before: datetime, lease: Lease, watched: dict[str, VideoItem]
) -> None:
    """Settle, or move the video through its per-video steps: a claim older than the grace is submitted (under the
    sweep's lease), a step whose job is active is watched."""
    last = video.steps[-1] if video.steps else None
    if last is not None and last.state in schema.ACTIVE and last.job_id:
        watched[last.job_id] = video
    elif last is not None and last.state == schema.SUBMITTED and last.claimed_at:
        if datetime.fromisoformat(last.claimed_at) <= before:
            router.advance(video, lease)
    else:
        router.advance(video, lease)


def _end_lost_video_jobs(router: Router, watched: dict[str, VideoItem], report: SweepReport) -> None:
    """The lost Batch event of a per-video step's job that ended (or that Batch no longer knows), sent again."""
    if not watched:
        return
    try:
        jobs = {info.job_id: info for info in router.batch.describe(list(watched))}
    except Exception:
        log.exception("sweep: describing %d per-video jobs", len(watched))
        report.errors += 1
        return
    for job_id, video in watched.items():
        info = jobs.get(job_id)
        if info is not None and info.status not in JOB_FINISHED:
            continue
        last = video.steps[-1]
        change = JobStateChange(
            job_id=job_id,
            job_name=info.name if info else "",
            status=info.status if info else JOB_FAILED,
            reason=info.reason if info else "job not found in AWS Batch",
            exit_code=None,
            step=last.step,
            video_id=video.video_id,
            chunk=0,
            attempt=last.attempt,
        )
        try:
            router.on_job_state_change(change)
            report.ended += 1
        except Exception:
            log.exception("sweep: job %s of video %s", job_id, video.video_id)
            report.errors += 1
