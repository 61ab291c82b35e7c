"""A moto server per session (real HTTP, real boto3) and a freshly bootstrapped stack per test."""

from __future__ import annotations

import logging
import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import boto3
import pytest
from pipeline_clips import make_clip

from batch_jobs.bootstrap import bootstrap_stack
from batch_jobs.config import default_config
from batch_jobs.pipeline import parse_pipeline
from devtools.drive import World
from devtools.moto_server import serve
from router import handler
from router.core import Router

REGION = "us-east-1"
TEST_PIPELINE = parse_pipeline(
    [
        {"name": "timesplit", "action": "split"},
        {"name": "probe", "action": "probe"},
        {"name": "summarize", "action": "summarize"},
        {"name": "stitch", "action": "stitch", "per": "video"},
    ]
)


@pytest.fixture(scope="session")
def moto_endpoint() -> Iterator[str]:
    logging.getLogger("werkzeug").setLevel(logging.WARNING)
    saved = dict(os.environ)
    server, endpoint = serve("pipeline-test")
    os.environ.pop("DERBY_BATCH_STACK", None)
    yield endpoint
    os.environ.clear()
    os.environ.update(saved)
    server.stop()


@pytest.fixture
def world(moto_endpoint: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[World]:
    """A new stack (unique name) with the test pipeline (3 chunk steps, 1 per-video step), and the router pointed at
    it."""
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
