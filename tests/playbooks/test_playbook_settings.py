"""deploy.yml checks its settings before it touches AWS: each rule refuses a bad value with a message that says
what to change. Runs only the validation (`--tags validate`) against an endpoint where nothing listens, so a run
that passes validation fails at the first AWS call, "Find the account"."""

from __future__ import annotations

from typing import Any

import pytest
from playbook_harness import PlaybookRun, run_playbook

NOWHERE = "http://127.0.0.1:9"  # the discard port: connection refused


def failed_task(run: PlaybookRun) -> tuple[str, str]:
    (failed,) = [(name, str(result.get("msg"))) for name, result in run.tasks() if result.get("failed")]
    return failed


def validate(variables: dict[str, Any]) -> PlaybookRun:
    return run_playbook(NOWHERE, "deploy.yml", variables, args=["--tags", "validate"])


def test_the_defaults_pass_validation() -> None:
    run = validate({})
    assert run.returncode != 0  # no AWS here
    assert failed_task(run)[0] == "Find the account", run.output


@pytest.mark.parametrize(
    ("variables", "message"),
    [
        ({"stack": "My_Stack"}, 'stack "My_Stack": use lowercase letters, digits and inner hyphens only'),
        ({"stack": "a" * 36}, "at most 35 characters in us-east-1 (S3 bucket names)"),
        ({"gpu_instance_types": ["g5.xlarge", "c5.large"]}, 'gpu_instance_types: ["c5.large"] are not NVIDIA GPU'),
        ({"ssh_key_name": "mykey", "ssh_cidr": "0.0.0.0/0"}, 'ssh_cidr "0.0.0.0/0": give your own IPv4 range'),
        ({"job_overrides": {"detect": {"timeout_seconds": 0}}}, "a job's timeout_seconds must be 60 or more"),
        ({"runnable_timeout_seconds": 60}, "runnable_timeout_seconds and misconfigured_runnable_timeout_seconds 600"),
    ],
    ids=["stack-case", "stack-length", "gpu-types", "ssh-anywhere", "job-timeout", "runnable-timeout"],
)
def test_a_bad_setting_is_refused_before_any_aws_call(variables: dict[str, Any], message: str) -> None:
    run = validate(variables)
    assert run.returncode != 0
    _, msg = failed_task(run)
    assert message in msg, msg
    assert "Find the account" not in [n for n, _ in run.tasks()], "validation runs before the first AWS call"


def test_ssh_with_a_narrow_cidr_passes() -> None:
    run = validate({"ssh_key_name": "mykey", "ssh_cidr": "203.0.113.7/32", "stack": "a" * 35})
    assert failed_task(run)[0] == "Find the account", run.output
