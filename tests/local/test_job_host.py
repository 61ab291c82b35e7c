"""The warm job host on its own: a `python -m` job forked from it ends with the status a fresh interpreter would give,
its output comes through the pipe, and a job still running when the host stops dies with it."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from local_env import processes_with, wait_until

from cli.local.job_host import LOST, JobHost, module_command

MODULE = """
import os, sys, time
what = sys.argv[1]
print("argv", sys.argv[1:], "cwd", os.getcwd(), "marker", os.environ.get("JOB_MARKER"), "stray", "STRAY" in os.environ)
print("main", __name__, "warm", "xml.dom.minidom" in sys.modules)
if what == "code":
    sys.exit(int(sys.argv[2]))
if what == "message":
    sys.exit("something went wrong")
if what == "raise":
    raise RuntimeError("boom")
if what == "sleep":
    time.sleep(60)
"""


@pytest.fixture
def host(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[JobHost]:
    (tmp_path / "mods").mkdir()
    (tmp_path / "mods" / "hosted_job.py").write_text(MODULE)
    monkeypatch.setenv("PYTHONPATH", str(tmp_path / "mods"))
    monkeypatch.setenv("STRAY", "the host's environment, not the job's")
    monkeypatch.setenv("DERBY_BATCH_LOCAL_DIR", str(tmp_path))  # marks the host and its jobs for the leftover check
    host = JobHost(["xml.dom.minidom"], tmp_path)
    host.start()
    yield host
    host.stop()
    assert not processes_with(f"DERBY_BATCH_LOCAL_DIR={tmp_path}"), "the host or a job outlived the host's stop"


def run(host: JobHost, tmp_path: Path, *args: str) -> tuple[int, list[str]]:
    env = {"PATH": os.environ["PATH"], "JOB_MARKER": "job", "PYTHONPATH": str(tmp_path / "mods")}
    job = host.spawn(["python", "-m", "hosted_job", *args], env, tmp_path)
    assert job is not None
    with job.stdout:
        lines = job.stdout.read().splitlines()
    return job.wait(), lines


def test_module_command_is_python_dash_m_only() -> None:
    assert module_command(["python", "-m", "batch_jobs", "run", "-v"]) == ("batch_jobs", ["run", "-v"])
    assert module_command(["/usr/bin/python3", "-m", "tool"]) == ("tool", [])
    assert module_command(["python", "-c", "print(1)"]) is None
    assert module_command(["bash", "-m", "x"]) is None


def test_a_job_runs_as_python_dash_m_with_its_own_environment(host: JobHost, tmp_path: Path) -> None:
    status, lines = run(host, tmp_path, "code", "0")
    assert status == 0
    assert lines == [
        f"argv ['code', '0'] cwd {tmp_path} marker job stray False",
        "main __main__ warm True",  # forked from the host: its imports were done
    ]


@pytest.mark.parametrize(
    ("args", "status", "says"),
    [
        (("code", "3"), 3, None),
        (("message",), 1, "something went wrong"),
        (("raise",), 1, "RuntimeError: boom"),
    ],
)
def test_exit_status_is_what_a_fresh_interpreter_gives(
    host: JobHost, tmp_path: Path, args: tuple[str, ...], status: int, says: str | None
) -> None:
    got, lines = run(host, tmp_path, *args)
    assert got == status
    if says is not None:
        assert lines[-1] == says
    fresh = subprocess.run([sys.executable, "-m", "hosted_job", *args], cwd=tmp_path, capture_output=True)
    assert fresh.returncode == status  # the same module run the usual way


def test_a_killed_job_reports_the_signal_and_the_host_runs_the_next(host: JobHost, tmp_path: Path) -> None:
    env = {"PATH": os.environ["PATH"], "PYTHONPATH": str(tmp_path / "mods")}
    job = host.spawn(["python", "-m", "hosted_job", "sleep"], env, tmp_path)
    assert job is not None
    assert job.stdout.readline().startswith("argv ['sleep']")  # written through at once, not at exit
    os.kill(job.pid, signal.SIGKILL)
    assert job.wait() == -signal.SIGKILL
    job.stdout.close()
    assert run(host, tmp_path, "code", "0")[0] == 0


def test_a_job_still_running_dies_with_the_host(host: JobHost, tmp_path: Path) -> None:
    env = {"PATH": os.environ["PATH"], "PYTHONPATH": str(tmp_path / "mods")}
    job = host.spawn(["python", "-m", "hosted_job", "sleep"], env, tmp_path)
    assert job is not None
    job.stdout.readline()
    host.stop()
    assert job.wait() == LOST
    wait_until(lambda: not Path(f"/proc/{job.pid}").exists() or _zombie(job.pid), "the job to die", timeout=10)
    assert host.spawn(["python", "-m", "hosted_job", "code", "0"], env, tmp_path) is None  # the caller execs it
    job.stdout.close()


def _zombie(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().split(") ")[1][0] == "Z"
    except (OSError, IndexError):
        return True


def test_jobs_sent_together_each_get_their_own_status(host: JobHost, tmp_path: Path) -> None:
    env = {"PATH": os.environ["PATH"], "PYTHONPATH": str(tmp_path / "mods")}
    jobs = [host.spawn(["python", "-m", "hosted_job", "code", str(i)], env, tmp_path) for i in range(8)]
    statuses = []
    for job in jobs:
        assert job is not None
        with job.stdout:
            job.stdout.read()
        statuses.append(job.wait())
    assert statuses == list(range(8))


def _parent(pid: int) -> int:
    return int(Path(f"/proc/{pid}/stat").read_text().split(") ")[1].split()[1])


def test_a_job_frozen_the_moment_it_is_spawned_still_dies_with_its_host(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The pid a spawn returns is of a job already armed to die with the host: stopped (SIGSTOP) right then, it cannot
    arm itself any more, and it must still die when the host is SIGKILLed. Repeated: the window is a race."""
    (tmp_path / "mods").mkdir()
    (tmp_path / "mods" / "hosted_job.py").write_text(MODULE)
    monkeypatch.setenv("PYTHONPATH", str(tmp_path / "mods"))  # the host's: a forked job imports with its path
    monkeypatch.setenv("DERBY_BATCH_LOCAL_DIR", str(tmp_path))
    env = {"PATH": os.environ["PATH"], "PYTHONPATH": str(tmp_path / "mods")}
    for _ in range(15):
        host = JobHost([], tmp_path)
        host.start()
        job = host.spawn(["python", "-m", "hosted_job", "sleep"], env, tmp_path)
        assert job is not None
        try:
            os.kill(job.pid, signal.SIGSTOP)
            os.kill(_parent(job.pid), signal.SIGKILL)  # the host, as when the stack it dies with is SIGKILLed
            wait_until(lambda: _zombie(job.pid), "the frozen job to die with its host", timeout=10)  # noqa: B023
        finally:
            with contextlib.suppress(ProcessLookupError):
                os.kill(job.pid, signal.SIGKILL)  # a failed run leaves no stopped process behind
            job.stdout.close()
            host.stop()
    assert not processes_with(f"DERBY_BATCH_LOCAL_DIR={tmp_path}")
