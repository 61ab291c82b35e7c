"""The local stack in this process, with the TF-free probe pipeline: the real router behind the stream poller, the
real job command as subprocesses, moto over HTTP. Chunks walk to the end, and a stop mid-video followed by a start
resumes without losing or duplicating a chunk (the killed-job and Ctrl-C cases run through the CLI elsewhere)."""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from local_env import PROBE_STEPS, processes_with, wait_until

from batch_jobs import schema
from batch_jobs.pipeline import parse_pipeline, step_index
from batch_jobs.store import deserialize, serialize
from batch_jobs.submit import submit_file
from cli.local.clips import sample_with_keyframes
from cli.local.files import read_json, write_json
from cli.local.ledger import JobRecord
from cli.local.paths import LocalPaths
from cli.local.runtime import LocalSettings, LocalStack, gpu_override
from cli.local.session import wait_idle
from detector.sample import SampleSpec

SMALL = SampleSpec(640, 360, seconds=3.0, fps=10, people=2)  # 3 chunks of 10 frames
PROBE_PIPELINE = parse_pipeline(PROBE_STEPS)


@pytest.fixture
def clip(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("clip") / "sample.mp4"
    sample_with_keyframes(path, SMALL)
    return path


@pytest.fixture
def make_stack(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Callable[..., LocalStack]]:
    """Stacks on one data directory; the process environment the stack points at the server is put back after."""
    monkeypatch.setenv("DERBY_BATCH_LOCAL_DIR", str(tmp_path / "data"))  # marks our jobs for the leftover check
    saved = dict(os.environ)
    started: list[LocalStack] = []

    def make(workers: int = 2) -> LocalStack:
        stack = LocalStack(LocalSettings(LocalPaths(tmp_path / "data"), workers=workers, pipeline=PROBE_PIPELINE))
        stack.start()
        started.append(stack)
        return stack

    yield make
    for stack in started:
        stack.stop()
    os.environ.clear()
    os.environ.update(saved)
    assert not processes_with(f"DERBY_BATCH_LOCAL_DIR={tmp_path / 'data'}"), "job processes left running"


def submit(stack: LocalStack, clip: Path, work: Path) -> str:
    return submit_file(stack.clients(), clip, work, chunk_seconds=1.0).video_id


def video_state(stack: LocalStack, video_id: str) -> str:
    return stack.store.get_video(video_id).state


def step_jobs(stack: LocalStack) -> dict[tuple[str, str, str], list[JobRecord]]:
    """Jobs the executor ran, by (video, chunk, step)."""
    assert stack.executor is not None
    runs: dict[tuple[str, str, str], list[JobRecord]] = {}
    for record in stack.executor.ledger.all():
        p = record.parameters
        runs.setdefault((p["video_id"], p["chunk"], p["step"]), []).append(record)
    return runs


def just_started(stack: LocalStack) -> JobRecord | None:
    """A job that started less than 0.3 s ago: a job process needs more than that to import and start its work."""
    assert stack.executor is not None
    now = time.time() * 1000
    return next(
        (r for r in stack.executor.ledger.all() if r.status == "RUNNING" and r.pid and now - (r.started_at or 0) < 300),
        None,
    )


def test_every_chunk_walks_to_done(make_stack: Callable[..., LocalStack], clip: Path, tmp_path: Path) -> None:
    stack = make_stack()
    video_id = submit(stack, clip, tmp_path / "work")
    wait_until(lambda: video_state(stack, video_id) == schema.DONE, "video done")
    chunks = stack.store.chunks(video_id)
    assert [c.index for c in chunks] == [0, 1, 2]
    assert all([s.state for s in c.steps] == ["done"] * 3 for c in chunks)
    assert [c.steps[1].metrics["frames"] for c in chunks] == [10, 10, 10]
    assert wait_idle(stack, timeout=30)
    runs = step_jobs(stack)
    assert sorted(runs) == sorted((video_id, str(i), s) for i in range(3) for s in ("probe", "summarize"))
    assert all(len(r) == 1 and r[0].status == "SUCCEEDED" for r in runs.values())


def test_stop_mid_video_and_start_again_loses_and_duplicates_nothing(
    make_stack: Callable[..., LocalStack], clip: Path, tmp_path: Path
) -> None:
    first = make_stack(workers=1)
    assert first.executor is not None
    video_id = submit(first, clip, tmp_path / "work")
    wait_until(
        lambda: just_started(first) and any(r.status == "SUCCEEDED" for r in first.executor.ledger.all()),  # type: ignore[union-attr]
        "a finished job and one that just started",
    )
    first.stop()
    interrupted = [r for r in first.executor.ledger.all() if r.status == "RUNNING"]
    assert interrupted, "the stop should catch a job mid-run"

    second = make_stack(workers=2)
    wait_until(lambda: video_state(second, video_id) == schema.DONE, "video done after restart")
    assert wait_idle(second, timeout=30)
    chunks = second.store.chunks(video_id)
    assert [c.index for c in chunks] == [0, 1, 2]
    assert all([s.state for s in c.steps] == ["done"] * 3 for c in chunks)
    runs = step_jobs(second)
    succeeded = {key: [r for r in records if r.status == "SUCCEEDED"] for key, records in runs.items()}
    assert sorted(succeeded) == sorted((video_id, str(i), s) for i in range(3) for s in ("probe", "summarize"))
    assert all(len(records) == 1 for records in succeeded.values()), "a chunk-step ran to the end twice"
    lost = interrupted[0]
    before = next(r for r in first.executor.ledger.all() if r.status == "SUCCEEDED")
    logs = second.session_client("logs").get_log_events(
        logGroupName="/aws/batch/local", logStreamName=before.log_stream
    )
    assert logs["events"], "job logs of the first run are back in CloudWatch Logs"
    p = lost.parameters
    resumed = second.store.get_chunk(video_id, int(p["chunk"])).steps[step_index(PROBE_PIPELINE, p["step"])]
    assert resumed.attempt == int(p["attempt"]) + 1


def test_gpu_jobs_run_on_the_cpu_with_their_share_of_the_cores() -> None:
    cores = len(os.sched_getaffinity(0))
    assert gpu_override(1) == {"DERBY_BATCH_ALLOW_CPU": "1", "DERBY_BATCH_CPUS": str(cores)}
    assert gpu_override(cores + 1)["DERBY_BATCH_CPUS"] == "1"  # never none


def _edit_saved_items(data_dir: Path, table: str, edit: Callable[[dict[str, Any]], None]) -> None:
    """Change the items a stopped stack saved, as a snapshot taken a moment before a SIGKILL would have them."""
    path = data_dir / "dynamodb" / f"{table}.json"
    items = [deserialize(item) for item in read_json(path)]
    for item in items:
        edit(item)
    write_json(path, [serialize(item) for item in items])


def _edit_ledger(data_dir: Path, job_id: str, **fields: Any) -> None:
    path = data_dir / "jobs" / f"{job_id}.json"
    write_json(path, read_json(path) | fields)


def test_start_reconciles_the_saved_steps_with_the_job_ledger_and_sweeps(
    make_stack: Callable[..., LocalStack], clip: Path, tmp_path: Path
) -> None:
    """The items of a snapshot lag the ledger (written as jobs change): after a SIGKILL a step may still be `running`
    under a job that succeeded, failed, or that nobody knows. On start each ends: a job whose end was not saved runs
    again under its id, a failure is recorded with its reason, a lost job's step is retried with the next attempt."""
    first = make_stack()
    video_id = submit(first, clip, tmp_path / "work")
    wait_until(lambda: video_state(first, video_id) == schema.DONE, "video done")
    assert wait_idle(first, timeout=30)
    jobs = {(k[1], k[2]): v[0] for k, v in step_jobs(first).items()}
    table = first.config.table
    first.stop()

    succeeded, failed = jobs[("0", "summarize")].job_id, jobs[("2", "summarize")].job_id
    data = tmp_path / "data"
    _edit_ledger(data, failed, status="FAILED", exit_code=3, status_reason="Essential container in task exited")
    job_of = {0: succeeded, 1: "job-moto-forgot", 2: failed}

    def back_to_running(item: dict[str, Any]) -> None:
        """Each chunk's last step `running` under `job_of[chunk]`, the video `running` without them counted."""
        if item["sk"] == "video":
            item.update(state="running", chunks_done=0, open="video")
            item.pop("finished_at", None)
            return
        item.pop("counted", None)
        item["open"] = "chunk"
        index = int(item["sk"].removeprefix("chunk#"))
        step = item["steps"][-1]
        step.update(state="running", job_id=job_of[index])
        for name in ("finished_at", "result", "metrics"):
            step.pop(name, None)

    _edit_saved_items(data, table, back_to_running)
    second = make_stack()
    wait_until(lambda: video_state(second, video_id) == schema.FAILED, "the video settled after the restart")
    assert wait_idle(second, timeout=30)
    chunks = second.store.chunks(video_id)
    rerun = second.executor.ledger.get(succeeded)  # type: ignore[union-attr]
    assert rerun is not None and rerun.status == "SUCCEEDED" and rerun.attempts == 2  # the same job, once more
    assert (chunks[0].last.state, chunks[0].last.attempt, chunks[0].last.job_id) == ("done", 1, succeeded)
    assert (chunks[1].last.state, chunks[1].last.attempt) == ("done", 2)  # its job was lost: the next attempt
    assert chunks[2].last.state == "failed" and chunks[2].last.attempt == 1
    assert chunks[2].last.error == f"job {failed} FAILED: Essential container in task exited"
    video = second.store.get_video(video_id)
    assert (video.chunks_done, video.chunks_failed) == (2, 1)
