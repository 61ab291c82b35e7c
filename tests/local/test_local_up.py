"""`derby-batch local up` as a user runs it: one clean line for a taken port or a second stack, Ctrl-C and
`local down` stop it without leaving a process behind (the conftest checks every test for leftovers)."""

from __future__ import annotations

import json
import os
import signal
import socket
import time
from pathlib import Path
from typing import Any

import boto3
from local_env import (
    DETECT_STEPS,
    PROBE_STEPS,
    LocalEnv,
    free_port,
    frozen_mid_step,
    processes_with,
    running_jobs,
    status,
    wait_until,
)

from batch_jobs.batch import BatchClient
from batch_jobs.config import load_config
from batch_jobs.stack import Stack
from batch_jobs.store import Store
from batch_jobs.submit import submit_file
from cli.local.clips import sample_with_keyframes
from cli.local.files import read_json
from detector.sample import SampleSpec


def open_local(endpoint: str) -> Stack:
    """What `derby-batch submit` holds against the running local stack."""
    session = boto3.Session(
        aws_access_key_id="local-test-key", aws_secret_access_key="local-test-secret", region_name="us-east-1"
    )
    config = load_config(session.client("ssm", endpoint_url=endpoint), "local")
    store = Store(session.client("dynamodb", endpoint_url=endpoint), config.table)
    batch = BatchClient(session.client("batch", endpoint_url=endpoint))
    return Stack(config, store, batch, session.client("s3", endpoint_url=endpoint), None)


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
    video_id = submit_file(stack, clip, tmp_path / "split", chunk_seconds=1.0).video_id
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
    """Each job is frozen (SIGSTOP) the moment the ledger names its pid: a job that had not armed its parent-death
    signal by then would outlive the stack. Several rounds, as the race is one of timing."""
    pipeline, clip = tmp_path / "probe.json", tmp_path / "clip.mp4"
    pipeline.write_text(json.dumps(PROBE_STEPS))
    sample_with_keyframes(clip, SampleSpec(320, 180, seconds=3.0, fps=10, people=1))
    for _ in range(3):
        up = local.up("--pipeline", str(pipeline), "--workers", "1")
        video_id = json.loads(local.run("submit", str(clip), "--chunk-seconds", "1", "--json").stdout)["video_id"]
        job = frozen_mid_step(local, video_id)  # alive (stopped) when the stack dies
        up.proc.kill()  # SIGKILL: none of the stack's own clean-up runs
        up.proc.communicate(timeout=30)
        pid = job["pid"]
        wait_until(lambda: not local.owns(pid), "the frozen job to die with the stack", timeout=10)  # noqa: B023
        wait_until(lambda: not processes_with(local.marker), "the job host to die with the stack", timeout=10)


def _saved(local: LocalEnv, video_id: str) -> bool:
    """Whether a snapshot has saved the video's chunk items (a stack killed before that has nothing to resume)."""
    items = read_json(local.data_dir / "dynamodb" / "local-items.json", [])
    return any(i["pk"]["S"] == f"video#{video_id}" and i["sk"]["S"].startswith("chunk#") for i in items)


def _freeze_two(local: LocalEnv, video_id: str) -> list[dict[str, Any]]:
    """The video's first two jobs, stopped (SIGSTOP) the moment the ledger names them."""
    frozen: list[dict[str, Any]] = []
    deadline = time.monotonic() + 60
    while len(frozen) < 2:
        assert time.monotonic() < deadline, "two jobs running at once"
        seen = {j["job_id"] for j in frozen}
        for job in running_jobs(local):
            if job["job_id"] not in seen and job["parameters"]["video_id"] == video_id and local.owns(job["pid"]):
                os.kill(job["pid"], signal.SIGSTOP)
                frozen.append(job)
                break
        time.sleep(0.005)
    return frozen


