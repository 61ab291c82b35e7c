"""The stream poller against DynamoDB Streams of a real moto server: the filter, the Lambda event shape, partial
batch failures, bisect and the retry cap, with a scripted handler standing in for the router."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import boto3
import pytest
from local_env import wait_until

from cli.local.server import MotoServer, Notices
from cli.local.stream_poller import MappingSettings, StreamPoller

Event = dict[str, Any]


@dataclass
class Server:
    session: Any
    endpoint: str
    on_write: list[Callable[[], None]]  # what the server calls after each DynamoDB write (its table notice)


@pytest.fixture
def server() -> Iterator[Server]:
    hooks: list[Callable[[], None]] = []

    def on_write() -> None:
        for hook in hooks:
            hook()

    moto = MotoServer(0, Notices(table_written=on_write))
    moto.start()
    session = boto3.Session(
        aws_access_key_id="local-test-key", aws_secret_access_key="local-test-secret", region_name="us-east-1"
    )
    yield Server(session, moto.endpoint, hooks)
    moto.stop()


@pytest.fixture
def table(server: Server) -> tuple[Any, Any, str]:
    """(dynamodb client, dynamodbstreams client, stream ARN) of a table `items` with a stream."""
    ddb = server.session.client("dynamodb", endpoint_url=server.endpoint)
    ddb.create_table(
        TableName="items",
        AttributeDefinitions=[{"AttributeName": n, "AttributeType": "S"} for n in ("pk", "sk")],
        KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}, {"AttributeName": "sk", "KeyType": "RANGE"}],
        BillingMode="PAY_PER_REQUEST",
        StreamSpecification={"StreamEnabled": True, "StreamViewType": "NEW_AND_OLD_IMAGES"},
    )
    arn = ddb.describe_table(TableName="items")["Table"]["LatestStreamArn"]
    return ddb, server.session.client("dynamodbstreams", endpoint_url=server.endpoint), arn


def put(ddb: Any, sk: str, n: int = 0) -> None:
    ddb.put_item(TableName="items", Item={"pk": {"S": "video#v"}, "sk": {"S": sk}, "n": {"N": str(n)}})


def sks(event: Event) -> list[str]:
    return [r["dynamodb"]["Keys"]["sk"]["S"] for r in event["Records"]]


def drain(poller: StreamPoller, rounds: int = 50) -> None:
    for _ in range(rounds):
        poller.poll_once()


def poller_with(streams: Any, arn: str, handler: Callable[[Event], Any], **settings: Any) -> StreamPoller:
    return StreamPoller(streams, arn, handler, MappingSettings(backoff_seconds=0, **settings))


def test_only_chunk_items_reach_the_handler_in_the_lambda_event_shape(table: tuple[Any, Any, str]) -> None:
    ddb, streams, arn = table
    seen: list[Event] = []

    def handler(event: Event) -> Any:
        seen.append(event)
        return {"batchItemFailures": []}

    put(ddb, "video")
    put(ddb, "chunk#00000")
    put(ddb, "chunk#00001")
    put(ddb, "chunk#00001", 1)
    drain(poller_with(streams, arn, handler))
    assert [sks(e) for e in seen] == [["chunk#00000", "chunk#00001", "chunk#00001"]]
    records = seen[0]["Records"]
    assert [r["eventName"] for r in records] == ["INSERT", "INSERT", "MODIFY"]
    assert all(r["eventSourceARN"] == arn and r["eventSource"] == "aws:dynamodb" for r in records)
    assert isinstance(records[0]["dynamodb"]["ApproximateCreationDateTime"], int)
    assert records[2]["dynamodb"]["OldImage"]["n"] == {"N": "0"}
    assert records[2]["dynamodb"]["NewImage"]["n"] == {"N": "1"}


def test_batch_item_failures_redeliver_from_the_lowest_failed_record(table: tuple[Any, Any, str]) -> None:
    ddb, streams, arn = table
    for i in range(5):
        put(ddb, f"chunk#{i:05d}")
    seen: list[list[str]] = []

    def handler(event: Event) -> Any:
        seen.append(sks(event))
        if len(seen) == 1:  # records 1 and 3 fail once: re-delivery starts at record 1
            failed = [event["Records"][3], event["Records"][1]]
            return {"batchItemFailures": [{"itemIdentifier": r["dynamodb"]["SequenceNumber"]} for r in failed]}
        return {"batchItemFailures": []}

    drain(poller_with(streams, arn, handler))
    all_five = [f"chunk#{i:05d}" for i in range(5)]
    assert seen == [all_five, all_five[1:]]


def test_a_handler_error_bisects_and_a_poison_record_is_dropped_after_the_retry_cap(
    table: tuple[Any, Any, str],
) -> None:
    ddb, streams, arn = table
    for i in range(4):
        put(ddb, f"chunk#{i:05d}")
    acknowledged: list[str] = []
    calls = 0

    def handler(event: Event) -> Any:
        nonlocal calls
        calls += 1
        if "chunk#00002" in sks(event):
            raise RuntimeError("poison")
        acknowledged.extend(sks(event))
        return None

    poller = poller_with(streams, arn, handler, max_retries=2)
    drain(poller)
    assert acknowledged == ["chunk#00000", "chunk#00001", "chunk#00003"]
    assert [r["dynamodb"]["Keys"]["sk"]["S"] for r in poller.dropped] == ["chunk#00002"]
    assert calls < 12  # bisect found the poison record without retrying the good ones each time


def test_a_table_write_wakes_an_idle_poller_at_once(
    server: Server, table: tuple[Any, Any, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The server calls its table notice after each DynamoDB write (not reads, not other services); the local stack
    points it at `kick`, so a record does not wait for the next poll. Polls are a minute apart here: only the kick can
    deliver in time."""
    monkeypatch.setattr("cli.local.stream_poller.POLL_SECONDS", 60.0)
    ddb, streams, arn = table
    writes: list[int] = []
    server.on_write.append(lambda: writes.append(1))
    server.session.client("s3", endpoint_url=server.endpoint).create_bucket(Bucket="not-a-table")
    assert writes == []  # creating the table, describing it and S3 calls are no table writes
    seen: list[str] = []
    delivered = threading.Event()

    def handler(event: Event) -> Any:
        seen.extend(sks(event))
        delivered.set()
        return {"batchItemFailures": []}

    poller = StreamPoller(streams, arn, handler)
    server.on_write.append(poller.kick)
    poller.start()
    try:
        wait_until(poller.idle, "the poller to find nothing and sleep", timeout=10)
        put(ddb, "chunk#00000")
        ddb.get_item(TableName="items", Key={"pk": {"S": "video#v"}, "sk": {"S": "chunk#00000"}})
        assert writes == [1]
        assert delivered.wait(10), "the record waited for the next poll"
        assert seen == ["chunk#00000"]
    finally:
        poller.stop()


