#!/usr/bin/python
# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

DOCUMENTATION = r"""
module: derby_batch_job_definition
short_description: Register an AWS Batch container job definition only when its content changed
description:
  - Builds the C(RegisterJobDefinition) request from the options (GPU, vCPU and memory resource requirements,
    parameters, environment, roles, awslogs, timeout, retry strategy with C(evaluateOnExit), EC2 or Fargate).
  - The request's hash is stored in the tag C(derby-batch:content-hash). A new revision is registered only when the
    latest ACTIVE revision carries a different hash (the idea of Metaflow's content-named job definitions), so
    repeated runs report C(ok) and revisions do not pile up. Older ACTIVE revisions are deregistered unless
    I(keep_previous) is true; running jobs are not affected by deregistration.
  - The diff (C(--diff)) shows the content itself, field by field. Before is the latest ACTIVE revision in the shape
    of the request (as AWS returns it, normalized), after is the request.
  - Tags are not part of the content. Changed I(tags) are set on (and removed from) the latest revision in place,
    without a new revision.
  - With C(state=absent) every ACTIVE revision is deregistered.
options:
  name:
    description: Job definition name.
    type: str
    required: true
  state:
    description: Whether an ACTIVE revision with this content should exist.
    type: str
    choices: [present, absent]
    default: present
  image:
    description: Container image URI.
    type: str
  command:
    description: Container command; C(Ref::name) placeholders are filled from parameters.
    type: list
    elements: str
    default: []
  parameters:
    description: Default values of the parameters.
    type: dict
    default: {}
  environment:
    description: Environment variables of the container.
    type: dict
    default: {}
  vcpus:
    description: vCPUs reserved for the job.
    type: str
    default: "1"
  memory:
    description: Memory in MiB reserved for the job.
    type: int
    default: 2048
  gpus:
    description: GPUs reserved for the job (0 for none).
    type: int
    default: 0
  job_role_arn:
    description: IAM role the job's code runs as.
    type: str
  execution_role_arn:
    description: IAM role ECS uses to pull the image and write logs.
    type: str
  log_group:
    description: CloudWatch Logs group for the awslogs driver; omit for the Batch default.
    type: str
  log_region:
    description: Region of I(log_group).
    type: str
  log_stream_prefix:
    description: awslogs stream prefix.
    type: str
    default: job
  timeout_seconds:
    description: Attempt duration after which Batch terminates the job (60 or more).
    type: int
  attempts:
    description: Maximum attempts (1 to 10).
    type: int
    default: 1
  evaluate_on_exit:
    description: C(retryStrategy.evaluateOnExit) rules in the API's camelCase form, first match wins.
    type: list
    elements: dict
    default: []
  platform:
    description: EC2 or FARGATE.
    type: str
    choices: [EC2, FARGATE]
    default: EC2
  assign_public_ip:
    description: Fargate only; needed in public subnets without a NAT gateway to reach ECR and S3.
    type: bool
    default: true
  ephemeral_storage_gib:
    description: Fargate only; task storage in GiB (21 to 200), omit for the 20 GiB default.
    type: int
  propagate_tags:
    description: Copy the job's tags to the ECS task.
    type: bool
    default: true
  keep_previous:
    description: Keep older ACTIVE revisions instead of deregistering them.
    type: bool
    default: false
  tags:
    description: Tags of the job definition (the content hash tag is added). Updated in place on the latest
      revision; tags not listed are removed.
    type: dict
    default: {}
extends_documentation_fragment:
  - amazon.aws.common.modules
  - amazon.aws.region.modules
  - amazon.aws.boto3
author: derby-batch
"""

EXAMPLES = r"""
- name: GPU step
  derby_batch_job_definition:
    name: derby-detect
    image: 123456789012.dkr.ecr.us-east-1.amazonaws.com/derby-jobs:latest
    command: [python, -m, batch_jobs, run, --step, Ref::step]
    parameters: {step: detect}
    vcpus: "4"
    memory: 14336
    gpus: 1
    timeout_seconds: 3600
    attempts: 3
    evaluate_on_exit:
      - {onStatusReason: "Host EC2*", action: RETRY}
      - {onReason: "*", action: EXIT}
"""

RETURN = r"""
job_definition:
  description: The ACTIVE revision (empty when absent).
  returned: always
  type: dict
  contains:
    name: {description: Name., type: str}
    arn: {description: ARN with revision., type: str}
    revision: {description: Revision number., type: int}
    content_hash: {description: Hash of the registered content., type: str}
deregistered:
  description: ARNs of the revisions deregistered.
  returned: always
  type: list
  elements: str
"""

try:
    import botocore
except ImportError:
    pass  # handled by AnsibleAWSModule

