"""A command that finds no deployed stack and no `local up` runs the local stack in its own process: it finishes the
work it started before exiting, leaves its state for the next command, and on Ctrl-C stops at once, leaving nothing
running, with the next command resuming the video."""

from __future__ import annotations

import json
import signal
import subprocess
import time
from pathlib import Path

from boto3.dynamodb.types import TypeDeserializer
from local_env import CLI, PROBE_STEPS, LocalEnv

from batch_jobs import schema
from cli.local.clips import sample_with_keyframes
from cli.local.files import read_json
from detector.sample import SampleSpec


def command(local: LocalEnv, *args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [CLI, *args], cwd=local.root, env=local.env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )


def video_state(local: LocalEnv, video_id: str) -> str:
    return str(json.loads(local.run("status", video_id, "--json").stdout)["video"]["state"])


def saved_chunks(local: LocalEnv) -> list[schema.ChunkItem]:
    """The chunk items as the local stack saved them in its data directory (read without starting a stack)."""
    deserialize = TypeDeserializer().deserialize
    (table,) = (local.data_dir / "dynamodb").glob("*.json")
    items = [{k: deserialize(v) for k, v in item.items()} for item in read_json(table)]
    return [schema.ChunkItem.from_item(item) for item in items if schema.is_chunk_item(item)]


def probe_pipeline_saved(local: LocalEnv, tmp_path: Path, seconds: float = 3.0) -> Path:
    """`local up --pipeline` once: later stacks on this data directory run the probe pipeline too."""
    pipeline = tmp_path / "probe.json"
    pipeline.write_text(json.dumps(PROBE_STEPS))
    local.up("--pipeline", str(pipeline)).stop()
    clip = tmp_path / "clip.mp4"
    sample_with_keyframes(clip, SampleSpec(320, 180, seconds=seconds, fps=10, people=1))
    return clip


def test_submit_finishes_its_work_before_exit_and_status_sees_it_later(local: LocalEnv, tmp_path: Path) -> None:
    clip = probe_pipeline_saved(local, tmp_path)
    submitted = local.run("submit", str(clip), "--chunk-seconds", "1", "--json", timeout=180)
    assert "no deployed stack configured: running the local stack in this process" in submitted.stderr
    video_id = json.loads(submitted.stdout)["video_id"]
    assert video_state(local, video_id) == "done"


def test_ctrl_c_stops_a_command_at_once_and_the_next_one_resumes(local: LocalEnv, tmp_path: Path) -> None:
    clip = probe_pipeline_saved(local, tmp_path, seconds=8.0)  # 8 chunks: work is left when the first job runs
    submit = command(local, "submit", str(clip), "--chunk-seconds", "1", "--wait", "--json")
    deadline = time.monotonic() + 60
    while not any(read_json(p)["status"] == "RUNNING" for p in (local.data_dir / "jobs").glob("*.json")):
        assert time.monotonic() < deadline and submit.poll() is None, "no job started"
        time.sleep(0.05)
    started = time.monotonic()
    submit.send_signal(signal.SIGINT)
    submit.communicate(timeout=30)
    assert time.monotonic() - started < 10, "Ctrl-C must not wait for the video"
    assert submit.returncode != 0
    left = saved_chunks(local)
    assert any(chunk.steps[-1].state != schema.DONE or len(chunk.steps) < len(PROBE_STEPS) for chunk in left)
    resumed = local.run("status", "--json", timeout=180)
    (video,) = json.loads(resumed.stdout)
    assert video_state(local, video["video_id"]) == "done"
    finished = saved_chunks(local)
    assert sorted(c.index for c in finished) == sorted(c.index for c in left)  # none lost, none duplicated
    assert all([s.step for s in c.steps] == [s["name"] for s in PROBE_STEPS] for c in finished)


def test_submit_wait_writes_the_outputs_where_it_says(local: LocalEnv, tmp_path: Path) -> None:
    clip = probe_pipeline_saved(local, tmp_path)
    submitted = local.run("submit", str(clip), "--chunk-seconds", "1", "--wait", timeout=180)
    video_id = submitted.stdout.split()[0]
    results = local.root / "derby-output" / video_id / "results.json"
    assert f"outputs of {video_id}: derby-output/{video_id}/results.json" in submitted.stderr
    merged = json.loads(results.read_text())
    assert merged["schema"] == "derby-batch/probe@1" and merged["frames"]  # the probe pipeline: no TensorFlow
