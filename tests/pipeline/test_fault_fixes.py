"""The fault sequences issue "Reliability" named, each replayed against moto: each test failed before its fix."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from botocore.exceptions import ClientError

from batch_jobs import control, schema
from batch_jobs.submit import Submitted, submit_file
from devtools.drive import World, batch_event
from router import handler
from router.sweep import Budget, sweep


def _submit(world: World, clip: Path, tmp_path: Path) -> Submitted:
    return submit_file(world.stack, clip, tmp_path, chunk_seconds=5)


class Crash(BaseException):
    """The process running `retry` dies here."""


def test_a_submitjob_refused_for_good_fails_the_step_at_once_with_aws_reason(
    world: World, clip: Path, tmp_path: Path
) -> None:
    """The queue is gone: the step fails with AWS's reason on the first delivery, instead of the stream retrying the
    record until it is dropped (and the video stays `running` for good)."""
    world.session.client("batch").delete_job_queue(jobQueue=world.config.job_queues["cpu"])
    submitted = _submit(world, clip, tmp_path)
    world.deliver(world.read_stream())  # chunk items -> claims
    world.deliver(world.read_stream(), batch_size=1)  # claims -> SubmitJob refused
    assert not [r for r in world.reports if "dropped" in r]  # nothing was retried to death
    for chunk in world.store.chunks(submitted.video_id):
        step = chunk.steps[1]
        assert step.state == schema.FAILED and step.job_id is None
        assert step.error and "cannot submit job" in step.error and world.config.job_queues["cpu"] in step.error
    world.deliver(world.read_stream())  # the failures are counted
    video = world.store.get_video(submitted.video_id)
    assert video.state == schema.FAILED and video.error and world.config.job_queues["cpu"] in video.error


def test_a_throttled_submitjob_is_retried_not_failed(world: World, clip: Path, tmp_path: Path) -> None:
    submitted = _submit(world, clip, tmp_path)
    batch = handler.get_router().batch.client
    throttled = 0

    def throttle(**_: Any) -> None:
        nonlocal throttled
        if throttled < 2:
            throttled += 1
            error: Any = {"Error": {"Code": "TooManyRequestsException", "Message": "Too Many Requests"}}
            raise ClientError(error, "SubmitJob")

    batch.meta.events.register("before-call.batch.SubmitJob", throttle)
    try:
        world.pump()
    finally:
        batch.meta.events.unregister("before-call.batch.SubmitJob", throttle)
    assert throttled == 2
    assert world.store.get_video(submitted.video_id).state == schema.DONE


def _failed_chunk(world: World, clip: Path, tmp_path: Path) -> Submitted:
    """A video whose chunk 0 failed (its job was lost) and whose chunk 1 is done: the video is `failed`."""
    submitted = _submit(world, clip, tmp_path)
    world.deliver(world.read_stream())
    world.deliver(world.read_stream())
    (job,) = [j for j in world.jobs() if j["parameters"]["chunk"] == "0"]
    world.ran.add(job["jobId"])
    world.send_event(batch_event(job, "FAILED", "Host EC2 (instance i-0abc) terminated.", 137))
    world.pump()
    assert world.store.get_video(submitted.video_id).state == schema.FAILED
    return submitted


def test_a_retry_that_dies_between_its_two_writes_still_ends_done(world: World, clip: Path, tmp_path: Path) -> None:
    """`retry` reopened the step, then died before reopening the video: the chunk runs to done, and the video must
    follow it instead of staying `failed`."""
    submitted = _failed_chunk(world, clip, tmp_path)
    ddb = world.store.client

    def die_before_reopening_the_video(**_: Any) -> None:
        raise Crash  # the chunk's retry is a transaction; the video's reopen is the one UpdateItem after it

    ddb.meta.events.register("before-call.dynamodb.UpdateItem", die_before_reopening_the_video)
    try:
        with pytest.raises(Crash):
            control.retry(world.stack, submitted.video_id)
    finally:
        ddb.meta.events.unregister("before-call.dynamodb.UpdateItem", die_before_reopening_the_video)
    video = world.store.get_video(submitted.video_id)
    assert video.state == schema.FAILED and video.chunks_failed == 0  # the crash left it so
    assert world.store.get_chunk(submitted.video_id, 0).last.state == schema.SUBMITTED
    world.pump()
    video = world.store.get_video(submitted.video_id)
    assert (video.state, video.error, video.chunks_done) == (schema.DONE, None, 2)


def test_a_job_lost_and_back_after_a_retry_cannot_replace_the_recorded_result(
    world: World, clip: Path, tmp_path: Path
) -> None:
    """Attempt 1's job passes its fencing, then Batch loses track of it: the sweep fails the step, `retry` runs
    attempt 2 to done. Then attempt 1's job comes back and uploads its result: it must not land on the object that
    attempt 2's step records."""
    submitted = _submit(world, clip, tmp_path)
    world.deliver(world.read_stream())
    world.deliver(world.read_stream())
    (lost,) = [j for j in world.jobs() if j["parameters"]["chunk"] == "0"]
    s3 = world.jobs_session.client("s3")

    def meanwhile(params: dict[str, Any], **_: Any) -> None:
        if "/results/" not in params["Key"]:
            return
        s3.meta.events.unregister("before-parameter-build.s3.PutObject", meanwhile)
        world.send_event(batch_event(lost, "FAILED", "lost"))  # what the sweep does for a job Batch forgot
        assert control.retry(world.stack, submitted.video_id).chunks == (0,)
        world.pump()  # attempt 2 runs to done (and chunk 1 too)
        assert world.store.get_video(submitted.video_id).state == schema.DONE

    s3.meta.events.register("before-parameter-build.s3.PutObject", meanwhile)
    assert world.run_job(lost, send_event=False) == 1  # its `done` is refused: the step moved on
    step = world.store.get_chunk(submitted.video_id, 0).steps[1]
    assert step.attempt == 2 and step.result is not None
    body = world.session.client("s3").get_object(Bucket=step.result.bucket, Key=step.result.key)["Body"].read()
    assert (json.loads(body)["job_id"], json.loads(body)["attempt"]) == (step.job_id, 2)


