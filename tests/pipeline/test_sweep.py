"""The sweep repairs what the stream can no longer redo: lost records (older than 24 h) and lost Batch events."""

from __future__ import annotations

from collections import Counter
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from botocore.exceptions import ClientError

from batch_jobs import control, schema
from batch_jobs.batch import BatchClient
from batch_jobs.schema import VideoItem
from batch_jobs.store import deserialize
from batch_jobs.submit import submit_file, submit_s3
from devtools.drive import World
from router import handler
from router.sweep import sweep


def throttled(**_: Any) -> None:
    raise ClientError({"Error": {"Code": "TooManyRequestsException", "Message": "Too Many Requests"}}, "SubmitJob")


def test_sweep_finishes_a_walk_whose_records_and_events_were_lost(world: World, clip: Path, tmp_path: Path) -> None:
    submitted = submit_file(world.stack, clip, tmp_path, chunk_seconds=5)
    world.read_stream()  # the chunk items' records expire unseen
    router = handler.get_router()
    router.batch.client.meta.events.register("before-call.batch.SubmitJob", throttled)
    report = sweep(router)  # it claims each chunk's next step, and its SubmitJob fails
    router.batch.client.meta.events.unregister("before-call.batch.SubmitJob", throttled)
    assert (report.chunks, report.claimed, report.errors) == (2, 0, 2)
    assert [(c.last.state, c.last.job_id) for c in world.store.chunks(submitted.video_id)] == [("submitted", None)] * 2
    world.read_stream()  # ...and so do the claims' records
    assert sweep(router).submitted == 0  # a young claim is its claimer's to submit
    assert sweep(router, grace=timedelta(0)).submitted == 0  # ... while its claimer's lease lasts
    report = sweep(router, now=datetime.now(UTC) + timedelta(minutes=6))  # past the grace and the lease
    assert (report.submitted, report.ended) == (2, 0)
    jobs = world.jobs()
    assert len(jobs) == 2
    world.run_job(jobs[0], send_event=False)  # succeeds; its event is lost (harmless)
    world.ran.add(jobs[1]["jobId"])  # never runs: moto says SUCCEEDED, the event is lost
    world.read_stream()
    report = sweep(handler.get_router())
    assert (report.claimed, report.ended) == (1, 1)
    lost = world.store.get_chunk(submitted.video_id, int(jobs[1]["parameters"]["chunk"]))
    assert lost.last.state == schema.FAILED and "exited without recording done" in (lost.last.error or "")
    world.pump()  # from here the stream works again
    states = Counter(c.last.state for c in world.store.chunks(submitted.video_id))
    assert states == Counter({schema.DONE: 1, schema.FAILED: 1})
    assert sweep(handler.get_router()) == type(report)(0, 0, 0, 0, 0, 0)  # nothing open: the pass reads nothing


def test_the_scheduled_event_runs_the_sweep(world: World, clip: Path, tmp_path: Path) -> None:
    submitted = submit_file(world.stack, clip, tmp_path, chunk_seconds=5)
    world.read_stream()  # the records expire unseen: only the schedule can move the chunks on
    event = {
        "version": "0",
        "id": "53dc4d37-cffa-4f76-80c9-8b7d4a4d2eaa",
        "detail-type": "Scheduled Event",
        "source": "aws.events",
        "account": "123456789012",
        "time": "2026-11-28T12:00:00Z",
        "region": world.config.region,
        "resources": [f"arn:aws:events:{world.config.region}:123456789012:rule/{world.config.stack}-sweep"],
        "detail": {},
    }
    expected = {"chunks": 2, "submitted": 0, "claimed": 2, "ended": 0, "counted": 0, "interrupted": 0}
    expected |= {"orphans": 0, "errors": 0, "complete": True}
    assert handler.lambda_handler(event, None) == expected
    claims = [(c.last.step, c.last.state) for c in world.store.chunks(submitted.video_id)]
    assert claims == [("probe", schema.SUBMITTED)] * 2
    assert {c.last.job_id for c in world.store.chunks(submitted.video_id)} == {j["jobId"] for j in world.jobs()}


def _counts_the_chunk(record: dict[str, Any]) -> bool:
    """The record that counts a chunk on its video: its last pipeline step done, or a step failed."""
    steps = deserialize(record["dynamodb"].get("NewImage", {})).get("steps") or [{}]
    return steps[-1].get("state") == schema.FAILED or (steps[-1].get("state") == schema.DONE and len(steps) == 3)


def test_sweep_settles_a_video_whose_final_records_were_lost(world: World, clip: Path, tmp_path: Path) -> None:
    submitted = submit_file(world.stack, clip, tmp_path, chunk_seconds=5)
    lost = world.store.get_chunk(submitted.video_id, 1).key
    world.session.client("s3").delete_object(Bucket=world.config.bucket, Key=lost)  # chunk 1 fails in its probe
    for _ in range(10):  # the pipeline walks, but the stream loses each record that would count a chunk
        records = [r for r in world.read_stream() if not _counts_the_chunk(r)]
        world.deliver(records)
        fresh = [j for j in world.jobs() if j["jobId"] not in world.ran]
        for job in fresh:
            world.run_job(job)
        if not records and not fresh:
            break
    video = world.store.get_video(submitted.video_id)
    assert (video.state, video.chunks_done, video.chunks_failed) == (schema.RUNNING, 0, 0)
    report = sweep(handler.get_router())
    assert (report.counted, report.interrupted) == (2, 0)
    video = world.store.get_video(submitted.video_id)
    assert video.state == schema.FAILED and video.error
    assert video.error.startswith("1 of 2 chunks failed; chunk 1 probe: missing S3 object s3://")
    assert (video.chunks_done, video.chunks_failed) == (1, 1)
    assert sweep(handler.get_router()).counted == 0


