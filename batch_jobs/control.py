"""What a user does to a running video: retry failed steps, cancel. Conditional writes only; the router does the rest.

`retry` puts a failed step back to `submitted` with the next attempt (the router submits it from that stream record);
a failed S3 split (no chunks yet) is put back to `submitted` and its next attempt's job submitted here (the router
does not see video items);
`cancel` flags each chunk (no new claims), marks active steps `cancelled` and terminates their jobs (the video's own
per-video step too).
"""

from __future__ import annotations

from dataclasses import dataclass

from botocore.exceptions import BotoCoreError, ClientError

from batch_jobs import schema
from batch_jobs.batch import BatchClient, JobSpec
from batch_jobs.config import StackConfig
from batch_jobs.errors import PipelineError
from batch_jobs.lifecycle import refused_for_good
from batch_jobs.pipeline import Pipeline, step_index, video_steps
from batch_jobs.schema import ChunkItem, VideoItem
from batch_jobs.stack import Stack
from batch_jobs.store import Conflict, Lease, Store


@dataclass(frozen=True)
class Changed:
    chunks: tuple[int, ...]
    jobs: tuple[str, ...] = ()
    video_step: str | None = None  # the per-video step retried or cancelled


def _selected(store: Store, video_id: str, chunk: int | None) -> list[ChunkItem]:
    store.get_video(video_id)  # a clear "no video" error before anything else
    if chunk is not None:
        return [store.get_chunk(video_id, chunk)]
    return store.chunks(video_id)


def settle(store: Store, video: VideoItem, pipeline: Pipeline, lease: Lease | None = None) -> Waiting | None:
    """Once every chunk of a video has finished, it walks its per-video steps (each claimed here, its job submitted
    by the router from the claim's record), then is `done`; or `cancelled` if a `cancel` reached any chunk (one
    interrupted halfway too); else `failed` with the counts and the first failed chunk's reason, or the failed
    per-video step's. A failed video whose retried chunks then finish is settled again: a crash between `retry`'s
    two writes, or a retry landing between the router's count and this, still ends in the state the chunks are in.
    A claim is made under `lease` (its holder submits the job at once, see `advance`). Returns the per-video step
    that waits for its job (claimed here, or before), if any."""
    finished = video.chunks_done + video.chunks_failed
    if video.state not in (schema.RUNNING, schema.FAILED) or finished < video.chunk_count:
        return None
    if video.chunks_failed:
        state, error = _failure(store, video)
    else:
        walk = video_steps(pipeline)
        last = video.steps[-1] if video.steps else None
        if last is not None and last.state in schema.ACTIVE:
            return Waiting(video, claimed=False) if last.state == schema.SUBMITTED and not last.job_id else None
        if len(video.steps) < len(walk) and (last is None or last.state == schema.DONE):
            claimed = store.claim_video_step(video, walk[len(video.steps)].name, lease or Lease.fresh("settle"))
            return None if isinstance(claimed, Conflict) else Waiting(VideoItem.from_item(claimed), claimed=True)
        state, error = schema.DONE, None
        if last is not None and last.state != schema.DONE:
            state, error = last.state, f"{last.step} of the video {last.state}: {last.error or 'no reason recorded'}"
    if (state, error) != (video.state, video.error) or video.open:
        store.settle_video(video, state, error)
    return None


@dataclass(frozen=True)
class Waiting:
    """A video whose last per-video step waits for its job; `claimed`: by this very call, under its lease."""

    video: VideoItem
    claimed: bool


def advance(store: Store, batch: BatchClient, config: StackConfig, video: VideoItem, lease: Lease) -> None:
    """`settle`, then submit the job of a per-video step that waits for one (claimed here or before)."""
    waiting = settle(store, video, config.pipeline, lease)
    if waiting is not None:
        submit_video_step(store, batch, config, waiting, lease)


def submit_video_step(store: Store, batch: BatchClient, config: StackConfig, waiting: Waiting, lease: Lease) -> None:
    """Submit the job of the video's claimed per-video step under the step's lease, as the router does a chunk's: a
    claim made under this lease at once; an older one (its claimer may have died after SubmitJob) once the lease is
    taken, and found by its name before it is submitted. Its id is recorded. A refusal for good fails the step, and
    so the video, with AWS's reason; throttling raises (the caller's retry comes back)."""
    video = waiting.video
    pos, record = len(video.steps) - 1, video.steps[-1]
    if not waiting.claimed:
        if record.state != schema.SUBMITTED or record.job_id or lease.held_by_another(record):
            return
        if not store.lease_submit(video.video_id, None, pos, record.attempt, lease):
            return
    step = config.pipeline[step_index(config.pipeline, record.step)]
    queue, definition = config.queue_for(step), config.job_definition_for(step)
    spec = JobSpec(config.stack, queue, definition, video.video_id, 0, step.name, record.attempt)
    try:
        job_id = (None if waiting.claimed else batch.find_job(spec)) or batch.submit(spec)
    except ClientError as exc:
        reason = refused_for_good(exc)
        if reason is None:
            raise
        failed = store.mark_failed(
            video.video_id, None, pos, f"cannot submit job {spec.name}: {reason}", None, record.attempt
        )
        if not isinstance(failed, Conflict):
            settle(store, VideoItem.from_item(failed), config.pipeline)
        return
    recorded = store.record_job(video.video_id, None, pos, record.attempt, job_id)
    if isinstance(recorded, Conflict):
        steps = (recorded.item or {}).get("steps") or []
        owner = steps[pos].get("job_id") if len(steps) > pos else None
        if owner != job_id:
            batch.terminate(job_id, f"duplicate of job {owner}" if owner else "its step moved on")


