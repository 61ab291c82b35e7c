"""teardown.yml against a deployed stack: everything goes but the data, then the data too.

The stack is this module's own, on a moto server of its own: a parallel run (pytest-xdist) may give the session's
shared stack to other playbook tests on this worker after this file.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from botocore.exceptions import ClientError
from playbook_harness import (
    REGION,
    STACK,
    MotoServer,
    PlaybookRun,
    Recorder,
    Request,
    batch_operation,
    client,
    own_router_zip,
    run_playbook,
)

ITEM = {"pk": {"S": "video#v1"}, "sk": {"S": "video"}, "state": {"S": "done"}}


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
        "launch_templates": [
            t["LaunchTemplateName"]
            for t in client(endpoint, "ec2").describe_launch_templates()["LaunchTemplates"]
            if t["LaunchTemplateName"].startswith(f"{STACK}-")
        ],
        "parameters": client(endpoint, "ssm").get_parameters_by_path(Path=f"/derby-batch/{STACK}/")["Parameters"],
        "tables": [t for t in client(endpoint, "dynamodb").list_tables()["TableNames"] if t.startswith(f"{STACK}-")],
        "buckets": [
            b["Name"] for b in client(endpoint, "s3").list_buckets()["Buckets"] if b["Name"].startswith(f"{STACK}-")
        ],
    }
    return found


@pytest.fixture(scope="module")
def deployed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MotoServer]:
    """A moto server with the stack deployed, for this module alone."""
    workdir = tmp_path_factory.mktemp("teardown")
    with MotoServer(workdir) as server:
        run = run_playbook(server.url, "deploy.yml", own_router_zip(workdir))
        assert run.returncode == 0, run.output
        yield server


@pytest.fixture(scope="module")
def endpoint(deployed: MotoServer) -> str:
    return deployed.url


@pytest.fixture(scope="module")
def teardown(endpoint: str, deployed: MotoServer) -> tuple[PlaybookRun, list[Request]]:
    """teardown.yml on the whole deployed stack (and a job-history item), recorded."""
    recorder = Recorder(deployed)
    client(endpoint, "dynamodb").put_item(TableName=f"{STACK}-items", Item=ITEM)
    before = leftovers(endpoint)
    assert all(before.values()), {k: v for k, v in before.items() if not v}
    recorder.start()
    run = run_playbook(endpoint, "teardown.yml")
    requests = recorder.stop()
    assert run.returncode == 0, run.output
    return run, requests


def test_teardown_keeps_only_the_data(endpoint: str, teardown: tuple[PlaybookRun, list[Request]]) -> None:
    account = client(endpoint, "sts").get_caller_identity()["Account"]
    bucket = f"{STACK}-data-{account}-{REGION}"
    left = {kind: names for kind, names in leftovers(endpoint).items() if names}
    assert left == {"tables": [f"{STACK}-items"], "buckets": [bucket]}
    kept = client(endpoint, "dynamodb").get_item(TableName=f"{STACK}-items", Key={k: ITEM[k] for k in ("pk", "sk")})
    assert kept["Item"] == ITEM
    assert "Policy" in client(endpoint, "s3").get_bucket_policy(Bucket=bucket)


def test_teardown_disables_then_deletes_queues_before_compute_environments(
    teardown: tuple[PlaybookRun, list[Request]],
) -> None:
    # moto deletes ENABLED queues and compute environments (AWS refuses): only the request order shows the rule.
    _, requests = teardown
    calls = []
    for request in requests:
        operation = batch_operation(request)
        if operation in ("updatejobqueue", "deletejobqueue"):
            calls.append((operation, request.json()["jobQueue"], request.json().get("state")))
        elif operation in ("updatecomputeenvironment", "deletecomputeenvironment"):
            calls.append((operation, request.json()["computeEnvironment"], request.json().get("state")))
    for name in (f"{STACK}-gpu", f"{STACK}-cpu"):
        assert calls.index(("updatejobqueue", name, "DISABLED")) < calls.index(("deletejobqueue", name, None))
    last_queue = max(i for i, call in enumerate(calls) if call[0] == "deletejobqueue")
    environments = [i for i, call in enumerate(calls) if call[0].endswith("computeenvironment")]
    assert environments and last_queue < min(environments), calls
    deleted = [name for operation, name, _ in calls if operation == "deletecomputeenvironment"]
    assert sorted(name.rsplit("-", 1)[0] for name in deleted) == [f"{STACK}-cpu", f"{STACK}-gpu"]
    for name in deleted:
        disable = calls.index(("updatecomputeenvironment", name, "DISABLED"))
        assert disable < calls.index(("deletecomputeenvironment", name, None))


def test_teardown_removes_the_stream_mapping_before_the_router(teardown: tuple[PlaybookRun, list[Request]]) -> None:
    _, requests = teardown
    deletes = [r.path.split("?")[0] for r in requests if r.method == "DELETE"]
    (mapping,) = [i for i, path in enumerate(deletes) if "/event-source-mappings/" in path]
    (function,) = [i for i, path in enumerate(deletes) if path.endswith(f"/functions/{STACK}-router")]
    assert mapping < function


def test_teardown_again_with_purge_data_leaves_nothing(
    endpoint: str, teardown: tuple[PlaybookRun, list[Request]]
) -> None:
    run = run_playbook(endpoint, "teardown.yml", {"purge_data": True})
    assert run.returncode == 0, run.output
    left = {kind: names for kind, names in leftovers(endpoint).items() if names}
    assert left == {}
    with pytest.raises(ClientError):
        client(endpoint, "dynamodb").describe_table(TableName=f"{STACK}-items")
