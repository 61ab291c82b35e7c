"""Drive a stack in one process, as AWS would, in step: the local stack's own stream delivery (`StreamPoller` in its
synchronous mode) hands the table's stream, read back through the DynamoDB Streams API, to the real router handler;
the jobs Batch recorded (moto runs nothing) run in-process, and their EventBridge state-change events are built by
the local stack's own `events.job_state_change`. For the pipeline tests, the benches and the simulation."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from batch_jobs.batch import BatchClient
from batch_jobs.config import StackConfig
from batch_jobs.job import Job, JobArgs, JobEnv
from batch_jobs.stack import Stack
from batch_jobs.store import Store
from cli.local.events import job_state_change, record_of
from cli.local.lambda_context import InvocationCrash, LambdaContext
from cli.local.stream_poller import MappingSettings, StreamPoller
from router import handler

ACCOUNT = "123456789012"
# In step, a retry need not wait: the backoff only spaces out real time. Retries are Lambda's own default count.
SYNC_MAPPING = MappingSettings(batch_size=10, max_retries=20, backoff_seconds=0.0)


def invoke(event: dict[str, Any]) -> Any:
    """One Lambda invocation of the real router."""
    return handler.lambda_handler(event, LambdaContext())


def lambda_event(records: list[dict[str, Any]]) -> dict[str, Any]:
    """Records as `World.read_stream` returns them (already in Lambda's record shape), as one invocation's event."""
    return {"Records": records}


def batch_event(job: dict[str, Any], status: str, reason: str = "", exit_code: int | None = None) -> dict[str, Any]:
    """The EventBridge "Batch Job State Change" event for a job as describe_jobs returns it."""
    region = str(job.get("jobArn", "::::us-east-1")).split(":")[3] or "us-east-1"
    return job_state_change(record_of(job, status, reason, exit_code), ACCOUNT, region)


def count_calls(clients: list[Any]) -> Counter[str]:
    """AWS calls these clients make from now on, by operation name (counted as botocore finishes each one)."""
    calls: Counter[str] = Counter()

    def count(model: Any, **_: Any) -> None:
        calls[model.name] += 1

    for client in clients:
        client.meta.events.register("after-call.*", count)
    return calls


class CachedSession:
    """A boto3 session whose clients are made once: building a client costs more than a moto call."""

    def __init__(self, session: Any) -> None:
        self.session = session
        self.clients: dict[tuple[Any, ...], Any] = {}

    def client(self, name: str, **kwargs: Any) -> Any:
        key = (name, *sorted(kwargs.items()))
        if key not in self.clients:
            self.clients[key] = self.session.client(name, **kwargs)
        return self.clients[key]


@dataclass
class World:
    session: Any
    config: StackConfig
    stream_arn: str
    ran: set[str] = field(default_factory=set)
    delivered: list[dict[str, Any]] = field(default_factory=list)
    reports: list[str] = field(default_factory=list)
    pollers: dict[MappingSettings, StreamPoller] = field(default_factory=dict)

    def report(self, line: str) -> None:
        self.reports.append(line)

    def __post_init__(self) -> None:
        self.jobs_session = CachedSession(self.session)  # the jobs' own clients, apart from the test's
        self.session = CachedSession(self.session)

    @property
    def store(self) -> Store:
        return Store(self.session.client("dynamodb"), self.config.table)

    @property
    def stack(self) -> Stack:
        """The stack as a user's command holds it (the test's own clients)."""
        client = self.session.client
        return Stack(self.config, self.store, BatchClient(client("batch")), client("s3"), client("logs"))

    def poller(self, settings: MappingSettings = SYNC_MAPPING) -> StreamPoller:
        """The stream delivery in its synchronous mode (one per World and settings, so shard positions persist)."""
        if settings not in self.pollers:
            streams = self.session.client("dynamodbstreams")
            self.pollers[settings] = StreamPoller(streams, self.stream_arn, self._invoke, settings, report=self.report)
        return self.pollers[settings]

    def _invoke(self, event: dict[str, Any]) -> Any:
        response = invoke(event)
        failed = {f["itemIdentifier"] for f in (response or {}).get("batchItemFailures", [])}
        self.delivered.extend(r for r in event["Records"] if r["dynamodb"]["SequenceNumber"] not in failed)
        return response

    def read_stream(self) -> list[dict[str, Any]]:
        """New chunk-item records of every shard, in Lambda's record shape (the mapping's filter applied)."""
        return self.poller().read()

    def deliver(self, records: list[dict[str, Any]], batch_size: int = 10) -> None:
        """Lambda's contract: batches in order; a crash retries the batch, item failures retry from the lowest one."""
        self.poller(MappingSettings(batch_size=batch_size, max_retries=20, backoff_seconds=0.0)).deliver(records)

    def jobs(self) -> list[dict[str, Any]]:
        """Every job moto holds for this stack, described."""
        batch = self.session.client("batch")
        ids: list[str] = []
        for queue in self.config.job_queues.values():
            response = batch.list_jobs(
                jobQueue=queue, filters=[{"name": "JOB_NAME", "values": [f"{self.config.stack}-*"]}]
            )
            ids.extend(j["jobId"] for j in response["jobSummaryList"])
        return batch.describe_jobs(jobs=ids)["jobs"] if ids else []

    def run_job(self, job: dict[str, Any], send_event: bool = True) -> int:
        """Run a job in-process as its container would, then tell the router how it ended."""
        p = job["parameters"]
        args = JobArgs(step=p["step"], video_id=p["video_id"], chunk=int(p["chunk"]), attempt=int(p["attempt"]))
        rc = Job(args, JobEnv(job["jobId"], self.config.stack, allow_cpu=True), self.jobs_session).run()
        self.ran.add(job["jobId"])
        if send_event:
            status = "SUCCEEDED" if rc == 0 else "FAILED"
            reason = "" if rc == 0 else "Essential container in task exited"
            self.send_event(batch_event(job, status, reason, rc))
        return rc

    def send_event(self, event: dict[str, Any], max_tries: int = 5) -> None:
        """EventBridge's contract: at least once, retried when the invocation fails."""
        for _ in range(max_tries):
            try:
                invoke(event)
                return
            except InvocationCrash:
                continue
        raise RuntimeError("router keeps failing on a Batch event")

    def pump(self, rounds: int = 40, run_jobs: bool = True) -> None:
        """Stream -> router -> jobs -> events, until nothing moves."""
        for _ in range(rounds):
            records = self.read_stream()
            self.deliver(records)
            fresh = [j for j in self.jobs() if j["jobId"] not in self.ran] if run_jobs else []
            for job in fresh:
                self.run_job(job)
            if not records and not fresh:
                return
        raise RuntimeError("pipeline did not settle")
