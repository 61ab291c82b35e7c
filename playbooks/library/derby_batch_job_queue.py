#!/usr/bin/python
# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

DOCUMENTATION = r"""
module: derby_batch_job_queue
short_description: Manage an AWS Batch job queue, including job state time limit actions
description:
  - Creates, updates or deletes a job queue. Compute environments are compared by ARN (names given are resolved),
    so a queue that AWS describes with ARNs and one given by names compare equal.
  - Manages C(jobStateTimeLimitActions), so a job stuck in RUNNABLE (no capacity, no matching instance type) is
    cancelled with a reason instead of waiting forever.
  - Some API implementations (moto) do not echo C(jobStateTimeLimitActions); the module then compares the hash it
    recorded in the tag C(derby-batch:state-time-limit-hash) when it last set them.
  - With C(state=absent) the queue is disabled, waited for and deleted.
  - An existing queue that Batch reports INVALID fails the task with Batch's C(statusReason).
options:
  name:
    description: Queue name.
    type: str
    required: true
  state:
    description: Whether the queue should exist.
    type: str
    choices: [present, absent]
    default: present
  enabled:
    description: Whether the queue accepts jobs.
    type: bool
    default: true
  priority:
    description: Queue priority.
    type: int
    default: 1
  compute_environments:
    description: Compute environment names or ARNs, in order of preference.
    type: list
    elements: str
    default: []
  state_time_limit_actions:
    description: Actions on jobs that stay too long in a state (only RUNNABLE is supported by AWS).
    type: list
    elements: dict
    default: []
    suboptions:
      reason:
        description: Reason recorded on the cancelled job; also what the time limit matches (for example
          C(CAPACITY:INSUFFICIENT_INSTANCE_CAPACITY) or C(MISCONFIGURATION:JOB_RESOURCE_REQUIREMENT)).
        type: str
        required: true
      max_time_seconds:
        description: Seconds in the state before the action (600 to 86400).
        type: int
        required: true
      state:
        description: The job state watched.
        type: str
        default: RUNNABLE
      action:
        description: What to do.
        type: str
        default: CANCEL
  tags:
    description: Tags of the queue.
    type: dict
    default: {}
  wait_timeout:
    description: Seconds to wait for status changes.
    type: int
    default: 600
extends_documentation_fragment:
  - amazon.aws.common.modules
  - amazon.aws.region.modules
  - amazon.aws.boto3
author: derby-batch
"""

EXAMPLES = r"""
- name: GPU queue that cancels jobs stuck in RUNNABLE for 30 minutes
  derby_batch_job_queue:
    name: derby-gpu
    compute_environments: ["{{ gpu_ce.compute_environment.arn }}"]
    state_time_limit_actions:
      - reason: "CAPACITY:INSUFFICIENT_INSTANCE_CAPACITY"
        max_time_seconds: 1800
      - reason: "MISCONFIGURATION:JOB_RESOURCE_REQUIREMENT"
        max_time_seconds: 600
"""

RETURN = r"""
job_queue:
  description: The queue (empty when absent).
  returned: always
  type: dict
  contains:
    name: {description: Queue name., type: str}
    arn: {description: Queue ARN., type: str}
    state: {description: ENABLED or DISABLED., type: str}
    compute_environments: {description: Compute environment ARNs in order., type: list}
"""

try:
    import botocore
except ImportError:
    pass  # handled by AnsibleAWSModule

from ansible.module_utils.derby_aws import content_hash, fail_if_invalid, tag_changes, wait_batch_valid, wait_for
from ansible_collections.amazon.aws.plugins.module_utils.modules import AnsibleAWSModule
from ansible_collections.amazon.aws.plugins.module_utils.retries import AWSRetry

LIMITS_TAG = "derby-batch:state-time-limit-hash"


def describe(client, name):
    queues = client.describe_job_queues(jobQueues=[name], aws_retry=True)["jobQueues"]
    queues = [q for q in queues if q.get("status") != "DELETED" and q["jobQueueName"].rsplit("/", 1)[-1] == name]
    return queues[0] if queues else None


def resolve_arns(module, client, names, strict=True):
    """ARNs of compute environments given by name or ARN; unknown ones fail, or are kept as given when not strict."""
    if not names:
        return []
    found = client.describe_compute_environments(computeEnvironments=list(names), aws_retry=True)
    by_key = {}
    for env in found["computeEnvironments"]:
        if env.get("status") == "DELETED":
            continue
        by_key[env["computeEnvironmentArn"]] = env["computeEnvironmentArn"]
        by_key[env["computeEnvironmentName"].rsplit("/", 1)[-1]] = env["computeEnvironmentArn"]
    missing = [n for n in names if n not in by_key and n.rsplit("/", 1)[-1] not in by_key]
    if missing and not strict:
        return [by_key.get(n) or by_key.get(n.rsplit("/", 1)[-1]) or n for n in names]
    if missing:
        if module.check_mode:
            return list(names)  # created earlier in this check run; cannot be resolved yet
        module.fail_json(msg="compute environments not found: {0}".format(missing))
    return [by_key.get(n) or by_key[n.rsplit("/", 1)[-1]] for n in names]


def desired_limits(params):
    return [
        {"reason": a["reason"], "state": a["state"], "maxTimeSeconds": a["max_time_seconds"], "action": a["action"]}
        for a in params["state_time_limit_actions"]
    ]


def normalized_limits(limits):
    return sorted(
        ({k: a.get(k) for k in ("reason", "state", "maxTimeSeconds", "action")} for a in limits or []),
        key=lambda a: (a["state"], a["reason"]),
    )


