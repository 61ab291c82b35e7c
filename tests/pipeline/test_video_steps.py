"""The per-video step: one `stitch` job per video on the CPU queue, once every chunk is done, routed like the chunk
steps (claimed under a lease, fenced, failed by its job's end, repaired by the sweep, retried, cancelled)."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from batch_jobs import control, layout, schema
from batch_jobs.merge import merge_results
from batch_jobs.submit import Submitted, submit_file
from devtools.drive import World
from router import handler
from router.sweep import sweep


def _submit(world: World, clip: Path, tmp_path: Path) -> Submitted:
    return submit_file(world.stack, clip, tmp_path, chunk_seconds=3)


def _walk_chunks(world: World) -> list[dict[str, Any]]:
    """Pump until only per-video jobs are left to run; returns them (not run)."""
    for _ in range(40):
        records = world.read_stream()
        world.deliver(records)
        fresh = [j for j in world.jobs() if j["jobId"] not in world.ran]
        chunk_jobs = [j for j in fresh if j["parameters"]["step"] != "stitch"]
        for job in chunk_jobs:
            world.run_job(job)
        if not records and not chunk_jobs:
            return [j for j in fresh if j["parameters"]["step"] == "stitch"]
    raise RuntimeError("chunks did not settle")


class Crash(BaseException):
    """The router's invocation dies here."""


def test_one_stitch_job_per_video_writes_the_document_results_reads(world: World, clip: Path, tmp_path: Path) -> None:
    submitted = _submit(world, clip, tmp_path)
    (job,) = _walk_chunks(world)  # submitted by the router that counted the last chunk, not before
    assert job["jobQueue"].endswith(world.config.job_queues["cpu"]) and job["parameters"]["chunk"] == "0"
    assert world.store.get_video(submitted.video_id).state == schema.RUNNING
    world.pump()
    video = world.store.get_video(submitted.video_id)
    assert video.state == schema.DONE and video.error is None
    (step,) = video.steps
    assert (step.step, step.state, step.job_id, step.attempt) == ("stitch", schema.DONE, job["jobId"], 1)
    assert step.result and step.result.key == layout.video_result_key(submitted.video_id, "stitch", 1)
    assert step.metrics["frames"] == 250 and step.metrics["chunks"] == submitted.chunks
    s3 = world.session.client("s3")
    document = json.loads(s3.get_object(Bucket=step.result.bucket, Key=step.result.key)["Body"].read())
    assert [f["index"] for f in document["frames"]] == list(range(250))  # every frame once, on the source's timeline
    assert (document["job_id"], document["attempt"], len(document["chunks"])) == (job["jobId"], 1, submitted.chunks)
    merged = merge_results(s3, world.store, world.config.pipeline, submitted.video_id)
    assert (merged.step, merged.document, merged.missing) == ("stitch", document, ())


def test_a_failed_stitch_fails_the_video_with_its_reason_and_retry_finishes_it(
    world: World, clip: Path, tmp_path: Path
) -> None:
    submitted = _submit(world, clip, tmp_path)
    (job,) = _walk_chunks(world)
    s3, chunk = world.session.client("s3"), world.store.get_chunk(submitted.video_id, 1)
    result = chunk.steps[1].result
    assert result is not None
    body = s3.get_object(Bucket=result.bucket, Key=result.key)["Body"].read()
    s3.delete_object(Bucket=result.bucket, Key=result.key)
    assert world.run_job(job) == 1
    video = world.store.get_video(submitted.video_id)
    assert video.state == schema.FAILED and video.error
    assert video.error.startswith("stitch of the video failed: missing S3 object") and result.key in video.error
    s3.put_object(Bucket=result.bucket, Key=result.key, Body=body)
    changed = control.retry(world.stack, submitted.video_id)
    assert (changed.chunks, changed.video_step) == ((), "stitch")
    world.pump()
    video = world.store.get_video(submitted.video_id)
    assert (video.state, video.error, video.steps[0].attempt, video.steps[0].state) == (
        schema.DONE, None, 2, schema.DONE
    )  # fmt: skip
    assert control.retry(world.stack, submitted.video_id).video_step is None  # nothing failed now


def test_a_claim_whose_router_died_before_submitjob_is_submitted_by_the_sweep(
    world: World, clip: Path, tmp_path: Path
) -> None:
    submitted = _submit(world, clip, tmp_path)
    batch = handler.get_router().batch.client

    def die(params: dict[str, Any], **_: Any) -> None:
        if params["parameters"]["step"] == "stitch":
            raise Crash

    batch.meta.events.register("before-parameter-build.batch.SubmitJob", die)
    try:
        with pytest.raises(Crash):
            _walk_chunks(world)
    finally:
        batch.meta.events.unregister("before-parameter-build.batch.SubmitJob", die)
    (step,) = world.store.get_video(submitted.video_id).steps
    assert (step.state, step.job_id) == (schema.SUBMITTED, None) and step.submitting_by
    router = handler.get_router()
    assert sweep(router).submitted == 0 and not [j for j in world.jobs() if j["parameters"]["step"] == "stitch"]
    sweep(router, now=datetime.now(UTC) + timedelta(minutes=8))  # past the grace and the dead router's lease
    (job,) = [j for j in world.jobs() if j["parameters"]["step"] == "stitch"]
    assert world.store.get_video(submitted.video_id).steps[0].job_id == job["jobId"]
    world.pump()
    assert world.store.get_video(submitted.video_id).state == schema.DONE


def test_a_stitch_job_whose_end_was_lost_is_failed_by_the_sweep(world: World, clip: Path, tmp_path: Path) -> None:
    """Batch says the job ended, it never recorded `done`, and its event was lost: the sweep fails the step."""
    submitted = _submit(world, clip, tmp_path)
    (job,) = _walk_chunks(world)
    world.ran.add(job["jobId"])  # it never ran; moto reports it SUCCEEDED
    assert world.store.get_video(submitted.video_id).steps[0].job_id == job["jobId"]
    sweep(handler.get_router(), now=datetime.now(UTC) + timedelta(minutes=8))
    video = world.store.get_video(submitted.video_id)
    assert video.state == schema.FAILED and video.steps[0].state == schema.FAILED
    assert video.error and video.error.startswith("stitch of the video failed")


def test_cancel_during_the_stitch_terminates_it_and_its_job_is_fenced(world: World, clip: Path, tmp_path: Path) -> None:
    submitted = _submit(world, clip, tmp_path)
    (job,) = _walk_chunks(world)
    changed = control.cancel(world.stack, submitted.video_id)
    assert (changed.video_step, changed.jobs) == ("stitch", (job["jobId"],))
    assert world.run_job(job) == 0  # fenced: exits without work
    video = world.store.get_video(submitted.video_id)
    assert (video.state, video.steps[0].state, video.steps[0].result) == (schema.CANCELLED, schema.CANCELLED, None)
