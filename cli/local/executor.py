"""The local job executor: runs each job the router submitted to (moto's) Batch as a subprocess.

moto records submitted jobs and marks them SUCCEEDED at once without running anything; the executor finds them with
`list_jobs` on the stack's queues when the server says a job was submitted (and every few seconds), runs the job
definition's command with its `Ref::` parameters filled in and the environment a Batch container gets, sends the
output to CloudWatch Logs and hands the router the Batch job state change events AWS would send. A `python -m`
command is forked from the stack's warm job host (`job_host.py`) when it has one; any other command is exec'd.
"""

from __future__ import annotations

import contextlib
import os
import queue
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any, Protocol

from botocore.exceptions import ClientError

from batch_jobs.lifecycle import JOB_FAILED, JOB_FINISHED, JOB_RUNNABLE, JOB_RUNNING, JOB_SUCCEEDED
from cli.local.guard import guarded_popen
from cli.local.job_host import JobHost, module_command
from cli.local.job_logs import JobLog
from cli.local.ledger import JobRecord, Ledger
from cli.local.paths import LocalPaths

# The stack's server kicks discovery after each SubmitJob and TerminateJob, whoever sent it (the router, or `submit
# s3://` and `cancel` from other processes); the poll is only a safety net. Each poll is three Batch requests.
POLL_SECONDS = 5.0
# What AWS Batch reports when a container exits non-zero; the exit code is in attempts[].container.exitCode.
EXITED_REASON = "Essential container in task exited"
# A job the stack was running when it stopped: on AWS, the host went away under it.
INTERRUPTED_REASON = "Host EC2 (local stack) stopped while the job was running"
# The executor runs the commands of the job definitions its stack registered, never another's.
FOREIGN_DEFINITION_REASON = (
    "job definition {arn} was not registered by the local stack: its executor runs only the stack's own job definitions"
)

EventSink = Callable[[JobRecord], None]


class JobProcess(Protocol):
    """What the executor uses of a job's process: a `Popen`, or a job the host forked."""

    @property
    def pid(self) -> int: ...
    @property
    def stdout(self) -> IO[str] | None: ...
    def wait(self) -> int: ...


@dataclass(frozen=True)
class ComputeQueue:
    """A job queue and how many of its jobs run at once: the capacity of its compute environment."""

    name: str
    slots: int
    gpu: bool = False


@dataclass(frozen=True)
class JobEnvironment:
    """What every job process gets on top of its job definition's environment: the stack's endpoint and region."""

    endpoint: str
    region: str
    stack: str
    gpu_override: Mapping[str, str]

    def for_job(self, record: JobRecord) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
        env.update(record.environment)
        env.update(
            AWS_ENDPOINT_URL=self.endpoint,
            AWS_ACCESS_KEY_ID="local-stack-access-key",
            AWS_SECRET_ACCESS_KEY="local-stack-secret-key",
            AWS_REGION=self.region,
            AWS_DEFAULT_REGION=self.region,
            AWS_BATCH_JOB_ID=record.job_id,
            AWS_BATCH_JOB_ATTEMPT=str(record.attempts),
            AWS_BATCH_JQ_NAME=record.job_queue,
            AWS_BATCH_CE_NAME="local",
            DERBY_BATCH_STACK=self.stack,
            PYTHONUNBUFFERED="1",
        )
        if record.gpu:
            env.update(self.gpu_override)
        return env


def now_ms() -> int:
    return int(time.time() * 1000)


def substitute(command: Iterable[str], parameters: Mapping[str, str]) -> list[str]:
    """Batch's `Ref::name` substitution: a whole argument `Ref::name` becomes the parameter's value."""
    out = []
    for part in command:
        name = part[len("Ref::") :] if part.startswith("Ref::") else None
        out.append(parameters.get(name, part) if name is not None else part)
    return out


def local_argv(command: list[str]) -> list[str]:
    """The image's `python` is this interpreter (the same venv) on the local stack."""
    if command and command[0] in ("python", "python3"):
        return [sys.executable, *command[1:]]
    return command


