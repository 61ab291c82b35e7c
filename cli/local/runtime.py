"""The local stack as one object: moto server, bootstrap, restore, stream poller, job executor, snapshots.

`local up` runs it until Ctrl-C; `submit --wait` without a running stack runs it for one command. Starting takes the
data directory's lock (one stack per directory) and points this process's AWS settings at the server, so the router
invoked here and every boto3 client the CLI makes afterwards talk to it.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import boto3

from batch_jobs import schema
from batch_jobs.actions import WARM_IMPORTS
from batch_jobs.bootstrap import bootstrap_stack
from batch_jobs.config import StackConfig, default_config
from batch_jobs.job import ALLOW_CPU_ENV
from batch_jobs.pipeline import Pipeline, load_pipeline, step_index
from batch_jobs.store import Conflict, Store
from cli.local.events import job_state_change
from cli.local.executor import ComputeQueue, JobEnvironment, JobExecutor
from cli.local.files import write_json
from cli.local.instance import InstanceLock
from cli.local.job_host import JobHost
from cli.local.job_logs import restore_logs
from cli.local.lambda_context import LambdaContext
from cli.local.ledger import JobRecord, Ledger
from cli.local.paths import LocalPaths
from cli.local.server import MotoServer, Notices
from cli.local.snapshot import Snapshot
from cli.local.stream_poller import StreamPoller
from detector.litert_ssd import CPUS_ENV
from router.core import Router

LOCAL_STACK = "local"
REGION = "us-east-1"
ACCOUNT = "123456789012"
SNAPSHOT_SECONDS = 3.0
RESUME_WAIT_SECONDS = 10.0
CREDENTIALS = {"AWS_ACCESS_KEY_ID": "local-stack-access-key", "AWS_SECRET_ACCESS_KEY": "local-stack-secret-key"}


def default_gpu_slots() -> int:
    """One GPU-queue job more than there are cores, each with its share of them (`gpu_override`): a job's first
    moments (its clients, its model) run on one thread, and the demo's three chunks start together instead of the
    third running alone at the end."""
    return len(os.sched_getaffinity(0)) + 1


def gpu_override(slots: int) -> dict[str, str]:
    """What a GPU-queue job gets here: leave to run on the CPU, and its share of the cores. Detect jobs running side by
    side each with a thread per core spend more CPU on the same frames than with their share (more threads than
    cores: switches, caches), as a container keeps to its vCPUs."""
    share = max(1, len(os.sched_getaffinity(0)) // slots)
    return {ALLOW_CPU_ENV: "1", CPUS_ENV: str(share)}


@dataclass(frozen=True)
class LocalSettings:
    """How to run the local stack: where its state lives, its port (0: any free one), jobs at once per queue."""

    paths: LocalPaths
    port: int = 0
    workers: int = 2  # CPU-queue jobs at once
    gpus: int = field(default_factory=default_gpu_slots)  # GPU-queue jobs at once
    pipeline: Pipeline | None = None  # None: the one this data directory ran last, else the shipped one
    on_job: Callable[[JobRecord], None] | None = None


def point_process_at(endpoint: str) -> None:
    """Send this process's boto3 clients (router, CLI) to `endpoint`; a profile or token would override the keys."""
    for name in ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_SECURITY_TOKEN"):
        os.environ.pop(name, None)
    os.environ.update(
        AWS_ENDPOINT_URL=endpoint, AWS_REGION=REGION, AWS_DEFAULT_REGION=REGION, DERBY_BATCH_STACK=LOCAL_STACK
    )
    os.environ.update(CREDENTIALS)


