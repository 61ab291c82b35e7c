"""`derby-batch demo` (what `make demo` runs) on a short sample: the real detector through the local stack, three
chunks, every one `done`, and the merged results match the sample's ground truth (recall and precision >= 0.95 at
IoU >= 0.5 for people and faces); the outputs it lists exist."""

from __future__ import annotations

import json
import re

import pytest
from local_env import LocalEnv

from batch_jobs.actions import people_per_second
from devtools.scoring import score


@pytest.mark.slow
def test_demo_finds_the_people_of_the_sample_through_the_local_stack(local: LocalEnv) -> None:
    result = local.run("demo", "--seconds", "3", "--chunk-seconds", "1", timeout=600)
    video_id = re.search(r"submitted (\S+): 3 chunks, 75 frames", result.stdout)
    assert video_id, result.stdout
    out = local.root / "derby-output" / video_id[1]
    listed = {line.strip() for line in result.stdout.splitlines() if line.startswith("  derby-output/")}
    names = ("results.json", "people-per-second.png", "chunk-00000-annotated.mp4")
    assert listed == {f"derby-output/{video_id[1]}/{name}" for name in names}
    assert all((out / name).stat().st_size > 0 for name in names)
    truth = local.root / "derby-output" / "sample.gt.json"
    on_screen = max(people_per_second(json.loads(truth.read_text())["frames"]).values())
    assert f"people seen: up to {on_screen} at once" in result.stdout and "in 75 frames" in result.stdout

    status = json.loads(local.run("status", video_id[1], "--json").stdout)
    assert [[s["state"] for s in c["steps"]] for c in status["chunks"]] == [["done"] * 3] * 3
    for label in ("person", "face"):
        found = score(out / "results.json", truth, label)
        assert found.truths == 75 * 4
        assert found.recall >= 0.95 and found.precision >= 0.95, (label, found)
