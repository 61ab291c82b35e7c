"""The job executor against moto's Batch API: jobs submitted there run as real subprocesses with the Batch
environment, their output lands in CloudWatch Logs, and each attempt ends in the state change event AWS would send.
Every test runs twice: the job command exec'd (`python -c`), and forked from the warm job host (`python -m`)."""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import boto3
import pytest
from local_env import wait_until

from batch_jobs.bootstrap import bootstrap_stack
from batch_jobs.config import default_config
from cli.local.events import job_state_change
from cli.local.executor import ComputeQueue, JobEnvironment, JobExecutor
from cli.local.job_host import JobHost
from cli.local.ledger import JobRecord, Ledger
from cli.local.paths import LocalPaths
from cli.local.server import MotoServer, Notices

# What the job host imports before it forks (a fresh `python -c` does not); it fixes the host's temp directory, which
# a job must not inherit.
WARM = "warm_module"
JOB_SCRIPT = f"""
import os, sys, tempfile, time
print("job", os.environ["AWS_BATCH_JOB_ID"], os.environ["AWS_BATCH_JOB_ATTEMPT"], os.environ["AWS_ENDPOINT_URL"],
      os.environ.get("DERBY_BATCH_ALLOW_CPU"), sys.argv[1])
print("in", os.path.realpath(os.getcwd()) == os.path.realpath(tempfile.gettempdir()), "app",
      os.environ.get("AWS_SDK_UA_APP_ID"), "warm", "{WARM}" in sys.modules)
time.sleep(float(sys.argv[2]))
sys.exit(int(sys.argv[3]))
"""


@dataclass
class Harness:
    batch: Any
    logs: Any
    executor: JobExecutor
    events: list[tuple[str, dict[str, Any]]]
    style: str  # how jobs start: "exec" or "hosted"
    paths: LocalPaths

    def log_lines(self, job_id: str) -> list[str]:
        stream = self.logs.get_log_events(logGroupName="/aws/batch/t", logStreamName=f"script/default/{job_id}")
        return [e["message"] for e in stream["events"]]

    def submit(self, queue: str, word: str, sleep: float = 0, code: int = 0) -> str:
        parameters = {"word": word, "sleep": str(sleep), "code": str(code)}
        return str(
            self.batch.submit_job(
                jobName=f"test-{word}", jobQueue=queue, jobDefinition="script", parameters=parameters
            )["jobId"]
        )

    def wait_for(self, job_id: str, status: str, timeout: float = 30) -> JobRecord:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            record = self.executor.ledger.get(job_id)
            if (
                record is not None
                and record.status == status
                and any(e["detail"]["jobId"] == job_id and e["detail"]["status"] == status for _, e in self.events)
            ):
                return record
            time.sleep(0.05)
        raise AssertionError(f"job {job_id} did not reach {status}: {self.executor.ledger.get(job_id)}")


