"""teardown.yml against the stack deployed by the session: everything goes but the data, then the data too.

Runs after test_playbook_stack.py (file order); run alone, the `deployment` fixture deploys the stack first.
"""

from __future__ import annotations

from typing import Any

import pytest
from botocore.exceptions import ClientError
from playbook_harness import REGION, STACK, Deployment, client, run_playbook


def leftovers(endpoint: str) -> dict[str, Any]:
    """Every resource of the stack that still exists, by kind (empty lists when gone)."""
    batch = client(endpoint, "batch")
    iam = client(endpoint, "iam")
    found: dict[str, Any] = {
        "compute_environments": [
            e["computeEnvironmentName"]
            for e in batch.describe_compute_environments()["computeEnvironments"]
            if e["computeEnvironmentName"].startswith(f"{STACK}-") and e.get("status") != "DELETED"
        ],
        "job_queues": [
            q["jobQueueName"]
            for q in batch.describe_job_queues()["jobQueues"]
            if q["jobQueueName"].startswith(f"{STACK}-") and q.get("status") != "DELETED"
        ],
        "job_definitions": [
            d["jobDefinitionArn"]
            for d in batch.describe_job_definitions(status="ACTIVE")["jobDefinitions"]
            if d["jobDefinitionName"].startswith(f"{STACK}-") and d["status"] == "ACTIVE"
        ],
        "functions": [
            f["FunctionName"]
            for f in client(endpoint, "lambda").list_functions()["Functions"]
            if f["FunctionName"].startswith(f"{STACK}-")
        ],
        "event_source_mappings": client(endpoint, "lambda").list_event_source_mappings()["EventSourceMappings"],
        "rules": client(endpoint, "events").list_rules(NamePrefix=f"{STACK}-")["Rules"],
        "roles": [r["RoleName"] for r in iam.list_roles()["Roles"] if r["RoleName"].startswith(f"{STACK}-")],
        "instance_profiles": [
            p["InstanceProfileName"]
            for p in iam.list_instance_profiles()["InstanceProfiles"]
            if p["InstanceProfileName"].startswith(f"{STACK}-")
        ],
        "vpcs": client(endpoint, "ec2").describe_vpcs(Filters=[{"Name": "tag:derby-batch:stack", "Values": [STACK]}])[
            "Vpcs"
        ],
        "security_groups": client(endpoint, "ec2").describe_security_groups(
            Filters=[{"Name": "group-name", "Values": [f"{STACK}-batch"]}]
        )["SecurityGroups"],
        "log_groups": [
            g["logGroupName"]
            for prefix in (f"/aws/batch/{STACK}", f"/aws/lambda/{STACK}-")
            for g in client(endpoint, "logs").describe_log_groups(logGroupNamePrefix=prefix)["logGroups"]
        ],
        "queues": client(endpoint, "sqs").list_queues(QueueNamePrefix=f"{STACK}-").get("QueueUrls", []),
        "repositories": [
            r["repositoryName"]
            for r in client(endpoint, "ecr").describe_repositories()["repositories"]
            if r["repositoryName"].startswith(f"{STACK}-")
        ],
        "parameters": client(endpoint, "ssm").get_parameters_by_path(Path=f"/derby-batch/{STACK}/")["Parameters"],
        "tables": [t for t in client(endpoint, "dynamodb").list_tables()["TableNames"] if t.startswith(f"{STACK}-")],
        "buckets": [
            b["Name"] for b in client(endpoint, "s3").list_buckets()["Buckets"] if b["Name"].startswith(f"{STACK}-")
        ],
    }
    return found


def test_teardown_keeps_only_the_data(endpoint: str, deployment: Deployment) -> None:
    account = client(endpoint, "sts").get_caller_identity()["Account"]
    bucket = f"{STACK}-data-{account}-{REGION}"
    item = {"pk": {"S": "video#v1"}, "sk": {"S": "video"}, "state": {"S": "done"}}
    client(endpoint, "dynamodb").put_item(TableName=f"{STACK}-items", Item=item)
    before = leftovers(endpoint)
    assert all(before.values()), {k: v for k, v in before.items() if not v}

    run = run_playbook(endpoint, "teardown.yml")
    assert run.returncode == 0, run.output

    left = {kind: names for kind, names in leftovers(endpoint).items() if names}
    assert left == {"tables": [f"{STACK}-items"], "buckets": [bucket]}
    kept = client(endpoint, "dynamodb").get_item(TableName=f"{STACK}-items", Key={k: item[k] for k in ("pk", "sk")})
    assert kept["Item"] == item
    assert "Policy" in client(endpoint, "s3").get_bucket_policy(Bucket=bucket)


def test_teardown_again_with_purge_data_leaves_nothing(endpoint: str, deployment: Deployment) -> None:
    run = run_playbook(endpoint, "teardown.yml", {"purge_data": True})
    assert run.returncode == 0, run.output
    left = {kind: names for kind, names in leftovers(endpoint).items() if names}
    assert left == {}
    with pytest.raises(ClientError):
        client(endpoint, "dynamodb").describe_table(TableName=f"{STACK}-items")
