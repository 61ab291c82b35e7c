"""A chunk's life through the pipeline, decided in one place: what to do next with a chunk as it stands, when it has
finished (and how), and the names of AWS Batch's job statuses. The router asks it for each stream record, the sweep
for each chunk it reads back, the local stack for each job it ran; none of them re-spells a rule.
"""

from __future__ import annotations

import enum

from botocore.exceptions import ClientError

from batch_jobs import schema
from batch_jobs.pipeline import Pipeline, chunk_steps
from batch_jobs.schema import ChunkItem

# AWS Batch job statuses, in the order a job walks them.
JOB_SUBMITTED, JOB_PENDING, JOB_RUNNABLE, JOB_STARTING = "SUBMITTED", "PENDING", "RUNNABLE", "STARTING"
JOB_RUNNING, JOB_SUCCEEDED, JOB_FAILED = "RUNNING", "SUCCEEDED", "FAILED"
JOB_FINISHED = frozenset({JOB_SUCCEEDED, JOB_FAILED})
JOB_ACTIVE = frozenset({JOB_SUBMITTED, JOB_PENDING, JOB_RUNNABLE, JOB_STARTING, JOB_RUNNING})

# Errors that say "not now" rather than "never": SubmitJob is retried on these (botocore's own retries, then the
# stream's), and a step fails at once on any other 4xx refusal (a queue or job definition gone, bad parameters).
_TRANSIENT_CODES = frozenset(
    {"TooManyRequestsException", "ThrottlingException", "Throttling", "RequestLimitExceeded", "ServerException"}
)


class Next(enum.Enum):
    """What a chunk's current state asks for."""

    NOTHING = "nothing"  # a job is working on it, or it was counted already
    SUBMIT = "submit"  # the last step is claimed (or retried) but has no job yet
    CLAIM = "claim"  # the last step is done and the pipeline has another
    WATCH = "watch"  # a job owns the active step: its end (event, or the sweep's look) moves the chunk
    COUNT = "count"  # finished: the video counts it (done or failed, per `outcome`)


def next_step(chunk: ChunkItem, pipeline: Pipeline) -> Next:
    if chunk.error:
        return Next.COUNT
    last, pos = chunk.last, len(chunk.steps) - 1
    if last.state in schema.ACTIVE and chunk.cancelled:
        return Next.NOTHING  # `cancel` marks it and terminates its job
    if last.state == schema.SUBMITTED and last.job_id is None:
        return Next.SUBMIT
    if last.state in schema.ACTIVE:
        return Next.WATCH
    if last.state == schema.DONE and pos + 1 < len(chunk_steps(pipeline)) and not chunk.cancelled:
        return Next.CLAIM
    return Next.COUNT


def outcome(chunk: ChunkItem, pipeline: Pipeline) -> bool | None:
    """True once the chunk is done with every chunk step, False once it failed or was cancelled, else None (still
    walking). A chunk that was cancelled between two steps has finished too: no step will be claimed."""
    if chunk.error:
        return False
    last = chunk.last
    if last.state == schema.DONE:
        if len(chunk.steps) == len(chunk_steps(pipeline)):
            return True
        return False if chunk.cancelled else None
    return False if last.state in schema.FINAL else None


def refused_for_good(exc: BaseException) -> str | None:
    """AWS's reason when a call was refused in a way no retry can heal (a 4xx that is not throttling), else None."""
    if not isinstance(exc, ClientError):
        return None
    error = exc.response.get("Error", {})
    status = int(exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode") or 400)
    if error.get("Code") in _TRANSIENT_CODES or status >= 500:
        return None
    return " ".join(str(error.get("Message") or exc).split())
