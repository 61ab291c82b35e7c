"""The EventBridge "Batch Job State Change" events AWS sends for a job, built from the executor's ledger record.

The router consumes these on AWS through an EventBridge rule; locally the executor hands them to the same handler.
"""

from __future__ import annotations

import copy
import time
import uuid
from typing import Any

from cli.local.ledger import FINISHED, JobRecord


def iso_now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


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
    if record.status in FINISHED:
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
