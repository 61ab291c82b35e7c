# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Small helpers shared by the derby-batch modules in ``playbooks/library``.

Everything here is pure (no AWS calls) except the waiters, which poll a function the caller gives them.
"""

import hashlib
import json
import time


def canonical_json(value):
    """JSON with sorted keys and no whitespace: equal values always give equal strings."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), default=str)


def content_hash(value, length=16):
    """A short, stable hash of a JSON-serializable value."""
    return hashlib.sha256(canonical_json(value).encode("utf-8")).hexdigest()[:length]


def drop_none(value):
    """A copy of nested dicts/lists without keys whose value is None (AWS omits them in its answers)."""
    if isinstance(value, dict):
        return {k: drop_none(v) for k, v in value.items() if v is not None}
    if isinstance(value, list):
        return [drop_none(v) for v in value]
    return value


def tag_changes(current, desired, purge=True):
    """Return ``(to_set, to_remove)`` turning the ``current`` tag dict into ``desired``."""
    current = current or {}
    desired = desired or {}
    to_set = {k: v for k, v in desired.items() if current.get(k) != v}
    to_remove = [k for k in current if k not in desired and not k.startswith("aws:")] if purge else []
    return to_set, sorted(to_remove)


def wait_for(module, what, probe, timeout, delay=5):
    """Call ``probe()`` until it returns a truthy value or ``timeout`` seconds pass; fail the module on timeout."""
    deadline = time.monotonic() + timeout
    while True:
        result = probe()
        if result:
            return result
        if time.monotonic() >= deadline:
            module.fail_json(msg="timed out after {0}s waiting for {1}".format(timeout, what))
        time.sleep(delay)


def fail_if_invalid(module, kind, name, resource):
    """Fail with Batch's statusReason when a compute environment or job queue is INVALID.

    An INVALID resource runs no job until its cause is fixed, so reporting it as ``ok`` would hide a broken stack."""
    if resource and resource.get("status") == "INVALID":
        module.fail_json(msg="{0} {1} is INVALID: {2}".format(kind, name, resource.get("statusReason")))


def wait_batch_valid(module, kind, name, describe):
    """Wait until a Batch resource (``describe()`` returns it or None) is VALID; fail at once when it is INVALID.

    Batch ships no waiters, and compute environments and job queues report readiness the same way."""

    def probe():
        resource = describe()
        fail_if_invalid(module, kind, name, resource)
        return resource if resource and resource.get("status") == "VALID" else None

    return wait_for(module, "{0} {1} to be VALID".format(kind, name), probe, module.params["wait_timeout"])


JOB_STATUSES_ON_A_COMPUTE_ENVIRONMENT = ("STARTING", "RUNNING")


def jobs_on_compute_environment(env, jobs):
    """Ids of the jobs (as DescribeJobs returns them) that are STARTING or RUNNING on ``env``'s ECS cluster.

    A job's container names its ECS task (Fargate) or container instance (EC2), whose ARN carries the cluster:
    ``arn:aws:ecs:REGION:ACCOUNT:task/CLUSTER/ID``. A job whose placement is not known (no such ARN, or an ARN in the
    old format without the cluster) counts as being on ``env``: deleting a compute environment under a running job
    kills it (Fargate: the environment also goes INVALID). RUNNABLE jobs count for none: they wait on their queue,
    which has already moved to the new compute environment when an old one is deleted."""
    cluster = (env.get("ecsClusterArn") or "").rsplit("/", 1)[-1]
    found = []
    for job in jobs:
        if job.get("status") not in JOB_STATUSES_ON_A_COMPUTE_ENVIRONMENT:
            continue
        container = job.get("container") or {}
        placement = container.get("taskArn") or container.get("containerInstanceArn") or ""
        parts = placement.split(":", 5)[-1].split("/") if placement else []
        if not cluster or len(parts) < 3 or parts[1] == cluster:
            found.append(job["jobId"])
    return found