class Interrupted(BaseException):
    """Ctrl-C (or a lost machine) in the middle of `submit`."""


def interrupt(**_: object) -> None:
    raise Interrupted


def _submit_interrupted_at(world: World, clip: Path, tmp_path: Path, operation: str) -> VideoItem:
    """A submit stopped before its first DynamoDB call of `operation`; its video item, as it was left."""
    dynamodb = world.store.client
    dynamodb.meta.events.register(f"before-call.dynamodb.{operation}", interrupt)
    with pytest.raises(Interrupted):
        submit_file(world.stack, clip, tmp_path, chunk_seconds=5)
    dynamodb.meta.events.unregister(f"before-call.dynamodb.{operation}", interrupt)
    (video,) = world.store.videos()
    return video


def _interrupt_submit(world: World, clip: Path, tmp_path: Path) -> VideoItem:
    """A submit stopped after its video item, before its chunk items (one transaction per 99 items)."""
    video = _submit_interrupted_at(world, clip, tmp_path, "TransactWriteItems")
    assert (video.state, video.chunk_count, len(world.store.chunks(video.video_id))) == (schema.SUBMITTED, 2, 0)
    return video


def test_sweep_fails_a_submit_interrupted_before_its_items(world: World, clip: Path, tmp_path: Path) -> None:
    video = _interrupt_submit(world, clip, tmp_path)
    assert sweep(handler.get_router()).interrupted == 0  # a young submit may still be writing its chunk items
    later = datetime.now(UTC) + timedelta(minutes=6)
    assert sweep(handler.get_router(), now=later).interrupted == 1
    video = world.store.get_video(video.video_id)
    assert video.state == schema.FAILED
    assert video.error == "submit interrupted: 0 of 2 chunk items written; submit the file again"


def test_sweep_never_fails_a_submit_that_progresses_while_it_looks(world: World, clip: Path, tmp_path: Path) -> None:
    """The sweep reads the video, the slow submit marks progress, then the sweep would fail it: its write is
    conditional on the progress it read, so it writes nothing."""
    video = _interrupt_submit(world, clip, tmp_path)
    router = handler.get_router()

    def submit_progresses(**_: object) -> None:
        router.store.client.meta.events.unregister("before-call.dynamodb.UpdateItem", submit_progresses)
        assert world.store.mark_progress(video.video_id)

    router.store.client.meta.events.register("before-call.dynamodb.UpdateItem", submit_progresses)
    assert sweep(router, grace=timedelta(0)).interrupted == 0
    assert world.store.get_video(video.video_id).state == schema.SUBMITTED
    assert sweep(router, now=datetime.now(UTC) + timedelta(minutes=4)).interrupted == 0  # progress, not creation
    assert sweep(router, now=datetime.now(UTC) + timedelta(minutes=6)).interrupted == 1


def test_sweep_starts_a_submit_that_wrote_every_item(world: World, clip: Path, tmp_path: Path) -> None:
    """Only the last write (`running`) was lost: every chunk is there, so the video runs instead of failing."""
    video = _submit_interrupted_at(world, clip, tmp_path, "UpdateItem")
    assert video.state == schema.SUBMITTED
    world.pump()
    assert sweep(handler.get_router(), grace=timedelta(0)).interrupted == 0
    world.pump()  # the stitch job the sweep's settle submitted
    assert world.store.get_video(video.video_id).state == schema.DONE


def test_sweep_fails_an_s3_submit_interrupted_before_its_split_job(world: World, clip: Path) -> None:
    s3 = world.session.client("s3")
    s3.upload_file(str(clip), world.config.bucket, "incoming/game.mp4")
    batch = BatchClient(world.session.client("batch"))
    batch.client.meta.events.register("before-call.batch.SubmitJob", interrupt)
    with pytest.raises(Interrupted):
        submit_s3(replace(world.stack, batch=batch), f"s3://{world.config.bucket}/incoming/game.mp4")
    batch.client.meta.events.unregister("before-call.batch.SubmitJob", interrupt)
    (video,) = world.store.videos()
    assert (video.state, world.jobs()) == (schema.SUBMITTED, [])
    assert sweep(handler.get_router()).interrupted == 0  # a young submit may still be submitting its split job
    assert sweep(handler.get_router(), grace=timedelta(0)).interrupted == 1
    video = world.store.get_video(video.video_id)
    assert (video.state, video.error) == (schema.FAILED, "submit interrupted: the split job was never submitted")
    assert control.retry_split(replace(world.stack, batch=batch), video)
    assert sweep(handler.get_router(), grace=timedelta(0)).interrupted == 0  # its split job waits in the queue
    world.pump()
    assert world.store.get_video(video.video_id).state == schema.DONE
