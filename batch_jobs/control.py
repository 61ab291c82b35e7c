"""What a user does to a running video: retry failed steps, cancel. Conditional writes only; the router does the rest.

`retry` puts a failed step back to `submitted` with the next attempt (the router submits it from that stream record);
a failed S3 split (no chunks yet) is put back to `submitted` and its next attempt's job submitted here (the router
does not see video items);
`cancel` flags each chunk (no new claims), marks active steps `cancelled` and terminates their jobs.
"""

from __future__ import annotations

from dataclasses import dataclass

from botocore.exceptions import BotoCoreError, ClientError

from batch_jobs import schema
from batch_jobs.batch import JobSpec
from batch_jobs.config import StackConfig
from batch_jobs.errors import PipelineError
from batch_jobs.schema import ChunkItem, VideoItem
from batch_jobs.stack import Stack
from batch_jobs.store import Conflict, Store


@dataclass(frozen=True)
class Changed:
    chunks: tuple[int, ...]
    jobs: tuple[str, ...] = ()


def _selected(store: Store, video_id: str, chunk: int | None) -> list[ChunkItem]:
    store.get_video(video_id)  # a clear "no video" error before anything else
    if chunk is not None:
        return [store.get_chunk(video_id, chunk)]
    return store.chunks(video_id)


def settle(store: Store, video: VideoItem) -> None:
    """Once every chunk of a video has finished, it is `done`; or `cancelled` if a `cancel` reached any chunk (one
    interrupted halfway too); else `failed` with the counts and the first failed chunk's reason. A failed video whose
    retried chunks then finish is settled again: a crash between `retry`'s two writes, or a retry landing between
    the router's count and this, still ends in the state the chunks are in."""
    finished = video.chunks_done + video.chunks_failed
    if video.state not in (schema.RUNNING, schema.FAILED) or finished < video.chunk_count:
        return
    state, error = (schema.DONE, None) if not video.chunks_failed else _failure(store, video)
    if (state, error) != (video.state, video.error) or video.open:
        store.settle_video(video, state, error)


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


def retry(store: Store, video_id: str, chunk: int | None = None) -> Changed:
    """Retry the failed step of each chosen chunk (steps that are not failed are left alone)."""
    retried = [item.index for item in _selected(store, video_id, chunk) if retry_chunk(store, item)]
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
    store.set_video_state(video_id, schema.CANCELLED)
    return Changed(tuple(cancelled), tuple(jobs))
