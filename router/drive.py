"""Drive a stack in one process, as AWS would: read the table's stream back (DynamoDB Streams API), deliver it to
the real router handler like Lambda's event source mapping, run the jobs Batch recorded (moto runs nothing) and
send their EventBridge state-change events. For the pipeline tests and `python -m batch_jobs.bench`; the embedded
local stack (`cli/local`) does the same with threads and subprocesses."""

from __future__ import annotations

import datetime as dt
import time
import uuid
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from batch_jobs.config import StackConfig
from batch_jobs.job import Job, JobArgs, JobEnv
from batch_jobs.store import Store
from router import handler

Handler = Callable[[dict[str, Any], Any], Any]


class RouterCrash(BaseException):
    """Raise it (e.g. from a botocore hook) to kill an invocation: not an Exception, so Powertools cannot catch it per
    record; the driver then delivers the whole batch again, as Lambda retries a crashed invocation."""


def lambda_event(records: list[dict[str, Any]], stream_arn: str) -> dict[str, Any]:
    """Records as get_records returns them, in the shape Lambda hands the function."""
    out = []
    for record in records:
        body = dict(record["dynamodb"])
        created = body.get("ApproximateCreationDateTime")
        if isinstance(created, dt.datetime):
            body["ApproximateCreationDateTime"] = created.timestamp()
        out.append({**record, "dynamodb": body, "eventSourceARN": stream_arn})
    return {"Records": out}


def batch_event(job: dict[str, Any], status: str, reason: str = "", exit_code: int | None = None) -> dict[str, Any]:
    """An EventBridge "Batch Job State Change" event in AWS's shape, for a job as describe_jobs returns it."""
    container: dict[str, Any] = {"logStreamName": job.get("container", {}).get("logStreamName", "")}
    if exit_code is not None:
        container["exitCode"] = exit_code
    detail = {
        "jobArn": job["jobArn"],
        "jobName": job["jobName"],
        "jobId": job["jobId"],
        "jobQueue": job["jobQueue"],
        "status": status,
        "statusReason": reason,
        "attempts": [{"container": container, "startedAt": 0, "stoppedAt": 0, "statusReason": reason}],
        "createdAt": job.get("createdAt", 0),
        "dependsOn": [],
        "jobDefinition": job["jobDefinition"],
        "parameters": job.get("parameters", {}),
        "container": {"exitCode": exit_code, **container} if exit_code is not None else container,
        "tags": {},
    }
    return {
        "version": "0",
        "id": str(uuid.uuid4()),
        "detail-type": "Batch Job State Change",
        "source": "aws.batch",
        "account": "123456789012",
        "time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "region": "us-east-1",
        "resources": [job["jobArn"]],
        "detail": detail,
    }


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
        self.clients: dict[str, Any] = {}

    def client(self, name: str, **kwargs: Any) -> Any:
        if kwargs:
            return self.session.client(name, **kwargs)
        if name not in self.clients:
            self.clients[name] = self.session.client(name)
        return self.clients[name]


@dataclass
class World:
    session: Any
    config: StackConfig
    stream_arn: str
    iterators: dict[str, str] = field(default_factory=dict)
    ran: set[str] = field(default_factory=set)
    delivered: list[dict[str, Any]] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.jobs_session = CachedSession(self.session)  # the jobs' own clients, apart from the test's
        self.session = CachedSession(self.session)

    @property
    def store(self) -> Store:
        return Store(self.session.client("dynamodb"), self.config.table)

    def read_stream(self) -> list[dict[str, Any]]:
        """New records of every shard, via describe_stream / get_shard_iterator / get_records."""
        streams = self.session.client("dynamodbstreams")
        records: list[dict[str, Any]] = []
        for shard in streams.describe_stream(StreamArn=self.stream_arn)["StreamDescription"]["Shards"]:
            shard_id = shard["ShardId"]
            if shard_id not in self.iterators:
                self.iterators[shard_id] = streams.get_shard_iterator(
                    StreamArn=self.stream_arn, ShardId=shard_id, ShardIteratorType="TRIM_HORIZON"
                )["ShardIterator"]
            response = streams.get_records(ShardIterator=self.iterators[shard_id])
            records.extend(response["Records"])
            if response.get("NextShardIterator"):
                self.iterators[shard_id] = response["NextShardIterator"]
        return records

    def deliver(self, records: list[dict[str, Any]], batch_size: int = 10, max_tries: int = 20) -> None:
        """Lambda's contract: batches in order; a crash retries the batch, item failures retry from the lowest one."""
        pending, tries = list(records), 0
        while pending:
            batch = pending[:batch_size]
            tries += 1
            if tries > max_tries * (len(records) + 1):
                raise RuntimeError("router keeps failing")
            try:
                response = handler.lambda_handler(lambda_event(batch, self.stream_arn), None)
            except RouterCrash:
                continue
            failures = [f["itemIdentifier"] for f in response.get("batchItemFailures", [])]
            if failures:
                numbers = [r["dynamodb"]["SequenceNumber"] for r in batch]
                pending = pending[min(numbers.index(f) for f in failures) :]
                continue
            self.delivered.extend(batch)
            pending = pending[batch_size:]

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
                handler.lambda_handler(event, None)
                return
            except RouterCrash:
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
