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
        ({"ssh_key_name": "mykey", "ssh_cidr": "0.0.0.0/0"}, 'ssh_cidr "0.0.0.0/0": SSH may only be opened to'),
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


SSH_RULE = "SSH may only be opened to an IPv4 range of /16 or narrower"


@pytest.mark.parametrize(
    ("cidr", "why"),
    [
        ("10.0.0.0/15", "(this one is /15)"),
        ("10.0.0.0/8", "(this one is /8)"),
        ("0.0.0.0/0", "(this one is /0)"),
        ("2001:db8::/32", "(IPv6 is not used: the VPC has no IPv6 range)"),
        ("203.0.113.7", "(write it as address/prefix)"),
        ("203.0.113.256/32", "(write it as address/prefix)"),
    ],
)
def test_ssh_wider_than_a_16_or_not_ipv4_is_refused_in_one_line(cidr: str, why: str) -> None:
    run = validate({"ssh_key_name": "mykey", "ssh_cidr": cidr})
    assert run.returncode != 0
    name, msg = failed_task(run)
    assert name == "SSH is open to a /16 or narrower IPv4 range only"
    assert msg.startswith(f'ssh_cidr "{cidr}": {SSH_RULE} {why}; give your own range'), msg
    assert "\n" not in msg.strip(), msg
    assert "Find the account" not in [n for n, _ in run.tasks()], "validation runs before the first AWS call"


@pytest.mark.parametrize("cidr", ["198.51.0.0/16", "198.51.100.0/24"])
def test_ssh_from_a_16_or_narrower_passes(cidr: str) -> None:
    run = validate({"ssh_key_name": "mykey", "ssh_cidr": cidr})
    assert failed_task(run)[0] == "Find the account", run.output


def test_a_wide_ssh_cidr_without_a_key_pair_is_no_ssh_and_passes() -> None:
    run = validate({"ssh_cidr": "0.0.0.0/0"})  # ssh_key_name empty: no SSH, no inbound rule
    assert failed_task(run)[0] == "Find the account", run.output
