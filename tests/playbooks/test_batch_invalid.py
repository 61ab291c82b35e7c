"""An INVALID compute environment or job queue fails the deploy with Batch's reason instead of reporting `ok`.

moto never reports INVALID, so the modules' shared check is run on what boto3 describes of the deployed stack, with
the status AWS gives a compute environment whose instance profile was not yet usable.
"""

from __future__ import annotations

from typing import Any

import pytest
from playbook_harness import STACK, Deployment, client, module_utils

REASON = "CLIENT_ERROR - Invalid IamInstanceProfile: arn:aws:iam::123456789012:instance-profile/pbtest-ecs-instance"


class Failed(Exception):
    pass


class FakeModule:
    """What the check needs of an AnsibleAWSModule: fail_json, which never returns."""

    def fail_json(self, **result: Any) -> None:
        raise Failed(result["msg"])


def test_an_invalid_batch_resource_fails_with_its_reason(endpoint: str, deployment: Deployment) -> None:
    fail_if_invalid = module_utils().fail_if_invalid
    batch = client(endpoint, "batch")
    envs = [
        e
        for e in batch.describe_compute_environments()["computeEnvironments"]
        if e["computeEnvironmentName"].startswith(STACK)
    ]
    (queue,) = batch.describe_job_queues(jobQueues=[f"{STACK}-gpu"])["jobQueues"]
    for kind, resource in [("compute environment", envs[0]), ("job queue", queue)]:
        assert resource["status"] == "VALID"
        fail_if_invalid(FakeModule(), kind, "x", resource)  # VALID: nothing to say
        invalid = {**resource, "status": "INVALID", "statusReason": REASON}
        with pytest.raises(Failed, match=f"^{kind} x is INVALID: CLIENT_ERROR - Invalid IamInstanceProfile"):
            fail_if_invalid(FakeModule(), kind, "x", invalid)
