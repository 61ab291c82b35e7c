"""What a user does to a running video: retry failed steps, cancel. Conditional writes only; the router does the rest.

`retry` puts a failed step back to `submitted` with the next attempt (the router submits it from that stream record);
`cancel` flags each chunk (no new claims), marks active steps `cancelled` and terminates their jobs.
"""

from __future__ import annotations

from dataclasses import dataclass

from batch_jobs import schema
from batch_jobs.batch import BatchClient
from batch_jobs.schema import ChunkItem, VideoItem
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
    """Once every chunk of a running video has finished, the video is `done`, or `failed` with counts."""
    finished = len(video.chunks_done | video.chunks_failed)
    if video.state != schema.RUNNING or finished < video.chunk_count:
        return
    failed = len(video.chunks_failed)
    if failed:
        store.set_video_state(video.video_id, schema.FAILED, f"{failed} of {video.chunk_count} chunks failed")
    else:
        store.set_video_state(video.video_id, schema.DONE)


def retry(store: Store, video_id: str, chunk: int | None = None) -> Changed:
    """Retry the failed step of each chosen chunk (steps that are not failed are left alone)."""
    retried = []
    for item in _selected(store, video_id, chunk):
        pos, last = len(item.steps) - 1, item.last
        if last.state != schema.FAILED or item.cancelled:
            continue
        if not isinstance(store.retry(video_id, item.index, pos, last.attempt), Conflict):
            store.reopen_chunk(video_id, item.index)
            retried.append(item.index)
    return Changed(tuple(retried))


def cancel(store: Store, batch: BatchClient, video_id: str) -> Changed:
    """Stop a video: no step is claimed after this, active steps become `cancelled`, their jobs are terminated."""
    cancelled, jobs = [], []
    for item in _selected(store, video_id, None):
        flagged = store.flag_cancelled(video_id, item.index)
        if isinstance(flagged, Conflict):
            continue
        current = ChunkItem.from_item(flagged)
        pos, last = len(current.steps) - 1, current.last
        if last.state in schema.ACTIVE and not isinstance(store.mark_cancelled(video_id, item.index, pos), Conflict):
            cancelled.append(item.index)
            if last.job_id:
                batch.terminate(last.job_id, "cancelled by derby-batch cancel")
                jobs.append(last.job_id)
    store.set_video_state(video_id, schema.CANCELLED)
    return Changed(tuple(cancelled), tuple(jobs))
