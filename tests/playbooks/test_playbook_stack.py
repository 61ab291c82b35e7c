"""deploy.yml against a moto server: what it builds, that it is idempotent, --check, and variable changes; then
teardown.yml: everything goes but the data, then the data too.

Tests run in file order on one shared stack (deploying takes most of the time); the variable-change tests come after
the others because they alter the stack, and the teardown tests last because they remove it. Every test that needs
the shared stack is in this file: under pytest-xdist each file runs on one worker, and a worker deploys the stack for
the first test that asks for it.
"""

from __future__ import annotations

import base64
import hashlib
import io
import json
import subprocess
import zipfile
from pathlib import Path
from typing import Any

import pytest
from botocore.exceptions import ClientError
from playbook_harness import (
    BIN,
    REGION,
    REPO,
    ROUTER_ZIP,
    STACK,
    Deployment,
    PlaybookRun,
    Recorder,
    Request,
    batch_operation,
    client,
    module_utils,
    playbook_env,
    run_playbook,
    written,
)

from batch_jobs.config import default_config, load_config
from batch_jobs.pipeline import load_pipeline

GPU_TYPES = ["g4dn.xlarge", "g4dn.2xlarge", "g5.xlarge", "g6.xlarge"]
GPU_ENV_TASK = "GPU compute environment (scales to zero)"
QUEUES_TASK = "Job queues that cancel jobs stuck in RUNNABLE"
DELETE_ENVS_TASK = "Delete replaced compute environments"
LAUNCH_TEMPLATE_TASK = "GPU instance launch template (IMDSv2 only, hop limit 1)"
LAUNCH_TEMPLATE = f"{STACK}-gpu-instances"
COMPUTE_ENVIRONMENT_WRITES = ("createcomputeenvironment", "updatecomputeenvironment", "deletecomputeenvironment")

DEPLOYED: dict[str, Any] = {}
"""Variables the variable-change tests have applied so far: later runs keep them, so each run changes one thing."""


def redeploy(endpoint: str, recorder: Recorder, **change: Any) -> tuple[PlaybookRun, list[Request]]:
    """deploy.yml with one more variable changed, recorded."""
    recorder.start()
    run = run_playbook(endpoint, "deploy.yml", {**DEPLOYED, **change})
    requests = recorder.stop()
    assert run.returncode == 0, run.output
    DEPLOYED.update(change)
    return run, requests


def compute_environments(endpoint: str, base: str) -> list[dict[str, Any]]:
    envs = client(endpoint, "batch").describe_compute_environments()["computeEnvironments"]
    return [e for e in envs if e["computeEnvironmentName"].startswith(base + "-")]


def queue(endpoint: str, name: str) -> dict[str, Any]:
    queues = client(endpoint, "batch").describe_job_queues(jobQueues=[name])["jobQueues"]
    assert len(queues) == 1, queues
    return dict(queues[0])


def active_definitions(endpoint: str, name: str) -> list[dict[str, Any]]:
    pages = client(endpoint, "batch").describe_job_definitions(jobDefinitionName=name, status="ACTIVE")
    return [d for d in pages["jobDefinitions"] if d["status"] == "ACTIVE"]


def inline_policy(endpoint: str, role: str) -> dict[str, Any]:
    document = client(endpoint, "iam").get_role_policy(RoleName=role, PolicyName=role)["PolicyDocument"]
    return dict(json.loads(document) if isinstance(document, str) else document)


