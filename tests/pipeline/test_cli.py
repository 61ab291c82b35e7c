"""The pipeline commands end to end against the moto stack: submit, status, results (+ plot), retry, cancel, logs."""

from __future__ import annotations

import dataclasses
import json
import time
from pathlib import Path

import pytest
import typer
from pipeline_clips import decoded_times
from typer.testing import CliRunner

from batch_jobs import schema
from batch_jobs.config import parameter_name
from batch_jobs.errors import PipelineError
from cli import pipeline_cmd
from router.drive import World


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

    probe_job = world.store.get_chunk(video_id, 2).steps[1].job_id
    logs = world.session.client("logs")
    stream = f"{world.config.job_definitions['probe']}/default/{probe_job}"
    logs.create_log_stream(logGroupName=world.config.log_group, logStreamName=stream)
    logs.put_log_events(logGroupName=world.config.log_group, logStreamName=stream,
                        logEvents=[{"timestamp": int(time.time() * 1000), "message": "decoded 75 frames"}])  # fmt: skip
    printed = _run(cli, "logs", video_id, "--chunk", "2", "--stack", stack)
    assert "decoded 75 frames" in printed and f"probe attempt 1: job {probe_job}" in printed
    assert "summarize attempt 1" in printed and "no log stream" in printed

    # A job Batch no longer knows (jobs age out; a restarted local stack): found by its stream's name.
    key = {"pk": {"S": schema.video_pk(video_id)}, "sk": {"S": schema.chunk_sk(2)}}
    world.store.client.update_item(TableName=world.config.table, Key=key, UpdateExpression="SET steps[1].job_id = :j",
                                   ExpressionAttributeValues={":j": {"S": "aged-out-job"}})  # fmt: skip
    stream = f"{world.config.job_definitions['probe']}/default/aged-out-job"
    logs.create_log_stream(logGroupName=world.config.log_group, logStreamName=stream)
    logs.put_log_events(logGroupName=world.config.log_group, logStreamName=stream,
                        logEvents=[{"timestamp": int(time.time() * 1000), "message": "from the past"}])  # fmt: skip
    assert "from the past" in _run(cli, "logs", video_id, "--chunk", "2", "--stack", stack)


def test_submit_cuts_chunks_of_the_stack_length_unless_told(cli: typer.Typer, world: World, clip: Path) -> None:
    stack = world.config.stack
    config = dataclasses.replace(world.config, chunk_seconds=3)
    world.session.client("ssm").put_parameter(
        Name=parameter_name(stack), Value=json.dumps(config.to_json()), Type="String", Overwrite=True
    )
    assert json.loads(_run(cli, "submit", str(clip), "--json", "--stack", stack))["chunks"] == 4
    assert json.loads(_run(cli, "submit", str(clip), "--chunk-seconds", "5", "--json", "--stack", stack))["chunks"] == 2


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
        (["logs", video_id, "--stack", stack], "has no job yet"),
    ]:
        result = runner.invoke(cli, args)
        assert isinstance(result.exception, PipelineError) and message in str(result.exception), result.output
