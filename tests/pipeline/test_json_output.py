"""`--json`: the real `derby-batch` process against the moto stack; its whole stdout is one JSON document for every
command and combination of options that has it, errors included (`{"error": ...}`, one line on stderr, exit non-zero),
and the lines for a human go to stderr."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from batch_jobs import schema
from batch_jobs.config import parameter_name
from batch_jobs.errors import PipelineError
from devtools.drive import World

CLI = str(Path(sys.executable).with_name("derby-batch"))


def _cli(*args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    """The installed command, with this test's AWS settings and stack (the moto server's endpoint in the env)."""
    return subprocess.run([CLI, *args], capture_output=True, text=True, env=dict(os.environ), timeout=timeout)


def _document(result: subprocess.CompletedProcess[str], code: int = 0) -> Any:
    assert result.returncode == code, (result.returncode, result.stdout, result.stderr)
    return json.loads(result.stdout)  # the whole of stdout: one document, nothing before or after it


def _error(result: subprocess.CompletedProcess[str], message: str, code: int = 1) -> dict[str, Any]:
    document = _document(result, code)
    assert message in document["error"], document
    lines = result.stderr.strip().splitlines()  # submit's ids may come first
    assert lines[-1] == f"error: {document['error']}", result.stderr
    assert [line for line in lines if line.startswith("error:")] == lines[-1:], result.stderr
    return dict(document)


def test_submit_and_status_print_one_document(world: World, clip: Path) -> None:
    one = _cli("submit", str(clip), "--chunk-seconds", "5", "--json")
    submitted = _document(one)
    assert submitted["chunks"] == 2 and submitted["frames"] == 250 and submitted["state"] == schema.RUNNING
    assert submitted["error"] is None
    assert f"{submitted['video_id']}  {clip.name}: 2 chunks" in one.stderr  # the id, as soon as it was submitted

    several = _document(_cli("submit", str(clip), str(clip), "--chunk-seconds", "5", "--every", "2", "--json"))
    assert [row["chunks"] for row in several] == [2, 2]
    ids = {submitted["video_id"], *(row["video_id"] for row in several)}
    world.pump()

    listed = _document(_cli("status", "--json"))
    assert {v["video_id"] for v in listed} == ids and {v["state"] for v in listed} == {schema.DONE}
    one_video = _document(_cli("status", submitted["video_id"], "--json"))
    assert one_video["video"]["state"] == schema.DONE and len(one_video["chunks"]) == 2
    assert _document(_cli("status", submitted["video_id"], "--watch", "--json")) == one_video  # once, not a stream


def test_submit_wait_prints_one_document_with_each_videos_end(world: World, clip: Path) -> None:
    """Two videos, the second of which fails (a chunk object is lost): exit 1, and stdout is still one document
    with each video's state and error; the ids and the failure are on stderr."""
    args = ["submit", str(clip), str(clip), "--chunk-seconds", "5", "--wait", "--json"]
    with subprocess.Popen([CLI, *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) as proc:
        stop = threading.Event()
        pumping = threading.Thread(target=_pump_while_waiting, args=(world, stop))
        pumping.start()
        try:
            stdout, stderr = proc.communicate(timeout=120)
        finally:
            stop.set()
            pumping.join()
    result = subprocess.CompletedProcess(args, proc.returncode, stdout, stderr)
    rows = _document(result, 1)
    assert [r["state"] for r in rows] == [schema.DONE, schema.FAILED] and rows[0]["error"] is None
    assert rows[1]["error"].startswith("1 of 2 chunks failed")
    assert f"{rows[1]['video_id']} ended failed: 1 of 2 chunks failed" in stderr
    assert all(row["video_id"] in stderr for row in rows)


def _pump_while_waiting(world: World, stop: threading.Event) -> None:
    """AWS while `--wait` polls: once both videos exist, a chunk object of the second is lost; the pipeline runs."""
    lost = False
    while not stop.wait(0.2):
        videos = sorted(world.store.videos(), key=lambda v: v.created_at)
        if len(videos) < 2:
            continue
        if not lost:
            try:
                key = world.store.get_chunk(videos[1].video_id, 0).key
            except PipelineError:  # its video item is written, its chunk items are not yet
                continue
            world.session.client("s3").delete_object(Bucket=world.config.bucket, Key=key)
            lost = True
        world.pump()


def test_errors_are_one_document_and_one_line(world: World, clip: Path, tmp_path: Path) -> None:
    _error(_cli("status", "nope", "--json"), "no video 'nope'")
    _error(_cli("status", "--json", "--stack", "nostack"), "stack 'nostack' is not deployed")
    _error(_cli("submit", str(clip), "--every", "2", "--fps", "1", "--json"), "use --every or --fps")
    _error(_cli("submit", str(tmp_path / "missing.mp4"), "--json"), "missing.mp4")
    _error(_cli("submit", f"s3://{world.config.bucket}/nope.mp4", "--json"), "cannot read s3://")
    _error(_cli("submit", str(clip), "--chunk-seconds", "abc", "--json"), "Invalid value for '--chunk-seconds'", code=2)
    _error(_cli("status", "--json", "--no-such-option"), "No such option: --no-such-option", code=2)
    assert list(world.store.videos()) == []


def test_a_failure_after_some_videos_were_submitted_names_them(world: World, clip: Path) -> None:
    """The second video's split job is refused (its job definition is gone): the document carries the error and the
    first video, which was submitted and is running."""
    s3 = world.session.client("s3")
    s3.upload_file(str(clip), world.config.bucket, "incoming/away.mp4")
    broken = replace(world.config, job_definitions={**world.config.job_definitions, "timesplit": "no-such-definition"})
    world.session.client("ssm").put_parameter(
        Name=parameter_name(broken.stack), Value=json.dumps(broken.to_json()), Type="String", Overwrite=True
    )
    uri = f"s3://{world.config.bucket}/incoming/away.mp4"
    result = _cli("submit", str(clip), uri, "--chunk-seconds", "5", "--json")
    document = _error(result, "cannot submit the split job")
    first = next(v for v in world.store.videos() if v.name == clip.name)
    assert result.stderr.startswith(f"{first.video_id}  {clip.name}: 2 chunks")  # as soon as it was submitted
    assert [(v["video_id"], v["chunks"]) for v in document["submitted"]] == [(first.video_id, 2)]


@pytest.mark.parametrize("command", ["retry", "cancel", "logs"])
def test_commands_without_json_refuse_it_as_a_document(world: World, command: str) -> None:
    _error(_cli(command, "some-video", "--json"), "No such option: --json", code=2)
