"""A moto server per session (real HTTP, real boto3) and a freshly bootstrapped stack per test."""

from __future__ import annotations

import json
import logging
import os
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path

import boto3
import pytest
from moto.server import ThreadedMotoServer
from pipeline_clips import make_clip

from batch_jobs.bootstrap import bootstrap_stack
from batch_jobs.config import default_config
from batch_jobs.pipeline import parse_pipeline
from devtools.drive import World
from router import handler
from router.core import Router

REGION = "us-east-1"
TEST_PIPELINE = parse_pipeline(
    [
        {"name": "timesplit", "action": "split"},
        {"name": "probe", "action": "probe"},
        {"name": "summarize", "action": "summarize"},
    ]
)


@pytest.fixture(scope="session")
def moto_endpoint() -> Iterator[str]:
    logging.getLogger("werkzeug").setLevel(logging.WARNING)
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    endpoint = f"http://{host}:{port}"
    body = json.dumps({"batch": {"use_docker": False}, "lambda": {"use_docker": False}}).encode()
    urllib.request.urlopen(urllib.request.Request(f"{endpoint}/moto-api/config", data=body, method="POST")).read()
    saved = dict(os.environ)
    os.environ.update(
        AWS_ENDPOINT_URL=endpoint,
        AWS_ACCESS_KEY_ID="pipeline-test-access-key",
        AWS_SECRET_ACCESS_KEY="pipeline-test-secret-key",
        AWS_REGION=REGION,
        AWS_DEFAULT_REGION=REGION,
    )
    for name in ("AWS_PROFILE", "DERBY_BATCH_STACK"):
        os.environ.pop(name, None)
    yield endpoint
    os.environ.clear()
    os.environ.update(saved)
    server.stop()


@pytest.fixture
def world(moto_endpoint: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[World]:
    """A new stack (unique name) with the 3-step test pipeline, and the router pointed at it."""
    stack = f"t{uuid.uuid4().hex[:8]}"
    monkeypatch.setenv("DERBY_BATCH_STACK", stack)
    session = boto3.Session(region_name=REGION)
    config = default_config(stack, REGION, pipeline=TEST_PIPELINE)
    stream_arn = bootstrap_stack(session, config)
    handler.set_router(Router.from_session(session, stack))
    yield World(session, config, stream_arn)
    handler.set_router(None)


@pytest.fixture(scope="session")
def clip(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """10 s, 25 fps, a keyframe every second: 250 frames."""
    path = tmp_path_factory.mktemp("clips") / "game.mp4"
    make_clip(path, seconds=10)
    return path
