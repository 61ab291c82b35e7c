"""Which stack a command talks to: `--stack`/`DERBY_BATCH_STACK` decide when given, else whether a deployed stack's
config answers (credentials and the SSM parameter); with none, the local stack."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import boto3
import pytest

from batch_jobs.config import parameter_name
from cli.local.server import MotoServer
from cli.local.session import wants_local


@pytest.fixture
def no_aws(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """No credentials, no profile, no stack name: a machine that never saw AWS."""
    monkeypatch.setenv("HOME", str(tmp_path))
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE", "AWS_ENDPOINT_URL",
                 "AWS_CONFIG_FILE", "AWS_SHARED_CREDENTIALS_FILE", "DERBY_BATCH_STACK"):  # fmt: skip
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_REGION", "us-east-1")


@pytest.fixture
def deployed_world(no_aws: None, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """Credentials and an endpoint that answers, like an account where a stack may or may not be deployed."""
    server = MotoServer(0)
    server.start()
    monkeypatch.setenv("AWS_ENDPOINT_URL", server.endpoint)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "session-test-key")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "session-test-secret")
    yield server.endpoint
    server.stop()


def test_no_credentials_means_local(no_aws: None) -> None:
    assert wants_local(None)


def test_an_explicit_stack_decides(no_aws: None, monkeypatch: pytest.MonkeyPatch) -> None:
    assert wants_local("local")
    assert not wants_local("prod")
    monkeypatch.setenv("DERBY_BATCH_STACK", "prod")
    assert not wants_local(None)
    assert wants_local("local")  # --stack wins over the environment
    monkeypatch.setenv("DERBY_BATCH_STACK", "local")
    assert wants_local(None)


def test_a_reachable_deployed_config_means_deployed(deployed_world: str) -> None:
    assert wants_local(None), "credentials alone, no stack deployed"
    boto3.client("ssm", region_name="us-east-1").put_parameter(
        Name=parameter_name("derby"), Value=json.dumps({}), Type="String"
    )
    assert not wants_local(None)
