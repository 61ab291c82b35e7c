"""The router's decisions, one per stream record or Batch event. Every write is conditional, so replays are no-ops.

Per chunk-step: claim (append `submitted`, with a short lease on submitting its job), submit the job, record its id.
A crash after the claim is resumed by the redelivery of the record that claimed (it owns the lease), or by the sweep
once the lease ran out; a resumed submit finds the job by its deterministic name before it submits one. The lease
keeps two submitters (the stream and the sweep) from both missing the other's job in ListJobs, which lags behind
SubmitJob, and both submitting.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from botocore.config import Config
from botocore.exceptions import ClientError

from batch_jobs import schema
from batch_jobs.batch import SUBMIT_PACE, BatchClient, JobSpec, Pacer
from batch_jobs.config import StackConfig, load_config
from batch_jobs.control import advance
from batch_jobs.errors import PipelineError
from batch_jobs.lifecycle import JOB_FINISHED, Next, next_step, outcome, refused_for_good
from batch_jobs.pipeline import PER_VIDEO, chunk_steps, step_index
from batch_jobs.schema import ChunkItem, MalformedItem, VideoItem
from batch_jobs.store import Conflict, Lease, Store
from router.events import JobStateChange, failure_reason

log = logging.getLogger("derby_batch.router")
# A connection per record thread of the handler. SubmitJob is paced to Batch's quota in this process; the quota is
# shared by every router at work, so a throttled call is retried with exponential backoff (botocore's standard mode).
_POOL = Config(max_pool_connections=40)
_RETRIED = _POOL.merge(Config(retries={"mode": "standard", "max_attempts": 10}))


@dataclass
class Router:
    config: StackConfig
    store: Store
    batch: BatchClient

    @classmethod
    def from_session(cls, session: Any, stack: str) -> Router:
        config = load_config(session.client("ssm"), stack)
        ddb = session.client("dynamodb", config=_POOL)
        batch = BatchClient(session.client("batch", config=_RETRIED), Pacer(SUBMIT_PACE))
        return cls(config, Store(ddb, config.table), batch)

    # -- stream records -----------------------------------------------------------------------------------------
    def on_chunk_change(self, new: dict[str, Any], old: dict[str, Any] | None, record_id: str = "") -> None:
        """React to a chunk item's new image; records that need no action make no AWS call. `record_id` (the
        stream record's event id) owns the submit leases this record takes."""
        if new.get("error") or new.get("cancelled"):
            return
        try:
            chunk = ChunkItem.from_item(new)
            pos, walk = len(chunk.steps) - 1, chunk_steps(self.config.pipeline)
            if pos >= len(walk) or walk[pos].name != chunk.last.step:
                raise MalformedItem(
                    f"step {pos} is {chunk.last.step!r}, not in the pipeline of stack {self.config.stack}"
                )
        except MalformedItem as exc:
            self.reject(new, str(exc))
            return
        action = next_step(chunk, self.config.pipeline)
        lease = Lease(record_id, datetime.now(UTC)) if record_id else Lease.fresh("router")
        if action is Next.SUBMIT:
            self.submit(chunk, pos, lease)
        elif not _changed_to(old, pos, chunk.last.state):
            return  # a later write to a step this chunk already moved past (its own record acted on it)
        elif action is Next.CLAIM:
            self.claim(chunk, pos + 1, lease)
        elif action is Next.COUNT:
            ok = outcome(chunk, self.config.pipeline)
            if ok or (ok is False and self._still(chunk, pos)):
                self.finish_chunk(chunk.video_id, chunk.index, ok=bool(ok), lease=lease)

    def claim(self, chunk: ChunkItem, pos: int, lease: Lease) -> bool:
        """Claim step `pos` under the lease and submit its job at once: no other submitter can have one for it, so
        no ListJobs. A claim this lease's owner made before its invocation died is submitted as a resumed one.
        True if claimed here."""
        claimed = self.store.claim_next(chunk, self.config.pipeline[pos].name, lease)
        if isinstance(claimed, Conflict):
            try:
                current = ChunkItem.from_item(claimed.item) if claimed.item else None
            except MalformedItem:
                return False  # its own record rejects it
            if current and len(current.steps) == pos + 1 and current.last.submitting_by == lease.owner:
                self.submit(current, pos, lease)
            return False
        self._find_or_submit(ChunkItem.from_item(claimed), pos, find=False)
        return True

    def submit(self, chunk: ChunkItem, pos: int, lease: Lease) -> bool:
        """Find or submit the job of a claimed step and record its id, under the step's lease: none is taken while
        another submitter's is live (it records the job, or its lease runs out and the sweep takes over). True if
        the lease was taken here."""
        if lease.held_by_another(chunk.steps[pos]):
            return False  # the image shows it (most often it is the claim's or the lease's own record)
        if not self.store.lease_submit(chunk.video_id, chunk.index, pos, chunk.steps[pos].attempt, lease):
            return False
        self._find_or_submit(chunk, pos, find=True)
        return True

    def _find_or_submit(self, chunk: ChunkItem, pos: int, find: bool) -> None:
        """A SubmitJob refused for good (a queue or job definition gone, bad parameters) fails the step at once
        with AWS's reason: a retry would meet the same refusal until the record expires. Throttling and 5xx errors
        raise, so the stream retries with backoff."""
        step, record = self.config.pipeline[pos], chunk.steps[pos]
        spec = JobSpec(
            stack=self.config.stack,
            queue=self.config.queue_for(step),
            definition=self.config.job_definition_for(step),
            video_id=chunk.video_id,
            chunk=chunk.index,
            step=step.name,
            attempt=record.attempt,
        )
        try:
            job_id = (self.batch.find_job(spec) if find else None) or self.batch.submit(spec)
        except ClientError as exc:
            reason = refused_for_good(exc)
            if reason is None:
                raise
            log.error("job %s refused: %s", spec.name, reason)
            self.store.mark_failed(
                chunk.video_id, chunk.index, pos, f"cannot submit job {spec.name}: {reason}", None, record.attempt
            )
            return
        recorded = self.store.record_job(chunk.video_id, chunk.index, pos, record.attempt, job_id)
        if isinstance(recorded, Conflict) and (owner := _job_id_at(recorded.item, pos)) != job_id:
            # Another job owns this attempt (a listing that lagged behind a submit), or the step moved on (a cancel
            # or a retry between our claim and our record): ours must not linger in the queue.
            self.batch.terminate(job_id, f"duplicate of job {owner}" if owner else "its step moved on")

    def _still(self, chunk: ChunkItem, pos: int) -> bool:
        """Whether the chunk's step is still as this record shows it: `retry` may have reopened a failed step before
        its record arrived, and counting that stale failure could settle the video `failed` while the retry runs."""
        current = self.store.get_chunk(chunk.video_id, chunk.index)
        return len(current.steps) == pos + 1 and (current.last.state, current.last.attempt) == (
            chunk.last.state,
            chunk.last.attempt,
        )

    def finish_chunk(self, video_id: str, index: int, ok: bool, lease: Lease | None = None) -> None:
        """Count the chunk as finished; the last one to finish settles the video's state, or claims its first
        per-video step and submits that job under `lease`. A malformed video item gets the reason recorded (shown by
        `status`) and is not raised: a retry could not heal it."""
        updated = self.store.finish_chunk(video_id, index, ok)
        if updated is None:
            log.warning("chunk %s of video %s has no video item", index, video_id)
            return
        try:
            video = VideoItem.from_item(updated)
        except MalformedItem as exc:
            log.error("malformed video item %s: %s", video_id, exc)
            self.store.record_item_error(schema.video_key(video_id), f"malformed video item: {exc}")
            return
        self.advance(video, lease or Lease.fresh("router"))

    def advance(self, video: VideoItem, lease: Lease) -> None:
        advance(self.store, self.batch, self.config, video, lease)

    def reject(self, item: dict[str, Any], reason: str) -> None:
        """Record why an item cannot be processed and count its chunk as failed; never retry it (it cannot heal)."""
        log.error("malformed chunk item %s %s: %s", item.get("pk"), item.get("sk"), reason)
        key = {"pk": str(item.get("pk")), "sk": str(item.get("sk"))}
        self.store.record_item_error(key, reason)
        video_id = key["pk"].removeprefix(schema.PK_PREFIX)
        index = schema.chunk_index(key["sk"])
        if key["pk"].startswith(schema.PK_PREFIX) and index is not None:
            self.finish_chunk(video_id, index, ok=False)

    # -- Batch events -------------------------------------------------------------------------------------------
    def on_job_state_change(self, change: JobStateChange) -> None:
        """A job that ended without recording `done` fails its step (conditional on that job owning the step)."""
        if change.status not in JOB_FINISHED:
            return
        try:
            pos = step_index(self.config.pipeline, change.step)
        except PipelineError as exc:
            log.error("job %s: %s", change.job_id, exc)
            return
        if pos == 0:
            self.store.fail_split(change.video_id, change.job_id, failure_reason(change), change.attempt)
            return
        if self.config.pipeline[pos].per == PER_VIDEO:
            self._video_job_ended(change, pos - len(chunk_steps(self.config.pipeline)))
            return
        self.store.mark_failed(
            change.video_id, change.chunk, pos, failure_reason(change), job_id=change.job_id, attempt=change.attempt
        )

    def _video_job_ended(self, change: JobStateChange, pos: int) -> None:
        """A per-video step's job ended: failed if it did not record `done`, then the video moves on (its next step
        is claimed and submitted, or it settles). Its stream records are not routed: this event, or the sweep, is
        what moves a video past its own steps."""
        reason = failure_reason(change)
        self.store.mark_failed(change.video_id, None, pos, reason, job_id=change.job_id, attempt=change.attempt)
        try:
            video = self.store.get_video(change.video_id)
        except MalformedItem as exc:
            log.error("malformed video item %s: %s", change.video_id, exc)
            return
        self.advance(video, Lease.fresh("router"))


def _changed_to(old: dict[str, Any] | None, pos: int, state: str) -> bool:
    """Whether this record is the one that moved step `pos` into `state` (so a later unrelated write is ignored)."""
    steps = (old or {}).get("steps")
    if not isinstance(steps, list) or len(steps) <= pos or not isinstance(steps[pos], dict):
        return True
    return steps[pos].get("state") != state


def _job_id_at(item: dict[str, Any] | None, pos: int) -> str | None:
    steps = (item or {}).get("steps") or []
    return steps[pos].get("job_id") if len(steps) > pos and isinstance(steps[pos], dict) else None
