"""The shipped pipeline (timesplit -> detect -> summarize) with the real detector on generated footage with people."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import pytest

from batch_jobs import schema
from batch_jobs.bootstrap import bootstrap_stack
from batch_jobs.config import default_config
from batch_jobs.merge import SourceVideo, merge_documents
from batch_jobs.submit import submit_file
from devtools.drive import World
from router import handler
from router.core import Router

pytestmark = pytest.mark.slow


def test_detect_finds_people_through_the_pipeline(world: World, tmp_path: Path) -> None:
    from detector.sample import SampleSpec, write_sample

    clip = tmp_path / "people.mp4"
    write_sample(clip, SampleSpec(width=640, height=360, seconds=2.0, people=2))
    config = default_config(world.config.stack, world.config.region)
    bootstrap_stack(world.session, config)  # adds the detect job definition; the config now names the real pipeline
    handler.set_router(Router.from_session(world.session, config.stack))
    world.config = config
    s3 = world.session.client("s3")
    submitted = submit_file(
        replace(world.stack, config=config), clip, tmp_path / "chunks", chunk_seconds=30, options={"every": 10}
    )
    world.pump()

    (chunk,) = world.store.chunks(submitted.video_id)
    assert [(s.step, s.state) for s in chunk.steps] == [
        ("timesplit", schema.DONE), ("detect", schema.DONE), ("summarize", schema.DONE)
    ], chunk.steps  # fmt: skip
    detect = chunk.steps[1]
    assert detect.metrics["frames"] == 5 and "ssdlite" in detect.metrics["model"].lower()
    assert detect.result is not None
    document = json.loads(s3.get_object(Bucket=detect.result.bucket, Key=detect.result.key)["Body"].read())
    assert document["schema"] == "derby-batch/detections@2" and "tracks" in document
    source = SourceVideo.of(world.store.get_video(submitted.video_id), [chunk])
    merged = merge_documents([document], source)
    assert merged["video"] == {"width": 640, "height": 360, "fps": 25.0, "frames": 50, "duration_s": 2.0}
    people = [sum(d["label"] == "person" for d in f["detections"]) for f in merged["frames"]]
    assert [f["index"] for f in merged["frames"]] == [0, 10, 20, 30, 40]
    assert max(people) == 2
    summary_ref = chunk.steps[2].result
    assert summary_ref is not None
    summary = json.loads(s3.get_object(Bucket=summary_ref.bucket, Key=summary_ref.key)["Body"].read())
    assert [s["people"] for s in summary["people_per_second"]] == [2, 2]