from ansible.module_utils.derby_aws import content_hash, drop_none, tag_changes
from ansible_collections.amazon.aws.plugins.module_utils.modules import AnsibleAWSModule
from ansible_collections.amazon.aws.plugins.module_utils.retries import AWSRetry

HASH_TAG = "derby-batch:content-hash"


def active_revisions(client, name):
    paginator = client.get_paginator("describe_job_definitions")
    found = []
    for page in paginator.paginate(jobDefinitionName=name, status="ACTIVE"):
        found.extend(d for d in page["jobDefinitions"] if d["jobDefinitionName"] == name and d["status"] == "ACTIVE")
    return sorted(found, key=lambda d: d["revision"])


def build_request(params):
    """The RegisterJobDefinition request, without tags (the hash covers exactly this)."""
    resources = [
        {"type": "VCPU", "value": str(params["vcpus"])},
        {"type": "MEMORY", "value": str(params["memory"])},
    ]
    if params["gpus"]:
        resources.append({"type": "GPU", "value": str(params["gpus"])})
    container = {
        "image": params["image"],
        "command": params["command"],
        "environment": [{"name": k, "value": str(v)} for k, v in sorted(params["environment"].items())],
        "resourceRequirements": resources,
    }
    if params["job_role_arn"]:
        container["jobRoleArn"] = params["job_role_arn"]
    if params["execution_role_arn"]:
        container["executionRoleArn"] = params["execution_role_arn"]
    if params["log_group"]:
        options = {"awslogs-group": params["log_group"], "awslogs-stream-prefix": params["log_stream_prefix"]}
        if params["log_region"]:
            options["awslogs-region"] = params["log_region"]
        container["logConfiguration"] = {"logDriver": "awslogs", "options": options}
    if params["platform"] == "FARGATE":
        container["networkConfiguration"] = {"assignPublicIp": "ENABLED" if params["assign_public_ip"] else "DISABLED"}
        container["fargatePlatformConfiguration"] = {"platformVersion": "LATEST"}
        if params["ephemeral_storage_gib"]:
            container["ephemeralStorage"] = {"sizeInGiB": params["ephemeral_storage_gib"]}
    request = {
        "jobDefinitionName": params["name"],
        "type": "container",
        "parameters": {k: str(v) for k, v in params["parameters"].items()},
        "containerProperties": container,
        "retryStrategy": {"attempts": params["attempts"]},
        "propagateTags": params["propagate_tags"],
        "platformCapabilities": [params["platform"]],
    }
    if params["evaluate_on_exit"]:
        request["retryStrategy"]["evaluateOnExit"] = params["evaluate_on_exit"]
    if params["timeout_seconds"]:
        request["timeout"] = {"attemptDurationSeconds": params["timeout_seconds"]}
    return request


CONTAINER_KEYS = (
    "image",
    "command",
    "environment",
    "resourceRequirements",
    "jobRoleArn",
    "executionRoleArn",
    "logConfiguration",
    "networkConfiguration",
    "fargatePlatformConfiguration",
    "ephemeralStorage",
)
RESOURCE_ORDER = {"VCPU": 0, "MEMORY": 1, "GPU": 2}


def pruned(value):
    """Without the empty lists and dicts AWS adds to what it returns (``secretOptions: []``, ``volumes: []``)."""
    if isinstance(value, dict):
        value = {k: pruned(v) for k, v in value.items()}
        return {k: v for k, v in value.items() if v not in ({}, [])}
    if isinstance(value, list):
        return [pruned(v) for v in value]
    return value


def as_requested(definition):
    """A described revision in the shape of build_request: the fields this module sets, normalized the way the
    request writes them (environment by name, resources VCPU/MEMORY/GPU, upper-case retry actions), so that a diff
    of the two shows exactly the fields that changed."""
    if not definition:
        return {}
    container = definition.get("containerProperties") or {}
    container = {k: container[k] for k in CONTAINER_KEYS if k in container}
    if "environment" in container:
        container["environment"] = sorted(container["environment"], key=lambda e: e["name"])
    if "resourceRequirements" in container:
        container["resourceRequirements"] = sorted(
            container["resourceRequirements"], key=lambda r: RESOURCE_ORDER.get(r["type"], 9)
        )
    retry = dict(definition.get("retryStrategy") or {})
    if retry.get("evaluateOnExit"):
        retry["evaluateOnExit"] = [dict(rule, action=rule["action"].upper()) for rule in retry["evaluateOnExit"]]
    request = {
        "jobDefinitionName": definition.get("jobDefinitionName"),
        "type": definition.get("type"),
        "parameters": definition.get("parameters"),
        "containerProperties": container,
        "retryStrategy": retry,
        "propagateTags": definition.get("propagateTags"),
        "platformCapabilities": definition.get("platformCapabilities"),
        "timeout": definition.get("timeout"),
    }
    return pruned(drop_none(request))


