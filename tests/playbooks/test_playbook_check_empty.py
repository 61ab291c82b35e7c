"""`deploy.yml --check` on an empty account (before the first deploy) runs through and reports what it would create,
without one write request. It has its own moto server: the session's shared one holds the deployed stack."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from playbook_harness import STACK, MotoServer, Recorder, client, own_router_zip, run_playbook, written


@pytest.fixture
def empty_account(tmp_path: Path) -> Iterator[MotoServer]:
    with MotoServer(tmp_path) as server:
        yield server


def test_check_on_an_empty_account_reports_the_whole_stack_without_writing(
    empty_account: MotoServer, tmp_path: Path
) -> None:
    recorder = Recorder(empty_account)
    recorder.start()
    run = run_playbook(empty_account.url, "deploy.yml", own_router_zip(tmp_path), check=True)
    requests = recorder.stop()
    assert run.returncode == 0, run.output
    assert run.stats["failures"] == 0
    # Every kind of resource, down to those that need the ids of earlier ones (VPC -> subnets -> compute environments
    # -> queues; table stream -> mapping), is reported as a change.
    assert set(run.changed_tasks) >= {
        "Items table (on-demand, stream for the router, point-in-time recovery)",
        "Container registry (scan on push, keep the last images)",
        "Roles",
        "VPC",
        "Subnets in two availability zones",
        "Security group without inbound rules (SSH only with a key pair and a CIDR)",
        "GPU instance launch template (IMDSv2 only, hop limit 1)",
        "GPU compute environment (scales to zero)",
        "CPU compute environment on Fargate (scales to zero)",
        "Job queues that cancel jobs stuck in RUNNABLE",
        "Job definitions, one per pipeline step",
        "Router Lambda",
        "Stream mapping (chunk items only, partial batch failures, bounded retries, dead letters)",
        "Stack configuration read by the CLI, the router and the jobs",
    }, run.changed_tasks
    assert written(requests) == []
    assert requests, "the recorder saw the run's read requests"
    batch = client(empty_account.url, "batch")
    assert batch.describe_compute_environments()["computeEnvironments"] == []
    stack_vpcs = [{"Name": "tag:derby-batch:stack", "Values": [STACK]}]
    assert client(empty_account.url, "ec2").describe_vpcs(Filters=stack_vpcs)["Vpcs"] == []
