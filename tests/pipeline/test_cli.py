"""The pipeline commands end to end against the moto stack: submit, status, results (+ plot), retry, cancel, logs."""

from __future__ import annotations

import json
import re
import time
from dataclasses import replace
from pathlib import Path
from types import SimpleNamespace

import pytest
import typer
from moto.batch.models import batch_backends
from moto.core import DEFAULT_ACCOUNT_ID
from pipeline_clips import decoded_times
from rich.console import Console
from typer.testing import CliRunner

from batch_jobs import schema
from batch_jobs.config import parameter_name
from batch_jobs.errors import PipelineError
from batch_jobs.store import Conflict
from cli import pipeline_cmd
from devtools.drive import World


@pytest.fixture
def cli() -> typer.Typer:
    app = typer.Typer()
    pipeline_cmd.register(app)
    return app


def _run(cli: typer.Typer, *args: str) -> str:
    result = CliRunner().invoke(cli, list(args), catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return result.stdout


def test_submit_status_results(cli: typer.Typer, world: World, clip: Path, tmp_path: Path) -> None:
    stack = world.config.stack
    submitted = json.loads(
        _run(cli, "submit", str(clip), "--chunk-seconds", "3", "--every", "2", "--json", "--stack", stack)
    )
    assert submitted["chunks"] == 4 and submitted["frames"] == 250
    video_id = submitted["video_id"]
    world.pump()
    status = json.loads(_run(cli, "status", video_id, "--json", "--stack", stack))
    assert status["video"]["state"] == schema.DONE and status["video"]["options"] == {"every": 2}
    assert status["video"]["created_at"] < status["video"]["finished_at"]
    assert [c["steps"][-1]["state"] for c in status["chunks"]] == [schema.DONE] * 4
    assert video_id in _run(cli, "status", "--stack", stack)
    table = _run(cli, "status", video_id, "--stack", stack)
    assert "probe" in table and "summarize" in table and "done" in table

    merged_path, plot = tmp_path / "merged.json", tmp_path / "people.png"
    _run(cli, "results", video_id, "-o", str(merged_path), "--plot", str(plot), "--stack", stack)
    merged = json.loads(merged_path.read_text())
    assert [f["index"] for f in merged["frames"]] == list(range(250))
    assert [f["t"] for f in merged["frames"]] == pytest.approx(decoded_times(clip), abs=1e-6)
    assert len(merged["chunks"]) == 4 and "missing_chunks" not in merged
    assert merged["video"] == {"fps": 25.0, "frames": 250, "duration_s": 10.0}  # the source's, not chunk 0's
    assert plot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"

    assert "nothing to retry" in _run(cli, "retry", video_id, "--stack", stack)
    assert f"{video_id} is already done: nothing to cancel" in _run(cli, "cancel", video_id, "--stack", stack)
    assert world.store.get_video(video_id).state == schema.DONE
    assert not any(c.cancelled for c in world.store.chunks(video_id))

    _check_logs(cli, world, video_id)


def _put_log(world: World, stream: str, message: str) -> None:
    logs = world.session.client("logs")
    logs.create_log_stream(logGroupName=world.config.log_group, logStreamName=stream)
    logs.put_log_events(logGroupName=world.config.log_group, logStreamName=stream,
                        logEvents=[{"timestamp": int(time.time() * 1000), "message": message}])  # fmt: skip


def _check_logs(cli: typer.Typer, world: World, video_id: str) -> None:
    stack = world.config.stack
    chunk = world.store.get_chunk(video_id, 2)
    probe_job, summarize_job = chunk.steps[1].job_id, chunk.steps[2].job_id
    assert probe_job and summarize_job
    # What Batch reports for a job retried after a spot reclaim: one stream per attempt, `<prefix>/default/<ECS task
    # id>` (the playbook's prefix is the step name). moto runs no container and reports none: set them on its job.
    job = batch_backends[DEFAULT_ACCOUNT_ID][world.config.region].get_job_by_id(probe_job)
    streams = ["probe/default/0f3c9a1e5b7d4e2a9c8b6a5f4e3d2c1b", "probe/default/7a6b5c4d3e2f1a0b9c8d7e6f5a4b3c2d"]
    job.attempts = [{"container": {"logStreamName": name}} for name in streams]
    job.log_stream_name = streams[-1]
    _put_log(world, streams[0], "attempt 1: host terminated")
    _put_log(world, streams[1], "attempt 2: decoded 75 frames")
    # moto names a job's stream `<job definition>/default/<job id>` (the local stack writes its jobs' output there).
    _put_log(world, f"{world.config.job_definitions['summarize']}/default/{summarize_job}", "summarized 3 s")

    printed = _run(cli, "logs", video_id, "--chunk", "2", "--stack", stack)
    assert printed.index("attempt 1: host terminated") < printed.index("attempt 2: decoded 75 frames")
    assert f"chunk 2: probe attempt 1: job {probe_job}" in printed and "summarized 3 s" in printed

    everything = _run(cli, "logs", video_id, "--stack", stack)  # no --chunk: every chunk
    assert [f"chunk {i}: probe attempt 1" in everything for i in range(4)] == [True] * 4
    assert everything.count("no log stream ") == 6  # the other 3 chunks x 2 steps: described streams, none written

    # Jobs Batch no longer describes (they age out; a restarted local stack's moto forgets them): no AWS name to find,
    # said so; the local stack's own stream `<job definition>/default/<job id>` is still found.
    key = {"pk": {"S": schema.video_pk(video_id)}, "sk": {"S": schema.chunk_sk(2)}}
    aged = {":p": {"S": "aged-out-1"}, ":s": {"S": "aged-out-2"}}
    world.store.client.update_item(TableName=world.config.table, Key=key, ExpressionAttributeValues=aged,
                                   UpdateExpression="SET steps[1].job_id = :p, steps[2].job_id = :s")  # fmt: skip
    _put_log(world, f"{world.config.job_definitions['summarize']}/default/aged-out-2", "kept by the local stack")
    printed = _run(cli, "logs", video_id, "--chunk", "2", "--stack", stack)
    assert "no log stream (Batch no longer describes the job)" in printed and "kept by the local stack" in printed


def test_status_shows_a_running_steps_elapsed_time(
    cli: typer.Typer, world: World, clip: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(pipeline_cmd, "console", Console(width=200))  # one table row per line
    stack = world.config.stack
    submitted = _run(cli, "submit", str(clip), "--chunk-seconds", "5", "--json", "--stack", stack)
    video_id = json.loads(submitted)["video_id"]
    world.pump(run_jobs=False)  # the probe jobs are submitted; none has started
    job_id = world.store.get_chunk(video_id, 0).last.job_id
    assert job_id and not isinstance(world.store.mark_running(video_id, 0, 1, 1, job_id), Conflict)
    table = _run(cli, "status", video_id, "--stack", stack)
    assert re.search(rf"running {job_id[:8]} \d+\.\ds…", table), table
    assert re.search(r"submitted \w{8} +│", table)  # chunk 1's job has not started: no duration


def test_cancel_and_errors(cli: typer.Typer, world: World, clip: Path, tmp_path: Path) -> None:
    stack = world.config.stack
    video_id = json.loads(_run(cli, "submit", str(clip), "--chunk-seconds", "5", "--json", "--stack", stack))[
        "video_id"
    ]
    assert "cancelled 0 chunk(s)" in _run(cli, "cancel", video_id, "--stack", stack)  # nothing claimed yet
    world.pump()
    assert world.jobs() == []  # a cancelled chunk is never claimed
    assert world.store.get_video(video_id).state == schema.CANCELLED
    runner = CliRunner()
    for args, message in [
        (["status", "nope", "--stack", stack], "no video 'nope'"),
        (["status", "--stack", "nostack"], "stack 'nostack' is not deployed"),
        (["submit", str(clip), "--every", "2", "--fps", "1", "--stack", stack], "use --every or --fps"),
        (["submit", f"s3://{world.config.bucket}/nope.mp4", "--stack", stack], "cannot read s3://"),
        (["submit", "s3://just-a-bucket", "--stack", stack], "not an S3 object URI"),
        (["logs", video_id, "--stack", stack], "no chunk of"),
    ]:
        result = runner.invoke(cli, args)
        assert isinstance(result.exception, PipelineError) and message in str(result.exception), result.output


def test_submit_checks_every_input_before_uploading_any(
    cli: typer.Typer, world: World, clip: Path, tmp_path: Path
) -> None:
    empty = tmp_path / "empty.mp4"
    empty.write_bytes(b"")
    result = CliRunner().invoke(cli, ["submit", str(clip), str(empty), "--stack", world.config.stack])
    assert isinstance(result.exception, PipelineError) and "empty file (0 bytes)" in str(result.exception)
    assert list(world.store.videos()) == []  # the good first video was not submitted either
    assert "Contents" not in world.session.client("s3").list_objects_v2(Bucket=world.config.bucket)


def test_submit_prints_each_video_id_as_soon_as_it_is_submitted(
    cli: typer.Typer, world: World, clip: Path, tmp_path: Path
) -> None:
    """The second video's split job is refused (its job definition is gone): the first id is printed all the same,
    and the refused video is `failed` with the reason, not left `submitted` without a job."""
    s3 = world.session.client("s3")
    s3.upload_file(str(clip), world.config.bucket, "incoming/away.mp4")
    broken = replace(world.config, job_definitions={**world.config.job_definitions, "timesplit": "no-such-definition"})
    world.session.client("ssm").put_parameter(
        Name=parameter_name(broken.stack), Value=json.dumps(broken.to_json()), Type="String", Overwrite=True
    )
    uri = f"s3://{world.config.bucket}/incoming/away.mp4"
    result = CliRunner().invoke(cli, ["submit", str(clip), uri, "--chunk-seconds", "5", "--stack", broken.stack])
    assert isinstance(result.exception, PipelineError), result.output
    assert "cannot submit the split job" in str(result.exception)
    videos = {v.name: v for v in world.store.videos()}
    assert set(videos) == {clip.name, "away.mp4"}
    assert f"{videos[clip.name].video_id}  {clip.name}: 2 chunks" in result.stdout
    refused = videos["away.mp4"]
    assert refused.state == schema.FAILED and "Job definition no-such-definition does not exist" in (
        refused.error or ""
    )


def test_submit_wait_exits_non_zero_when_a_video_fails(
    cli: typer.Typer, world: World, clip: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    ids: list[str] = []

    def meanwhile(_: float) -> None:
        """What happens in AWS while `--wait` sleeps: a chunk object of the second video is lost, the pipeline runs."""
        if not ids:
            ids.extend(v.video_id for v in sorted(world.store.videos(), key=lambda v: v.created_at))
            key = world.store.get_chunk(ids[1], 0).key
            world.session.client("s3").delete_object(Bucket=world.config.bucket, Key=key)
        world.pump()

    monkeypatch.setattr(pipeline_cmd, "time", SimpleNamespace(sleep=meanwhile))
    args = ["submit", str(clip), str(clip), "--chunk-seconds", "5", "--wait", "--json", "--stack", world.config.stack]
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 1, result.output
    rows = json.loads(result.stdout.splitlines()[-1])  # after the in-process jobs' own output
    assert [(r["video_id"], r["state"]) for r in rows] == [(ids[0], schema.DONE), (ids[1], schema.FAILED)]
    assert f"{ids[1]} ended failed: 1 of 2 chunks failed" in result.stderr
    assert all(video_id in result.stderr for video_id in ids)  # printed as submitted (on stderr with --json)
