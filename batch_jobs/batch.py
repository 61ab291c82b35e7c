"""AWS Batch calls for chunk-step jobs: names, submit, find, terminate, describe. Returns plain data; no waiting.

Job names carry what a human searches by (stack, video, chunk, step, attempt) and are deterministic, so the router
can find a job it submitted before crashing (`find_job`) instead of submitting it twice.
"""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from batch_jobs.config import STACK_ENV

JOB_PARAMETERS = ("step", "video_id", "chunk", "attempt")
JOB_COMMAND = (
    "python", "-m", "batch_jobs", "run",
    "--step", "Ref::step", "--video-id", "Ref::video_id", "--chunk", "Ref::chunk", "--attempt", "Ref::attempt",
)  # fmt: skip
_NAME_OK = re.compile(r"[^A-Za-z0-9_-]")
DESCRIBE_LIMIT = 100
SUBMIT_QUOTA = 50.0  # AWS Batch's SubmitJob calls per second, per account and region (its default quota)
# The pace a router keeps: a little under the quota, since calls reach Batch with jittered latency and one that finds
# the quota's bucket empty is throttled, wastes its slot and backs off for seconds.
SUBMIT_PACE = 0.95 * SUBMIT_QUOTA
STACK_TAG = "derby-batch:stack"  # the router's role may terminate only jobs that carry its stack's tag


def job_name(stack: str, video_id: str, chunk: int, step: str, attempt: int) -> str:
    """`<stack>-<video_id>-c<chunk>-<step>-a<attempt>`, limited to what Batch accepts."""
    return _NAME_OK.sub("_", f"{stack}-{video_id}-c{chunk:05d}-{step}-a{attempt}")[:128]


@dataclass(frozen=True)
class JobSpec:
    """Everything needed to submit one chunk-step job."""

    stack: str
    queue: str
    definition: str
    video_id: str
    chunk: int
    step: str
    attempt: int

    @property
    def name(self) -> str:
        return job_name(self.stack, self.video_id, self.chunk, self.step, self.attempt)

    @property
    def parameters(self) -> dict[str, str]:
        return {"step": self.step, "video_id": self.video_id, "chunk": str(self.chunk), "attempt": str(self.attempt)}


@dataclass(frozen=True)
class JobSummary:
    """A job as ListJobs lists it, with the chunk-step its name says it works on (None: not a chunk-step job)."""

    job_id: str
    name: str
    status: str
    created_at: int  # ms since the epoch
    video_id: str | None
    chunk: int | None
    step: str | None
    attempt: int | None


def parse_job_name(stack: str, name: str) -> tuple[str, int, str, int] | None:
    """(video_id, chunk, step, attempt) from a name `job_name` made for this stack, else None."""
    match = re.fullmatch(rf"{re.escape(stack)}-(.+)-c(\d{{5}})-([A-Za-z0-9_]+)-a(\d+)", name)
    if match is None:
        return None
    return match[1], int(match[2]), match[3], int(match[4])


@dataclass(frozen=True)
class JobInfo:
    job_id: str
    name: str
    status: str
    reason: str
    log_streams: tuple[str, ...]  # every attempt's CloudWatch stream, oldest first (Batch names them)
    parameters: Mapping[str, str] = field(default_factory=dict, hash=False)


def _log_streams(job: Mapping[str, Any]) -> tuple[str, ...]:
    """`attempts[].container.logStreamName`, then the current attempt's `container.logStreamName` if not listed yet."""
    containers = [attempt.get("container") or {} for attempt in job.get("attempts") or []]
    containers.append(job.get("container") or {})
    return tuple(dict.fromkeys(str(c["logStreamName"]) for c in containers if c.get("logStreamName")))


def _info(job: Mapping[str, Any]) -> JobInfo:
    container = job.get("container") or {}
    return JobInfo(
        job_id=job["jobId"],
        name=job["jobName"],
        status=job["status"],
        reason=job.get("statusReason") or container.get("reason") or "",
        log_streams=_log_streams(job),
        parameters=dict(job.get("parameters") or {}),
    )


class Pacer:
    """A token bucket: at most `rate` calls a second, and at most a second's worth at once. It keeps one router
    process under Batch's quota; when other processes share the quota, Batch throttles and the client's retries back
    off (the router's batch client retries throttling with exponential backoff)."""

    def __init__(self, rate: float) -> None:
        self.rate, self.tokens, self.at = rate, rate, time.monotonic()
        self.lock = threading.Lock()

    def wait(self) -> None:
        with self.lock:
            now = time.monotonic()
            self.tokens = min(self.rate, self.tokens + (now - self.at) * self.rate) - 1
            self.at = now
            delay = -self.tokens / self.rate if self.tokens < 0 else 0.0
        time.sleep(delay)


class BatchClient:
    """Thin wrapper over a boto3 `batch` client; SubmitJob goes through the pacer, when it has one."""

    def __init__(self, client: Any, pacer: Pacer | None = None) -> None:
        self.client = client
        self.pacer = pacer

    def submit(self, spec: JobSpec) -> str:
        if self.pacer is not None:
            self.pacer.wait()
        response = self.client.submit_job(
            jobName=spec.name,
            jobQueue=spec.queue,
            jobDefinition=spec.definition,
            parameters=spec.parameters,
            containerOverrides={"environment": [{"name": STACK_ENV, "value": spec.stack}]},
            tags={STACK_TAG: spec.stack},
        )
        return str(response["jobId"])

    def find_job(self, spec: JobSpec) -> str | None:
        """Id of a job already submitted under this spec's name (any status), or None. Every page is read: Batch
        may answer a filtered listing with a short page and a token."""
        named = [j for j in self._list_named(spec.queue, spec.name) if j.get("jobName") == spec.name]
        named.sort(key=lambda j: j.get("createdAt", 0))
        return str(named[0]["jobId"]) if named else None

    def list_stack_jobs(self, queue: str, stack: str) -> Iterator[JobSummary]:
        """Every job of this stack in the queue, any status (a JOB_NAME filter lists them all), page by page."""
        for job in self._list_named(queue, f"{stack}-*"):
            parsed = parse_job_name(stack, str(job.get("jobName", "")))
            video_id, chunk, step, attempt = parsed or (None, None, None, None)
            yield JobSummary(
                str(job["jobId"]), str(job["jobName"]), str(job.get("status", "")), int(job.get("createdAt", 0)),
                video_id, chunk, step, attempt,
            )  # fmt: skip

    def _list_named(self, queue: str, name: str) -> Iterator[dict[str, Any]]:
        """ListJobs with a JOB_NAME filter (`*` at the end for a prefix), following the pages' tokens."""
        params: dict[str, Any] = {"jobQueue": queue, "filters": [{"name": "JOB_NAME", "values": [name]}]}
        while True:
            response = self.client.list_jobs(**params)
            yield from response.get("jobSummaryList", [])
            if not response.get("nextToken"):
                return
            params["nextToken"] = response["nextToken"]

    def terminate(self, job_id: str, reason: str) -> None:
        self.client.terminate_job(jobId=job_id, reason=reason)

    def describe(self, job_ids: Sequence[str]) -> Iterator[JobInfo]:
        """Describe any number of jobs (Batch takes 100 ids per call)."""
        ids = list(dict.fromkeys(job_ids))
        for start in range(0, len(ids), DESCRIBE_LIMIT):
            for job in self.client.describe_jobs(jobs=ids[start : start + DESCRIBE_LIMIT])["jobs"]:
                yield _info(job)
