"""The guarantees, each a function of the final state and the recorded history (never of flags the code under test
sets about itself). Each returns the violations it finds, one line each."""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from batch_jobs import schema
from batch_jobs.schema import ChunkItem, MalformedItem, VideoItem
from devtools.sim.batch import SimJob


@dataclass
class Final:
    """What the checker reads: the table and bucket after the faults stopped and the repairs ran, plus the history."""

    videos: dict[str, VideoItem]
    chunks: dict[str, list[ChunkItem]]
    results: dict[str, dict[str, Any] | None]  # result key -> its document (None: no object)
    jobs: dict[str, SimJob]
    owned: set[str]  # job ids an item ever recorded (every chunk stream image, lost records included; every write)
    job_writes: dict[str, list[tuple[str, str]]]  # job id -> (what, key) of each write it made
    submit_writes: list[list[tuple[str, str]]]  # one list per submit
    retried: set[str] = field(default_factory=set)  # videos a user retried once the faults stopped


def one_result_per_chunk_step(final: Final) -> list[str]:
    out = []
    writers: dict[str, set[str]] = defaultdict(set)
    for job_id, writes in final.job_writes.items():
        for what, key in writes:
            if what == "s3" and "/results/" in key:
                writers[key].add(job_id)
    out += [f"{key} written by {len(jobs)} jobs" for key, jobs in writers.items() if len(jobs) > 1]
    recorded = [(f"{c.video_id} chunk {c.index}", c.steps[1:]) for chunks in final.chunks.values() for c in chunks]
    recorded += [(f"{v.video_id} video", v.steps) for v in final.videos.values()]
    for where, steps in recorded:
        for step in steps:
            if step.state != schema.DONE:
                continue
            doc = final.results.get(step.result.key) if step.result else None
            if doc is None:
                out.append(f"{where} {step.step}: done without its result object")
            elif (doc.get("job_id"), doc.get("attempt")) != (step.job_id, step.attempt):
                out.append(
                    f"{where} {step.step}: recorded job {step.job_id} attempt {step.attempt}, object written by "
                    f"{doc.get('job_id')} attempt {doc.get('attempt')}"
                )
    return out


def no_video_stuck(final: Final) -> list[str]:
    out = []
    for video in final.videos.values():
        if video.state not in schema.FINAL:
            open_chunks = [c for c in final.chunks.get(video.video_id, []) if c.counted is None]
            where = "; ".join(f"chunk {c.index}: {c.last}" for c in open_chunks)
            out.append(f"{video.video_id} is {video.state}" + (f" ({where})" if where else ""))
    return out


def failures_have_reasons(final: Final) -> list[str]:
    out = []
    for video in final.videos.values():
        if video.state != schema.FAILED:
            continue
        error = video.error or ""
        if not (error.startswith("submit interrupted") or retriable(video)):
            out.append(f"{video.video_id} failed with no actionable reason: {error!r}")
    for chunks in final.chunks.values():
        for chunk in chunks:
            out += [
                f"{chunk.video_id} chunk {chunk.index} {s.step} failed without a reason"
                for s in chunk.steps
                if s.state == schema.FAILED and not (s.error or "").strip()
            ]
    return out


def retriable(video: VideoItem) -> bool:
    """A failure `retry` acts on: a chunk step's (`K of N chunks failed; chunk I <step>: ...`) or the video's own
    step's (`<step> of the video failed: ...`)."""
    error = video.error or ""
    return "; chunk" in error or " of the video failed: " in error


def no_orphan_jobs(final: Final) -> list[str]:
    """A job that its chunk never recorded (a duplicate) does no work, and is not left in the queue: one still queued
    when the faults stopped was terminated by the repairs before it could take a GPU. (One already running ends by
    itself: its fencing check fails, and it writes nothing.)"""
    out = []
    for job in final.jobs.values():
        if job.job_id in final.owned:
            continue
        if any(what for what, _ in final.job_writes.get(job.job_id, [])):
            out.append(f"job {job.name} ({job.job_id}) was never recorded by its chunk, yet wrote")
        if job.phase_at_heal == "queued" and job.terminated is None:
            out.append(f"job {job.name} ({job.job_id}) was left queued with no chunk owning it")
    return out


def no_foreign_overwrite(final: Final) -> list[str]:
    out = []
    for job_id, writes in final.job_writes.items():
        own = final.jobs[job_id].parameters.get("video_id") if job_id in final.jobs else None
        foreign = sorted({v for v in (_video_of(key) for _, key in writes) if v is not None and v != own})
        if foreign:
            out.append(f"job {job_id} of video {own} wrote to videos {foreign}")
    owners: dict[str, int] = {}
    for n, writes in enumerate(final.submit_writes):
        videos = {v for v in (_video_of(key) for _, key in writes) if v}
        if len(videos) > 1:
            out.append(f"submit {n} wrote to several videos: {sorted(videos)}")
        for video in videos:
            if owners.setdefault(video, n) != n:
                out.append(f"submits {owners[video]} and {n} both wrote video {video}")
    return out


def retry_recovers(final: Final) -> list[str]:
    return [f"{v} was retried after the faults stopped but is {final.videos[v].state}" for v in sorted(final.retried)
            if final.videos[v].state != schema.DONE]  # fmt: skip


INVARIANTS: dict[str, Callable[[Final], list[str]]] = {
    "one_result_per_chunk_step": one_result_per_chunk_step,
    "no_video_stuck": no_video_stuck,
    "failures_have_reasons": failures_have_reasons,
    "no_orphan_jobs": no_orphan_jobs,
    "no_foreign_overwrite": no_foreign_overwrite,
    "retry_recovers": retry_recovers,
}


def check(final: Final) -> list[tuple[str, str]]:
    return [(name, line) for name, rule in INVARIANTS.items() for line in rule(final)]


def _video_of(key: str) -> str | None:
    """The video a write is about: `videos/<id>/...` in S3, `video#<id>` in the table."""
    if key.startswith("videos/"):
        return key.split("/")[1]
    if key.startswith(schema.PK_PREFIX):
        return key.removeprefix(schema.PK_PREFIX)
    return None


def read_chunks(raw: list[dict[str, Any]]) -> list[ChunkItem]:
    out = []
    for item in raw:
        try:
            out.append(ChunkItem.from_item(item))
        except MalformedItem:
            continue
    return out


def read_document(body: bytes) -> dict[str, Any] | None:
    try:
        data = json.loads(body)
    except ValueError:
        return None
    return data if isinstance(data, dict) else None
