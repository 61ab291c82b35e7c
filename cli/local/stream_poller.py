"""What Lambda's DynamoDB event source mapping does: read the table's stream, call the router. The one delivery path
of this project: the local stack runs it on a thread, the tests and the simulation call `read` and `deliver` in step.

Same contract as the deployed mapping: only chunk items (`sk` begins with `chunk#`, the mapping's filter), batches in
the Lambda event shape (the records as DynamoDB Streams returns them plus `eventSourceARN`), in order per shard;
`batchItemFailures` re-delivers from the lowest failed sequence number; a handler error bisects the batch; a record
that keeps failing is dropped after `max_retries` (the deployed mapping sends it to its on-failure destination).
"""

from __future__ import annotations

import datetime as dt
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from batch_jobs.schema import CHUNK_PREFIX
from cli.local.lambda_context import InvocationCrash

Handler = Callable[[dict[str, Any]], Any]
# Between polls that found nothing. The local stack's server kicks the poller after every table write, so this
# bounds only a retry's backoff and a write the kick missed; each poll is a request the server answers.
POLL_SECONDS = 0.5
SHARDS_SECONDS = 5.0  # how often to look for new shards
# How often an idle shard's iterator is renewed from the last sequence number read. An iterator can go stale without
# an error: it expires after 15 minutes on AWS (moto's went blind after a cancelled TransactWriteItems, until the
# local server learnt to keep the stream's shard: `cli.local.server`). A renewed one reads on from the same record,
# so nothing is read twice or skipped.
RENEW_SECONDS = 5.0


@dataclass(frozen=True)
class MappingSettings:
    """The deployed mapping's settings that change what the handler sees."""

    batch_size: int = 100
    max_retries: int = 5
    bisect_on_error: bool = True
    backoff_seconds: float = 0.1  # doubles with each retry, at most 5 s


def passes_filter(record: dict[str, Any]) -> bool:
    """The deployed filter: `{"dynamodb": {"Keys": {"sk": {"S": [{"prefix": "chunk#"}]}}}}`."""
    sk = record.get("dynamodb", {}).get("Keys", {}).get("sk", {}).get("S", "")
    return isinstance(sk, str) and sk.startswith(CHUNK_PREFIX)


def lambda_record(record: dict[str, Any], stream_arn: str) -> dict[str, Any]:
    """A record as Lambda delivers it: boto3's parsed timestamp back to epoch seconds, plus the stream ARN."""
    out = dict(record)
    body = dict(out.get("dynamodb", {}))
    created = body.get("ApproximateCreationDateTime")
    if isinstance(created, dt.datetime):
        body["ApproximateCreationDateTime"] = int(created.timestamp())
    out["dynamodb"] = body
    out["eventSourceARN"] = stream_arn
    return out


def sequence(record: dict[str, Any]) -> int:
    return int(record["dynamodb"]["SequenceNumber"])


@dataclass
class ShardState:
    """Where the mapping stands on one shard: records read but not yet processed, and the retry count."""

    iterator: str | None
    limit: int
    pending: list[dict[str, Any]] = field(default_factory=list)
    failures: int = 0
    not_before: float = 0.0
    shard_id: str = ""
    last_sequence: str | None = None  # of the last record read: where a fresh iterator resumes
    renewed_at: float = 0.0