class LocalStack:
    """Start with `start()`, stop with `stop()`; `idle()` says whether work is left."""

    def __init__(self, settings: LocalSettings, log: Callable[[str], None] = lambda _: None) -> None:
        self.settings = settings
        self.paths = settings.paths.ensure()
        self.config: StackConfig = default_config(LOCAL_STACK, REGION, ACCOUNT, self._pipeline(settings.pipeline))
        self._log = log
        self._lock = InstanceLock(self.paths)
        self._server: MotoServer | None = None
        self._host: JobHost | None = None
        self._router_lock = threading.Lock()
        # One session for every client of the stack: each new session loads botocore's endpoint and service data
        # again (about 0.1 s of CPU each). Creating clients from one session is not thread-safe, hence the lock.
        self._session = boto3.Session(
            aws_access_key_id=CREDENTIALS["AWS_ACCESS_KEY_ID"],
            aws_secret_access_key=CREDENTIALS["AWS_SECRET_ACCESS_KEY"],
            region_name=REGION,
        )
        self._session_lock = threading.Lock()
        self._dirty = threading.Event()
        self._stop = threading.Event()
        self._snapshotter = threading.Thread(target=self._snapshot_loop, name="snapshots", daemon=True)
        self.poller: StreamPoller | None = None
        self.executor: JobExecutor | None = None
        self.snapshot: Snapshot | None = None

    def _pipeline(self, chosen: Pipeline | None) -> Pipeline:
        """The chosen pipeline (saved by `start`, under the lock), else the saved one, else the shipped one."""
        if chosen is not None:
            return chosen
        return load_pipeline(self.paths.pipeline) if self.paths.pipeline.exists() else load_pipeline()

    @property
    def endpoint(self) -> str:
        if self._server is None:
            raise RuntimeError("the local stack is not started")
        return self._server.endpoint

    def start(self) -> None:
        self._lock.acquire()
        try:
            self._server = MotoServer(self.settings.port, Notices(self._table_written, self._jobs_changed))
            self._host = JobHost(WARM_IMPORTS, self.paths.work)  # its imports run on another core meanwhile
            self._host.start()
            if self.settings.pipeline is not None:
                write_json(self.paths.pipeline, [step.to_json() for step in self.settings.pipeline])
            self._server.start()
            self._start_parts(self._server.endpoint)
        except BaseException:
            self.stop()
            raise
        self._lock.publish(self._server.endpoint)

    def _start_parts(self, endpoint: str) -> None:
        from router.handler import set_router

        point_process_at(endpoint)
        stream_arn = bootstrap_stack(self._session, self.config)
        with self._session_lock:  # the router of this process, on this stack, as Lambda builds it at a cold start
            set_router(Router.from_session(self._session, self.config.stack))
        clients = {name: self.session_client(name) for name in ("dynamodb", "s3", "logs", "batch")}
        self.store = Store(clients["dynamodb"], self.config.table)
        self.snapshot = Snapshot(clients["dynamodb"], clients["s3"], [self.config.table], self.paths)
        logs = restore_logs(clients["logs"], self.paths.logs)
        objects, items = self.snapshot.restore()
        if objects or items or logs:
            self._log(f"restored {items} items, {objects} objects and {logs} job logs from {self.paths.root}")
        self.executor = JobExecutor(
            batch=clients["batch"],
            logs=clients["logs"],
            queues=[
                ComputeQueue(self.config.job_queues["cpu"], self.settings.workers),
                ComputeQueue(self.config.job_queues["gpu"], self.settings.gpus, gpu=True),
            ],
            log_group=self.config.log_group,
            ledger=Ledger(self.paths.jobs),
            paths=self.paths,
            env=JobEnvironment(endpoint, REGION, LOCAL_STACK, gpu_override(self.settings.gpus)),
            emit=self._job_changed,
            on_interrupted=self._retry_interrupted,
            host=self._host,
        )
        self.poller = StreamPoller(
            self.session_client("dynamodbstreams"),
            stream_arn,
            self.invoke_router,
            on_records=self._dirty.set,
        )
        self.poller.start()
        self.executor.start()
        self._snapshotter.start()

    def _table_written(self) -> None:
        if self.poller is not None:
            self.poller.kick()

    def _jobs_changed(self) -> None:
        if self.executor is not None:
            self.executor.kick()

    def session_client(self, service: str) -> Any:
        """A boto3 client of this stack's server (credentials and region of the local stack)."""
        with self._session_lock:
            return self._session.client(service, endpoint_url=self.endpoint)  # type: ignore[call-overload]

    def invoke_router(self, event: dict[str, Any]) -> Any:
        """One Lambda invocation of the real router; serialized, as each invocation runs alone on AWS."""
        from router.handler import lambda_handler

        with self._router_lock:
            return lambda_handler(event, LambdaContext())

    def _job_changed(self, record: JobRecord) -> None:
        """EventBridge delivery of a Batch job state change; retried like EventBridge does on a handler error."""
        if self.settings.on_job:
            self.settings.on_job(record)
        event = job_state_change(record, ACCOUNT, REGION)
        for attempt in range(5):
            try:
                self.invoke_router(event)
                break
            except Exception as exc:
                self._log(f"router failed on {record.status} event of job {record.job_id}: {exc}")
                time.sleep(0.2 * 2**attempt)
        self._dirty.set()

    def _retry_interrupted(self, record: JobRecord) -> None:
        """A job lost when the stack stopped is failed by its event; retry its step as `derby-batch retry` would.

        The retry waits until the router has counted the chunk as failed: reopening it before that would leave the
        stale failure to be counted afterwards, and the video would end `failed` with every chunk done.
        """
        p = record.parameters
        video_id, index, attempt = p["video_id"], int(p["chunk"]), int(p["attempt"])
        pos = step_index(self.config.pipeline, p["step"])
        steps = self.store.get_chunk(video_id, index).steps
        if pos >= len(steps) or steps[pos].state != schema.FAILED or steps[pos].attempt != attempt:
            return  # the job had finished its step before the stop: nothing was lost
        deadline = time.monotonic() + RESUME_WAIT_SECONDS
        while index not in self.store.get_video(video_id).chunks_failed and time.monotonic() < deadline:
            time.sleep(0.05)
        if not isinstance(self.store.retry(video_id, index, pos, attempt), Conflict):
            self.store.reopen_chunk(video_id, index)
            self._log(f"re-running {p['step']} of chunk {index} of {video_id}: it was running when the stack stopped")

    def idle(self) -> bool:
        """No job queued or running and the stream poller has nothing left to deliver."""
        if not (self.poller and self.executor and self.poller.idle()):
            return False
        self.executor.discover()  # a job submitted from elsewhere is not in the ledger until discovered
        return not self.executor.busy()

    def _snapshot_loop(self) -> None:
        while not self._stop.wait(SNAPSHOT_SECONDS):
            if self._dirty.is_set() and self.snapshot is not None:
                self._dirty.clear()
                try:
                    self.snapshot.save()
                except Exception as exc:
                    self._log(f"snapshot failed (will retry): {exc}")
                    self._dirty.set()

    def stop(self) -> None:
        """Stop taking work, kill running jobs (re-run on the next start), save everything, stop the server."""
        if self._stop.is_set():
            return
        self._stop.set()
        try:
            if self.poller:
                self.poller.stop()
            if self.executor:
                self.executor.stop()
            if self._host:
                self._host.stop()
            if self._snapshotter.is_alive():
                self._snapshotter.join()
            if self.snapshot:
                self.snapshot.save()
        finally:
            if self._server:
                self._server.stop()
            self._lock.release()