@pytest.fixture(params=["exec", "hosted"])
def harness(request: pytest.FixtureRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Harness]:
    monkeypatch.setenv("DERBY_BATCH_LOCAL_DIR", str(tmp_path))  # the leftover check of conftest finds our jobs
    monkeypatch.setenv("AWS_SDK_UA_APP_ID", "the-stack")  # the stack's AWS settings are not the job's
    (tmp_path / "mods").mkdir()
    (tmp_path / "mods" / "script_job.py").write_text(JOB_SCRIPT)
    (tmp_path / "mods" / f"{WARM}.py").write_text("import tempfile\n\ntempfile.gettempdir()\n")
    monkeypatch.setenv("PYTHONPATH", str(tmp_path / "mods"))
    monkeypatch.setattr("cli.local.executor.POLL_SECONDS", 60.0)  # jobs and TerminateJob calls come by the kick
    kicks: list[Callable[[], None]] = []

    def jobs_changed() -> None:
        for kick in kicks:
            kick()

    server = MotoServer(0, Notices(jobs_changed=jobs_changed))
    server.start()
    session = boto3.Session(
        aws_access_key_id="local-test-key", aws_secret_access_key="local-test-secret", region_name="us-east-1"
    )
    monkeypatch.setenv("AWS_ENDPOINT_URL", server.endpoint)
    config = default_config("t", "us-east-1")
    bootstrap_stack(session, config)
    batch, logs = session.client("batch"), session.client("logs")
    start = ["-m", "script_job"] if request.param == "hosted" else ["-c", JOB_SCRIPT]
    script = batch.register_job_definition(
        jobDefinitionName="script",
        type="container",
        containerProperties={
            "image": "x",
            "resourceRequirements": [{"type": "VCPU", "value": "1"}, {"type": "MEMORY", "value": "512"}],
            "command": ["python", *start, "Ref::word", "Ref::sleep", "Ref::code"],
            "environment": [{"name": "FROM_DEFINITION", "value": "yes"}],
        },
    )
    paths = LocalPaths(tmp_path).ensure()
    host = JobHost([WARM], paths.work)
    host.start()
    events: list[tuple[str, dict[str, Any]]] = []
    executor = JobExecutor(
        batch=batch,
        logs=logs,
        queues=[ComputeQueue("t-cpu", 2), ComputeQueue("t-gpu", 1, gpu=True)],
        log_group=config.log_group,
        ledger=Ledger(paths.jobs),
        paths=paths,
        env=JobEnvironment(server.endpoint, "us-east-1", "t", {"DERBY_BATCH_ALLOW_CPU": "1"}),
        emit=lambda r: events.append((r.status, job_state_change(r, "123456789012", "us-east-1"))),
        on_interrupted=lambda r: None,
        definitions=[script["jobDefinitionArn"]],
        host=host,
    )
    kicks.append(executor.kick)
    executor.start()
    yield Harness(batch, logs, executor, events, request.param, paths)
    executor.stop()
    host.stop()
    server.stop()
    assert not [p for p in Path("/proc").iterdir() if p.name.isdigit() and _is_child(p)], "job processes left"


def _is_child(proc: Path) -> bool:
    try:
        return int((proc / "stat").read_text().split(") ")[1].split()[1]) == os.getpid()
    except (OSError, IndexError, ValueError):
        return False


def test_a_job_runs_with_the_batch_environment_and_logs_to_cloudwatch(harness: Harness) -> None:
    job_id = harness.submit("t-gpu", "hello")
    record = harness.wait_for(job_id, "SUCCEEDED")
    assert [s for s, e in harness.events if e["detail"]["jobId"] == job_id] == ["RUNNING", "SUCCEEDED"]
    event = harness.events[-1][1]
    assert event["source"] == "aws.batch" and event["detail-type"] == "Batch Job State Change"
    assert event["detail"]["parameters"]["word"] == "hello"
    assert event["detail"]["attempts"][-1]["container"]["exitCode"] == 0
    assert record.environment["FROM_DEFINITION"] == "yes"
    endpoint = os.environ["AWS_ENDPOINT_URL"]
    assert harness.log_lines(job_id) == [
        f"job {job_id} 1 {endpoint} 1 hello",  # GPU queue: the CPU override is set
        f"in True app None warm {harness.style == 'hosted'}",  # its scratch directory and its own environment
    ]


def test_a_failing_job_sends_failed_with_its_exit_code(harness: Harness) -> None:
    job_id = harness.submit("t-cpu", "bad", code=3)
    harness.wait_for(job_id, "FAILED")
    detail = harness.events[-1][1]["detail"]
    assert detail["statusReason"] == "Essential container in task exited"
    assert detail["attempts"][-1]["container"]["exitCode"] == 3
    assert harness.log_lines(job_id)[0].endswith(" None bad")  # CPU queue: no GPU override


