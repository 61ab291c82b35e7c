"""A video counts its chunks with counters kept exact by each chunk's `counted` mark, and routes its chunks at once.

The counters replace sets of chunk indexes that grew with the video towards DynamoDB's 400 KB item limit; each count
is a transaction of the chunk's mark and the video's counter, so replays count nothing twice.
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

from pipeline_clips import make_clip

from batch_jobs import control, schema
from batch_jobs.pipeline import chunk_steps
from batch_jobs.schema import ChunkItem, StepRecord, VideoItem
from batch_jobs.store import now_iso
from batch_jobs.submit import submit_file
from devtools.drive import World
from router import handler

PIPELINE = ("timesplit", "probe", "summarize")


def _video(world: World, video_id: str, chunks: int) -> None:
    world.store.put_video_once(
        VideoItem(video_id, "v.mp4", "/v.mp4", 4.0, 25.0, 1, chunks, PIPELINE, now_iso(), schema.RUNNING)
    )


def _chunk(world: World, video_id: str, index: int, state: str) -> ChunkItem:
    steps = (StepRecord("timesplit", schema.DONE), StepRecord("probe", state, job_id="job-1"))
    chunk = ChunkItem(video_id, index, f"k{index}.mp4", 0.0, 1.0, 0, 25, steps)
    world.store.put_chunk(chunk)
    return chunk


def _open_keys(world: World, kind: str) -> set[str]:
    return {f"{i['pk']} {i['sk']}" for i in world.store.open_items(kind)}


def test_a_replayed_count_counts_nothing_and_the_chunk_leaves_the_open_index(world: World) -> None:
    _video(world, "v-replay", 2)
    _chunk(world, "v-replay", 0, schema.FAILED)
    assert _open_keys(world, schema.OPEN_CHUNK) == {"video#v-replay chunk#00000"}
    for _ in range(3):
        world.store.finish_chunk("v-replay", 0, ok=False)
    video = world.store.get_video("v-replay")
    assert (video.chunks_done, video.chunks_failed, video.open) == (0, 1, True)
    assert world.store.get_chunk("v-replay", 0).counted == schema.FAILED
    assert _open_keys(world, schema.OPEN_CHUNK) == set()
    assert _open_keys(world, schema.OPEN_VIDEO) == {"video#v-replay video"}


def test_retry_takes_back_the_failure_and_a_stale_count_moves_to_done(world: World) -> None:
    _video(world, "v-retry", 1)
    _chunk(world, "v-retry", 0, schema.FAILED)
    world.store.finish_chunk("v-retry", 0, ok=False)
    assert control.retry(world.stack, "v-retry").chunks == (0,)
    chunk = world.store.get_chunk("v-retry", 0)
    assert (chunk.last.state, chunk.last.attempt, chunk.counted) == (schema.SUBMITTED, 2, None)
    video = world.store.get_video("v-retry")
    assert (video.state, video.chunks_failed) == (schema.RUNNING, 0)
    assert _open_keys(world, schema.OPEN_CHUNK) == {"video#v-retry chunk#00000"}
    # A failure counted again (its record arrived late), then the retried attempt ends done: one count, done.
    world.store.finish_chunk("v-retry", 0, ok=False)
    world.store.finish_chunk("v-retry", 0, ok=True)
    video = world.store.get_video("v-retry")
    assert (video.chunks_done, video.chunks_failed) == (1, 0)
    control.settle(world.store, video, chunk_steps(world.config.pipeline))  # counts only: no per-video step
    video = world.store.get_video("v-retry")
    assert (video.state, video.open) == (schema.DONE, False)
    assert _open_keys(world, schema.OPEN_VIDEO) == set()


def test_a_retry_that_lost_the_race_to_a_count_writes_nothing(world: World) -> None:
    """`retry` read the chunk before its failure was counted: its transaction's condition on the mark fails."""
    _video(world, "v-race", 1)
    read = _chunk(world, "v-race", 0, schema.FAILED)
    world.store.finish_chunk("v-race", 0, ok=False)
    assert world.store.retry(read) is False
    assert world.store.get_video("v-race").chunks_failed == 1
    assert world.store.retry(world.store.get_chunk("v-race", 0)) is True
    assert world.store.get_video("v-race").chunks_failed == 0


def test_records_of_different_chunks_are_routed_at_once(world: World, tmp_path: Path) -> None:
    """One batch of a video's records is handled on the router's threads: calls overlap, and every chunk-step still
    gets exactly one job."""
    clip = tmp_path / "many.mp4"
    make_clip(clip, seconds=12, gop=25)
    submitted = submit_file(world.stack, clip, tmp_path / "work", chunk_seconds=1.0)
    router = handler.get_router()
    active, most, lock = 0, 0, threading.Lock()

    def enter(**_: Any) -> None:
        nonlocal active, most
        with lock:
            active += 1
            most = max(most, active)

    def leave(**_: Any) -> None:
        nonlocal active
        with lock:
            active -= 1

    events = router.store.client.meta.events
    events.register("before-call.dynamodb.UpdateItem", enter)
    events.register("after-call.dynamodb.UpdateItem", leave)
    try:
        world.deliver(world.read_stream(), batch_size=100)  # the claims of all chunks, in one batch
    finally:
        events.unregister("before-call.dynamodb.UpdateItem", enter)
        events.unregister("after-call.dynamodb.UpdateItem", leave)
    assert submitted.chunks == 12 and most > 1
    world.pump()
    video = world.store.get_video(submitted.video_id)
    assert (video.state, video.chunks_done) == (schema.DONE, 12)
    names = [j["jobName"] for j in world.jobs() if j["parameters"]["video_id"] == submitted.video_id]
    assert len(names) == len(set(names)) == 2 * 12 + 1  # and the video's stitch
