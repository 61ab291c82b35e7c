"""`make scale` in small: the harness runs the real submit, router and sweep against moto and prints its JSON."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_scale_harness_reports_one_job_per_chunk_and_nothing_stuck() -> None:
    run = subprocess.run(
        [sys.executable, "-m", "devtools.scale", "--cases", "3x40", "--slowdown", "1", "--timeout", "120"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert run.returncode == 0, run.stderr[-3000:]
    (case,) = json.loads(run.stdout.strip().splitlines()[-1])["runs"]
    assert (case["videos"], case["chunks"], case["jobs_expected"]) == (3, 120, 120)
    assert (case["jobs_submitted"], case["duplicate_jobs"], case["stuck"], case["lost"]) == (120, 0, 0, 0)
    assert case["quota_bound_seconds"] == 2.4 and case["routing_seconds"] > 0
    assert 0 < case["video_item_kb"] < 64 and case["clock"] == "wall"