def test_a_killed_job_process_fails_with_exit_code_137(harness: Harness) -> None:
    job_id = harness.submit("t-cpu", "slow", sleep=60)
    record = harness.wait_for(job_id, "RUNNING")
    assert record.pid is not None
    log = harness.paths.logs / f"{job_id}.jsonl"
    wait_until(lambda: log.exists() and len(log.read_text().splitlines()) == 2, "the job's lines before it sleeps")
    os.kill(record.pid, signal.SIGKILL)  # its output was not held back in a buffer until exit
    harness.wait_for(job_id, "FAILED")
    container = harness.events[-1][1]["detail"]["attempts"][-1]["container"]
    assert container["exitCode"] == 137 and container["reason"] == "job process killed by SIGKILL"


def test_each_queue_runs_as_many_jobs_at_once_as_it_has_slots(harness: Harness) -> None:
    cpu = [harness.submit("t-cpu", f"c{i}", sleep=1.5) for i in range(2)]
    gpu = [harness.submit("t-gpu", f"g{i}", sleep=1.5) for i in range(2)]
    records = [harness.wait_for(job_id, "SUCCEEDED") for job_id in cpu + gpu]

    def overlap(a: JobRecord, b: JobRecord) -> bool:
        assert a.started_at and a.stopped_at and b.started_at and b.stopped_at
        return a.started_at < b.stopped_at and b.started_at < a.stopped_at

    assert overlap(records[0], records[1]), "two CPU slots: both CPU jobs run at once"
    assert not overlap(records[2], records[3]), "one GPU slot: GPU jobs run one after the other"


def test_terminate_job_kills_the_job_and_fails_it_with_the_reason(harness: Harness) -> None:
    job_id = harness.submit("t-cpu", "doomed", sleep=60)
    pid = harness.wait_for(job_id, "RUNNING").pid
    harness.batch.terminate_job(jobId=job_id, reason="cancelled by derby-batch cancel")
    harness.wait_for(job_id, "FAILED", timeout=10)
    assert harness.events[-1][1]["detail"]["statusReason"] == "cancelled by derby-batch cancel"
    assert pid is not None and not Path(f"/proc/{pid}").exists()


def test_a_job_of_a_job_definition_the_stack_did_not_register_fails_and_never_runs(
    harness: Harness, tmp_path: Path
) -> None:
    """Someone registers a job definition on the stack's server and submits a job of it to the stack's queue: the
    executor runs only what the stack registered, and fails the job with a reason naming the definition."""
    ran = tmp_path / "foreign-ran"
    foreign = harness.batch.register_job_definition(
        jobDefinitionName="foreign",
        type="container",
        containerProperties={
            "image": "x",
            "resourceRequirements": [{"type": "VCPU", "value": "1"}, {"type": "MEMORY", "value": "512"}],
            "command": ["python", "-c", f"open({str(ran)!r}, 'w')"],
        },
    )["jobDefinitionArn"]
    job_id = harness.batch.submit_job(jobName="intruder", jobQueue="t-cpu", jobDefinition="foreign")["jobId"]
    record = harness.wait_for(job_id, "FAILED")
    assert record.status_reason == (
        f"job definition {foreign} was not registered by the local stack: its executor runs only the stack's own "
        "job definitions"
    )
    assert [s for s, e in harness.events if e["detail"]["jobId"] == job_id] == ["FAILED"]  # never RUNNING
    assert harness.events[-1][1]["detail"]["statusReason"] == record.status_reason
    assert record.attempts == 0 and not ran.exists()
    assert harness.wait_for(harness.submit("t-cpu", "own"), "SUCCEEDED")  # the stack's own still run


def test_a_deleted_queue_is_reported_once_and_the_other_queue_is_still_served(
    harness: Harness, capfd: pytest.CaptureFixture[str]
) -> None:
    harness.batch.delete_job_queue(jobQueue="t-gpu")
    for _ in range(3):
        harness.executor.discover()  # what every poll and kick does
    harness.wait_for(harness.submit("t-cpu", "still"), "SUCCEEDED")
    errors = [line for line in capfd.readouterr().err.splitlines() if "t-gpu" in line]
    assert errors == [
        "local executor: cannot list the jobs of queue t-gpu: Job queue t-gpu does not exist; its jobs do not run "
        "until it is back (`derby-batch local up` creates the stack's queues when it starts)"
    ]