def test_a_local_up_killed_mid_detect_and_started_again_finishes_with_every_frame_once(
    local: LocalEnv, tmp_path: Path
) -> None:
    """SIGKILLed with one detect job mid-step and another that has just ended: the ledger has that end, the items of
    the last snapshot (every 3 s) most likely not. Started again, the video is done and its results have each frame
    of the clip once."""
    pipeline, clip = tmp_path / "detect.json", tmp_path / "clip.mp4"
    pipeline.write_text(json.dumps(DETECT_STEPS))
    sample_with_keyframes(clip, SampleSpec(320, 180, seconds=3.0, fps=10, people=1))
    args = ("--pipeline", str(pipeline), "--workers", "1", "--gpus", "2")
    first = local.up(*args)
    video_id = json.loads(local.run("submit", str(clip), "--chunk-seconds", "1", "--json").stdout)["video_id"]
    frozen = _freeze_two(local, video_id)  # two GPU slots: the first two chunks' detects, stopped as they start
    wait_until(lambda: _saved(local, video_id), "a snapshot with the video's chunks")
    steps = [s["name"] for s in DETECT_STEPS]
    chunks = status(local, video_id)["chunks"]
    if chunks[int(frozen[0]["parameters"]["chunk"])]["steps"][steps.index("detect")]["state"] == "done":
        frozen.reverse()  # the one still mid-detect stays frozen
    other = frozen[1]
    os.kill(other["pid"], signal.SIGCONT)
    deadline = time.monotonic() + 60
    while not any(r["job_id"] == other["job_id"] and r["status"] == "SUCCEEDED" for r in ledger(local)):
        assert time.monotonic() < deadline, f"job {other['job_id']} to end"
        time.sleep(0.01)
    first.proc.kill()  # SIGKILL: no last snapshot, no clean-up
    first.proc.communicate(timeout=30)
    wait_until(lambda: not processes_with(local.marker), "the stack's processes to die with it", timeout=10)

    second = local.up(*args)
    wait_until(lambda: status(local, video_id)["video"]["state"] != "running", "the video settled after the restart")
    assert status(local, video_id)["video"]["state"] == "done"
    merged = tmp_path / "merged.json"
    local.run("results", video_id, "-o", str(merged))
    indices = [frame["index"] for frame in json.loads(merged.read_text())["frames"]]
    assert sorted(indices) == list(range(30)), "every frame of the clip, each once"
    second.stop()


def test_a_deleted_gpu_queue_fails_the_clip_naming_it_and_retry_after_a_restart_finishes_it(
    local: LocalEnv, tmp_path: Path
) -> None:
    """The GPU queue deleted under `local up`: the executor says so once and goes on serving the CPU queue, SubmitJob
    refuses the detect jobs for good and the clip fails within two minutes with AWS's reason, naming the queue. A
    restarted `local up` creates the stack's queues again (a fresh server, bootstrapped), and `retry` finishes it."""
    pipeline, clip = tmp_path / "detect.json", tmp_path / "clip.mp4"
    pipeline.write_text(json.dumps(DETECT_STEPS))
    sample_with_keyframes(clip, SampleSpec(320, 180, seconds=2.0, fps=10, people=1))
    args = ("--pipeline", str(pipeline), "--workers", "1", "--gpus", "1")
    first = local.up(*args)
    stack = open_local(first.endpoint)
    gpu_queue = stack.config.job_queues["gpu"]
    boto3.Session(aws_access_key_id="k", aws_secret_access_key="s", region_name="us-east-1").client(
        "batch", endpoint_url=first.endpoint
    ).delete_job_queue(jobQueue=gpu_queue)
    video_id = json.loads(local.run("submit", str(clip), "--chunk-seconds", "1", "--json").stdout)["video_id"]
    wait_until(lambda: status(local, video_id)["video"]["state"] == "failed", "the clip to fail", timeout=120)
    errors = [s.get("error") or "" for c in status(local, video_id)["chunks"] for s in c["steps"]]
    assert any(f"Job queue {gpu_queue} does not exist" in e for e in errors), errors
    err = first.stop()
    assert first.proc.returncode == 0, err
    assert err.count(f"cannot list the jobs of queue {gpu_queue}") == 1, err  # once, not every few seconds

    second = local.up(*args)
    local.run("retry", video_id)
    wait_until(lambda: status(local, video_id)["video"]["state"] == "done", "the retried clip to finish")
    assert all(s["state"] == "done" for c in status(local, video_id)["chunks"] for s in c["steps"])
    second.stop()
