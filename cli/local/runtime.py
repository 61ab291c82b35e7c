"""The local stack as one object: moto server, bootstrap, restore, stream poller, job executor, snapshots.

`local up` runs it until Ctrl-C; `submit --wait` without a running stack runs it for one command. Starting takes the
data directory's lock (one stack per directory) and points this process's AWS settings at the server, so the router
invoked here and every boto3 client the CLI makes afterwards talk to it.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass, field, replace
from typing import Any

import boto3

from batch_jobs import control, schema
from batch_jobs.actions import WARM_IMPORTS
from batch_jobs.batch import BatchClient, JobInfo, JobSpec
from batch_jobs.bootstrap import bootstrap_stack
from batch_jobs.config import StackConfig, default_config
from batch_jobs.errors import PipelineError
from batch_jobs.job import ALLOW_CPU_ENV
from batch_jobs.lifecycle import JOB_FAILED, JOB_FINISHED, JOB_RUNNABLE, JOB_SUCCEEDED
from batch_jobs.pipeline import Pipeline, load_pipeline, step_index
from batch_jobs.schema import ChunkItem, MalformedItem, VideoItem
from batch_jobs.stack import Stack
from batch_jobs.store import Store
from cli.local.events import job_state_change
from cli.local.executor import INTERRUPTED_REASON, ComputeQueue, JobEnvironment, JobExecutor
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
from router.events import JobStateChange
from router.sweep import sweep

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


def stack_definitions(batch: Any, config: StackConfig) -> list[str]:
    """ARNs of the stack's job definitions, read right after `bootstrap_stack` on a fresh server: the only ones the
    executor runs (a definition someone else registers on the server later is not the stack's)."""
    arns: list[str] = []
    for step in config.pipeline:
        found = batch.describe_job_definitions(jobDefinitionName=config.job_definition_for(step), status="ACTIVE")
        arns += [d["jobDefinitionArn"] for d in found["jobDefinitions"]]
    return arns


class LedgerBatch(BatchClient):
    """AWS Batch as the local stack knows it, for the sweep: moto takes SubmitJob and TerminateJob, but it marks every
    job SUCCEEDED at once and forgets them all when the stack stops, so what a job did is the executor's ledger's."""

    def __init__(self, client: Any, ledger: Ledger) -> None:
        super().__init__(client)
        self._ledger = ledger

    def describe(self, job_ids: Sequence[str]) -> Iterator[JobInfo]:
        """Jobs of the ledger as it has them; a job only moto knows was submitted a moment ago and has not run yet;
        a job neither knows is not described (lost: moto forgot it before the executor recorded it)."""
        others = []
        for job_id in dict.fromkeys(job_ids):
            record = self._ledger.get(job_id)
            if record is None:
                others.append(job_id)
                continue
            yield JobInfo(
                job_id=record.job_id,
                name=record.job_name,
                status=record.status,
                reason=record.status_reason or "",
                log_streams=(record.log_stream,),
                parameters=dict(record.parameters),
            )
        for info in super().describe(others):
            yield replace(info, status="SUBMITTED", reason="")

    def find_job(self, spec: JobSpec) -> str | None:
        """A job of this name the ledger still has to run (moto forgot it when the stack stopped), else moto's."""
        for record in self._ledger.all():
            if record.job_name == spec.name and record.job_queue == spec.queue and record.status not in JOB_FINISHED:
                return record.job_id
        return super().find_job(spec)


@dataclass(frozen=True)
class _Watched:
    """An active step (or an S3 video's split) whose job the restored items name."""

    video_id: str
    index: int  # the chunk; 0 for a split
    pos: int
    attempt: int
    job_id: str
    split: bool = False


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
        ledger = Ledger(self.paths.jobs)
        self.executor = JobExecutor(
            batch=clients["batch"],
            logs=clients["logs"],
            queues=[
                ComputeQueue(self.config.job_queues["cpu"], self.settings.workers),
                ComputeQueue(self.config.job_queues["gpu"], self.settings.gpus, gpu=True),
            ],
            log_group=self.config.log_group,
            ledger=ledger,
            paths=self.paths,
            env=JobEnvironment(endpoint, REGION, LOCAL_STACK, gpu_override(self.settings.gpus)),
            emit=self._job_changed,
            on_interrupted=self._retry_interrupted,
            definitions=stack_definitions(clients["batch"], self.config),
            host=self._host,
        )
        if items:
            self._repair(LedgerBatch(clients["batch"], ledger))
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

    def clients(self) -> Stack:
        """This stack as a command holds it: its config and clients of its server."""
        client = self.session_client
        return Stack(self.config, self.store, BatchClient(client("batch")), client("s3"), client("logs"))

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

    def _repair(self, batch: LedgerBatch) -> None:
        """Before anything runs on a restored state: reconcile the items with the executor's ledger, then sweep.

        The items come from the last snapshot (every 3 s), the ledger is written as jobs change, so after a SIGKILL
        an item may name a job whose end it does not show. A job the ledger shows SUCCEEDED (its `done` was not
        saved) or failed because the stack stopped under it runs again under its id, as Batch retries a job whose
        host went away (the job's fencing lets its own id redo the step). Then `router.sweep` does what it does on
        AWS every 15 minutes, with Batch's view taken from the ledger: a step whose job failed gets its failure, a
        step whose job no one knows (submitted to moto, which forgot it before the executor recorded it) fails as
        `job not found`, and such a step, lost by the stack and not by its job, is retried with the next attempt.
        A job the ledger has queued or running is left to the executor (queued: run; running: failed and retried,
        `_retry_interrupted`).
        """
        try:
            watched = self._watched()
            jobs = {info.job_id: info for info in batch.describe([w.job_id for w in watched])}
            for w in watched:
                info = jobs.get(w.job_id)
                if info is not None and (
                    info.status == JOB_SUCCEEDED or (info.status == JOB_FAILED and info.reason == INTERRUPTED_REASON)
                ):
                    self._rerun(w)
                elif info is not None and info.status == JOB_FAILED and w.split:  # the sweep looks at chunks only
                    self._fail_split(w, info)
            with self._router_lock:
                report = sweep(Router(self.config, self.store, batch))
            for w in watched:
                if w.job_id not in jobs and not w.split:
                    self._retry_step(w.video_id, w.index, w.pos, w.attempt, "its job was lost when the stack stopped")
            done = {k: v for k, v in asdict(report).items() if isinstance(v, int) and not isinstance(v, bool) and v}
            if done:
                self._log("sweep on start: " + ", ".join(f"{k} {v}" for k, v in done.items() if k != "chunks"))
        except Exception as exc:  # the stack still starts: the jobs' own events and `retry` remain
            self._log(f"repair on start failed: {exc}")

    def _watched(self) -> list[_Watched]:
        """Every active step with a job id, and every S3 video's split job still running, in the restored items."""
        watched: list[_Watched] = []
        for raw in self.store.video_items():
            try:
                video = VideoItem.from_item(raw)
            except MalformedItem:
                continue
            if video.state not in schema.ACTIVE:
                continue
            if video.state == schema.SUBMITTED and video.split_job_id:
                watched.append(_Watched(video.video_id, 0, 0, video.split_attempt, video.split_job_id, split=True))
            for item in self.store.chunk_items(video.video_id):
                try:
                    chunk = ChunkItem.from_item(item)
                except MalformedItem:
                    continue
                last = chunk.last
                if last.state in schema.ACTIVE and last.job_id and not chunk.cancelled and not chunk.error:
                    pos = len(chunk.steps) - 1
                    watched.append(_Watched(video.video_id, chunk.index, pos, last.attempt, last.job_id))
        return watched

    def _rerun(self, w: _Watched) -> None:
        assert self.executor is not None
        record = self.executor.ledger.get(w.job_id)
        if record is None:
            return
        record.status, record.pid, record.exit_code, record.status_reason = JOB_RUNNABLE, None, None, None
        self.executor.ledger.save(record)  # `executor.start` queues it
        what = "the split" if w.split else f"{record.parameters.get('step')} of chunk {w.index}"
        self._log(f"re-running job {w.job_id} ({what} of {w.video_id}): its end was not saved before the stack stopped")

    def _fail_split(self, w: _Watched, info: JobInfo) -> None:
        """The lost Batch event of a failed split job, sent again."""
        change = JobStateChange(
            job_id=w.job_id,
            job_name=info.name,
            status=JOB_FAILED,
            reason=info.reason,
            exit_code=None,
            step=self.config.pipeline[0].name,
            video_id=w.video_id,
            chunk=0,
            attempt=w.attempt,
        )
        with self._router_lock:
            Router(self.config, self.store, BatchClient(self.session_client("batch"))).on_job_state_change(change)

    def _retry_step(self, video_id: str, index: int, pos: int, attempt: int, why: str) -> None:
        """`derby-batch retry` of one failed step (if it is still this step's attempt): the next attempt, and the
        chunk no longer counted as failed."""
        chunk = self.store.get_chunk(video_id, index)
        if (len(chunk.steps) - 1, chunk.last.attempt) == (pos, attempt) and control.retry_chunk(self.store, chunk):
            step = self.config.pipeline[pos].name
            self._log(f"re-running {step} of chunk {index} of {video_id}: {why}")

    def _retry_interrupted(self, record: JobRecord) -> None:
        """A job lost when the stack stopped is failed by its event; retry its step as `derby-batch retry` would.

        The retry waits until the router has counted the chunk as failed: reopening it before that would leave the
        stale failure to be counted afterwards, and the video would end `failed` with every chunk done.
        """
        p = record.parameters
        video_id, index, attempt = p["video_id"], int(p["chunk"]), int(p["attempt"])
        pos = step_index(self.config.pipeline, p["step"])
        try:
            steps = self.store.get_chunk(video_id, index).steps
        except PipelineError:
            return  # the stack stopped before a snapshot saved the chunk: nothing names the job
        if pos >= len(steps) or steps[pos].state != schema.FAILED or steps[pos].attempt != attempt:
            return  # the job had finished its step before the stop: nothing was lost
        deadline = time.monotonic() + RESUME_WAIT_SECONDS
        while self.store.get_chunk(video_id, index).counted != schema.FAILED and time.monotonic() < deadline:
            time.sleep(0.05)
        self._retry_step(video_id, index, pos, attempt, "it was running when the stack stopped")

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
