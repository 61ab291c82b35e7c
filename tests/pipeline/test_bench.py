"""`python -m batch_jobs.bench` with its smallest options: it runs, prints its numbers, and frames are conserved."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_bench_prints_calls_speed_and_conserved_frames() -> None:
    run = subprocess.run(
        [sys.executable, "-m", "devtools.router_bench", "--seconds", "12", "--rounds", "1"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert run.returncode == 0, run.stderr
    out = run.stdout
    router = re.search(r"router ([\d.]+) per chunk-step .*goal <= 5: the router's calls only", out)
    assert router and float(router.group(1)) <= 5, out
    assert re.search(r"job +[\d.]+ \(not counted in the goal\)", out), out
    assert re.search(r"ours [\d.]+ s, ffmpeg -c copy -f segment [\d.]+ s -> [\d.]+x ffmpeg's speed", out), out
    frames = re.search(r"source (\d+), ours (\d+) in 2 chunks, ffmpeg (\d+) in \d+ chunks; conserved: True", out)
    assert frames and set(frames.groups()) == {"360"}, out  # 12 s at 30 fps
