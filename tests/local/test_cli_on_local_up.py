"""The pipeline commands against a running `derby-batch local up`: a job process killed mid-run ends `failed` with a
reason, `derby-batch retry` completes the chunk, and `derby-batch logs` shows both attempts."""

from __future__ import annotations

import json
import os
import signal
from pathlib import Path
from typing import Any

from local_env import PROBE_STEPS, LocalEnv, frozen_mid_step, status, wait_until

from cli.local.clips import sample_with_keyframes
from detector.sample import SampleSpec


def test_a_killed_job_fails_with_a_reason_and_retry_completes_it(local: LocalEnv, tmp_path: Path) -> None:
    pipeline, clip = tmp_path / "probe.json", tmp_path / "clip.mp4"
    pipeline.write_text(json.dumps(PROBE_STEPS))
    sample_with_keyframes(clip, SampleSpec(320, 180, seconds=3.0, fps=10, people=1))
    up = local.up("--pipeline", str(pipeline), "--workers", "1")

    submitted = local.run("submit", str(clip), "--chunk-seconds", "1", "--json")
    assert f"using the local stack at {up.endpoint}" in submitted.stderr
    video_id = json.loads(submitted.stdout)["video_id"]
    job = frozen_mid_step(local, video_id)
    os.kill(job["pid"], signal.SIGKILL)
    chunk, step = int(job["parameters"]["chunk"]), job["parameters"]["step"]
    pos = [s["name"] for s in PROBE_STEPS].index(step)

    def failed_step() -> dict[str, Any] | None:
        record = status(local, video_id)["chunks"][chunk]["steps"][pos]
        return dict(record) if record["state"] == "failed" else None

    record = wait_until(failed_step, "the killed job's step to fail")
    assert record["error"] == f"job {job['job_id']} FAILED: Essential container in task exited, exit code 137"
    wait_until(lambda: status(local, video_id)["video"]["state"] == "failed", "the video to fail")

    assert f"retrying 1 chunk(s): [{chunk}]" in local.run("retry", video_id).stdout
    wait_until(lambda: status(local, video_id)["video"]["state"] == "done", "the video done after retry")
    assert status(local, video_id)["chunks"][chunk]["steps"][pos]["attempt"] == 2
    logs = local.run("logs", video_id, "--chunk", str(chunk)).stdout
    assert f"done: {step} of chunk {chunk}" in logs
    up.stop()