def user_tags(definition):
    """A revision's tags without the content hash (which this module owns)."""
    return {k: v for k, v in (definition.get("tags") or {}).items() if k != HASH_TAG}


def retag(module, client, definition, tags):
    """Set and remove tags on a revision in place (only reported in check mode); whether anything changed."""
    to_set, to_remove = tag_changes(user_tags(definition), tags)
    if (to_set or to_remove) and not module.check_mode:
        arn = definition["jobDefinitionArn"]
        if to_remove:
            client.untag_resource(resourceArn=arn, tagKeys=to_remove, aws_retry=True)
        if to_set:
            client.tag_resource(resourceArn=arn, tags=to_set, aws_retry=True)
    return bool(to_set or to_remove)


def summary(definition, digest):
    if not definition:
        return {}
    return {
        "name": definition["jobDefinitionName"],
        "arn": definition["jobDefinitionArn"],
        "revision": definition["revision"],
        "content_hash": digest,
    }


def deregister(module, client, revisions):
    arns = [d["jobDefinitionArn"] for d in revisions]
    if not module.check_mode:
        for arn in arns:
            client.deregister_job_definition(jobDefinition=arn, aws_retry=True)
    return arns


def main():
    module = AnsibleAWSModule(
        argument_spec=dict(
            name=dict(type="str", required=True),
            state=dict(type="str", choices=["present", "absent"], default="present"),
            image=dict(type="str"),
            command=dict(type="list", elements="str", default=[]),
            parameters=dict(type="dict", default={}),
            environment=dict(type="dict", default={}),
            vcpus=dict(type="str", default="1"),
            memory=dict(type="int", default=2048),
            gpus=dict(type="int", default=0),
            job_role_arn=dict(type="str"),
            execution_role_arn=dict(type="str"),
            log_group=dict(type="str"),
            log_region=dict(type="str"),
            log_stream_prefix=dict(type="str", default="job"),
            timeout_seconds=dict(type="int"),
            attempts=dict(type="int", default=1),
            evaluate_on_exit=dict(type="list", elements="dict", default=[]),
            platform=dict(type="str", choices=["EC2", "FARGATE"], default="EC2"),
            assign_public_ip=dict(type="bool", default=True),
            ephemeral_storage_gib=dict(type="int"),
            propagate_tags=dict(type="bool", default=True),
            keep_previous=dict(type="bool", default=False),
            tags=dict(type="dict", default={}),
        ),
        required_if=[["state", "present", ["image"]], ["platform", "FARGATE", ["execution_role_arn"]]],
        supports_check_mode=True,
    )
    params = module.params
    client = module.client("batch", retry_decorator=AWSRetry.jittered_backoff(retries=10))
    try:
        revisions = active_revisions(client, params["name"])
        latest = revisions[-1] if revisions else None
        latest_hash = (latest.get("tags") or {}).get(HASH_TAG) if latest else None

        if params["state"] == "absent":
            gone = deregister(module, client, revisions)
            module.exit_json(changed=bool(gone), job_definition={}, deregistered=gone,
                             diff={"before": {"revisions": gone}, "after": {"revisions": []}})

        request = build_request(params)
        digest = content_hash(request)
        # The diff shows the content (and the tags), not the hash: before is the latest revision in the request's shape.
        before = dict(as_requested(latest), tags=user_tags(latest)) if latest else {}
        after = dict(request, tags=params["tags"])
        if latest and latest_hash == digest:
            retagged = retag(module, client, latest, params["tags"])
            older = deregister(module, client, revisions[:-1]) if not params["keep_previous"] else []
            module.exit_json(changed=bool(older) or retagged, job_definition=summary(latest, digest),
                             deregistered=older, diff={"before": before, "after": after})

        if module.check_mode:
            module.exit_json(changed=True, job_definition=summary(latest, digest), deregistered=[],
                             diff={"before": before, "after": after})
        tags = dict(params["tags"], **{HASH_TAG: digest})
        response = client.register_job_definition(tags=tags, aws_retry=True, **request)
        new = {"jobDefinitionName": response["jobDefinitionName"], "jobDefinitionArn": response["jobDefinitionArn"],
               "revision": response["revision"]}
        older = deregister(module, client, revisions) if not params["keep_previous"] else []
        module.exit_json(changed=True, job_definition=summary(new, digest), deregistered=older,
                         diff={"before": before, "after": after})
    except (botocore.exceptions.ClientError, botocore.exceptions.BotoCoreError) as exc:
        module.fail_json_aws(exc, msg="Batch job definition {0}".format(params["name"]))


if __name__ == "__main__":
    main()