def _failure(store: Store, video: VideoItem) -> tuple[str, str | None]:
    """`K of N chunks failed; chunk I <step>: <reason>`: the reason a user acts on, not only a count."""
    counts = f"{video.chunks_failed} of {video.chunk_count} chunks failed"
    chunks = store.chunk_items(video.video_id)
    if any(raw.get("cancelled") for raw in chunks):
        return schema.CANCELLED, "cancelled while it ran (a cancel that stopped halfway)"
    raw = next((raw for raw in chunks if raw.get("counted") == schema.FAILED), {})
    index = schema.chunk_index(str(raw.get("sk", "")))
    try:
        chunk = ChunkItem.from_item(raw)
    except schema.MalformedItem:  # a malformed or missing item: the count is all there is to say
        return schema.FAILED, f"{counts}; chunk {index}: {raw.get('error') or 'malformed item'}"
    reason = chunk.error or next((s.error for s in reversed(chunk.steps) if s.error), None)
    return schema.FAILED, f"{counts}; chunk {index} {chunk.last.step}: {reason or 'no reason recorded'}"


def retry(stack: Stack, video_id: str, chunk: int | None = None) -> Changed:
    """Retry the failed step of each chosen chunk (steps that are not failed are left alone); with no chunk chosen,
    also the video's failed per-video step, whose next attempt's job is submitted here (the router submits a
    chunk's from its record, but does not route video items)."""
    store = stack.store
    retried = [item.index for item in _selected(store, video_id, chunk) if retry_chunk(store, item)]
    video = store.get_video(video_id)
    if chunk is None and video.steps and video.steps[-1].state == schema.FAILED:
        lease = Lease.fresh("retry")
        again = store.retry_video_step(video, lease)
        if not isinstance(again, Conflict):
            submit_video_step(store, stack.batch, stack.config, Waiting(VideoItem.from_item(again), True), lease)
            return Changed(tuple(retried), video_step=video.steps[-1].step)
    return Changed(tuple(retried))


def retry_chunk(store: Store, chunk: ChunkItem) -> bool:
    """The next attempt of a chunk's failed step, then its video runs again; True if retried. A crash between the
    two writes leaves the video `failed` until the retried chunk is counted, which settles it again."""
    if chunk.last.state != schema.FAILED or chunk.cancelled or not store.retry(chunk):
        return False
    store.reopen_video(chunk.video_id)
    return True


def split_spec(config: StackConfig, video_id: str, attempt: int) -> JobSpec:
    """The split job of an S3 video: the pipeline's first step, as chunk 0, with the video's split attempt."""
    first = config.pipeline[0]
    queue, definition = config.queue_for(first), config.job_definition_for(first)
    return JobSpec(config.stack, queue, definition, video_id, 0, first.name, attempt)


def submit_split(stack: Stack, video_id: str, attempt: int) -> str:
    """Submit the split job of a `submitted` video. A refused SubmitJob fails the video with the reason (a crash
    before it leaves the video to the sweep): nothing else would ever settle a `submitted` video without a job."""
    try:
        return stack.batch.submit(split_spec(stack.config, video_id, attempt))
    except (ClientError, BotoCoreError) as exc:
        reason = f"cannot submit the split job: {' '.join(str(exc).split())}"
        stack.store.fail_split(video_id, None, reason, attempt)
        raise PipelineError(f"{reason} (video {video_id} failed)") from None


def split_failed(video: VideoItem) -> bool:
    """An S3 video that failed before its split finished (it has no chunk count): `retry` splits it again."""
    return video.state == schema.FAILED and video.chunk_count == 0 and video.source.startswith("s3://")


def retry_split(stack: Stack, video: VideoItem) -> str | None:
    """Split a failed S3 video again as the next attempt (jobs of earlier attempts are fenced out); returns the new
    job's id, or None when another retry got there first."""
    if isinstance(stack.store.retry_split(video.video_id, video.split_attempt), Conflict):
        return None
    return submit_split(stack, video.video_id, video.split_attempt + 1)


def cancel(stack: Stack, video_id: str) -> Changed:
    """Stop a video: no step is claimed after this, active steps become `cancelled`, their jobs are terminated."""
    store, cancelled, jobs = stack.store, [], []
    for item in _selected(store, video_id, None):
        flagged = store.flag_cancelled(video_id, item.index)
        if isinstance(flagged, Conflict):
            continue
        current = ChunkItem.from_item(flagged)
        pos, last = len(current.steps) - 1, current.last
        if last.state in schema.ACTIVE and not isinstance(store.mark_cancelled(video_id, item.index, pos), Conflict):
            cancelled.append(item.index)
            if last.job_id:
                stack.batch.terminate(last.job_id, "cancelled by derby-batch cancel")
                jobs.append(last.job_id)
    video = store.get_video(video_id)
    step: str | None = None
    if video.steps and video.steps[-1].state in schema.ACTIVE:
        pos, last = len(video.steps) - 1, video.steps[-1]
        if not isinstance(store.mark_cancelled(video_id, None, pos), Conflict):
            step = last.step
            if last.job_id:
                stack.batch.terminate(last.job_id, "cancelled by derby-batch cancel")
                jobs.append(last.job_id)
    store.set_video_state(video_id, schema.CANCELLED)
    return Changed(tuple(cancelled), tuple(jobs), step)
