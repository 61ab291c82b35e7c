"""`make simulate`'s contract on a small seed set, and the checker kept honest: each invariant catches a planted bug
(its safeguard patched out), and the failing schedule replays from the command it prints."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

from devtools.sim.faults import KINDS
from devtools.sim.invariants import INVARIANTS
from devtools.sim.plants import PLANTS

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.slow


def _sim(*args: str, workers: int = 2) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "devtools.sim", "--workers", str(workers), *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=540,
    )


def test_seeded_schedules_hold_every_invariant() -> None:
    run = _sim("--schedules", "16", "--first", "7001")
    assert run.returncode == 0, run.stdout + run.stderr[-3000:]
    summary = json.loads(run.stdout.strip().splitlines()[-1])
    assert summary["schedules"] == 16 and summary["violations"] == 0
    assert summary["videos"] >= 16 and summary["chunks"] >= 2 * summary["videos"] - 4  # some submits are cut short
    assert summary["invariants"] == list(INVARIANTS)
    assert set(summary["faults"]) == set(KINDS)
    drawn = [kind for kind, count in summary["faults"].items() if count]
    assert len(drawn) >= len(KINDS) * 2 // 3, f"few fault kinds drawn: {drawn}"


# Where each plant's search starts: the first seed that caught it when searched from seed 1 (`python -m devtools.sim
# --plant P --until I`), so that CI runs one schedule, not dozens. Should the simulation change and the seed
# no longer catch it, the search goes on past it: slower, still a test of the checker.
CAUGHT_FROM = {
    "no_conditional_video_create": 10,
    "no_failure_reason": 6,
    "no_lease_nor_duplicate_terminate": 35,
    "no_lost_count_repair": 7,
    "result_key_per_step": 7,
    "settle_only_running": 23,
}


@pytest.mark.parametrize("plant", sorted(PLANTS))
def test_each_invariant_catches_its_planted_bug(plant: str) -> None:
    invariant = PLANTS[plant][0]
    first = str(CAUGHT_FROM[plant])
    run = _sim("--schedules", "60", "--first", first, "--plant", plant, "--until", invariant, workers=1)
    assert run.returncode == 1, run.stdout + run.stderr[-3000:]
    summary = json.loads(run.stdout.strip().splitlines()[-1])
    assert summary["caught"].get(invariant), summary
    line = next(line for line in run.stdout.splitlines() if f": {invariant}: " in line)
    replay = re.search(r"\(replay: python -m devtools\.sim (--seed \d+ --plant \S+)\)$", line)
    assert replay, line
    again = _sim(*replay[1].split())
    assert again.returncode == 1 and f": {invariant}: " in again.stdout, again.stdout
