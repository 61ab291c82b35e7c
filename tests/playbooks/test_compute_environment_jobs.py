"""A replaced compute environment is not deleted while jobs still run on it (kept, with a warning, for a later run).

moto runs no Batch job long enough to be RUNNING, so the decision is checked on DescribeJobs answers shaped as AWS
gives them: a Fargate job names its ECS task, an EC2 job its container instance, each ARN carrying the cluster."""

from __future__ import annotations

from typing import Any

from playbook_harness import module_utils

OLD = {
    "computeEnvironmentName": "pbtest-cpu-aaaa1111",
    "ecsClusterArn": "arn:aws:ecs:us-east-1:123456789012:cluster/AWSBatch-pbtest-cpu-aaaa1111-3f2e",
}
NEW_CLUSTER = "AWSBatch-pbtest-cpu-bbbb2222-9c1d"


def job(job_id: str, status: str, **container: str) -> dict[str, Any]:
    return {"jobId": job_id, "jobName": job_id, "status": status, "container": container}


def task(cluster: str) -> str:
    return f"arn:aws:ecs:us-east-1:123456789012:task/{cluster}/0123456789abcdef"


def test_jobs_running_on_the_old_cluster_keep_it() -> None:
    jobs_on = module_utils().jobs_on_compute_environment
    old_cluster = OLD["ecsClusterArn"].rsplit("/", 1)[-1]
    jobs = [
        job("fargate-old", "RUNNING", taskArn=task(old_cluster)),
        job("starting-old", "STARTING", taskArn=task(old_cluster)),
        job(
            "ec2-old",
            "RUNNING",
            containerInstanceArn=f"arn:aws:ecs:us-east-1:123456789012:container-instance/{old_cluster}/abc",
        ),
        job("on-the-new-one", "RUNNING", taskArn=task(NEW_CLUSTER)),
        job("waiting", "RUNNABLE"),  # waits on the queue, which already uses the new compute environment
        job("done", "SUCCEEDED", taskArn=task(old_cluster)),
    ]
    assert jobs_on(OLD, jobs) == ["fargate-old", "starting-old", "ec2-old"]


def test_no_running_job_there_lets_it_go() -> None:
    jobs_on = module_utils().jobs_on_compute_environment
    assert jobs_on(OLD, []) == []
    assert jobs_on(OLD, [job("elsewhere", "RUNNING", taskArn=task(NEW_CLUSTER)), job("w", "RUNNABLE")]) == []


def test_a_running_job_of_unknown_placement_keeps_it() -> None:
    jobs_on = module_utils().jobs_on_compute_environment
    old_format = "arn:aws:ecs:us-east-1:123456789012:task/0123456789abcdef"  # no cluster in the ARN
    assert jobs_on(OLD, [job("no-arn", "STARTING"), job("old-arn", "RUNNING", taskArn=old_format)]) == [
        "no-arn",
        "old-arn",
    ]
    assert jobs_on({"computeEnvironmentName": "x"}, [job("r", "RUNNING", taskArn=task(NEW_CLUSTER))]) == ["r"]
