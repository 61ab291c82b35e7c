"""Run the playbooks against a moto server over HTTP and read what they did.

A moto server runs as a subprocess on 127.0.0.1 (a free port per test session) with AWS managed policies loaded and
Batch/Lambda configured not to need Docker. `ansible-playbook` runs as a subprocess with `AWS_ENDPOINT_URL` pointing
at it and the `ansible.posix.json` callback, so each run's per-task results can be asserted on.
"""

from __future__ import annotations

import base64
import importlib.util
import json
import os
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

import boto3

REPO = Path(__file__).resolve().parents[2]
PLAYBOOKS = REPO / "playbooks"
BIN = Path(sys.executable).parent
REGION = "us-east-1"
STACK = "pbtest"
# Long fake credentials: short ones are masked as no_log values everywhere in Ansible's output.
ACCESS_KEY = "AKIAPLAYBOOKTESTKEY01"
SECRET_KEY = "playbook-test-secret-key-that-is-long-enough"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class MotoServer:
    """A moto server subprocess; `url` is its endpoint. As a context manager, stopped on the way out."""

    def __init__(self, workdir: Path) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        env = dict(
            os.environ,
            MOTO_IAM_LOAD_MANAGED_POLICIES="true",
            MOTO_RECORDER_FILEPATH=str(workdir / "moto_recording"),
        )
        self.process = subprocess.Popen(
            [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(self.port)],
            cwd=workdir,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        self._wait_ready()
        # Before anything else: switching this later loses Lambda functions.
        self.post("/moto-api/config", {"batch": {"use_docker": False}, "lambda": {"use_docker": False}})

    def _wait_ready(self, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"moto server exited with {self.process.returncode}")
            try:
                with urllib.request.urlopen(self.url + "/moto-api/", timeout=2):
                    return
            except OSError:
                time.sleep(0.2)
        raise RuntimeError("moto server did not start")

    def post(self, path: str, body: Mapping[str, Any] | None = None) -> bytes:
        data = json.dumps(body or {}).encode()
        request = urllib.request.Request(
            self.url + path, data=data, method="POST", headers={"Content-Type": "application/json"}
        )
        with urllib.request.urlopen(request, timeout=30) as response:
            return bytes(response.read())

    def get(self, path: str) -> bytes:
        with urllib.request.urlopen(self.url + path, timeout=60) as response:
            return bytes(response.read())

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()

    def __enter__(self) -> MotoServer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


@dataclass(frozen=True)
class Request:
    """One recorded request: AWS operation (from X-Amz-Target, Action= or the REST path) and its decoded body."""

    method: str
    path: str
    target: str
    body: str

    def json(self) -> Any:
        return json.loads(self.body)


READ_PREFIXES = ("Describe", "Get", "List", "BatchGet", "Query", "Scan", "Lookup")


def batch_operation(request: Request) -> str:
    """Batch is a REST API: the operation is the last path segment, lower case (`/v1/createjobqueue`)."""
    return request.path.split("?")[0].rstrip("/").rsplit("/", 1)[-1].lower()


def operation(request: Request) -> str:
    """The operation of a JSON (X-Amz-Target), query (Action=) or Batch REST request."""
    if request.target:
        return request.target.rsplit(".", 1)[-1]
    if "Action=" in request.body:
        return request.body.split("Action=", 1)[1].split("&", 1)[0]
    return batch_operation(request)


def writes(request: Request) -> bool:
    """Whether a request changes something. JSON and query calls are named; REST calls (Batch, Lambda, S3) write
    with PUT, DELETE and POST, except Batch, which POSTs its describe and list calls too."""
    if request.target or "Action=" in request.body:
        return not operation(request).startswith(READ_PREFIXES)
    if request.method in ("PUT", "DELETE"):
        return True
    return request.method == "POST" and not batch_operation(request).startswith(("describe", "list"))


def written(requests: list[Request]) -> list[str]:
    """The writes among requests, as `METHOD operation` (readable in an assertion message)."""
    return [f"{r.method} {operation(r)}" for r in requests if writes(r)]


class Recorder:
    """moto's request recorder: what the modules sent, for properties moto does not store."""

    def __init__(self, server: MotoServer) -> None:
        self.server = server

    def start(self) -> None:
        self.server.post("/moto-api/recorder/reset-recording")
        self.server.post("/moto-api/recorder/start-recording")

    def stop(self) -> list[Request]:
        self.server.post("/moto-api/recorder/stop-recording")
        raw = self.server.get("/moto-api/recorder/download-recording").decode()
        requests = []
        for line in raw.splitlines():
            if not line.strip():
                continue
            entry = json.loads(line)
            body = entry.get("body") or ""
            if body and entry.get("body_encoded"):
                body = base64.b64decode(body).decode("utf-8", errors="replace")
            headers = entry.get("headers") or {}
            requests.append(
                Request(
                    method=str(entry.get("method", "")),
                    path=str(entry.get("url", "")),
                    target=str(headers.get("X-Amz-Target", "")),
                    body=body,
                )
            )
        return requests


@dataclass(frozen=True)
class PlaybookRun:
    """The outcome of one `ansible-playbook` run (json callback)."""

    returncode: int
    report: dict[str, Any]
    output: str

    @property
    def stats(self) -> dict[str, int]:
        return dict(self.report.get("stats", {}).get("localhost", {}))

    def tasks(self) -> Iterator[tuple[str, dict[str, Any]]]:
        for play in self.report.get("plays", []):
            for task in play.get("tasks", []):
                yield task["task"]["name"], task["hosts"].get("localhost", {})

    @property
    def changed_tasks(self) -> list[str]:
        return [name for name, result in self.tasks() if result.get("changed")]

    def result(self, task_name: str) -> dict[str, Any]:
        for name, result in self.tasks():
            if name == task_name:
                return result
        raise KeyError(f"no task {task_name!r} in the run; tasks: {[n for n, _ in self.tasks()]}")


@dataclass(frozen=True)
class Deployment:
    """The first deploy of the session: its run and every request it sent."""

    run: PlaybookRun
    requests: list[Request]


def playbook_env(endpoint: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "ANSIBLE_"))}
    env.update(
        {
            "PATH": f"{BIN}{os.pathsep}{env.get('PATH', '')}",
            "AWS_ENDPOINT_URL": endpoint,
            "AWS_ACCESS_KEY_ID": ACCESS_KEY,
            "AWS_SECRET_ACCESS_KEY": SECRET_KEY,
            "AWS_REGION": REGION,
            "AWS_DEFAULT_REGION": REGION,
            "ANSIBLE_CONFIG": str(PLAYBOOKS / "ansible.cfg"),
            "ANSIBLE_STDOUT_CALLBACK": "ansible.posix.json",
            "ANSIBLE_NOCOLOR": "1",
            "ANSIBLE_LOCAL_TEMP": str(Path(os.environ.get("TMPDIR", "/tmp")) / f"ansible-pbtest-{os.getpid()}"),
        }
    )
    return env


