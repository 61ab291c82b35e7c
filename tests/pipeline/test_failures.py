"""Jobs that die, exit without writing, or FAILED in Batch end `failed` with a reason; `retry` then completes them."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest

from batch_jobs import control, schema
from batch_jobs.batch import BatchClient
from batch_jobs.store import Conflict
from batch_jobs.submit import Submitted, submit_file
from devtools.drive import World, batch_event, count_calls


def _submit(world: World, clip: Path, tmp_path: Path) -> Submitted:
    return submit_file(world.stack, clip, tmp_path, chunk_seconds=5)


def _first_job(world: World, video_id: str, chunk: int) -> dict:
    world.deliver(world.read_stream())  # chunk items -> claims
    world.deliver(world.read_stream())  # claims -> jobs
    (job,) = [
        j for j in world.jobs() if j["parameters"]["video_id"] == video_id and j["parameters"]["chunk"] == str(chunk)
    ]
    return job


def _retry_completes(world: World, submitted: Submitted, chunk: int) -> None:
    assert world.store.get_video(submitted.video_id).state == schema.FAILED
    assert control.retry(world.stack, submitted.video_id).chunks == (chunk,)
    world.pump()
    item = world.store.get_chunk(submitted.video_id, chunk)
    assert [s.state for s in item.steps] == [schema.DONE] * 3
    assert item.steps[1].attempt == 2 and item.steps[1].error is None
    assert world.store.get_video(submitted.video_id).state == schema.DONE


@pytest.mark.parametrize(
    ("case", "reason"),
    [
        ("killed-after-running", "FAILED: Host EC2 (instance i-0abc) terminated., exit code 137"),
        ("exited-without-writing", "exited without recording done"),
        ("failed-event", "FAILED: CannotPullContainerError: pull access denied"),
    ],
)
def test_a_lost_job_ends_failed_with_reason_and_retry_completes(
    world: World, clip: Path, tmp_path: Path, case: str, reason: str
) -> None:
    submitted = _submit(world, clip, tmp_path)
    job = _first_job(world, submitted.video_id, 0)
    world.ran.add(job["jobId"])  # the harness must not run it: this job meets its fate below
    if case == "killed-after-running":
        # The job's own first write, then SIGKILL: it never gets to write `done` or `failed`.
        assert not isinstance(world.store.mark_running(submitted.video_id, 0, 1, 1, job["jobId"]), Conflict)
        assert world.store.get_chunk(submitted.video_id, 0).steps[1].state == schema.RUNNING
        world.send_event(batch_event(job, "FAILED", "Host EC2 (instance i-0abc) terminated.", 137))
    elif case == "exited-without-writing":
        world.send_event(batch_event(job, "SUCCEEDED", "", 0))  # what moto itself reports for it
    else:
        world.send_event(batch_event(job, "FAILED", "CannotPullContainerError: pull access denied"))
    world.pump()
    failed = world.store.get_chunk(submitted.video_id, 0).steps[1]
    assert failed.state == schema.FAILED and failed.job_id == job["jobId"]
    assert failed.error and reason in failed.error
    other = world.store.get_chunk(submitted.video_id, 1)
    assert [s.state for s in other.steps] == [schema.DONE] * 3  # the other chunk is unaffected
    video = world.store.get_video(submitted.video_id)
    assert video.error and video.error.startswith("1 of 2 chunks failed; chunk 0 probe: ") and reason in video.error
    _retry_completes(world, submitted, 0)


class Killed(BaseException):
    """SIGKILL of the container: nothing in the job gets to catch it or write `failed`."""


def test_a_batch_retry_of_the_same_job_redoes_the_step(world: World, clip: Path, tmp_path: Path) -> None:
    """A spot reclaim (`Host EC2*`) kills the job after `running`; Batch runs it again under the same job id."""
    submitted = _submit(world, clip, tmp_path)
    job = _first_job(world, submitted.video_id, 0)
    s3 = world.jobs_session.client("s3")

    def kill(**_: object) -> None:
        raise Killed

    s3.meta.events.register("before-call.s3.GetObject", kill)
    with pytest.raises(Killed):
        world.run_job(job, send_event=False)
    s3.meta.events.unregister("before-call.s3.GetObject", kill)
    step = world.store.get_chunk(submitted.video_id, 0).steps[1]
    assert (step.state, step.job_id) == (schema.RUNNING, job["jobId"])
    assert world.run_job(job) == 0  # the retried attempt of the same job, then its SUCCEEDED event
    step = world.store.get_chunk(submitted.video_id, 0).steps[1]
    assert (step.state, step.attempt, step.error) == (schema.DONE, 1, None)
    world.pump()
    assert world.store.get_video(submitted.video_id).state == schema.DONE


def test_an_event_for_a_stale_attempt_changes_nothing(world: World, clip: Path, tmp_path: Path) -> None:
    submitted = _submit(world, clip, tmp_path)
    job = _first_job(world, submitted.video_id, 0)
    world.pump()
    world.send_event(batch_event(job, "FAILED", "late duplicate event"))  # EventBridge is at-least-once
    assert world.store.get_chunk(submitted.video_id, 0).steps[1].state == schema.DONE


def test_a_job_fenced_out_by_another_job_id_does_no_work(world: World, clip: Path, tmp_path: Path) -> None:
    submitted = _submit(world, clip, tmp_path)
    job = _first_job(world, submitted.video_id, 0)
    impostor = {**job, "jobId": "not-the-recorded-job"}
    assert world.run_job(impostor, send_event=False) == 0
    step = world.store.get_chunk(submitted.video_id, 0).steps[1]
    assert step.state == schema.SUBMITTED and step.job_id == job["jobId"]
    world.pump()
    assert world.store.get_video(submitted.video_id).state == schema.DONE


def test_cancel_terminates_jobs_and_stops_the_walk(world: World, clip: Path, tmp_path: Path) -> None:
    submitted = _submit(world, clip, tmp_path)
    _first_job(world, submitted.video_id, 0)
    jobs = {j["jobId"] for j in world.jobs()}
    assert len(jobs) == 2  # chunks 0 and 1, recorded on their steps
    batch = world.session.client("batch")
    calls = count_calls([batch])
    changed = control.cancel(replace(world.stack, batch=BatchClient(batch)), submitted.video_id)
    assert set(changed.chunks) == {0, 1} and calls["TerminateJob"] == 2
    # What Batch holds for each job now: the reason it was terminated with.
    assert {j["jobId"]: j.get("statusReason") for j in world.jobs()} == dict.fromkeys(
        jobs, "cancelled by derby-batch cancel"
    )
    world.pump()  # the jobs run anyway (moto cannot stop them): fenced by the cancelled flag
    for chunk in world.store.chunks(submitted.video_id):
        assert [s.state for s in chunk.steps] == [schema.DONE, schema.CANCELLED]
    assert world.store.get_video(submitted.video_id).state == schema.CANCELLED
    assert control.retry(world.stack, submitted.video_id).chunks == ()


def test_a_retry_faster_than_the_router_still_ends_done(world: World, clip: Path, tmp_path: Path) -> None:
    """The failure's stream record reaches the router only after `retry` reopened the chunk: it must not count."""
    submitted = _submit(world, clip, tmp_path)
    job = _first_job(world, submitted.video_id, 0)
    world.ran.add(job["jobId"])
    world.pump()  # the other chunk finishes
    world.send_event(batch_event(job, "FAILED", "Host EC2 (instance i-0abc) terminated.", 137))
    failure = world.read_stream()  # the record of `failed`, not yet delivered
    assert control.retry(world.stack, submitted.video_id).chunks == (0,)
    world.deliver(failure)  # stale: the chunk is on attempt 2 now
    assert world.store.get_video(submitted.video_id).chunks_failed == 0
    world.pump()
    assert [s.state for s in world.store.get_chunk(submitted.video_id, 0).steps] == [schema.DONE] * 3
    video = world.store.get_video(submitted.video_id)
    assert (video.state, video.error) == (schema.DONE, None)
