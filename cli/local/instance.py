"""One local stack per data directory: an flock held for the life of the stack, and the endpoint file beside it.

The lock dies with the process (even on SIGKILL), so a stale endpoint file never blocks a new `local up` and never
sends a CLI call to a dead server.
"""

from __future__ import annotations

import fcntl
import os
from dataclasses import dataclass
from typing import IO

from cli.local.errors import LocalStackError
from cli.local.files import read_json, write_json
from cli.local.paths import LocalPaths


@dataclass(frozen=True)
class RunningStack:
    """What another CLI call needs to use a running `local up`."""

    pid: int
    endpoint: str


class InstanceLock:
    """Held by the process that runs the stack; `release` removes the endpoint file first."""

    def __init__(self, paths: LocalPaths) -> None:
        self._paths = paths.ensure()
        self._file: IO[str] | None = None

    def acquire(self) -> None:
        handle = self._paths.lock.open("a")
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.close()
            running = read_endpoint(self._paths)
            where = f" (pid {running.pid}, {running.endpoint})" if running else ""
            raise LocalStackError(
                f"a local stack is already running on {self._paths.root}{where}: use it, or stop it with "
                "Ctrl-C in its terminal or `derby-batch local down`"
            ) from None
        self._file = handle

    def publish(self, endpoint: str) -> None:
        write_json(self._paths.endpoint, {"pid": os.getpid(), "endpoint": endpoint})

    def release(self) -> None:
        if self._file is None:
            return
        self._paths.endpoint.unlink(missing_ok=True)
        fcntl.flock(self._file, fcntl.LOCK_UN)
        self._file.close()
        self._file = None


def read_endpoint(paths: LocalPaths) -> RunningStack | None:
    data = read_json(paths.endpoint)
    if not isinstance(data, dict) or "endpoint" not in data:
        return None
    return RunningStack(pid=int(data["pid"]), endpoint=str(data["endpoint"]))


def find_running(paths: LocalPaths) -> RunningStack | None:
    """The stack running on this data directory, or None (no endpoint file, or its process holds no lock)."""
    if not paths.lock.exists():
        return None
    with paths.lock.open("a") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return read_endpoint(paths)
        fcntl.flock(handle, fcntl.LOCK_UN)
    return None