ROUTER_ZIP: dict[str, Any] = {}
"""Extra vars that make later runs reuse the zip the session's first deploy built (set by the fixture)."""


def own_router_zip(directory: Path) -> dict[str, Any]:
    """Extra vars for a run on a moto server of its own: it builds its router zip into `directory`, whatever the
    session's runs use."""
    return {"router_zip": str(directory / "router.zip"), "router_zip_build": True}


def run_playbook(
    endpoint: str,
    playbook: str,
    extra_vars: Mapping[str, Any] | None = None,
    check: bool = False,
    args: Sequence[str] = (),
    callback: str = "ansible.posix.json",
) -> PlaybookRun:
    """ansible-playbook with the test stack's variables; `args` such as `--diff` or `--tags validate`. With another
    `callback` than the json one, `report` is empty and `output` is the whole text output."""
    variables = {"stack": STACK, **ROUTER_ZIP, **(extra_vars or {})}
    command = [str(BIN / "ansible-playbook"), playbook, "-e", json.dumps(variables), *args]
    if check:
        command.append("--check")
    env = dict(playbook_env(endpoint), ANSIBLE_STDOUT_CALLBACK=callback)
    completed = subprocess.run(command, cwd=PLAYBOOKS, env=env, capture_output=True, text=True, timeout=900)
    if callback != "ansible.posix.json":
        return PlaybookRun(completed.returncode, {}, completed.stdout + completed.stderr)
    try:
        report = json.loads(completed.stdout)
    except json.JSONDecodeError:
        report = {}
    return PlaybookRun(completed.returncode, report, completed.stdout[-20000:] + completed.stderr[-5000:])


def client(endpoint: str, service: str) -> Any:
    factory: Any = boto3.client  # the stubs type each service name; tests pass it as a plain string
    return factory(
        service,
        endpoint_url=endpoint,
        region_name=REGION,
        aws_access_key_id=ACCESS_KEY,
        aws_secret_access_key=SECRET_KEY,
    )


def module_utils() -> ModuleType:
    """playbooks/module_utils/derby_aws.py, the modules' pure helpers, imported without Ansible."""
    spec = importlib.util.spec_from_file_location("derby_aws", PLAYBOOKS / "module_utils" / "derby_aws.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module