def statements(policy: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {s["Sid"]: s for s in policy["Statement"]}


def as_list(value: str | list[str]) -> list[str]:
    return [value] if isinstance(value, str) else list(value)


def launch_template(endpoint: str) -> dict[str, Any]:
    ec2 = client(endpoint, "ec2")
    (template,) = ec2.describe_launch_templates(LaunchTemplateNames=[LAUNCH_TEMPLATE])["LaunchTemplates"]
    return dict(template)


def metadata_options(endpoint: str, version: str) -> dict[str, Any]:
    """The instance metadata options of one version of the stack's launch template."""
    (found,) = client(endpoint, "ec2").describe_launch_template_versions(
        LaunchTemplateName=LAUNCH_TEMPLATE, Versions=[version]
    )["LaunchTemplateVersions"]
    return dict(found["LaunchTemplateData"]["MetadataOptions"])


def account_id(endpoint: str) -> str:
    return str(client(endpoint, "sts").get_caller_identity()["Account"])


# --- the first deploy -------------------------------------------------------------------------------------------


def test_deploy_succeeds_and_creates(deployment: Deployment) -> None:
    assert deployment.run.stats["failures"] == 0
    assert deployment.run.stats["changed"] > 10


INVALID_PROFILE = f"arn:aws:iam::123456789012:instance-profile/{STACK}-ecs-instance"
INVALID_REASON = f"CLIENT_ERROR - Invalid IamInstanceProfile: {INVALID_PROFILE}"


class _Failed(Exception):
    pass


class _FakeModule:
    """What the INVALID check needs of an AnsibleAWSModule: fail_json, which never returns."""

    def fail_json(self, **result: Any) -> None:
        raise _Failed(result["msg"])


def test_an_invalid_batch_resource_fails_with_its_reason(endpoint: str, deployment: Deployment) -> None:
    """An INVALID compute environment or job queue fails the deploy with Batch's reason instead of reporting `ok`.
    moto never reports INVALID, so the modules' shared check is run on what boto3 describes of the deployed stack,
    with the status AWS gives a compute environment whose instance profile was not yet usable."""
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
        fail_if_invalid(_FakeModule(), kind, "x", resource)  # VALID: nothing to say
        invalid = {**resource, "status": "INVALID", "statusReason": INVALID_REASON}
        with pytest.raises(_Failed, match=f"^{kind} x is INVALID: CLIENT_ERROR - Invalid IamInstanceProfile"):
            fail_if_invalid(_FakeModule(), kind, "x", invalid)


def test_network_has_two_subnets_in_two_azs_and_no_inbound_rule(endpoint: str, deployment: Deployment) -> None:
    ec2 = client(endpoint, "ec2")
    vpcs = ec2.describe_vpcs(Filters=[{"Name": "tag:derby-batch:stack", "Values": [STACK]}])["Vpcs"]
    assert len(vpcs) == 1
    vpc_id = vpcs[0]["VpcId"]
    subnets = ec2.describe_subnets(Filters=[{"Name": "vpc-id", "Values": [vpc_id]}])["Subnets"]
    assert len(subnets) == 2
    assert len({s["AvailabilityZone"] for s in subnets}) == 2
    igws = ec2.describe_internet_gateways(Filters=[{"Name": "attachment.vpc-id", "Values": [vpc_id]}])
    igw_id = igws["InternetGateways"][0]["InternetGatewayId"]
    tables = ec2.describe_route_tables(Filters=[{"Name": "vpc-id", "Values": [vpc_id]}])["RouteTables"]
    default_routes = [r for t in tables for r in t["Routes"] if r.get("DestinationCidrBlock") == "0.0.0.0/0"]
    assert [r["GatewayId"] for r in default_routes] == [igw_id]
    associated = {a.get("SubnetId") for t in tables for a in t.get("Associations", [])}
    assert {s["SubnetId"] for s in subnets} <= associated
    groups = ec2.describe_security_groups(
        Filters=[{"Name": "vpc-id", "Values": [vpc_id]}, {"Name": "group-name", "Values": [f"{STACK}-batch"]}]
    )["SecurityGroups"]
    assert len(groups) == 1
    assert groups[0]["IpPermissions"] == []
    assert groups[0]["IpPermissionsEgress"], "jobs need outbound access to ECR, S3 and DynamoDB"


def test_bucket_is_private_encrypted_and_tls_only(endpoint: str, deployment: Deployment) -> None:
    s3 = client(endpoint, "s3")
    bucket = f"{STACK}-data-{account_id(endpoint)}-{REGION}"
    block = s3.get_public_access_block(Bucket=bucket)["PublicAccessBlockConfiguration"]
    assert block == {
        "BlockPublicAcls": True,
        "IgnorePublicAcls": True,
        "BlockPublicPolicy": True,
        "RestrictPublicBuckets": True,
    }
    rules = s3.get_bucket_encryption(Bucket=bucket)["ServerSideEncryptionConfiguration"]["Rules"]
    assert rules[0]["ApplyServerSideEncryptionByDefault"]["SSEAlgorithm"] == "AES256"
    policy = json.loads(s3.get_bucket_policy(Bucket=bucket)["Policy"])
    (deny,) = policy["Statement"]
    assert deny["Effect"] == "Deny"
    assert deny["Condition"] == {"Bool": {"aws:SecureTransport": "false"}}
    assert set(as_list(deny["Resource"])) == {f"arn:aws:s3:::{bucket}", f"arn:aws:s3:::{bucket}/*"}
    assert s3.get_bucket_versioning(Bucket=bucket).get("Status") in (None, "Suspended")
    # moto evaluates bucket policies: a plain-HTTP request (the test endpoint) is refused.
    with pytest.raises(ClientError) as refused:
        s3.put_object(Bucket=bucket, Key="videos/v1/source/x.mp4", Body=b"x")
    assert refused.value.response["ResponseMetadata"]["HTTPStatusCode"] == 403


def test_table_is_on_demand_with_stream_and_pitr(endpoint: str, deployment: Deployment) -> None:
    dynamodb = client(endpoint, "dynamodb")
    table = dynamodb.describe_table(TableName=f"{STACK}-items")["Table"]
    assert table["BillingModeSummary"]["BillingMode"] == "PAY_PER_REQUEST"
    assert sorted((k["AttributeName"], k["KeyType"]) for k in table["KeySchema"]) == [
        ("pk", "HASH"),
        ("sk", "RANGE"),
    ]
    assert {a["AttributeName"]: a["AttributeType"] for a in table["AttributeDefinitions"]} == {
        "pk": "S",
        "sk": "S",
        "open": "S",
    }
    (index,) = table["GlobalSecondaryIndexes"]
    assert (index["IndexName"], index["KeySchema"]) == ("open", [{"AttributeName": "open", "KeyType": "HASH"}])
    assert index["Projection"] == {"ProjectionType": "KEYS_ONLY"}
    assert table["StreamSpecification"] == {"StreamEnabled": True, "StreamViewType": "NEW_AND_OLD_IMAGES"}
    backups = dynamodb.describe_continuous_backups(TableName=f"{STACK}-items")["ContinuousBackupsDescription"]
    assert backups["PointInTimeRecoveryDescription"]["PointInTimeRecoveryStatus"] == "ENABLED"


def test_ecr_scans_on_push_and_keeps_last_images(endpoint: str, deployment: Deployment) -> None:
    ecr = client(endpoint, "ecr")
    (repo,) = ecr.describe_repositories(repositoryNames=[f"{STACK}-jobs"])["repositories"]
    assert repo["imageScanningConfiguration"]["scanOnPush"] is True
    policy = json.loads(ecr.get_lifecycle_policy(repositoryName=f"{STACK}-jobs")["lifecyclePolicyText"])
    (rule,) = policy["rules"]
    assert rule["selection"]["countType"] == "imageCountMoreThan"
    assert rule["selection"]["countNumber"] == 10
    assert rule["action"]["type"] == "expire"


def test_log_groups_have_retention(endpoint: str, deployment: Deployment) -> None:
    logs = client(endpoint, "logs")
    for name in (f"/aws/batch/{STACK}", f"/aws/lambda/{STACK}-router"):
        (group,) = [
            g for g in logs.describe_log_groups(logGroupNamePrefix=name)["logGroups"] if g["logGroupName"] == name
        ]
        assert group["retentionInDays"] == 30


def test_iam_roles_are_scoped_to_the_stack(endpoint: str, deployment: Deployment) -> None:
    iam = client(endpoint, "iam")
    account = account_id(endpoint)
    table_arn = f"arn:aws:dynamodb:{REGION}:{account}:table/{STACK}-items"
    config_arn = f"arn:aws:ssm:{REGION}:{account}:parameter/derby-batch/{STACK}/config"
    bucket_arn = f"arn:aws:s3:::{STACK}-data-{account}-{REGION}"

    profile = iam.get_instance_profile(InstanceProfileName=f"{STACK}-ecs-instance")["InstanceProfile"]
    assert [r["RoleName"] for r in profile["Roles"]] == [f"{STACK}-ecs-instance"]
    # The documented exception: the ECS agent's AWS managed policy, nothing else.
    attached = iam.list_attached_role_policies(RoleName=f"{STACK}-ecs-instance")["AttachedPolicies"]
    assert [p["PolicyName"] for p in attached] == ["AmazonEC2ContainerServiceforEC2Role"]
    assert iam.list_role_policies(RoleName=f"{STACK}-ecs-instance")["PolicyNames"] == []

    job = statements(inline_policy(endpoint, f"{STACK}-job"))
    assert job["ReadWriteVideos"]["Resource"] == f"{bucket_arn}/videos/*"
    assert job["ListVideos"]["Condition"] == {"StringLike": {"s3:prefix": ["videos/*"]}}
    assert job["Items"]["Resource"] == table_arn
    assert job["StackConfig"] == {
        "Sid": "StackConfig",
        "Effect": "Allow",
        "Action": "ssm:GetParameter",
        "Resource": config_arn,
    }
    assert "ReadInputs" not in job  # no input_s3_arns: nothing outside the stack's bucket

    execution = statements(inline_policy(endpoint, f"{STACK}-job-execution"))
    assert execution["EcrPull"]["Resource"] == f"arn:aws:ecr:{REGION}:{account}:repository/{STACK}-jobs"
    assert execution["JobLogs"]["Resource"] == f"arn:aws:logs:{REGION}:{account}:log-group:/aws/batch/{STACK}:*"

    router = statements(inline_policy(endpoint, f"{STACK}-router"))
    submit = set(as_list(router["SubmitToStackQueues"]["Resource"]))
    batch_arn = f"arn:aws:batch:{REGION}:{account}"
    definitions = [f"{STACK}-{step.name}" for step in load_pipeline()]
    assert submit == {f"{batch_arn}:job-queue/{STACK}-gpu", f"{batch_arn}:job-queue/{STACK}-cpu"} | {
        f"{batch_arn}:job-definition/{name}{suffix}" for name in definitions for suffix in ("", ":*")
    }
    assert router["ReadStream"]["Resource"] == f"{table_arn}/stream/*"
    assert router["Items"]["Resource"] == [table_arn, f"{table_arn}/index/open"]
    assert "dynamodb:Scan" not in router["Items"]["Action"]  # the sweep queries the open index
    assert router["StackConfig"]["Resource"] == config_arn
    assert router["DeadLetters"] == {
        "Sid": "DeadLetters",
        "Effect": "Allow",
        "Action": "sqs:SendMessage",
        "Resource": f"arn:aws:sqs:{REGION}:{account}:{STACK}-router-dlq",
    }
    stack_jobs = {"StringEquals": {"aws:ResourceTag/derby-batch:stack": STACK}}
    assert router["TerminateJobs"] == {
        "Sid": "TerminateJobs",
        "Effect": "Allow",
        "Action": "batch:TerminateJob",
        "Resource": f"{batch_arn}:job/*",
        "Condition": stack_jobs,
    }
    assert router["TagJobsOnSubmit"]["Action"] == "batch:TagResource"
    assert router["TagJobsOnSubmit"]["Condition"] == {
        "StringEquals": {"aws:RequestTag/derby-batch:stack": STACK},
        "ForAllValues:StringEquals": {"aws:TagKeys": ["derby-batch:stack"]},
    }

    # Each resource names the stack, or the statement's condition does (jobs: by their tag); "*" only where IAM has
    # no resource-level scope for the action.
    unscoped = {"ecr:GetAuthorizationToken", "batch:DescribeJobs", "batch:ListJobs"}
    for role in (f"{STACK}-job", f"{STACK}-job-execution", f"{STACK}-router"):
        for statement in inline_policy(endpoint, role)["Statement"]:
            assert statement["Effect"] == "Allow"
            assert not any(a.endswith(":*") or a == "*" for a in as_list(statement["Action"])), statement
            for resource in as_list(statement["Resource"]):
                if resource == "*":
                    assert set(as_list(statement["Action"])) <= unscoped, statement
                elif STACK not in resource:
                    assert STACK in json.dumps(statement.get("Condition")), statement


def test_gpu_compute_environment_scales_to_zero_on_nvidia_spot(endpoint: str, deployment: Deployment) -> None:
    (env,) = compute_environments(endpoint, f"{STACK}-gpu")
    resources = env["computeResources"]
    assert env["type"] == "MANAGED"
    assert env["state"] == "ENABLED"
    assert resources["minvCpus"] == 0
    assert resources["desiredvCpus"] == 0
    assert resources["maxvCpus"] == 16
    assert resources["type"] == "SPOT"
    assert resources["allocationStrategy"] == "SPOT_PRICE_CAPACITY_OPTIMIZED"
    assert sorted(resources["instanceTypes"]) == sorted(GPU_TYPES)
    assert resources["ec2Configuration"] == [{"imageType": "ECS_AL2023_NVIDIA"}]
    assert resources["instanceRole"].endswith(f":instance-profile/{STACK}-ecs-instance")
    assert "ec2KeyPair" not in resources
    assert "/aws-service-role/batch.amazonaws.com/" in env["serviceRole"]


def test_gpu_instances_keep_containers_from_the_instance_credentials(endpoint: str, deployment: Deployment) -> None:
    # IMDSv2 only (a token from a PUT) with a hop limit of 1: a container's extra network hop cannot get a token, so
    # it cannot read the instance role's credentials. The compute environment launches with that very version.
    template = launch_template(endpoint)
    (env,) = compute_environments(endpoint, f"{STACK}-gpu")
    assert env["computeResources"]["launchTemplate"] == {
        "launchTemplateId": template["LaunchTemplateId"],
        "version": str(template["LatestVersionNumber"]),
    }
    options = metadata_options(endpoint, env["computeResources"]["launchTemplate"]["version"])
    assert options["HttpTokens"] == "required"
    assert options["HttpPutResponseHopLimit"] == 1
    assert options["HttpEndpoint"] == "enabled"
    # Batch runs EC2 jobs with host networking (no extra hop): the instances also reject metadata traffic of every
    # user but root, and the job image runs as a non-root user.
    (version,) = client(endpoint, "ec2").describe_launch_template_versions(
        LaunchTemplateName=LAUNCH_TEMPLATE, Versions=[env["computeResources"]["launchTemplate"]["version"]]
    )["LaunchTemplateVersions"]
    user_data = base64.b64decode(version["LaunchTemplateData"]["UserData"]).decode()
    assert user_data.startswith('Content-Type: multipart/mixed; boundary="'), "Batch needs MIME user data"
    assert (
        "iptables --insert OUTPUT 1 --destination 169.254.169.254/32 --match owner ! --uid-owner 0 --jump REJECT"
        in user_data.splitlines()
    )
    dockerfile = (REPO / "Dockerfile").read_text().splitlines()
    assert [line for line in dockerfile if line.startswith("USER ")][-1] not in ("USER root", "USER 0")
    tags = client(endpoint, "ec2").describe_tags(
        Filters=[{"Name": "resource-id", "Values": [template["LaunchTemplateId"]]}]
    )["Tags"]
    assert {(t["Key"], t["Value"]) for t in tags} == {("derby-batch:stack", STACK)}


def test_cpu_compute_environment_is_fargate(endpoint: str, deployment: Deployment) -> None:
    (env,) = compute_environments(endpoint, f"{STACK}-cpu")
    assert env["computeResources"]["type"] == "FARGATE"
    assert env["computeResources"]["maxvCpus"] == 16


def test_queues_use_their_compute_environments(endpoint: str, deployment: Deployment) -> None:
    for kind in ("gpu", "cpu"):
        (env,) = compute_environments(endpoint, f"{STACK}-{kind}")
        found = queue(endpoint, f"{STACK}-{kind}")
        assert found["state"] == "ENABLED"
        order = [e["computeEnvironment"] for e in found["computeEnvironmentOrder"]]
        assert order in ([env["computeEnvironmentArn"]], [env["computeEnvironmentName"]])


def test_queues_were_created_with_job_state_time_limit_actions(deployment: Deployment) -> None:
    # moto does not store jobStateTimeLimitActions: assert on the request the module sent.
    created = {
        r.json()["jobQueueName"]: r.json() for r in deployment.requests if batch_operation(r) == "createjobqueue"
    }
    assert set(created) == {f"{STACK}-gpu", f"{STACK}-cpu"}
    for body in created.values():
        actions = {a["reason"]: a for a in body["jobStateTimeLimitActions"]}
        assert set(actions) == {
            "CAPACITY:INSUFFICIENT_INSTANCE_CAPACITY",
            "MISCONFIGURATION:COMPUTE_ENVIRONMENT_MAX_RESOURCE",
            "MISCONFIGURATION:JOB_RESOURCE_REQUIREMENT",
        }
        for action in actions.values():
            assert action["state"] == "RUNNABLE"
            assert action["action"] == "CANCEL"
            assert 600 <= action["maxTimeSeconds"] <= 86400


def test_one_job_definition_per_step_with_resources_and_retry_rules(endpoint: str, deployment: Deployment) -> None:
    account = account_id(endpoint)
    for step in load_pipeline():
        (definition,) = active_definitions(endpoint, f"{STACK}-{step.name}")
        container = definition["containerProperties"]
        assert container["command"] == [
            "python", "-m", "batch_jobs", "run", "--step", "Ref::step", "--video-id", "Ref::video_id",
            "--chunk", "Ref::chunk", "--attempt", "Ref::attempt",
        ]  # fmt: skip
        assert set(definition["parameters"]) == {"step", "video_id", "chunk", "attempt"}
        assert definition["parameters"]["step"] == step.name
        assert {"name": "DERBY_BATCH_STACK", "value": STACK} in container["environment"]
        requirements = {r["type"]: r["value"] for r in container["resourceRequirements"]}
        assert int(requirements["VCPU"]) >= 1
        assert int(requirements["MEMORY"]) >= 1024
        if step.gpu:
            assert requirements["GPU"] == "1"
            assert definition["platformCapabilities"] == ["EC2"]
        else:
            assert "GPU" not in requirements
            assert definition["platformCapabilities"] == ["FARGATE"]
        assert container["jobRoleArn"] == f"arn:aws:iam::{account}:role/{STACK}-job"
        assert container["executionRoleArn"] == f"arn:aws:iam::{account}:role/{STACK}-job-execution"
        assert container["logConfiguration"]["logDriver"] == "awslogs"
        assert container["logConfiguration"]["options"]["awslogs-group"] == f"/aws/batch/{STACK}"
        assert definition["timeout"]["attemptDurationSeconds"] >= 60
        retry = definition["retryStrategy"]
        assert retry["attempts"] == 3
        rules = [(r.get("onStatusReason") or r.get("onReason"), r["action"].upper()) for r in retry["evaluateOnExit"]]
        assert ("Host EC2*", "RETRY") in rules
        assert ("CannotPullContainer*", "RETRY") in rules
        assert rules[-1] == ("*", "EXIT"), "everything that is not an infrastructure fault must exit"


def test_router_lambda_runs_the_packaged_handler(endpoint: str, deployment: Deployment) -> None:
    function = client(endpoint, "lambda").get_function(FunctionName=f"{STACK}-router")["Configuration"]
    assert function["Runtime"] == "python3.12"
    assert function["Handler"] == "router.handler.lambda_handler"
    assert function["Environment"]["Variables"]["DERBY_BATCH_STACK"] == STACK
    assert function["Role"].endswith(f":role/{STACK}-router")
    # The deployed code is the zip router/package.py built during the first deploy.
    built = Path(ROUTER_ZIP["router_zip"]).read_bytes()
    assert function["CodeSha256"] == base64.b64encode(hashlib.sha256(built).digest()).decode()
    with zipfile.ZipFile(io.BytesIO(built)) as archive:
        assert "router/handler.py" in archive.namelist()


def test_stream_mapping_has_failure_handling_and_chunk_filter(endpoint: str, deployment: Deployment) -> None:
    account = account_id(endpoint)
    stream_arn = client(endpoint, "dynamodb").describe_table(TableName=f"{STACK}-items")["Table"]["LatestStreamArn"]
    (mapping,) = client(endpoint, "lambda").list_event_source_mappings(FunctionName=f"{STACK}-router")[
        "EventSourceMappings"
    ]
    assert mapping["EventSourceArn"] == stream_arn
    assert mapping["State"] == "Enabled"
    assert (mapping["BatchSize"], mapping["ParallelizationFactor"]) == (1000, 10)
    assert mapping["BisectBatchOnFunctionError"] is True
    assert mapping["MaximumRetryAttempts"] == 5
    assert mapping["MaximumRecordAgeInSeconds"] == -1  # as long as the stream keeps it (24 h)
    assert mapping["FunctionResponseTypes"] == ["ReportBatchItemFailures"]
    assert mapping["DestinationConfig"] == {
        "OnFailure": {"Destination": f"arn:aws:sqs:{REGION}:{account}:{STACK}-router-dlq"}
    }
    (pattern,) = [json.loads(f["Pattern"]) for f in mapping["FilterCriteria"]["Filters"]]
    assert pattern == {"dynamodb": {"Keys": {"sk": {"S": [{"prefix": "chunk#"}]}}}}


def test_job_state_events_of_the_stack_queues_reach_the_router(endpoint: str, deployment: Deployment) -> None:
    events = client(endpoint, "events")
    rule = events.describe_rule(Name=f"{STACK}-batch-job-state")
    pattern = json.loads(rule["EventPattern"])
    queue_arns = {queue(endpoint, f"{STACK}-{kind}")["jobQueueArn"] for kind in ("gpu", "cpu")}
    assert pattern["source"] == ["aws.batch"]
    assert pattern["detail-type"] == ["Batch Job State Change"]
    assert set(pattern["detail"]["jobQueue"]) == queue_arns
    assert sorted(pattern["detail"]["status"]) == ["FAILED", "SUCCEEDED"]  # the only ones the router acts on
    function_arn = client(endpoint, "lambda").get_function(FunctionName=f"{STACK}-router")["Configuration"][
        "FunctionArn"
    ]
    targets = events.list_targets_by_rule(Rule=f"{STACK}-batch-job-state")["Targets"]
    assert [t["Arn"] for t in targets] == [function_arn]
    sweep = events.describe_rule(Name=f"{STACK}-sweep")
    assert sweep["ScheduleExpression"] == "rate(15 minutes)"
    assert [t["Arn"] for t in events.list_targets_by_rule(Rule=f"{STACK}-sweep")["Targets"]] == [function_arn]
    policy = json.loads(client(endpoint, "lambda").get_policy(FunctionName=f"{STACK}-router")["Policy"])
    sources = {s["Condition"]["ArnLike"]["AWS:SourceArn"] for s in policy["Statement"]}
    assert sources == {rule["Arn"], sweep["Arn"]}
    assert {s["Principal"]["Service"] for s in policy["Statement"]} == {"events.amazonaws.com"}


def test_stack_config_names_the_deployed_resources(endpoint: str, deployment: Deployment) -> None:
    ssm = client(endpoint, "ssm")
    account = account_id(endpoint)
    raw = json.loads(ssm.get_parameter(Name=f"/derby-batch/{STACK}/config")["Parameter"]["Value"])
    config = load_config(ssm, STACK)  # what `derby-batch status` and the router read
    assert config.to_json() == {**default_config(STACK, REGION, account).to_json(), "chunk_seconds": 300}
    assert raw["pipeline"] == json.loads((REPO / "batch_jobs" / "pipeline.json").read_text())
    client(endpoint, "s3").head_bucket(Bucket=config.bucket)
    client(endpoint, "dynamodb").describe_table(TableName=config.table)
    assert client(endpoint, "logs").describe_log_groups(logGroupNamePrefix=config.log_group)["logGroups"]
    for name in config.job_queues.values():
        assert queue(endpoint, name)["state"] == "ENABLED"
    for name in config.job_definitions.values():
        assert len(active_definitions(endpoint, name)) == 1


def test_status_command_talks_to_the_deployed_stack(endpoint: str, deployment: Deployment) -> None:
    env = playbook_env(endpoint)  # AWS_ENDPOINT_URL at the moto server, the test credentials and region
    for args in (["--json"], []):
        done = subprocess.run(
            [str(BIN / "derby-batch"), "status", "--stack", STACK, *args],
            env=env,
            capture_output=True,
            text=True,
            timeout=300,
        )
        assert done.returncode == 0, done.stderr
        if args:
            assert json.loads(done.stdout) == []  # no video submitted yet


# --- idempotence and check mode ---------------------------------------------------------------------------------


def test_second_run_changes_nothing(endpoint: str, deployment: Deployment, recorder: Recorder) -> None:
    recorder.start()
    run = run_playbook(endpoint, "deploy.yml")
    requests = recorder.stop()
    assert run.returncode == 0, run.output
    assert run.stats["changed"] == 0, run.changed_tasks
    assert written(requests) == []


def test_check_mode_reports_a_change_without_making_it(
    endpoint: str, deployment: Deployment, recorder: Recorder
) -> None:
    recorder.start()
    run = run_playbook(endpoint, "deploy.yml", {"gpu_max_vcpus": 64, "log_retention_days": 7}, check=True)
    requests = recorder.stop()
    assert run.returncode == 0, run.output
    assert sorted(run.changed_tasks) == [GPU_ENV_TASK, "Log groups with retention"]
    assert written(requests) == []
    # moto ignores UpdateComputeEnvironment's sizing, so the stored maxvCpus alone could not show an update was sent.
    assert not [r for r in requests if batch_operation(r) in COMPUTE_ENVIRONMENT_WRITES]
    (env,) = compute_environments(endpoint, f"{STACK}-gpu")
    assert env["computeResources"]["maxvCpus"] == 16
    logs = client(endpoint, "logs").describe_log_groups(logGroupNamePrefix=f"/aws/batch/{STACK}")["logGroups"]
    assert logs[0]["retentionInDays"] == 30


def test_check_mode_reports_a_compute_environment_replacement_without_making_it(
    endpoint: str, deployment: Deployment, recorder: Recorder
) -> None:
    (before,) = compute_environments(endpoint, f"{STACK}-gpu")
    recorder.start()
    run = run_playbook(endpoint, "deploy.yml", {"gpu_instance_types": ["g5.xlarge"]}, check=True)
    requests = recorder.stop()
    assert run.returncode == 0, run.output
    assert sorted(run.changed_tasks) == [DELETE_ENVS_TASK, GPU_ENV_TASK, QUEUES_TASK]
    deleted = {r["item"]["key"]: r["deleted"] for r in run.result(DELETE_ENVS_TASK)["results"]}
    assert deleted == {"gpu": [before["computeEnvironmentName"]], "cpu": []}
    assert written(requests) == []
    assert compute_environments(endpoint, f"{STACK}-gpu") == [before]


def test_check_diff_shows_the_changed_job_definition_fields(
    endpoint: str, deployment: Deployment, recorder: Recorder
) -> None:
    gpu_job = {"vcpus": 4, "memory": 14336, "timeout_seconds": 7200}  # the default's timeout was 3600
    recorder.start()
    run = run_playbook(
        endpoint, "deploy.yml", {"gpu_job": gpu_job}, check=True, args=["--diff"], callback="ansible.builtin.default"
    )
    requests = recorder.stop()
    assert run.returncode == 0, run.output
    assert written(requests) == []
    (detect,) = active_definitions(endpoint, f"{STACK}-detect")
    assert detect["revision"] == 1 and detect["timeout"]["attemptDurationSeconds"] == 3600
    # The diff is of the content (the latest revision as the module would request it), not of a hash: exactly the
    # field that changed, with both values. Nothing else differs, so the described revision is normalized right.
    changed = [line.strip() for line in run.output.splitlines() if line.startswith(("-  ", "+  ", "- ", "+ "))]
    assert changed == ['-        "attemptDurationSeconds": 3600', '+        "attemptDurationSeconds": 7200'], run.output
    assert "content_hash" not in run.output


# --- changing a variable changes just what it should --------------------------------------------------------------


def test_max_vcpus_updates_the_compute_environment_in_place(
    endpoint: str, deployment: Deployment, recorder: Recorder
) -> None:
    (before,) = compute_environments(endpoint, f"{STACK}-gpu")
    run, requests = redeploy(endpoint, recorder, gpu_max_vcpus=64)
    assert run.changed_tasks == [GPU_ENV_TASK]
    # moto ignores computeResources in UpdateComputeEnvironment: assert on what was sent.
    (update,) = [r.json() for r in requests if batch_operation(r) == "updatecomputeenvironment"]
    assert update["computeEnvironment"] == before["computeEnvironmentName"]
    assert update["computeResources"] == {"maxvCpus": 64, "minvCpus": 0}
    assert written(requests) == ["POST updatecomputeenvironment"]  # the only write: Batch's REST calls are seen
    (after,) = compute_environments(endpoint, f"{STACK}-gpu")
    assert after["computeEnvironmentArn"] == before["computeEnvironmentArn"]


def test_on_demand_replaces_just_the_gpu_compute_environment(
    endpoint: str, deployment: Deployment, recorder: Recorder
) -> None:
    (before,) = compute_environments(endpoint, f"{STACK}-gpu")
    (cpu_before,) = compute_environments(endpoint, f"{STACK}-cpu")
    run, requests = redeploy(endpoint, recorder, use_spot=False)
    assert sorted(run.changed_tasks) == [DELETE_ENVS_TASK, GPU_ENV_TASK, QUEUES_TASK]
    (after,) = compute_environments(endpoint, f"{STACK}-gpu")
    old, new = before["computeEnvironmentName"], after["computeEnvironmentName"]
    assert new != old
    resources = after["computeResources"]
    assert (resources["type"], resources["allocationStrategy"]) == ("EC2", "BEST_FIT_PROGRESSIVE")
    assert sorted(resources["instanceTypes"]) == sorted(GPU_TYPES)
    assert resources["ec2Configuration"] == [{"imageType": "ECS_AL2023_NVIDIA"}]
    assert compute_environments(endpoint, f"{STACK}-cpu") == [cpu_before]
    queues = run.result(QUEUES_TASK)["results"]
    assert [r["item"]["key"] for r in queues if r["changed"]] == ["gpu"]

    # Create the new one (at the size set before), move the queue onto it, then disable and delete the old one.
    calls = [(batch_operation(r), r.json()) for r in requests if r.path.split("?")[0].count("/v1/") and r.body]
    (create,) = [i for i, (op, body) in enumerate(calls) if op == "createcomputeenvironment"]
    assert calls[create][1]["computeEnvironmentName"] == new
    assert calls[create][1]["computeResources"]["maxvCpus"] == 64
    (move,) = [i for i, (op, body) in enumerate(calls) if op == "updatejobqueue"]
    assert [e["computeEnvironment"] for e in calls[move][1]["computeEnvironmentOrder"]] == [
        after["computeEnvironmentArn"]
    ]
    disable = calls.index(("updatecomputeenvironment", {"computeEnvironment": old, "state": "DISABLED"}))
    delete = calls.index(("deletecomputeenvironment", {"computeEnvironment": old}))
    assert create < move < disable < delete


def test_runnable_timeout_updates_just_the_queues(endpoint: str, deployment: Deployment, recorder: Recorder) -> None:
    run, requests = redeploy(endpoint, recorder, runnable_timeout_seconds=7200)
    assert run.changed_tasks == [QUEUES_TASK]
    # moto does not store jobStateTimeLimitActions: assert on the update the module sent.
    updates = {r.json()["jobQueue"]: r.json() for r in requests if batch_operation(r) == "updatejobqueue"}
    assert set(updates) == {f"{STACK}-gpu", f"{STACK}-cpu"}
    for body in updates.values():
        assert set(body) == {"jobQueue", "jobStateTimeLimitActions"}
        assert {a["reason"]: a["maxTimeSeconds"] for a in body["jobStateTimeLimitActions"]} == {
            "CAPACITY:INSUFFICIENT_INSTANCE_CAPACITY": 7200,
            "MISCONFIGURATION:COMPUTE_ENVIRONMENT_MAX_RESOURCE": 600,
            "MISCONFIGURATION:JOB_RESOURCE_REQUIREMENT": 600,
        }
    assert not [r for r in requests if batch_operation(r) in COMPUTE_ENVIRONMENT_WRITES]
    # That moto forgets the actions must not make every later run update the queues: the last test's final run,
    # with this timeout still set, changes and writes nothing.


def test_input_s3_arns_let_the_jobs_read_just_those_objects(
    endpoint: str, deployment: Deployment, recorder: Recorder
) -> None:
    arns = ["arn:aws:s3:::pbtest-footage/games/*"]
    run, _ = redeploy(endpoint, recorder, input_s3_arns=arns)
    assert run.changed_tasks == ["Inline policies"]
    assert [r["item"]["role"] for r in run.result("Inline policies")["results"] if r["changed"]] == [f"{STACK}-job"]
    job = statements(inline_policy(endpoint, f"{STACK}-job"))
    assert job["ReadInputs"] == {"Sid": "ReadInputs", "Effect": "Allow", "Action": "s3:GetObject", "Resource": arns}


def test_an_edited_launch_template_is_restored_and_reaches_the_compute_environment(
    endpoint: str, deployment: Deployment, recorder: Recorder
) -> None:
    # Someone makes a version that lets containers reach the metadata service (hop limit 2, tokens optional) and
    # makes it the default. The deploy adds a version with the stack's settings again, and since the compute
    # environment names an explicit version, replaces it with one that launches from the new version.
    ec2 = client(endpoint, "ec2")
    (before,) = compute_environments(endpoint, f"{STACK}-gpu")
    edited = ec2.create_launch_template_version(
        LaunchTemplateName=LAUNCH_TEMPLATE,
        LaunchTemplateData={"MetadataOptions": {"HttpTokens": "optional", "HttpPutResponseHopLimit": 2}},
    )["LaunchTemplateVersion"]["VersionNumber"]
    ec2.modify_launch_template(LaunchTemplateName=LAUNCH_TEMPLATE, DefaultVersion=str(edited))
    run, _ = redeploy(endpoint, recorder)
    assert sorted(run.changed_tasks) == [DELETE_ENVS_TASK, GPU_ENV_TASK, LAUNCH_TEMPLATE_TASK, QUEUES_TASK]
    template = launch_template(endpoint)
    assert template["LatestVersionNumber"] == template["DefaultVersionNumber"] == edited + 1
    (after,) = compute_environments(endpoint, f"{STACK}-gpu")
    assert after["computeEnvironmentName"] != before["computeEnvironmentName"]
    assert after["computeResources"]["launchTemplate"] == {
        "launchTemplateId": template["LaunchTemplateId"],
        "version": str(edited + 1),
    }
    options = metadata_options(endpoint, str(edited + 1))
    assert (options["HttpTokens"], options["HttpPutResponseHopLimit"]) == ("required", 1)
    order = [e["computeEnvironment"] for e in queue(endpoint, f"{STACK}-gpu")["computeEnvironmentOrder"]]
    assert order in ([after["computeEnvironmentArn"]], [after["computeEnvironmentName"]])
    # The next test's run lists exactly what changes: the template (now at this version) is not among them.


def test_fleet_settings_replace_the_compute_environment_and_memory_revises_one_definition(
    endpoint: str, deployment: Deployment, recorder: Recorder
) -> None:
    # One run changes several variables (each playbook run costs most of a minute): the instance types and SSH access
    # (a key pair), which AWS Batch cannot always update in place, so the compute environment is replaced; SSH also
    # opens port 22 to the given CIDR only; and the memory of one step, which revises that job definition only.
    types = ["g5.xlarge", "g5.2xlarge"]
    client(endpoint, "ec2").create_key_pair(KeyName=f"{STACK}-key")
    variables = {
        "gpu_instance_types": types,
        "job_overrides": {"detect": {"memory": 15000}},
        "ssh_key_name": f"{STACK}-key",
        "ssh_cidr": "203.0.113.7/32",
    }
    (before,) = compute_environments(endpoint, f"{STACK}-gpu")
    (cpu_before,) = compute_environments(endpoint, f"{STACK}-cpu")
    run, _ = redeploy(endpoint, recorder, **variables)
    assert sorted(run.changed_tasks) == [
        DELETE_ENVS_TASK,
        GPU_ENV_TASK,
        "Job definitions, one per pipeline step",
        QUEUES_TASK,
        "Security group without inbound rules (SSH only with a key pair and a CIDR)",
    ]
    (group,) = client(endpoint, "ec2").describe_security_groups(
        Filters=[{"Name": "group-name", "Values": [f"{STACK}-batch"]}]
    )["SecurityGroups"]
    (rule,) = group["IpPermissions"]
    assert (rule["IpProtocol"], rule["FromPort"], rule["ToPort"]) == ("tcp", 22, 22)
    assert [r["CidrIp"] for r in rule["IpRanges"]] == ["203.0.113.7/32"]
    (after,) = compute_environments(endpoint, f"{STACK}-gpu")
    assert after["computeEnvironmentName"] != before["computeEnvironmentName"]
    assert sorted(after["computeResources"]["instanceTypes"]) == sorted(types)
    assert after["computeResources"]["minvCpus"] == 0
    assert after["computeResources"]["ec2Configuration"] == [{"imageType": "ECS_AL2023_NVIDIA"}]
    assert after["computeResources"]["ec2KeyPair"] == f"{STACK}-key"
    order = [e["computeEnvironment"] for e in queue(endpoint, f"{STACK}-gpu")["computeEnvironmentOrder"]]
    assert order in ([after["computeEnvironmentArn"]], [after["computeEnvironmentName"]])
    queues = run.result(QUEUES_TASK)["results"]
    assert [r["item"]["key"] for r in queues if r["changed"]] == ["gpu"]
    assert compute_environments(endpoint, f"{STACK}-cpu") == [cpu_before]

    definitions = run.result("Job definitions, one per pipeline step")["results"]
    assert [r["step"]["name"] for r in definitions if r["changed"]] == ["detect"]
    (detect,) = active_definitions(endpoint, f"{STACK}-detect")
    assert detect["revision"] == 2, "the previous revision is deregistered"
    memory = {r["type"]: r["value"] for r in detect["containerProperties"]["resourceRequirements"]}["MEMORY"]
    assert memory == "15000"
    assert [d["revision"] for d in active_definitions(endpoint, f"{STACK}-summarize")] == [1]

    # Every variable the tests above changed is still set (DEPLOYED): one more run changes and writes nothing.
    again, requests = redeploy(endpoint, recorder)
    assert again.stats["changed"] == 0, again.changed_tasks
    assert written(requests) == []


# --- teardown, last: it removes the stack -----------------------------------------------------------------------

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
def teardown(endpoint: str, deployment: Deployment, recorder: Recorder) -> tuple[PlaybookRun, list[Request]]:
    """teardown.yml on the whole deployed stack, as the tests above left it (and a job-history item), recorded."""
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