class StreamPoller:
    """Polls every shard of one stream on a thread and calls `handler(event)` like the Lambda service would."""

    def __init__(
        self,
        streams: Any,
        stream_arn: str,
        handler: Handler,
        settings: MappingSettings | None = None,
        on_records: Callable[[], None] | None = None,
        report: Callable[[str], None] | None = None,
    ) -> None:
        self._streams, self._arn, self._handler = streams, stream_arn, handler
        self.settings = settings or MappingSettings()
        self._on_records = on_records
        self._report = report or (lambda line: print(line, file=sys.stderr))
        self._shards: dict[str, ShardState] = {}
        self._shards_at = -SHARDS_SECONDS
        self._stop = threading.Event()
        self._kicked = threading.Event()
        self._idle = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="stream-poller", daemon=True)
        self.dropped: list[dict[str, Any]] = []

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._kicked.set()
        if self._thread.is_alive():
            self._thread.join(timeout=30)

    def kick(self) -> None:
        """Poll now: the table was just written (a stream record may be waiting)."""
        self._kicked.set()

    def idle(self) -> bool:
        """True once a full poll found nothing left to deliver."""
        return self._idle.is_set()

    def read(self) -> list[dict[str, Any]]:
        """Synchronous mode: every new record of every shard that passes the filter, as Lambda would deliver it."""
        if not self._shards or time.monotonic() - self._shards_at >= SHARDS_SECONDS:
            self._discover_shards()
            self._shards_at = time.monotonic()
        records: list[dict[str, Any]] = []
        for state in self._shards.values():
            while self._read(state, renew_after=0.0):  # in step, an empty read always checks a fresh iterator
                records += state.pending
                state.pending = []
        return records

    def deliver(self, records: list[dict[str, Any]]) -> None:
        """Synchronous mode: the mapping's contract on these records (batches in order, partial failures, bisect,
        retries with backoff, drops), until each is delivered or dropped."""
        state = ShardState(None, self.settings.batch_size, list(records))
        while state.pending:
            if not self._deliver(state):
                time.sleep(max(0.0, state.not_before - time.monotonic()))

    def poll_once(self) -> int:
        """One pass over every shard: read new records, deliver what passes the filter. Returns records read."""
        if time.monotonic() - self._shards_at >= SHARDS_SECONDS:
            self._discover_shards()
            self._shards_at = time.monotonic()
        read = 0
        for state in self._shards.values():
            read += self._read(state)
            while state.pending and not self._stop.is_set():
                if not self._deliver(state):
                    break
        return read

    def _discover_shards(self) -> None:
        shards = self._streams.describe_stream(StreamArn=self._arn)["StreamDescription"]["Shards"]
        for shard in shards:
            if shard["ShardId"] not in self._shards:
                iterator = self._streams.get_shard_iterator(
                    StreamArn=self._arn, ShardId=shard["ShardId"], ShardIteratorType="TRIM_HORIZON"
                )["ShardIterator"]
                self._shards[shard["ShardId"]] = ShardState(
                    iterator, self.settings.batch_size, shard_id=shard["ShardId"], renewed_at=time.monotonic()
                )

    def _read(self, state: ShardState, renew_after: float = RENEW_SECONDS) -> int:
        if state.iterator is None or len(state.pending) >= self.settings.batch_size:
            return 0
        response = self._streams.get_records(ShardIterator=state.iterator, Limit=self.settings.batch_size)
        state.iterator = response.get("NextShardIterator")
        records = response.get("Records", [])
        if not records and state.iterator and time.monotonic() - state.renewed_at >= renew_after:
            state.iterator, state.renewed_at = self._renewed(state), time.monotonic()
            response = self._streams.get_records(ShardIterator=state.iterator, Limit=self.settings.batch_size)
            state.iterator = response.get("NextShardIterator")
            records = response.get("Records", [])
        if records:
            state.last_sequence = records[-1]["dynamodb"]["SequenceNumber"]
            self._idle.clear()  # before delivering: a handler call can take long, and the stack is not idle meanwhile
            if self._on_records:
                self._on_records()
        state.pending += [lambda_record(r, self._arn) for r in records if passes_filter(r)]
        return len(records)

    def _renewed(self, state: ShardState) -> str:
        where: dict[str, Any] = {"ShardIteratorType": "TRIM_HORIZON"}
        if state.last_sequence is not None:
            where = {"ShardIteratorType": "AFTER_SEQUENCE_NUMBER", "SequenceNumber": state.last_sequence}
        iterator = self._streams.get_shard_iterator(StreamArn=self._arn, ShardId=state.shard_id, **where)
        return str(iterator["ShardIterator"])

    def _deliver(self, state: ShardState) -> bool:
        """Deliver the head of the shard's pending records; True when the shard may go on at once."""
        if time.monotonic() < state.not_before:
            return False
        batch = state.pending[: state.limit]
        failed_from = self._invoke(batch)
        if failed_from is None:
            del state.pending[: len(batch)]
            state.failures, state.limit = 0, self.settings.batch_size
            return True
        # Records before the first failure are done: the mapping's checkpoint moves to the failed one.
        del state.pending[:failed_from]
        if failed_from == 0 and len(batch) > 1 and self.settings.bisect_on_error:
            state.limit = len(batch) // 2  # BisectBatchOnFunctionError: a split is not counted as a retry
            return True
        state.failures += 1
        if state.failures > self.settings.max_retries:
            head = state.pending.pop(0)
            self.dropped.append(head)
            state.failures, state.limit = 0, self.settings.batch_size
            self._report(f"stream poller: dropped record {sequence(head)} after {self.settings.max_retries} retries")
            return True
        state.not_before = time.monotonic() + min(5.0, self.settings.backoff_seconds * 2**state.failures)
        return False

    def _invoke(self, batch: list[dict[str, Any]]) -> int | None:
        """Call the handler; None when every record succeeded, else the index of the first record to re-deliver."""
        try:
            response = self._handler({"Records": batch})
        except (Exception, InvocationCrash) as exc:
            self._report(f"stream poller: handler failed on {len(batch)} records: {exc!r}")
            return 0
        failures = response.get("batchItemFailures") if isinstance(response, dict) else None
        if not failures:
            return None
        positions = {r["dynamodb"]["SequenceNumber"]: i for i, r in enumerate(batch)}
        indexes = [positions.get(str(f.get("itemIdentifier"))) for f in failures]
        if any(i is None for i in indexes):
            return 0  # an identifier that is not in the batch: Lambda treats the whole batch as failed
        return min(i for i in indexes if i is not None)

    def _loop(self) -> None:
        while not self._stop.is_set():
            self._kicked.clear()  # a write after this point is read by this poll or wakes the next wait
            try:
                read, failed = self.poll_once(), False
            except Exception as exc:  # the server going away under us, or a transient error: poll again
                if not self._stop.is_set():
                    self._report(f"stream poller: {exc}")
                read, failed = 0, True
            if not read and not failed and not any(s.pending for s in self._shards.values()):
                self._idle.set()
            if not read:
                self._kicked.wait(POLL_SECONDS)