class JobExecutor:
    """Discovers submitted jobs and runs them on each queue's slots; `stop` kills what runs and keeps it re-runnable."""

    def __init__(
        self,
        batch: Any,
        logs: Any,
        queues: Iterable[ComputeQueue],
        log_group: str,
        ledger: Ledger,
        paths: LocalPaths,
        env: JobEnvironment,
        emit: EventSink,
        on_interrupted: EventSink,
        definitions: Iterable[str],
        host: JobHost | None = None,
    ) -> None:
        """`definitions`: the ARNs of the job definitions the stack registered, the only ones whose command runs."""
        self._batch, self._logs = batch, logs
        self._own_definitions = frozenset(definitions)
        self._queue_errors: dict[str, str] = {}  # queue -> the listing error reported last (once, not every poll)
        self._host = host
        self._queues = {q.name: q for q in queues}
        self._log_group = log_group
        self.ledger, self._paths, self._env, self._emit = ledger, paths, env, emit
        self._on_interrupted = on_interrupted
        self._terminated: dict[str, str] = {}
        self._discover_lock = threading.Lock()
        self._started: set[str] = set()
        self._todo: dict[str, queue.Queue[str | None]] = {name: queue.Queue() for name in self._queues}
        self._stopping = threading.Event()
        self._kicked = threading.Event()
        self._procs: dict[str, JobProcess] = {}
        self._procs_lock = threading.Lock()
        self._definitions: dict[str, dict[str, Any]] = {}
        self._threads = [threading.Thread(target=self._discover_loop, name="executor-discover", daemon=True)]
        self._threads += [
            threading.Thread(target=self._work_loop, args=(q.name,), name=f"executor-{q.name}-{i}", daemon=True)
            for q in self._queues.values()
            for i in range(q.slots)
        ]

    def start(self) -> None:
        """Run what the ledger left queued; fail what was running when the stack stopped, as a lost host would."""
        for record in self.ledger.all():
            if record.status == JOB_RUNNABLE:
                self._todo[record.job_queue].put(record.job_id)
            elif record.status == JOB_RUNNING:
                self._finish(record, None, INTERRUPTED_REASON)
                try:
                    self._on_interrupted(record)
                except Exception as exc:  # one job's retry must not keep the stack from starting
                    print(f"local executor: cannot re-run interrupted job {record.job_id}: {exc}", file=sys.stderr)
        for thread in self._threads:
            thread.start()

    def stop(self) -> None:
        """Record every job moto holds, kill running job processes (they stay RUNNING, re-run on restart)."""
        self._stopping.set()
        self._kicked.set()
        try:
            self.discover()
        finally:
            with self._procs_lock:
                procs = list(self._procs.values())
            for proc in procs:
                kill_group(proc)
            for q in self._queues.values():
                for _ in range(q.slots):
                    self._todo[q.name].put(None)
            for thread in self._threads:
                if thread.ident is not None:  # a stack that failed to start stops too
                    thread.join(timeout=30)

    def kick(self) -> None:
        """Look for new jobs and TerminateJob calls now (the server just took a SubmitJob or TerminateJob)."""
        self._kicked.set()

    def busy(self) -> bool:
        """True while a job is queued or running: the stack is not idle yet."""
        return any(r.status not in JOB_FINISHED for r in self.ledger.all())

    def discover(self) -> list[str]:
        """New job ids on the stack's queues, recorded in the ledger and queued to run."""
        with self._discover_lock:
            return self._discover()

    def _discover(self) -> list[str]:
        new: list[str] = []
        for name in self._queues:
            new += [job_id for job_id in self._listed(name) if job_id not in self.ledger]
        for start in range(0, len(new), 100):
            for job in self._batch.describe_jobs(jobs=new[start : start + 100])["jobs"]:
                found, refusal = self._record(job)
                if refusal is None:
                    self.ledger.save(found)
                else:  # never runs, not even after a restart: failed at once with the reason
                    self._finish(found, None, refusal)
        for job_id in new:
            record = self.ledger.get(job_id)
            if record is not None and record.status == JOB_RUNNABLE and not self._stopping.is_set():
                self._todo[record.job_queue].put(job_id)
        return new

    def _listed(self, queue_name: str) -> list[str]:
        """Job ids on one queue. A queue that cannot be listed (deleted under the stack: `Job queue X does not
        exist`) is reported once, until it can be listed again, and does not keep the other queue from being served;
        errors that are not AWS's answer (the server stopping) are raised."""
        try:
            summaries = self._batch.list_jobs(jobQueue=queue_name, filters=[{"name": "JOB_NAME", "values": ["*"]}])
        except ClientError as exc:
            message = str(exc.response.get("Error", {}).get("Message") or exc)
            if self._queue_errors.get(queue_name) != message:
                self._queue_errors[queue_name] = message
                print(
                    f"local executor: cannot list the jobs of queue {queue_name}: {message}; its jobs do not run "
                    "until it is back (`derby-batch local up` creates the stack's queues when it starts)",
                    file=sys.stderr,
                )
            return []
        if self._queue_errors.pop(queue_name, None) is not None:
            print(f"local executor: job queue {queue_name} is back", file=sys.stderr)
        return [s["jobId"] for s in summaries["jobSummaryList"]]

    def _record(self, job: Mapping[str, Any]) -> tuple[JobRecord, str | None]:
        """The job's ledger record, and why it must not run (None: it may): a job definition the stack did not
        register (someone else's, on the stack's server), or one that cannot be found."""
        arn = str(job["jobDefinition"])
        refusal = None
        if arn not in self._own_definitions:
            definition: dict[str, Any] = {}
            refusal = FOREIGN_DEFINITION_REASON.format(arn=arn)
        else:
            try:
                definition = self._definition(arn)
            except LookupError as exc:
                definition, refusal = {}, str(exc)
        return self._record_of(job, definition, arn), refusal

    def _record_of(self, job: Mapping[str, Any], definition: Mapping[str, Any], arn: str) -> JobRecord:
        props = definition.get("containerProperties", {})
        overrides = job.get("container", {})
        parameters = {**definition.get("parameters", {}), **job.get("parameters", {})}
        environment = {e["name"]: e["value"] for e in props.get("environment", [])}
        return JobRecord(
            job_id=job["jobId"],
            job_name=job["jobName"],
            job_arn=job.get("jobArn", job["jobId"]),
            job_queue=job["jobQueue"].rsplit("/", 1)[-1],
            job_definition=definition.get("jobDefinitionName") or arn.rsplit("/", 1)[-1].split(":")[0],
            job_definition_arn=arn,
            command=substitute(props.get("command", []), parameters),
            environment=environment | {e["name"]: e["value"] for e in overrides.get("environment", [])},
            parameters=parameters,
            created_at=int(job.get("createdAt") or now_ms()),
            gpu=self._queues[job["jobQueue"].rsplit("/", 1)[-1]].gpu,
        )

    def _definition(self, arn: str) -> dict[str, Any]:
        if arn not in self._definitions:
            found = self._batch.describe_job_definitions(jobDefinitions=[arn])["jobDefinitions"]
            if not found:
                raise LookupError(f"job definition {arn} not found")
            self._definitions[arn] = found[0]
        return self._definitions[arn]

    def _terminations(self, job_ids: list[str]) -> dict[str, str]:
        """Job id -> the reason of a TerminateJob call on it. moto marks a job SUCCEEDED as soon as it is submitted
        (it runs nothing) and keeps such a call only as the job's `statusReason`."""
        reasons = {}
        for start in range(0, len(job_ids), 100):
            for job in self._batch.describe_jobs(jobs=job_ids[start : start + 100])["jobs"]:
                if job.get("statusReason"):
                    reasons[job["jobId"]] = str(job["statusReason"])
        return reasons

    def _terminate_requested(self) -> None:
        """Kill the running jobs a TerminateJob call named (`derby-batch cancel`); they end FAILED with its reason."""
        with self._procs_lock:
            running = dict(self._procs)
        for job_id, reason in self._terminations(list(running)).items():
            if job_id not in self._terminated:
                self._terminated[job_id] = reason
                kill_group(running[job_id])

    def _discover_loop(self) -> None:
        while not self._stopping.is_set():
            self._kicked.wait(POLL_SECONDS)
            self._kicked.clear()
            if self._stopping.is_set():
                return
            try:
                self.discover()
                self._terminate_requested()
            except Exception as exc:  # the server stopping under us, or a transient error: poll again
                if not self._stopping.is_set():
                    print(f"local executor: job discovery failed: {exc}", file=sys.stderr)

    def _work_loop(self, queue_name: str) -> None:
        while (job_id := self._todo[queue_name].get()) is not None:
            record = self.ledger.get(job_id)
            with self._procs_lock:
                if (
                    record is None
                    or record.status != JOB_RUNNABLE
                    or job_id in self._started
                    or self._stopping.is_set()
                ):
                    continue
                self._started.add(job_id)
            try:
                reason = self._terminations([job_id]).get(job_id)
            except Exception as exc:  # the server going away under us: the job runs, and finds out itself
                print(f"local executor: cannot check job {job_id} for a TerminateJob call: {exc}", file=sys.stderr)
                reason = None
            if reason is not None:  # terminated while queued: never starts, as on Batch
                self._finish(record, None, reason)
            else:
                self._run(record)

    def _run(self, record: JobRecord) -> None:
        record.status, record.attempts, record.started_at = JOB_RUNNING, record.attempts + 1, now_ms()
        record.exit_code = record.stopped_at = record.status_reason = None
        workdir = self._paths.work / record.job_id
        workdir.mkdir(parents=True, exist_ok=True)
        log = JobLog(self._logs, self._log_group, record.log_stream, self._paths.logs / f"{record.job_id}.jsonl")
        proc = self._start(record.command, self._env.for_job(record) | {"TMPDIR": str(workdir)}, workdir)
        with self._procs_lock:
            self._procs[record.job_id] = proc
        record.pid = proc.pid
        self.ledger.save(record)
        self._emit(record)
        try:
            assert proc.stdout is not None
            with proc.stdout:
                for line in proc.stdout:
                    log.write(line)
            returncode = proc.wait()
        finally:
            with self._procs_lock:
                self._procs.pop(record.job_id, None)
            log.close()
        if self._stopping.is_set() and returncode != 0:
            return  # killed by stop: stays RUNNING in the ledger and gets a new attempt on restart
        self._finish(record, returncode, self._terminated.pop(record.job_id, EXITED_REASON))

    def _start(self, command: list[str], env: dict[str, str], workdir: Path) -> JobProcess:
        """The job's process, in its own session, output and errors on one pipe."""
        if self._host is not None and module_command(command) is not None:
            hosted = self._host.spawn(command, env, workdir)
            if hosted is not None:
                return hosted
        return guarded_popen(
            local_argv(command),
            cwd=workdir,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            errors="replace",
            start_new_session=True,
        )

    def _finish(self, record: JobRecord, returncode: int | None, reason: str) -> None:
        """Record the attempt's end (`returncode` None: the process was lost) and send the state change."""
        container: dict[str, Any] = {"logStreamName": record.log_stream}
        if returncode is not None:
            record.exit_code = container["exitCode"] = returncode if returncode >= 0 else 128 - returncode
        if returncode is not None and returncode < 0:
            container["reason"] = f"job process killed by {signal.Signals(-returncode).name}"
        record.status = JOB_SUCCEEDED if returncode == 0 else JOB_FAILED
        record.stopped_at = now_ms()
        record.pid = None
        record.status_reason = None if returncode == 0 else reason
        record.history.append(
            {"container": container, "startedAt": record.started_at, "stoppedAt": record.stopped_at}
            | ({"statusReason": record.status_reason} if record.status_reason else {})
        )
        self.ledger.save(record)
        self._emit(record)


def kill_group(proc: JobProcess) -> None:
    """SIGKILL the job's whole process group (its own session): nothing it started outlives it. A job forked a
    moment ago may not lead its group yet: then the process itself."""
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        with contextlib.suppress(ProcessLookupError):
            os.kill(proc.pid, signal.SIGKILL)