def test_records_after_a_cancelled_transaction_arrive_and_its_own_never_do(table: tuple[Any, Any, str]) -> None:
    """moto restores a table from a copy when a TransactWriteItems is cancelled, stream shard included: the shard
    the iterators point at kept the cancelled actions' records. The local server puts the original shard back, cut to
    its length, so a reader never sees a record of a cancelled write, nor skips the real record that reuses its
    sequence number (a retried chunk's claim was lost that way)."""
    ddb, streams, arn = table
    seen: list[str] = []
    poller = poller_with(streams, arn, lambda event: seen.extend(sks(event)))
    put(ddb, "chunk#00000")
    assert poller.read() and not seen  # read in step: the shard's iterator is handed out
    applied_then_undone = {
        "Update": {
            "TableName": "items",
            "Key": {"pk": {"S": "video#v"}, "sk": {"S": "chunk#00009"}},
            "UpdateExpression": "SET n = :one",
            "ExpressionAttributeValues": {":one": {"N": "1"}},
        }
    }
    condition_fails = {
        "Put": {
            "TableName": "items",
            "Item": {"pk": {"S": "video#v"}, "sk": {"S": "chunk#00000"}},
            "ConditionExpression": "attribute_not_exists(pk)",
        }
    }
    with pytest.raises(ddb.exceptions.TransactionCanceledException):
        ddb.transact_write_items(TransactItems=[applied_then_undone, condition_fails])
    assert poller.read() == []
    put(ddb, "chunk#00001")
    put(ddb, "chunk#00002")
    poller.deliver(poller.read())
    assert seen == ["chunk#00001", "chunk#00002"]
    assert "Item" not in ddb.get_item(TableName="items", Key={"pk": {"S": "video#v"}, "sk": {"S": "chunk#00009"}})
