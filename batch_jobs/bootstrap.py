"""Create a stack's resources through boto3: for tests and the embedded local stack (the playbook does real AWS).

Same names and shapes as a deployed stack (bucket, table with stream, SSM config, Batch queues and job definitions),
so the CLI, the router and the job cannot tell the difference. Safe to call twice.
"""

from __future__ import annotations

import contextlib
import json
from typing import Any

from batch_jobs import schema
from batch_jobs.batch import JOB_COMMAND, JOB_PARAMETERS
from batch_jobs.config import STACK_ENV, StackConfig, parameter_name

IMAGE = "derby-batch:latest"


def create_table(ddb: Any, table: str) -> str:
    """The items table with its stream (what the router reads) and the open index (what the sweep reads); returns
    the stream's ARN."""
    with contextlib.suppress(ddb.exceptions.ResourceInUseException):
        ddb.create_table(
            TableName=table,
            AttributeDefinitions=[
                {"AttributeName": name, "AttributeType": "S"} for name in ("pk", "sk", schema.OPEN_INDEX)
            ],
            KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}, {"AttributeName": "sk", "KeyType": "RANGE"}],
            GlobalSecondaryIndexes=[
                {
                    "IndexName": schema.OPEN_INDEX,
                    "KeySchema": [{"AttributeName": schema.OPEN_INDEX, "KeyType": "HASH"}],
                    "Projection": {"ProjectionType": "KEYS_ONLY"},
                }
            ],
            BillingMode="PAY_PER_REQUEST",
            StreamSpecification={"StreamEnabled": True, "StreamViewType": "NEW_AND_OLD_IMAGES"},
        )
    return str(ddb.describe_table(TableName=table)["Table"]["LatestStreamArn"])


def _service_role(iam: Any, stack: str) -> str:
    name = f"{stack}-batch-service"
    try:
        return str(iam.get_role(RoleName=name)["Role"]["Arn"])
    except iam.exceptions.NoSuchEntityException:
        trust = {
            "Statement": [
                {"Effect": "Allow", "Principal": {"Service": "batch.amazonaws.com"}, "Action": "sts:AssumeRole"}
            ]
        }
        return str(iam.create_role(RoleName=name, AssumeRolePolicyDocument=json.dumps(trust))["Role"]["Arn"])


def _create_batch(batch: Any, iam: Any, config: StackConfig) -> None:
    ce_name = f"{config.stack}-local-ce"
    if not batch.describe_compute_environments(computeEnvironments=[ce_name])["computeEnvironments"]:
        batch.create_compute_environment(
            computeEnvironmentName=ce_name,
            type="UNMANAGED",
            state="ENABLED",
            serviceRole=_service_role(iam, config.stack),
        )
    existing = {
        q["jobQueueName"] for q in batch.describe_job_queues(jobQueues=list(config.job_queues.values()))["jobQueues"]
    }
    for queue in config.job_queues.values():
        if queue not in existing:
            batch.create_job_queue(
                jobQueueName=queue,
                state="ENABLED",
                priority=1,
                computeEnvironmentOrder=[{"order": 1, "computeEnvironment": ce_name}],
            )
    for step in config.pipeline:
        name = config.job_definition_for(step)
        if batch.describe_job_definitions(jobDefinitionName=name, status="ACTIVE")["jobDefinitions"]:
            continue
        resources = [{"type": "VCPU", "value": "2"}, {"type": "MEMORY", "value": "4096"}]
        if step.gpu:
            resources.append({"type": "GPU", "value": "1"})
        batch.register_job_definition(
            jobDefinitionName=name,
            type="container",
            parameters={p: "none" for p in JOB_PARAMETERS},
            containerProperties={
                "image": IMAGE,
                "command": list(JOB_COMMAND),
                "resourceRequirements": resources,
                "environment": [{"name": STACK_ENV, "value": config.stack}],
            },
        )


def bootstrap_stack(session: Any, config: StackConfig) -> str:
    """Create everything a stack needs and write its SSM config; returns the table's stream ARN."""
    s3 = session.client("s3", region_name=config.region)
    try:
        if config.region == "us-east-1":
            s3.create_bucket(Bucket=config.bucket)
        else:
            s3.create_bucket(Bucket=config.bucket, CreateBucketConfiguration={"LocationConstraint": config.region})
    except s3.exceptions.BucketAlreadyOwnedByYou:
        pass
    stream_arn = create_table(session.client("dynamodb", region_name=config.region), config.table)
    logs = session.client("logs", region_name=config.region)
    with contextlib.suppress(logs.exceptions.ResourceAlreadyExistsException):
        logs.create_log_group(logGroupName=config.log_group)
    _create_batch(session.client("batch", region_name=config.region), session.client("iam"), config)
    write_config(session.client("ssm", region_name=config.region), config)
    return stream_arn


def write_config(ssm: Any, config: StackConfig) -> None:
    """Publish the stack's config where the router and the jobs read it (SSM `/derby-batch/<stack>/config`)."""
    ssm.put_parameter(
        Name=parameter_name(config.stack), Value=json.dumps(config.to_json()), Type="String", Overwrite=True
    )
