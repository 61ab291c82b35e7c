"""`submit s3://...`: the split runs as a CPU job of the first step, then the chunks walk as usual."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import typer
from typer.testing import CliRunner

from batch_jobs import control, schema
from batch_jobs.batch import STACK_TAG, BatchClient
from batch_jobs.submit import submit_s3
from cli import pipeline_cmd
from devtools.drive import World, batch_event


def test_s3_video_is_split_by_a_job_and_walks_to_the_end(world: World, clip: Path) -> None:
    s3 = world.session.client("s3")
    s3.upload_file(str(clip), world.config.bucket, "incoming/game.mp4")
    uri = f"s3://{world.config.bucket}/incoming/game.mp4"
    submitted = submit_s3(world.stack, uri, chunk_seconds=3, options={"every": 2})
    video = world.store.get_video(submitted.video_id)
    assert video.state == schema.SUBMITTED and video.chunk_count == 0 and video.size == clip.stat().st_size
    (split_job,) = world.jobs()
    assert split_job["parameters"]["step"] == "timesplit" and split_job["jobQueue"].endswith(
        world.config.job_queues["cpu"]
    )
    world.pump()
    video = world.store.get_video(submitted.video_id)
    assert video.state == schema.DONE and video.chunk_count == 4 and video.duration == 10.0
    chunks = world.store.chunks(submitted.video_id)
    assert sum(c.end_frame - c.start_frame for c in chunks) == 250
    assert all(c.options == {"every": 2} and c.last.state == schema.DONE for c in chunks)
    # The split job (submitted here) and every chunk and video job (by the router) carry the stack's tag, which the
    # router's role needs to terminate them.
    assert [j["tags"] for j in world.jobs()] == [{STACK_TAG: world.config.stack}] * (1 + 4 * 2 + 1)


def test_a_broken_s3_video_fails_the_video_with_the_reason(world: World, tmp_path: Path) -> None:
    s3 = world.session.client("s3")
    s3.put_object(Bucket=world.config.bucket, Key="incoming/notes.mp4", Body=b"meeting notes, not a video")
    uri = f"s3://{world.config.bucket}/incoming/notes.mp4"
    submitted = submit_s3(world.stack, uri)
    world.pump()
    video = world.store.get_video(submitted.video_id)
    assert video.state == schema.FAILED and video.error and "not a readable video: notes.mp4" in video.error
    assert world.store.chunk_items(submitted.video_id) == []


def test_a_split_job_lost_before_running_fails_the_video(world: World, clip: Path) -> None:
    s3 = world.session.client("s3")
    s3.upload_file(str(clip), world.config.bucket, "incoming/game.mp4")
    submitted = submit_s3(world.stack, f"s3://{world.config.bucket}/incoming/game.mp4")
    (job,) = world.jobs()
    world.ran.add(job["jobId"])
    world.send_event(batch_event(job, "FAILED", "CannotPullContainerError: no such image"))
    video = world.store.get_video(submitted.video_id)
    assert video.state == schema.FAILED and video.error and "CannotPullContainerError" in video.error


def world_batch(world: World):

    return BatchClient(world.session.client("batch"))


def test_cancel_while_the_split_job_runs_cancels_its_chunks(world: World, clip: Path) -> None:
    s3 = world.session.client("s3")
    s3.upload_file(str(clip), world.config.bucket, "incoming/game.mp4")
    uri = f"s3://{world.config.bucket}/incoming/game.mp4"
    submitted = submit_s3(world.stack, uri, chunk_seconds=3)
    (split_job,) = world.jobs()

    def cancel_once(**_: Any) -> None:  # the user cancels as the first chunk reaches S3
        if world.store.get_video(submitted.video_id).state != schema.CANCELLED:
            control.cancel(world.stack, submitted.video_id)

    world.jobs_session.client("s3").meta.events.register("after-call.s3.PutObject", cancel_once)
    assert world.run_job(split_job) == 1
    world.pump()
    chunks = world.store.chunks(submitted.video_id)
    assert len(chunks) == 4 and all(c.cancelled and len(c.steps) == 1 for c in chunks)
    assert [j["jobId"] for j in world.jobs()] == [split_job["jobId"]]
    assert world.store.get_video(submitted.video_id).state == schema.CANCELLED


def test_a_failed_split_is_retried_as_its_next_attempt(world: World, clip: Path) -> None:
    s3 = world.session.client("s3")
    s3.put_object(Bucket=world.config.bucket, Key="incoming/game.mp4", Body=b"the first bytes of an upload")
    uri = f"s3://{world.config.bucket}/incoming/game.mp4"
    submitted = submit_s3(world.stack, uri, chunk_seconds=3)
    world.pump()
    failed = world.store.get_video(submitted.video_id)
    assert (failed.state, failed.chunk_count, failed.split_attempt) == (schema.FAILED, 0, 1) and failed.split_job_id
    (first_job,) = world.jobs()
    s3.upload_file(str(clip), world.config.bucket, "incoming/game.mp4")  # the source is complete now
    app = typer.Typer()
    pipeline_cmd.register(app)
    args = ["retry", submitted.video_id, "--stack", world.config.stack]
    result = CliRunner().invoke(app, args, catch_exceptions=False)
    assert result.exit_code == 0 and "retrying the split (attempt 2)" in result.stdout
    assert control.retry_split(world.stack, failed) is None  # retried already
    video = world.store.get_video(submitted.video_id)
    assert (video.state, video.split_attempt, video.split_job_id, video.error) == (schema.SUBMITTED, 2, None, None)
    # The first attempt's job, run again by Batch or reporting late, can neither split nor fail the second attempt.
    assert world.run_job(first_job, send_event=False) == 0
    world.send_event(batch_event(first_job, "FAILED", "a late event of attempt 1"))
    assert world.store.get_video(submitted.video_id).state == schema.SUBMITTED
    world.pump()
    video = world.store.get_video(submitted.video_id)
    assert (video.state, video.chunk_count) == (schema.DONE, 4)
    splits = sorted((j["jobName"], j["jobId"]) for j in world.jobs() if j["parameters"]["step"] == "timesplit")
    assert [name[-3:] for name, _ in splits] == ["-a1", "-a2"]
    status = CliRunner().invoke(app, ["status", submitted.video_id, "--json", "--stack", world.config.stack])
    shown = json.loads(status.stdout)["video"]
    assert (shown["split_job_id"], shown["split_attempt"]) == (splits[1][1], 2)
    assert shown["created_at"] < shown["claimed_at"] < shown["started_at"] < shown["finished_at"]
