"""A periodic repair pass for what the stream cannot redo: records older than the stream's 24 h, lost events.

It reads the open index (keys only, paginated, each page of items read back consistently): the chunks not yet counted
on their video and the videos not yet settled, never the table's history. For each open chunk, `lifecycle` says what
it waits for, as it does for the router: a finished chunk is counted (its last record was lost), a claim without a
job is submitted, a `done` step without a next claim is claimed, and a step whose job has ended (or vanished) without
recording `done` is failed, exactly as its Batch event would. A claim younger than `CLAIM_GRACE` is left alone: the
router that made it is likely still submitting its job; an older one is submitted under the step's lease, like the
router does (the stream may still reach it: a backlog of claims waits for the SubmitJob quota). Then each open video
settles (`sweep_videos.py`).

Each item is repaired on its own: one that raises is logged and counted, and the pass goes on. The pass stops once
its time budget is spent (the Lambda's remaining time, less a margin) and says so; the next pass starts over.
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from batch_jobs import schema
from batch_jobs.errors import PipelineError
from batch_jobs.lifecycle import JOB_ACTIVE, JOB_FAILED, JOB_FINISHED, Next, next_step, outcome
from batch_jobs.pipeline import PER_VIDEO, chunk_steps, step_index
from batch_jobs.schema import ChunkItem
from batch_jobs.store import SUBMIT_LEASE_SECONDS, Lease
from router.core import Router
from router.events import JobStateChange
from router.sweep_videos import repair_videos

log = logging.getLogger("derby_batch.sweep")

# Far longer than a router invocation takes from claim to recorded job (its Lambda timeout is 60 s).
CLAIM_GRACE = timedelta(minutes=5)
BUDGET_SECONDS = 240.0  # the deployed router's timeout is 300 s for a scheduled invocation


@dataclass
class Budget:
    """The pass's deadline on the monotonic clock; `spent()` once it has passed."""

    seconds: float
    clock: Callable[[], float] = time.monotonic
    deadline: float = field(init=False)

    def __post_init__(self) -> None:
        self.deadline = self.clock() + self.seconds

    def spent(self) -> bool:
        return self.clock() >= self.deadline


@dataclass
class SweepReport:
    chunks: int = 0
    submitted: int = 0
    claimed: int = 0
    ended: int = 0  # steps whose job ended without `done`: failed as their Batch event would
    counted: int = 0  # finished chunks whose video had not counted them (their last record was lost)
    orphans: int = 0  # queued or running jobs no chunk owns (a router died between SubmitJob and recording): ended
    interrupted: int = 0  # videos whose submit stopped before all chunk items or the split job were written: failed
    errors: int = 0  # items whose repair raised (logged); the next pass tries them again
    complete: bool = True  # False when the budget ran out before every item was seen


def sweep(
    router: Router, grace: timedelta = CLAIM_GRACE, budget: Budget | None = None, now: datetime | None = None
) -> SweepReport:
    """One repair pass; `now` is the wall clock the grace is measured on (the simulation moves it)."""
    report, budget = SweepReport(), budget or Budget(BUDGET_SECONDS)
    now = now or datetime.now(UTC)
    claimed_before = now - grace
    lease = Lease(f"sweep-{uuid.uuid4()}", now, SUBMIT_LEASE_SECONDS)
    watched: dict[str, ChunkItem] = {}
    for raw in router.store.open_items(schema.OPEN_CHUNK):
        if budget.spent():
            report.complete = False
            return report
        report.chunks += 1
        try:
            _repair_chunk(router, raw, lease, claimed_before, watched, report)
        except Exception:
            log.exception("sweep: chunk %s of %s", raw.get("sk"), raw.get("pk"))
            report.errors += 1
    try:
        _end_lost_jobs(router, watched, report)
    except Exception:
        log.exception("sweep: describing %d jobs", len(watched))
        report.errors += 1
    _terminate_orphans(router, claimed_before, budget, report)
    repair_videos(router, claimed_before, lease, budget, report)
    return report


