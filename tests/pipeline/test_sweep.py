"""The sweep repairs what the stream can no longer redo: lost records (older than 24 h) and lost Batch events."""

from __future__ import annotations

from collections import Counter
from datetime import timedelta
from pathlib import Path

from batch_jobs import schema
from batch_jobs.submit import submit_file
from router import handler
from router.drive import World
from router.sweep import sweep


def test_sweep_finishes_a_walk_whose_records_and_events_were_lost(world: World, clip: Path, tmp_path: Path) -> None:
    submitted = submit_file(world.session.client("s3"), world.store, world.config, clip, tmp_path, chunk_seconds=5)
    world.read_stream()  # the chunk items' records expire unseen
    report = sweep(handler.get_router())
    assert (report.chunks, report.claimed, report.submitted, report.ended) == (2, 2, 0, 0)
    world.read_stream()  # ...and so do the claims' records
    assert sweep(handler.get_router()).submitted == 0  # a fresh claim is its router's to submit
    report = sweep(handler.get_router(), grace=timedelta(0))  # as a sweep CLAIM_GRACE later
    assert (report.submitted, report.ended) == (2, 0)
    jobs = world.jobs()
    assert len(jobs) == 2
    world.run_job(jobs[0], send_event=False)  # succeeds; its event is lost (harmless)
    world.ran.add(jobs[1]["jobId"])  # never runs: moto says SUCCEEDED, the event is lost
    world.read_stream()
    report = sweep(handler.get_router())
    assert (report.claimed, report.ended) == (1, 1)
    lost = world.store.get_chunk(submitted.video_id, int(jobs[1]["parameters"]["chunk"]))
    assert lost.last.state == schema.FAILED and "exited without recording done" in (lost.last.error or "")
    world.pump()  # from here the stream works again
    states = Counter(c.last.state for c in world.store.chunks(submitted.video_id))
    assert states == Counter({schema.DONE: 1, schema.FAILED: 1})
    assert sweep(handler.get_router()) == type(report)(2, 0, 0, 0)  # nothing left to repair


def test_the_scheduled_event_runs_the_sweep(world: World, clip: Path, tmp_path: Path) -> None:
    submitted = submit_file(world.session.client("s3"), world.store, world.config, clip, tmp_path, chunk_seconds=5)
    world.read_stream()  # the records expire unseen: only the schedule can move the chunks on
    event = {
        "version": "0",
        "id": "53dc4d37-cffa-4f76-80c9-8b7d4a4d2eaa",
        "detail-type": "Scheduled Event",
        "source": "aws.events",
        "account": "123456789012",
        "time": "2026-11-28T12:00:00Z",
        "region": world.config.region,
        "resources": [f"arn:aws:events:{world.config.region}:123456789012:rule/{world.config.stack}-sweep"],
        "detail": {},
    }
    assert handler.lambda_handler(event, None) == {"chunks": 2, "submitted": 0, "claimed": 2, "ended": 0}
    claims = [(c.last.step, c.last.state, c.last.job_id) for c in world.store.chunks(submitted.video_id)]
    assert claims == [("probe", schema.SUBMITTED, None)] * 2
