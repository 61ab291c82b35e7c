"""A periodic repair pass for what the stream cannot redo: records older than the stream's 24 h, lost events.

For each unfinished chunk: a claim without a job is submitted, a `done` step without a next claim is claimed, and a
step whose job has ended (or vanished) without recording `done` is failed, exactly as its Batch event would. A claim
younger than `CLAIM_GRACE` is left alone: the router that made it is likely still submitting its job. Then each
active video gets its finished chunks counted and settles (`sweep_videos.py`).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from batch_jobs import schema
from batch_jobs.schema import ChunkItem
from batch_jobs.store import Conflict, deserialize, serialize
from router.core import Router
from router.events import FINISHED, JobStateChange
from router.sweep_videos import repair_videos

# Far longer than a router invocation takes from claim to recorded job (its Lambda timeout is 60 s).
CLAIM_GRACE = timedelta(minutes=5)


@dataclass(frozen=True)
class SweepReport:
    chunks: int
    submitted: int
    claimed: int
    ended: int  # steps whose job ended without `done`: failed as their Batch event would
    counted: int  # finished chunks whose video had not counted them (their last record was lost)
    interrupted: int  # videos whose submit stopped before all chunk items or the split job were written: failed


def _chunks(router: Router) -> Iterator[ChunkItem]:
    client = router.store.client
    params: dict[str, Any] = {
        "TableName": router.store.table,
        "FilterExpression": "begins_with(sk, :p) AND attribute_not_exists(#error) AND attribute_not_exists(cancelled)",
        "ExpressionAttributeNames": {"#error": "error"},
        "ExpressionAttributeValues": serialize({":p": schema.CHUNK_PREFIX}),
    }
    while True:
        response = client.scan(**params)
        for item in response["Items"]:
            try:
                yield ChunkItem.from_item(deserialize(item))
            except schema.MalformedItem:
                continue  # the stream record of this item records the error
        if "LastEvaluatedKey" not in response:
            return
        params["ExclusiveStartKey"] = response["LastEvaluatedKey"]


def sweep(router: Router, grace: timedelta = CLAIM_GRACE) -> SweepReport:
    chunks = submitted = claimed = ended = 0
    claimed_before = datetime.now(UTC) - grace
    running: dict[str, ChunkItem] = {}
    pipeline = router.config.pipeline
    for chunk in _chunks(router):
        chunks += 1
        pos, last = len(chunk.steps) - 1, chunk.last
        if last.state == schema.SUBMITTED and last.job_id is None:
            if last.claimed_at and datetime.fromisoformat(last.claimed_at) > claimed_before:
                continue
            router.submit(chunk, pos)
            submitted += 1
        elif last.state == schema.DONE and pos + 1 < len(pipeline):
            claimed += not isinstance(router.store.claim_next(chunk, pipeline[pos + 1].name), Conflict)
        elif last.state in schema.ACTIVE and last.job_id:
            running[last.job_id] = chunk
    jobs = {info.job_id: info for info in router.batch.describe(list(running))}
    for job_id, chunk in running.items():
        info = jobs.get(job_id)
        if info is not None and info.status not in FINISHED:
            continue
        last = chunk.last
        change = JobStateChange(
            job_id=job_id,
            job_name=info.name if info else "",
            status=info.status if info else "FAILED",
            reason=info.reason if info else "job not found in AWS Batch",
            exit_code=None,
            step=last.step,
            video_id=chunk.video_id,
            chunk=chunk.index,
            attempt=last.attempt,
        )
        router.on_job_state_change(change)
        ended += 1
    videos = repair_videos(router, claimed_before)
    return SweepReport(chunks, submitted, claimed, ended, videos.counted, videos.interrupted)
