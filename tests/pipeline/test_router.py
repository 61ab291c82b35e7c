"""Router contract details: irrelevant records cost nothing; one failing record does not hold back the others."""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any

from botocore.exceptions import ClientError

from batch_jobs import schema
from batch_jobs.submit import submit_file
from router import handler
from router.drive import World, count_calls, lambda_event


def _count_calls() -> Counter[str]:
    router = handler.get_router()
    return count_calls([router.store.client, router.batch.client])


def _irrelevant(record: dict[str, Any]) -> bool:
    if record["eventName"] == "REMOVE" or not record["dynamodb"]["Keys"]["sk"]["S"].startswith("chunk#"):
        return True
    last = record["dynamodb"]["NewImage"]["steps"]["L"][-1]["M"]
    return last["state"]["S"] == schema.RUNNING or (last["state"]["S"] == schema.SUBMITTED and "job_id" in last)


def test_irrelevant_records_cost_no_aws_call(world: World, clip: Path, tmp_path: Path) -> None:
    submitted = submit_file(world.session.client("s3"), world.store, world.config, clip, tmp_path, chunk_seconds=5)
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
    """Every record of the stream from its start, read again with fresh iterators."""
    fresh = World(world.session, world.config, world.stream_arn)
    return fresh.read_stream()


def _kind(record: dict[str, Any]) -> str:
    if record["eventName"] == "REMOVE":
        return "REMOVE"
    if not record["dynamodb"]["Keys"]["sk"]["S"].startswith("chunk#"):
        return "video"
    last = record["dynamodb"]["NewImage"]["steps"]["L"][-1]["M"]
    return "running" if last["state"]["S"] == schema.RUNNING else "submitted+job"


def test_one_failing_record_is_reported_and_the_others_go_on(world: World, clip: Path, tmp_path: Path) -> None:
    submitted = submit_file(world.session.client("s3"), world.store, world.config, clip, tmp_path, chunk_seconds=5)
    records = [r for r in world.read_stream() if r["dynamodb"]["Keys"]["sk"]["S"].startswith("chunk#")]
    assert len(records) == 2

    def throttle_chunk_one(params: dict[str, Any], **_: Any) -> None:
        if params.get("Key", {}).get("sk", {}).get("S") == schema.chunk_sk(1):
            raise ClientError({"Error": {"Code": "ThrottlingException", "Message": "slow down"}}, "UpdateItem")

    client = handler.get_router().store.client
    client.meta.events.register("before-parameter-build.dynamodb.UpdateItem", throttle_chunk_one)
    response = handler.lambda_handler(lambda_event(records, world.stream_arn), None)
    client.meta.events.unregister("before-parameter-build.dynamodb.UpdateItem", throttle_chunk_one)
    assert response == {"batchItemFailures": [{"itemIdentifier": records[1]["dynamodb"]["SequenceNumber"]}]}
    chunks = world.store.chunks(submitted.video_id)
    assert [len(c.steps) for c in chunks] == [2, 1]  # chunk 0 was claimed, chunk 1 waits for the retry
    handler.lambda_handler(lambda_event(records[1:], world.stream_arn), None)
    assert [len(c.steps) for c in world.store.chunks(submitted.video_id)] == [2, 2]
