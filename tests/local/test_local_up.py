"""`derby-batch local up` as a user runs it: one clean line for a taken port or a second stack, Ctrl-C and
`local down` stop it without leaving a process behind (the conftest checks every test for leftovers)."""

from __future__ import annotations

import json
import signal
import socket
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import boto3
from local_env import PROBE_STEPS, LocalEnv, free_port, frozen_mid_step, processes_with, wait_until

from batch_jobs.config import StackConfig, load_config
from batch_jobs.store import Store
from batch_jobs.submit import submit_file
from cli.local.clips import sample_with_keyframes
from cli.local.files import read_json
from detector.sample import SampleSpec


@dataclass
class Client:
    """What `derby-batch submit` holds against a stack: its config, its table and its bucket."""

    config: StackConfig
    store: Store
    s3: Any


def open_local(endpoint: str) -> Client:
    session = boto3.Session(
        aws_access_key_id="local-test-key", aws_secret_access_key="local-test-secret", region_name="us-east-1"
    )
    config = load_config(session.client("ssm", endpoint_url=endpoint), "local")
    store = Store(session.client("dynamodb", endpoint_url=endpoint), config.table)
    return Client(config, store, session.client("s3", endpoint_url=endpoint))


def ledger(local: LocalEnv) -> list[dict[str, Any]]:
    return [read_json(path) for path in sorted((local.data_dir / "jobs").glob("*.json"))]


def test_port_in_use_is_one_clean_line(local: LocalEnv) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = local.run("local", "up", "--port", str(port), check=False)
    assert result.returncode == 1
    assert result.stderr.strip() == f"error: port {port} on 127.0.0.1 is in use: pick another with --port"
    assert not (local.data_dir / "endpoint.json").exists()


def test_a_second_local_up_is_refused_and_ctrl_c_stops_the_first(local: LocalEnv) -> None:
    first = local.up()
    second = local.run("local", "up", "--port", str(free_port()), check=False)
    assert second.returncode == 1
    assert second.stderr.startswith(
        f"error: a local stack is already running on {local.data_dir} (pid {first.proc.pid}"
    )
    assert "Traceback" not in second.stderr
    status = local.run("local", "status")
    assert f"running at {first.endpoint} (pid {first.proc.pid})" in status.stderr

    err = first.stop(signal.SIGINT)
    assert first.proc.returncode == 0, err
    assert err.strip().endswith("local stack stopped") and "Traceback" not in err
    assert not (local.data_dir / "endpoint.json").exists()
    assert "not running" in local.run("local", "status").stderr


def test_local_down_stops_it_from_another_terminal(local: LocalEnv) -> None:
    up = local.up()
    down = local.run("local", "down")
    assert f"local stack (pid {up.proc.pid}) stopped" in down.stderr
    _, err = up.proc.communicate(timeout=30)
    assert up.proc.returncode == 0 and err.strip().endswith("local stack stopped")
    again = local.run("local", "down", check=False)
    assert again.returncode == 1 and again.stderr.startswith("error: no local stack is running")


def test_ctrl_c_mid_video_and_local_up_again_finishes_every_chunk_once(local: LocalEnv, tmp_path: Path) -> None:
    pipeline = tmp_path / "probe.json"
    pipeline.write_text(json.dumps(PROBE_STEPS))
    clip = tmp_path / "clip.mp4"
    sample_with_keyframes(clip, SampleSpec(320, 180, seconds=3.0, fps=10, people=1))
    args = ("--pipeline", str(pipeline), "--workers", "1")

    first = local.up(*args)
    stack = open_local(first.endpoint)
    video_id = submit_file(stack.s3, stack.store, stack.config, clip, tmp_path / "split", chunk_seconds=1.0).video_id
    wait_until(lambda: any(r["status"] == "RUNNING" for r in ledger(local)), "a running job")
    err = first.stop(signal.SIGINT)
    assert first.proc.returncode == 0 and "running jobs are re-run on the next `local up`" in err

    second = local.up(*args)
    stack = open_local(second.endpoint)
    wait_until(lambda: stack.store.get_video(video_id).state == "done", "the video done after the restart")
    wait_until(lambda: all(r["status"] in ("SUCCEEDED", "FAILED") for r in ledger(local)), "the last job's exit")
    chunks = stack.store.chunks(video_id)
    assert [c.index for c in chunks] == [0, 1, 2]
    assert all([s.state for s in c.steps] == ["done", "done", "done"] for c in chunks)
    second.stop()
    finished = [
        (r["parameters"]["chunk"], r["parameters"]["step"]) for r in ledger(local) if r["status"] == "SUCCEEDED"
    ]
    assert sorted(finished) == sorted((str(i), s) for i in range(3) for s in ("probe", "summarize"))


def test_a_killed_local_up_takes_its_job_host_and_running_job_with_it(local: LocalEnv, tmp_path: Path) -> None:
    pipeline, clip = tmp_path / "probe.json", tmp_path / "clip.mp4"
    pipeline.write_text(json.dumps(PROBE_STEPS))
    sample_with_keyframes(clip, SampleSpec(320, 180, seconds=3.0, fps=10, people=1))
    up = local.up("--pipeline", str(pipeline), "--workers", "1")
    video_id = json.loads(local.run("submit", str(clip), "--chunk-seconds", "1", "--json").stdout)["video_id"]
    job = frozen_mid_step(local, video_id)  # alive (stopped) when the stack dies
    up.proc.kill()  # SIGKILL: none of the stack's own clean-up runs
    up.proc.communicate(timeout=30)
    marker = f"DERBY_BATCH_LOCAL_DIR={local.data_dir}"
    wait_until(lambda: not processes_with(marker), "the job host and the job to die with the stack", timeout=10)
    assert not Path(f"/proc/{job['pid']}/status").exists() or "zombie" in Path(f"/proc/{job['pid']}/status").read_text()
