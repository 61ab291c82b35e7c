"""A moto server on 127.0.0.1 for the tests, the benches and the simulation: Batch jobs and Lambda functions never
need Docker (moto then marks jobs SUCCEEDED at once, and the caller runs them), and this process's botocore talks to
it through the environment."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
import urllib.request

from cli.local.server import MotoServer

REGION = "us-east-1"


def serve(name: str) -> tuple[MotoServer, str]:
    """Start a server, point this process's AWS settings at it (credentials named after `name`: long enough that
    no output masks them); returns the server and its endpoint. The caller restores the environment if it must."""
    server = MotoServer(0)  # the local stack's: DynamoDB writes to an item one at a time, as DynamoDB does
    server.start()
    _point_at(server.endpoint, name)
    return server, server.endpoint


def _point_at(endpoint: str, name: str) -> None:
    os.environ.update(
        AWS_ENDPOINT_URL=endpoint,
        AWS_ACCESS_KEY_ID=f"{name}-access-key",
        AWS_SECRET_ACCESS_KEY=f"{name}-secret-key",
        AWS_REGION=REGION,
        AWS_DEFAULT_REGION=REGION,
    )
    os.environ.pop("AWS_PROFILE", None)


def serve_process(name: str) -> tuple[subprocess.Popen[bytes], str]:
    """As `serve`, with moto in a process of its own (for load that would otherwise share this process's GIL),
    and transactions that cost what AWS's do (`devtools.moto_process`)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    command = [sys.executable, "-m", "devtools.moto_process", str(port)]
    server = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    endpoint = f"http://127.0.0.1:{port}"
    for _ in range(200):
        try:
            _configure(endpoint)
            break
        except OSError:
            time.sleep(0.05)
    else:
        server.kill()
        raise RuntimeError(f"moto server did not start on {endpoint}")
    _point_at(endpoint, name)
    return server, endpoint


def reset(endpoint: str) -> None:
    """Forget every resource (moto's lists grow with them, and so does the time each call takes)."""
    urllib.request.urlopen(urllib.request.Request(f"{endpoint}/moto-api/reset", method="POST")).read()
    _configure(endpoint)


def _configure(endpoint: str) -> None:
    body = json.dumps({"batch": {"use_docker": False}, "lambda": {"use_docker": False}}).encode()
    urllib.request.urlopen(urllib.request.Request(f"{endpoint}/moto-api/config", data=body, method="POST")).read()