def current_limits_match(queue, desired):
    """Compare with what AWS reports; fall back to the recorded hash where the API does not echo the field."""
    if "jobStateTimeLimitActions" in queue:
        return normalized_limits(queue["jobStateTimeLimitActions"]) == normalized_limits(desired)
    return (queue.get("tags") or {}).get(LIMITS_TAG) == content_hash(normalized_limits(desired))


def wait_valid(module, client, name):
    return wait_batch_valid(module, "job queue", name, lambda: describe(client, name))


def summary(queue):
    if not queue:
        return {}
    order = sorted(queue.get("computeEnvironmentOrder", []), key=lambda e: e["order"])
    return {
        "name": queue["jobQueueName"],
        "arn": queue["jobQueueArn"],
        "state": queue.get("state"),
        "priority": queue.get("priority"),
        "compute_environments": [e["computeEnvironment"] for e in order],
    }


def ensure_present(module, client):
    params = module.params
    name = params["name"]
    state = "ENABLED" if params["enabled"] else "DISABLED"
    arns = resolve_arns(module, client, params["compute_environments"])
    order = [{"order": i + 1, "computeEnvironment": arn} for i, arn in enumerate(arns)]
    limits = desired_limits(params)
    tags = dict(params["tags"], **{LIMITS_TAG: content_hash(normalized_limits(limits))})
    queue = describe(client, name)
    after = {"name": name, "state": state, "priority": params["priority"], "compute_environments": arns,
             "job_state_time_limit_actions": normalized_limits(limits)}

    if queue is None:
        if not module.check_mode:
            client.create_job_queue(
                jobQueueName=name,
                state=state,
                priority=params["priority"],
                computeEnvironmentOrder=order,
                jobStateTimeLimitActions=limits,
                tags=tags,
                aws_retry=True,
            )
            queue = wait_valid(module, client, name)
        module.exit_json(changed=True, job_queue=summary(queue) or after, diff={"before": {}, "after": after})

    fail_if_invalid(module, "job queue", name, queue)
    current_order = sorted(queue.get("computeEnvironmentOrder", []), key=lambda e: e["order"])
    current_arns = resolve_arns(module, client, [e["computeEnvironment"] for e in current_order], strict=False)
    before = {"name": name, "state": queue.get("state"), "priority": queue.get("priority"),
              "compute_environments": current_arns,
              "job_state_time_limit_actions": normalized_limits(queue.get("jobStateTimeLimitActions"))}
    update = {}
    if queue.get("state") != state:
        update["state"] = state
    if queue.get("priority") != params["priority"]:
        update["priority"] = params["priority"]
    if current_arns != arns:
        update["computeEnvironmentOrder"] = order
    if not current_limits_match(queue, limits):
        update["jobStateTimeLimitActions"] = limits
    to_set, to_remove = tag_changes(queue.get("tags"), tags)
    changed = bool(update or to_set or to_remove)
    if changed and not module.check_mode:
        if update:
            client.update_job_queue(jobQueue=name, aws_retry=True, **update)
        if to_remove:
            client.untag_resource(resourceArn=queue["jobQueueArn"], tagKeys=to_remove, aws_retry=True)
        if to_set:
            client.tag_resource(resourceArn=queue["jobQueueArn"], tags=to_set, aws_retry=True)
        queue = wait_valid(module, client, name)
    module.exit_json(changed=changed, job_queue=summary(queue), requested_update=update,
                     diff={"before": before, "after": after})


def ensure_absent(module, client):
    name = module.params["name"]
    queue = describe(client, name)
    if queue is None:
        module.exit_json(changed=False, job_queue={})
    if not module.check_mode:
        if queue.get("state") != "DISABLED":
            client.update_job_queue(jobQueue=name, state="DISABLED", aws_retry=True)
            wait_valid(module, client, name)
        client.delete_job_queue(jobQueue=name, aws_retry=True)
        wait_for(module, "job queue {0} to be deleted".format(name), lambda: describe(client, name) is None,
                 module.params["wait_timeout"])
    module.exit_json(changed=True, job_queue={}, diff={"before": summary(queue), "after": {}})


def main():
    module = AnsibleAWSModule(
        argument_spec=dict(
            name=dict(type="str", required=True),
            state=dict(type="str", choices=["present", "absent"], default="present"),
            enabled=dict(type="bool", default=True),
            priority=dict(type="int", default=1),
            compute_environments=dict(type="list", elements="str", default=[]),
            state_time_limit_actions=dict(
                type="list",
                elements="dict",
                default=[],
                options=dict(
                    reason=dict(type="str", required=True),
                    max_time_seconds=dict(type="int", required=True),
                    state=dict(type="str", default="RUNNABLE"),
                    action=dict(type="str", default="CANCEL"),
                ),
            ),
            tags=dict(type="dict", default={}),
            wait_timeout=dict(type="int", default=600),
        ),
        required_if=[["state", "present", ["compute_environments"]]],
        supports_check_mode=True,
    )
    client = module.client("batch", retry_decorator=AWSRetry.jittered_backoff(retries=10))
    try:
        if module.params["state"] == "present":
            ensure_present(module, client)
        ensure_absent(module, client)
    except (botocore.exceptions.ClientError, botocore.exceptions.BotoCoreError) as exc:
        module.fail_json_aws(exc, msg="Batch job queue {0}".format(module.params["name"]))


if __name__ == "__main__":
    main()
