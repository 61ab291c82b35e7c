"""Router contract details: irrelevant records cost nothing; one failing record does not hold back the others."""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from botocore.exceptions import ClientError

from batch_jobs import schema
from batch_jobs.submit import submit_file
from cli.local.stream_poller import lambda_record
from devtools.drive import World, count_calls, lambda_event
from router import handler


def _count_calls() -> Counter[str]:
    router = handler.get_router()
    return count_calls([router.store.client, router.batch.client])


def _irrelevant(record: dict[str, Any]) -> bool:
    if record["eventName"] == "REMOVE" or not record["dynamodb"]["Keys"]["sk"]["S"].startswith("chunk#"):
        return True
    last = record["dynamodb"]["NewImage"]["steps"]["L"][-1]["M"]
    return last["state"]["S"] == schema.RUNNING or (last["state"]["S"] == schema.SUBMITTED and "job_id" in last)


def test_irrelevant_records_cost_no_aws_call(world: World, clip: Path, tmp_path: Path) -> None:
    submitted = submit_file(world.stack, clip, tmp_path, chunk_seconds=5)
    world.pump()
    for sk in (schema.chunk_sk(0), schema.chunk_sk(1)):
        key = {"pk": {"S": schema.video_pk(submitted.video_id)}, "sk": {"S": sk}}
        world.store.client.delete_item(TableName=world.config.table, Key=key)
    records = _all_records(world)
    irrelevant = [r for r in records if _irrelevant(r)]
    assert {"REMOVE", "video", "running", "submitted+job"} <= {_kind(r) for r in irrelevant}
    calls = _count_calls()
    world.deliver(irrelevant)
    assert calls == Counter()
    world.deliver([r for r in records if not _irrelevant(r)][:1])  # a relevant one (a replay) does call AWS
    assert calls


def _all_records(world: World) -> list[dict[str, Any]]:
    """Every record of the stream from its start, video items too (the mapping's filter would drop them; the handler
    must ignore them anyway), in Lambda's record shape."""
    streams = world.session.client("dynamodbstreams")
    records: list[dict[str, Any]] = []
    for shard in streams.describe_stream(StreamArn=world.stream_arn)["StreamDescription"]["Shards"]:
        iterator = streams.get_shard_iterator(
            StreamArn=world.stream_arn, ShardId=shard["ShardId"], ShardIteratorType="TRIM_HORIZON"
        )["ShardIterator"]
        records += [lambda_record(r, world.stream_arn) for r in streams.get_records(ShardIterator=iterator)["Records"]]
    return records


def _kind(record: dict[str, Any]) -> str:
    if record["eventName"] == "REMOVE":
        return "REMOVE"
    if not record["dynamodb"]["Keys"]["sk"]["S"].startswith("chunk#"):
        return "video"
    last = record["dynamodb"]["NewImage"]["steps"]["L"][-1]["M"]
    return "running" if last["state"]["S"] == schema.RUNNING else "submitted+job"


@pytest.mark.parametrize("failing", [0, 3], ids=["first", "last"])
def test_one_failing_record_is_reported_and_the_others_go_on(
    world: World, clip: Path, tmp_path: Path, failing: int
) -> None:
    submitted = submit_file(world.stack, clip, tmp_path, chunk_seconds=3)
    records = [r for r in world.read_stream() if r["dynamodb"]["Keys"]["sk"]["S"].startswith("chunk#")]
    assert len(records) == 4

    def throttle_one_chunk(params: dict[str, Any], **_: Any) -> None:
        if params.get("Key", {}).get("sk", {}).get("S") == schema.chunk_sk(failing):
            raise ClientError({"Error": {"Code": "ThrottlingException", "Message": "slow down"}}, "UpdateItem")

    client = handler.get_router().store.client
    client.meta.events.register("before-parameter-build.dynamodb.UpdateItem", throttle_one_chunk)
    response = handler.lambda_handler(lambda_event(records), None)
    client.meta.events.unregister("before-parameter-build.dynamodb.UpdateItem", throttle_one_chunk)
    assert response == {"batchItemFailures": [{"itemIdentifier": records[failing]["dynamodb"]["SequenceNumber"]}]}
    # Every other chunk was claimed in this same invocation, before and after the failing record.
    steps = [len(c.steps) for c in world.store.chunks(submitted.video_id)]
    assert steps == [1 if i == failing else 2 for i in range(4)]
    # Two records for each: its claim, and its job's id (the claimer submits at once).
    assert sorted(_chunk_of(r) for r in world.read_stream()) == [i for i in range(4) if i != failing for _ in "ab"]
    # Lambda retries from the lowest failed sequence number, so the records after it come again: they change
    # nothing (their claims conflict and write no record); only the failed chunk is claimed now.
    handler.lambda_handler(lambda_event(records[failing:]), None)
    assert [len(c.steps) for c in world.store.chunks(submitted.video_id)] == [2] * 4
    assert [_chunk_of(r) for r in world.read_stream()] == [failing, failing]


def _chunk_of(record: dict[str, Any]) -> int:
    index = schema.chunk_index(record["dynamodb"]["Keys"]["sk"]["S"])
    assert index is not None
    return index
