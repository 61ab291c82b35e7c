"""The 3-step test pipeline walks every chunk to the end, fed by records read back from moto's stream."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import pytest

from batch_jobs import schema
from batch_jobs.submit import submit_file
from devtools.drive import World, count_calls
from router import handler
from router.handler import THREADS_ENV


def test_every_chunk_walks_to_the_end(world: World, clip: Path, tmp_path: Path) -> None:
    s3 = world.session.client("s3")
    submitted = submit_file(world.stack, clip, tmp_path, chunk_seconds=3)
    assert submitted.chunks == 4
    world.pump()
    chunks = world.store.chunks(submitted.video_id)
    assert [c.index for c in chunks] == [0, 1, 2, 3]
    for chunk in chunks:
        assert [(s.step, s.state) for s in chunk.steps] == [
            ("timesplit", schema.DONE), ("probe", schema.DONE), ("summarize", schema.DONE)
        ]  # fmt: skip
        probe = chunk.steps[1]
        assert probe.job_id and probe.result and probe.metrics["frames"] == chunk.end_frame - chunk.start_frame
        assert [sorted(s.metrics) for s in chunk.steps[1:]] == [["fps", "frames", "model", "seconds"]] * 2
        document = json.loads(s3.get_object(Bucket=probe.result.bucket, Key=probe.result.key)["Body"].read())
        assert document["chunk"]["start_frame"] == chunk.start_frame
        assert len(document["frames"]) == chunk.end_frame - chunk.start_frame
    video = world.store.get_video(submitted.video_id)
    assert video.state == schema.DONE
    assert (video.chunks_done, video.chunks_failed) == (4, 0)


def test_router_makes_four_aws_calls_per_chunk_step(
    world: World, clip: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # One record at a time: chunks finishing at once on threads may each see the last count and try to settle.
    monkeypatch.setenv(THREADS_ENV, "1")
    router = handler.get_router()
    calls = count_calls([router.store.client, router.batch.client])
    submitted = submit_file(world.stack, clip, tmp_path, chunk_seconds=3)
    world.pump()
    chunk_steps = submitted.chunks * 2
    # per chunk-step: claim (with the submit lease), submit, record the id, the job's SUCCEEDED event (checks
    # `done`); no ListJobs: nobody else submits under the claimer's lease. Per chunk: counted as finished (a
    # transaction, then a read of the video's counts); per video: its stitch step claimed (with the lease) and
    # submitted, the id recorded, the job's SUCCEEDED event (checks `done`, reads the video), settled.
    assert calls == Counter(
        {
            "SubmitJob": chunk_steps + 1,
            "UpdateItem": 3 * chunk_steps + 4,
            "TransactWriteItems": submitted.chunks,
            "GetItem": submitted.chunks + 1,
        }
    )
    per_video = 6  # the stitch step: claim, submit, record, event's check, read, settle
    assert (sum(calls.values()) - 2 * submitted.chunks - per_video) / chunk_steps == 4
