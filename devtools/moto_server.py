"""A moto server on 127.0.0.1 for the tests, the benches and the simulation: Batch jobs and Lambda functions never
need Docker (moto then marks jobs SUCCEEDED at once, and the caller runs them), and this process's botocore talks to
it through the environment."""

from __future__ import annotations

import json
import os
import urllib.request

from moto.server import ThreadedMotoServer

REGION = "us-east-1"


def serve(name: str) -> tuple[ThreadedMotoServer, str]:
    """Start a server, point this process's AWS settings at it (credentials named after `name`: long enough that
    no output masks them); returns the server and its endpoint. The caller restores the environment if it must."""
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    endpoint = f"http://{host}:{port}"
    _configure(endpoint)
    os.environ.update(
        AWS_ENDPOINT_URL=endpoint,
        AWS_ACCESS_KEY_ID=f"{name}-access-key",
        AWS_SECRET_ACCESS_KEY=f"{name}-secret-key",
        AWS_REGION=REGION,
        AWS_DEFAULT_REGION=REGION,
    )
    os.environ.pop("AWS_PROFILE", None)
    return server, endpoint


def reset(endpoint: str) -> None:
    """Forget every resource (moto's lists grow with them, and so does the time each call takes)."""
    urllib.request.urlopen(urllib.request.Request(f"{endpoint}/moto-api/reset", method="POST")).read()
    _configure(endpoint)


def _configure(endpoint: str) -> None:
    body = json.dumps({"batch": {"use_docker": False}, "lambda": {"use_docker": False}}).encode()
    urllib.request.urlopen(urllib.request.Request(f"{endpoint}/moto-api/config", data=body, method="POST")).read()
