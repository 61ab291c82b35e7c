"""Bad input gives a clear one-line error, its state is recorded, and the other chunks are unaffected."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

from batch_jobs import schema
from batch_jobs.errors import PipelineError
from batch_jobs.store import serialize
from batch_jobs.submit import Submitted, submit_file
from cli import pipeline_cmd
from devtools.drive import World


def _submit(world: World, clip: Path, tmp_path: Path) -> Submitted:
    return submit_file(world.stack, clip, tmp_path, chunk_seconds=5)


@pytest.mark.parametrize(
    ("content", "message"),
    [(b"", "empty file (0 bytes)"), (b"hello, not a video\n" * 50, "not a readable video"), (None, "no such file")],
)
def test_submit_rejects_what_is_not_a_video(world: World, tmp_path: Path, content: bytes | None, message: str) -> None:
    path = tmp_path / "input.mp4"
    if content is not None:
        path.write_bytes(content)
    with pytest.raises(PipelineError, match=re.escape(message)):
        submit_file(world.stack, path, tmp_path / "out")
    assert list(world.store.videos()) == []


def test_submit_rejects_a_truncated_video(world: World, clip: Path, tmp_path: Path) -> None:
    path = tmp_path / "truncated.mp4"
    path.write_bytes(clip.read_bytes()[: clip.stat().st_size // 3])  # moov atom at the end is gone
    with pytest.raises(PipelineError, match="not a readable video"):
        submit_file(world.stack, path, tmp_path / "out")


@pytest.mark.parametrize(
    ("damage", "reason"),
    [
        ("corrupt", "not a readable video"),
        ("empty", "empty file (0 bytes)"),
        ("text", "not a readable video"),
        ("missing", "missing S3 object"),
    ],
)
def test_a_damaged_chunk_object_fails_only_its_chunk(
    world: World, clip: Path, tmp_path: Path, damage: str, reason: str
) -> None:
    submitted = _submit(world, clip, tmp_path)
    s3, key = world.session.client("s3"), world.store.get_chunk(submitted.video_id, 1).key
    if damage == "missing":
        s3.delete_object(Bucket=world.config.bucket, Key=key)
    else:
        body = {"corrupt": b"\x00\x00\x00\x18ftypmp42" + bytes(range(256)) * 8, "empty": b"", "text": b"x,y\n1,2\n"}
        s3.put_object(Bucket=world.config.bucket, Key=key, Body=body[damage])
    world.pump()
    bad = world.store.get_chunk(submitted.video_id, 1)
    assert [s.state for s in bad.steps] == [schema.DONE, schema.FAILED]
    assert bad.last.error and reason in bad.last.error and "\n" not in bad.last.error
    good = world.store.get_chunk(submitted.video_id, 0)
    assert [s.state for s in good.steps] == [schema.DONE] * 3
    video = world.store.get_video(submitted.video_id)
    assert video.state == schema.FAILED and (video.chunks_failed, video.chunks_done) == (1, 1)


@pytest.mark.parametrize(
    ("change", "reason"),
    [({"steps": "banana"}, "steps must be a non-empty list"), ({"start_time": "soon"}, "start_time must be a number")],
)
def test_a_malformed_chunk_item_is_recorded_not_retried(
    world: World, clip: Path, tmp_path: Path, change: dict, reason: str
) -> None:
    submitted = _submit(world, clip, tmp_path)
    item = {**world.store.get_chunk(submitted.video_id, 1).to_item(), **change}
    world.store.client.delete_item(TableName=world.config.table, Key={"pk": {"S": item["pk"]}, "sk": {"S": item["sk"]}})
    world.store.client.put_item(TableName=world.config.table, Item=serialize(item))
    world.pump()
    raw = {i["sk"]: i for i in world.store.chunk_items(submitted.video_id)}
    assert reason in raw["chunk#00001"]["error"]
    assert [s.state for s in world.store.get_chunk(submitted.video_id, 0).steps] == [schema.DONE] * 3
    video = world.store.get_video(submitted.video_id)
    assert video.state == schema.FAILED and video.chunks_failed == 1


def test_a_malformed_video_item_is_recorded_and_listed(world: World, clip: Path, tmp_path: Path) -> None:
    good, bad = _submit(world, clip, tmp_path / "good"), _submit(world, clip, tmp_path / "bad")
    key = {"pk": {"S": schema.video_pk(bad.video_id)}, "sk": {"S": schema.VIDEO_SK}}
    world.store.client.update_item(TableName=world.config.table, Key=key, UpdateExpression="SET #s = :s",
                                   ExpressionAttributeNames={"#s": "state"},
                                   ExpressionAttributeValues={":s": {"S": "banana"}})  # fmt: skip
    world.pump()  # the router meets the bad video item when its chunks finish: recorded, not retried forever
    raw = world.store.client.get_item(TableName=world.config.table, Key=key)["Item"]
    assert raw["error"]["S"] == "malformed video item: unknown video state 'banana'"
    assert world.store.get_video(good.video_id).state == schema.DONE
    assert [c.last.state for c in world.store.chunks(bad.video_id)] == [schema.DONE] * 2

    app = typer.Typer()
    pipeline_cmd.register(app)
    listed = CliRunner().invoke(app, ["status", "--stack", world.config.stack], catch_exceptions=False)
    assert listed.exit_code == 0 and good.video_id in listed.stdout and bad.video_id in listed.stdout
    assert "malformed:" in listed.stdout  # the reason wraps in the narrow table; the JSON has it whole
    as_json = CliRunner().invoke(app, ["status", "--json", "--stack", world.config.stack], catch_exceptions=False)
    rows = {row["video_id"]: row for row in json.loads(as_json.stdout)}
    assert rows[bad.video_id]["malformed"] == "unknown video state 'banana'" and "malformed" not in rows[good.video_id]


def test_a_step_not_in_the_pipeline_is_recorded(world: World, clip: Path, tmp_path: Path) -> None:
    submitted = _submit(world, clip, tmp_path)
    world.pump()
    key = {"pk": {"S": schema.video_pk(submitted.video_id)}, "sk": {"S": schema.chunk_sk(0)}}
    world.store.client.update_item(
        TableName=world.config.table,
        Key=key,
        UpdateExpression="SET steps[2].step = :s",
        ExpressionAttributeValues={":s": {"S": "nosuchstep"}},
    )
    world.pump()
    error = world.store.chunk_items(submitted.video_id)[0]["error"]
    assert "'nosuchstep', not in the pipeline" in error


def test_a_job_for_an_unknown_step_exits_with_a_clear_error(world: World, moto_endpoint: str) -> None:
    env = {"AWS_BATCH_JOB_ID": "job-1", "DERBY_BATCH_STACK": world.config.stack, "PATH": "/usr/bin:/bin"}
    env.update({k: v for k, v in os.environ.items() if k.startswith("AWS_")})
    command = [sys.executable, "-m", "batch_jobs", "run", "--step", "frobnicate", "--video-id", "v", "--chunk", "0"]
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode == 2
    assert done.stderr.strip() == "error: unknown step 'frobnicate' (pipeline: timesplit, probe, summarize, stitch)"


def test_a_job_without_its_batch_job_id_refuses_to_run(world: World) -> None:
    from batch_jobs.__main__ import main

    with pytest.MonkeyPatch.context() as mp:
        mp.delenv("AWS_BATCH_JOB_ID", raising=False)
        assert main(["run", "--step", "probe", "--video-id", "v", "--chunk", "0"]) == 2