def _repair_chunk(
    router: Router,
    raw: dict[str, Any],
    lease: Lease,
    before: datetime,
    watched: dict[str, ChunkItem],
    report: SweepReport,
) -> None:
    try:
        chunk = ChunkItem.from_item(raw)
    except schema.MalformedItem as exc:
        if not raw.get("error"):
            router.reject(raw, str(exc))  # what its record did, or would have done had it arrived
            return
        chunk = None
    if chunk is None or chunk.error:  # malformed: counted failed, as the router's `reject` does
        index = schema.chunk_index(str(raw.get("sk", "")))
        if index is not None:
            router.finish_chunk(str(raw.get("pk", "")).removeprefix(schema.PK_PREFIX), index, ok=False)
            report.counted += 1
        return
    pos, last = len(chunk.steps) - 1, chunk.last
    action = next_step(chunk, router.config.pipeline)
    ok = outcome(chunk, router.config.pipeline)
    if ok is not None:
        router.finish_chunk(chunk.video_id, chunk.index, ok)  # its last record's count was lost
        report.counted += 1
    elif action is Next.SUBMIT:
        if last.claimed_at and datetime.fromisoformat(last.claimed_at) > before:
            return
        report.submitted += router.submit(chunk, pos, lease)
    elif action is Next.CLAIM:
        report.claimed += router.claim(chunk, pos + 1, lease)
    elif action is Next.WATCH and last.job_id:
        watched[last.job_id] = chunk


def _end_lost_jobs(router: Router, watched: dict[str, ChunkItem], report: SweepReport) -> None:
    """Fail the steps whose job ended, or that Batch no longer knows, as their lost Batch event would."""
    jobs = {info.job_id: info for info in router.batch.describe(list(watched))}
    for job_id, chunk in watched.items():
        info = jobs.get(job_id)
        if info is not None and info.status not in JOB_FINISHED:
            continue
        last = chunk.last
        change = JobStateChange(
            job_id=job_id,
            job_name=info.name if info else "",
            status=info.status if info else JOB_FAILED,
            reason=info.reason if info else "job not found in AWS Batch",
            exit_code=None,
            step=last.step,
            video_id=chunk.video_id,
            chunk=chunk.index,
            attempt=last.attempt,
        )
        try:
            router.on_job_state_change(change)
            report.ended += 1
        except Exception:
            log.exception("sweep: job %s of chunk %s of video %s", job_id, chunk.index, chunk.video_id)
            report.errors += 1


def _terminate_orphans(router: Router, before: datetime, budget: Budget, report: SweepReport) -> None:
    """End the queued or running jobs that their chunk (or video, for a per-video step) does not own: a router that
    died between SubmitJob and recording the id, while ListJobs lagged, left a job that a replay submitted again. It
    would be fenced out when it starts, but it holds a place in the queue (and a GPU) until then. Jobs younger than
    the grace may still be recorded by the router that submitted them."""
    cutoff = before.timestamp() * 1000
    pipeline = router.config.pipeline
    for queue in dict.fromkeys(router.config.job_queues.values()):
        for job in router.batch.list_stack_jobs(queue, router.config.stack):
            if budget.spent():
                report.complete = False
                return
            if job.status not in JOB_ACTIVE or job.created_at > cutoff or job.video_id is None or job.chunk is None:
                continue
            try:
                pos = step_index(pipeline, job.step or "")
                if pos == 0:
                    continue  # an S3 split job is fenced on its video item, and the video's own repair watches it
                owner = _owner(router, job.video_id, job.chunk, pos, job.attempt)
                if owner != job.job_id:
                    reason = f"orphan: step {job.step} of chunk {job.chunk} (attempt {job.attempt}) is owned by {owner}"
                    router.batch.terminate(job.job_id, reason)
                    report.orphans += 1
            except Exception:
                log.exception("sweep: job %s", job.name)
                report.errors += 1


def _owner(router: Router, video_id: str, index: int, pos: int, attempt: int | None) -> str | None:
    """The job id the chunk (or, for a per-video step, the video) records for this step and attempt, or a word for
    why none does."""
    pipeline = router.config.pipeline
    try:
        if pipeline[pos].per == PER_VIDEO:
            steps, pos = router.store.get_video(video_id).steps, pos - len(chunk_steps(pipeline))
        else:
            steps = router.store.get_chunk(video_id, index).steps
    except PipelineError:
        return "no item"
    if pos >= len(steps) or steps[pos].attempt != attempt:
        return "another attempt"
    return steps[pos].job_id or f"no job ({steps[pos].state})"
