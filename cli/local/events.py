"""The EventBridge "Batch Job State Change" events AWS sends for a job: the one place that builds their shape.

The router consumes these on AWS through an EventBridge rule; locally the executor hands them to the same handler,
built from its ledger record; the tests and the simulation build them from a job as DescribeJobs returns it.
"""

from __future__ import annotations

import copy
import time
import uuid
from typing import Any

from batch_jobs.lifecycle import JOB_FINISHED
from cli.local.ledger import JobRecord


def iso_now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


def record_of(job: dict[str, Any], status: str, reason: str = "", exit_code: int | None = None) -> JobRecord:
    """A job as DescribeJobs returns it, ended (or moved) to `status`: what its state-change event reports."""
    container = job.get("container") or {}
    definition_arn = str(job.get("jobDefinition", ""))
    history = [{"container": {"exitCode": exit_code, "logStreamName": container.get("logStreamName", "")}}]
    return JobRecord(
        job_id=job["jobId"],
        job_name=job["jobName"],
        job_arn=job.get("jobArn", ""),
        job_queue=job.get("jobQueue", ""),
        job_definition=definition_arn.rsplit("/", 1)[-1].split(":", 1)[0],
        job_definition_arn=definition_arn,
        command=list(container.get("command") or []),
        environment={e["name"]: e["value"] for e in container.get("environment") or []},
        parameters=dict(job.get("parameters") or {}),
        created_at=int(job.get("createdAt", 0)),
        status=status,
        stopped_at=int(time.time() * 1000) if status in JOB_FINISHED else None,
        exit_code=exit_code,
        status_reason=reason,
        history=history if status in JOB_FINISHED else [],
    )


def job_state_change(record: JobRecord, account: str, region: str) -> dict[str, Any]:
    """One event with the fields AWS puts in `detail` (status, statusReason, attempts with the exit code)."""
    container: dict[str, Any] = {
        "command": record.command,
        "environment": [{"name": k, "value": v} for k, v in sorted(record.environment.items())],
        "logStreamName": record.log_stream,
    }
    if record.exit_code is not None:
        container["exitCode"] = record.exit_code
    detail: dict[str, Any] = {
        "jobArn": record.job_arn,
        "jobName": record.job_name,
        "jobId": record.job_id,
        "jobQueue": record.job_queue,
        "status": record.status,
        "attempts": copy.deepcopy(record.history),
        "createdAt": record.created_at,
        "retryStrategy": {"attempts": 1},
        "dependsOn": [],
        "jobDefinition": record.job_definition_arn,
        "parameters": record.parameters,
        "container": container,
        "tags": {},
        "platformCapabilities": ["EC2"],
    }
    if record.started_at is not None:
        detail["startedAt"] = record.started_at
    if record.status in JOB_FINISHED:
        detail["stoppedAt"] = record.stopped_at
        detail["statusReason"] = record.status_reason or ""
    return {
        "version": "0",
        "id": str(uuid.uuid4()),
        "detail-type": "Batch Job State Change",
        "source": "aws.batch",
        "account": account,
        "time": iso_now(),
        "region": region,
        "resources": [record.job_arn],
        "detail": detail,
    }
