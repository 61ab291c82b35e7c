"""Fixtures of the local stack tests: a data directory per test, and a check after every test that nothing started
under the test's data directory is still running."""

from __future__ import annotations

import os
import signal
from collections.abc import Iterator
from pathlib import Path

import pytest
from local_env import LocalEnv, processes_with


@pytest.fixture
def local(tmp_path: Path) -> Iterator[LocalEnv]:
    data_dir = tmp_path / "data"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "DERBY_BATCH_"))}
    env["DERBY_BATCH_LOCAL_DIR"] = str(data_dir)
    env["HOME"] = str(tmp_path)  # no ~/.aws: nothing deployed is reachable, so the CLI picks the local stack
    yield LocalEnv(tmp_path, data_dir, env)
    leftovers = processes_with(f"DERBY_BATCH_LOCAL_DIR={data_dir}")
    for pid in leftovers:
        os.kill(pid, signal.SIGKILL)
    assert not leftovers, f"processes left running after the test: {leftovers}"
