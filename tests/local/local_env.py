"""What the local stack tests share: the test's world (`LocalEnv`), `local up` as a real subprocess, the TF-free test
pipeline, and process checks. (A module of its own: `conftest` is a name every test directory has.)"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cli.local.files import read_json

CLI = str(Path(sys.executable).with_name("derby-batch"))
# The TF-free test pipeline (the pipeline tests' `probe` action): fast, and it still decodes every frame.
PROBE_STEPS = [
    {"name": "timesplit", "action": "split"},
    {"name": "probe", "action": "probe"},
    {"name": "summarize", "action": "summarize"},
]

# The same with the middle step on the GPU queue, named as the shipped pipeline names it: a `detect` step that runs the
# TF-free probe action (the real detector's models would cost minutes of this machine's two cores per test).
DETECT_STEPS = [
    {"name": "timesplit", "action": "split"},
    {"name": "detect", "action": "probe", "gpu": True},
    {"name": "summarize", "action": "summarize"},
]


def wait_until(predicate: Callable[[], Any], what: str, timeout: float = 120) -> Any:
    """The predicate's first truthy value; fails the test after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while not (value := predicate()):
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.1)
    return value


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def processes_with(marker: str, among: list[int] | None = None) -> list[int]:
    """Live processes (not zombies) whose environment contains `marker`: the test's data directory."""
    found = []
    needle = marker.encode()
    entries = [Path(f"/proc/{pid}") for pid in among] if among is not None else Path("/proc").iterdir()
    for entry in entries:
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            if needle in (entry / "environ").read_bytes() and (entry / "stat").read_text().split(") ")[1][0] != "Z":
                found.append(int(entry.name))
        except (OSError, IndexError):
            continue
    return found


@dataclass
class LocalEnv:
    """One test's world: its data directory, working directory and the environment its CLI calls get."""

    root: Path
    data_dir: Path
    env: dict[str, str]

    def run(self, *args: str, timeout: float = 240, check: bool = True) -> subprocess.CompletedProcess[str]:
        result = subprocess.run(
            [CLI, *args], cwd=self.root, env=self.env, capture_output=True, text=True, timeout=timeout
        )
        if check and result.returncode != 0:
            raise AssertionError(f"derby-batch {' '.join(args)} exited {result.returncode}:\n{result.stderr}")
        return result

    @property
    def marker(self) -> str:
        """In the environment of every process started under this test's data directory."""
        return f"DERBY_BATCH_LOCAL_DIR={self.data_dir}"

    def owns(self, pid: int) -> bool:
        """Whether `pid` is a live process of this test's stack (a pid is reused once its process has gone)."""
        return pid in processes_with(self.marker, among=[pid])

    def up(self, *args: str, port: int | None = None) -> LocalUp:
        return LocalUp.start(self, [*args, "--port", str(port if port is not None else free_port())])


@dataclass
class LocalUp:
    """`derby-batch local up` in the background; `stop` sends Ctrl-C (SIGINT) and returns its stderr."""

    proc: subprocess.Popen[str]
    endpoint: str

    @classmethod
    def start(cls, local: LocalEnv, args: list[str], timeout: float = 60) -> LocalUp:
        proc = subprocess.Popen(
            [CLI, "local", "up", *args],
            cwd=local.root,
            env=local.env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            data = read_json(local.data_dir / "endpoint.json")
            if data and data.get("pid") == proc.pid:
                return cls(proc, data["endpoint"])
            if proc.poll() is not None:
                raise AssertionError(f"local up exited {proc.returncode}: {proc.communicate()[1]}")
            time.sleep(0.1)
        proc.kill()
        raise AssertionError("local up did not publish its endpoint in time")

    def stop(self, sig: int = signal.SIGINT, timeout: float = 60) -> str:
        self.proc.send_signal(sig)
        _, err = self.proc.communicate(timeout=timeout)
        return err


def running_jobs(local: LocalEnv) -> list[dict[str, Any]]:
    jobs = [read_json(path) for path in (local.data_dir / "jobs").glob("*.json")]
    return [job for job in jobs if job["status"] == "RUNNING" and job["pid"]]


def frozen_mid_step(local: LocalEnv, video_id: str, steps: list[dict[str, Any]] = PROBE_STEPS) -> dict[str, Any]:
    """A running job of the video stopped (SIGSTOP) before its step is done. A probe job from the warm job host is
    over in a fraction of a second: freezing it first means the kill cannot come after its work."""
    tried: set[str] = set()

    def untried() -> dict[str, Any] | None:
        jobs = running_jobs(local)
        return next((j for j in jobs if j["job_id"] not in tried and j["parameters"]["video_id"] == video_id), None)

    while True:
        job = wait_until(untried, "a job")
        tried.add(job["job_id"])
        # The ledger may still name a job that has just exited, and its pid may be another process's by now.
        if not local.owns(job["pid"]):
            continue
        try:
            os.kill(job["pid"], signal.SIGSTOP)
        except ProcessLookupError:
            continue
        if not local.owns(job["pid"]):
            with contextlib.suppress(ProcessLookupError):
                os.kill(job["pid"], signal.SIGCONT)
            continue
        chunk, step = int(job["parameters"]["chunk"]), job["parameters"]["step"]
        pos = [s["name"] for s in steps].index(step)
        if status(local, video_id)["chunks"][chunk]["steps"][pos]["state"] != "done":
            return job
        with contextlib.suppress(ProcessLookupError):
            os.kill(job["pid"], signal.SIGCONT)  # done already: let it exit, take the next one


def status(local: LocalEnv, video_id: str) -> dict[str, Any]:
    return dict(json.loads(local.run("status", video_id, "--json").stdout))
