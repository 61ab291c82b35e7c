"""`submit --wait --json` on the local stack: the outputs it writes to ./derby-output/<video id>/ are in the one JSON
document on stdout, and their lines for a human (the merged results, the plot, where they are) on stderr."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

from local_env import PROBE_STEPS, LocalEnv

from cli.local.clips import sample_with_keyframes
from detector.sample import SampleSpec


def _document(result: subprocess.CompletedProcess[str]) -> Any:
    return json.loads(result.stdout)  # the whole of stdout: one document, nothing before or after it


def _check_outputs(local: LocalEnv, row: dict[str, Any], stderr: str) -> None:
    video_id, outputs = row["video_id"], row["outputs"]
    directory = f"derby-output/{video_id}"
    assert outputs == {
        "directory": directory,
        "results": f"{directory}/results.json",
        "plot": f"{directory}/people-per-second.png",
        "annotated": None,  # the probe pipeline has no detect step to draw
        "frames": 20,
        "chunks": 2,
        "missing_chunks": [],
    }
    merged = json.loads((local.root / outputs["results"]).read_text())
    assert [f["index"] for f in merged["frames"]] == list(range(20))
    assert (local.root / outputs["plot"]).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert f"{video_id}  clip.mp4: 2 chunks, 20 frames" in stderr
    assert f"{outputs['results']}: 20 frames from 2 chunks" in stderr
    assert f"outputs of {video_id}: {outputs['results']}, {outputs['plot']}" in stderr


def test_submit_wait_json_carries_the_outputs_written(local: LocalEnv, tmp_path: Path) -> None:
    pipeline, clip = tmp_path / "probe.json", tmp_path / "clip.mp4"
    pipeline.write_text(json.dumps(PROBE_STEPS))
    sample_with_keyframes(clip, SampleSpec(320, 180, seconds=2.0, fps=10, people=1))
    up = local.up("--pipeline", str(pipeline), "--workers", "2")

    one = local.run("submit", str(clip), "--chunk-seconds", "1", "--wait", "--json")
    row = _document(one)
    assert row["state"] == "done" and row["error"] is None
    _check_outputs(local, row, one.stderr)

    two = local.run("submit", str(clip), str(clip), "--chunk-seconds", "1", "--wait", "--json")
    rows = _document(two)
    assert [r["state"] for r in rows] == ["done", "done"]
    for r in rows:
        _check_outputs(local, r, two.stderr)

    human = local.run("submit", str(clip), "--chunk-seconds", "1", "--wait")  # without --json: as before
    assert ": 20 frames from 2 chunks" in human.stdout and "outputs of " in human.stderr
    up.stop()
