"""The EventBridge "Batch Job State Change" event, read into a typed value (only what the router acts on)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from batch_jobs.lifecycle import JOB_SUCCEEDED

BATCH_SOURCE = "aws.batch"
DETAIL_TYPE = "Batch Job State Change"
SCHEDULED_SOURCE = "aws.events"
SCHEDULED_DETAIL_TYPE = "Scheduled Event"


@dataclass(frozen=True)
class JobStateChange:
    job_id: str
    job_name: str
    status: str
    reason: str
    exit_code: int | None
    step: str
    video_id: str
    chunk: int
    attempt: int


def is_batch_event(event: Any) -> bool:
    return isinstance(event, dict) and event.get("source") == BATCH_SOURCE and event.get("detail-type") == DETAIL_TYPE


def is_scheduled_event(event: Any) -> bool:
    """The sweep's schedule: an EventBridge rule with a `rate(...)` expression."""
    return (
        isinstance(event, dict)
        and event.get("source") == SCHEDULED_SOURCE
        and event.get("detail-type") == SCHEDULED_DETAIL_TYPE
    )


def parse_job_state_change(event: dict[str, Any]) -> JobStateChange | None:
    """None for jobs that are not chunk-step jobs of ours (no or malformed parameters): nothing to record."""
    detail = event.get("detail") or {}
    params = detail.get("parameters") or {}
    try:
        chunk, attempt = int(params["chunk"]), int(params["attempt"])
        step, video_id = str(params["step"]), str(params["video_id"])
    except (KeyError, TypeError, ValueError):
        return None
    attempts = detail.get("attempts") or []
    container = (attempts[-1].get("container") if attempts else None) or detail.get("container") or {}
    exit_code = container.get("exitCode")
    return JobStateChange(
        job_id=str(detail.get("jobId", "")),
        job_name=str(detail.get("jobName", "")),
        status=str(detail.get("status", "")),
        reason=str(detail.get("statusReason") or container.get("reason") or ""),
        exit_code=int(exit_code) if isinstance(exit_code, int) else None,
        step=step,
        video_id=video_id,
        chunk=chunk,
        attempt=attempt,
    )


def failure_reason(change: JobStateChange) -> str:
    """The one line recorded on a step whose job ended without recording `done`."""
    if change.status == JOB_SUCCEEDED:
        return f"job {change.job_id} exited without recording done"
    code = f", exit code {change.exit_code}" if change.exit_code is not None else ""
    return f"job {change.job_id} FAILED: {change.reason or 'no reason given'}{code}"