def test_the_sweep_goes_on_past_an_item_that_raises_and_within_its_budget(
    world: World, clip: Path, tmp_path: Path
) -> None:
    submitted = _submit(world, clip, tmp_path)
    world.read_stream()  # the records expire unseen: only the sweep can claim the next steps
    router = handler.get_router()
    claims = 0
    original = router.store.claim_next

    def claim_fails_once(chunk: Any, step: str, lease: Any) -> Any:
        nonlocal claims
        claims += 1
        if claims == 1:
            raise RuntimeError("a malformed answer")
        return original(chunk, step, lease)

    router.store.claim_next = claim_fails_once  # type: ignore[method-assign]
    report = sweep(router)
    assert (report.errors, report.claimed, report.complete) == (1, 1, True)  # the second chunk was still claimed
    claimed = [c.last.step for c in world.store.chunks(submitted.video_id)]
    assert sorted(claimed) == ["probe", "timesplit"]
    spent = sweep(router, budget=Budget(0.0))
    assert not spent.complete and spent.chunks == 0  # out of time: says so, touches nothing


def test_the_local_stack_and_the_tests_deliver_the_same_records(world: World, clip: Path, tmp_path: Path) -> None:
    """One delivery path: the driver reads through the local stack's poller, so a record's shape (the timestamp as
    Lambda sends it: whole seconds) is the local stack's."""
    _submit(world, clip, tmp_path)
    records = world.read_stream()
    assert records and all(isinstance(r["dynamodb"]["ApproximateCreationDateTime"], int) for r in records)
    assert all(r["eventSourceARN"] == world.stream_arn for r in records)
