"""A command that finds no deployed stack and no `local up` runs the local stack in its own process: it finishes the
work it started before exiting, leaves its state for the next command, and on Ctrl-C stops at once, leaving nothing
running, with the next command resuming the video. The commands here are the few lines the CLI's stack opener runs
(`local_or_deployed`), then what `submit` and `status` do with the stack."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

from conftest import LocalEnv

from cli.local.clips import sample_with_keyframes
from cli.local.files import read_json
from detector.sample import SampleSpec

PROBE_STEPS = [
    {"name": "timesplit", "action": "split"},
    {"name": "probe", "action": "probe"},
    {"name": "summarize", "action": "summarize"},
]
COMMAND = """
import sys
from pathlib import Path
import boto3
from batch_jobs.config import load_config
from batch_jobs.store import Store
from batch_jobs.submit import submit_file
from cli.local.session import local_or_deployed

stack = local_or_deployed(None)
session = boto3.Session()
config = load_config(session.client("ssm"), stack)
store = Store(session.client("dynamodb"), config.table)
if sys.argv[1] == "submit":
    print(submit_file(session.client("s3"), store, config, Path(sys.argv[2]), Path(sys.argv[3]), 1.0).video_id)
else:
    print(store.get_video(sys.argv[2]).state)
"""


def command(local: LocalEnv, *args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-c", COMMAND, *args],
        cwd=local.root,
        env=local.env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def probe_pipeline_saved(local: LocalEnv, tmp_path: Path) -> Path:
    """`local up --pipeline` once: later stacks on this data directory run the probe pipeline too."""
    pipeline = tmp_path / "probe.json"
    pipeline.write_text(json.dumps(PROBE_STEPS))
    local.up("--pipeline", str(pipeline)).stop()
    clip = tmp_path / "clip.mp4"
    sample_with_keyframes(clip, SampleSpec(320, 180, seconds=3.0, fps=10, people=1))
    return clip


def test_a_command_finishes_its_work_before_exit_and_the_next_one_sees_it(local: LocalEnv, tmp_path: Path) -> None:
    clip = probe_pipeline_saved(local, tmp_path)
    out, err = command(local, "submit", str(clip), str(tmp_path / "split")).communicate(timeout=180)
    assert "no deployed stack configured: running the local stack in this process" in err
    video_id = out.strip()
    out, err = command(local, "status", video_id).communicate(timeout=60)
    assert out.strip() == "done", err


def test_ctrl_c_stops_a_command_at_once_and_the_next_one_resumes(local: LocalEnv, tmp_path: Path) -> None:
    clip = probe_pipeline_saved(local, tmp_path)
    submit = command(local, "submit", str(clip), str(tmp_path / "split"))
    deadline = time.monotonic() + 60
    while not any(read_json(p)["status"] == "RUNNING" for p in (local.data_dir / "jobs").glob("*.json")):
        assert time.monotonic() < deadline and submit.poll() is None, "no job started"
        time.sleep(0.05)
    started = time.monotonic()
    submit.send_signal(signal.SIGINT)
    out, _ = submit.communicate(timeout=30)
    assert time.monotonic() - started < 10, "Ctrl-C must not wait for the video"
    video_id = out.strip()

    resumed = command(local, "status", video_id)
    _, err = resumed.communicate(timeout=180)
    assert "waiting for the local jobs this command started" in err
    out, err = command(local, "status", video_id).communicate(timeout=60)
    assert out.strip() == "done", err
