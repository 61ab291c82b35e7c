"""The local stack's snapshot against a moto server: whatever point a save is stopped at, and whatever a job writes
while it runs, the data directory never holds an item that points at an object it lacks."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import boto3
import pytest

from cli.local.files import read_json
from cli.local.paths import LocalPaths
from cli.local.server import MotoServer
from cli.local.snapshot import Snapshot

TABLE, BUCKET = "t-table", "t-bucket"


class Crash(Exception):
    """The stack dying mid-save (SIGKILL, power loss): nothing after this point is written."""


@dataclass
class World:
    ddb: Any
    s3: Any
    paths: LocalPaths

    def job_writes(self, n: int) -> None:
        """What a job does: its result object first, then the item that points at it."""
        key = f"results/{n}.json"
        self.s3.put_object(Bucket=BUCKET, Key=key, Body=b'{"n": %d}' % n)
        self.ddb.put_item(
            TableName=TABLE, Item={"pk": {"S": "video#v"}, "sk": {"S": f"chunk#{n}"}, "result": {"S": key}}
        )

    def consistent(self) -> None:
        """Every saved item's object is in the saved manifest and on disk."""
        manifest = read_json(self.paths.objects / BUCKET / "manifest.json", {})
        for item in read_json(self.paths.items / f"{TABLE}.json", []):
            key = item["result"]["S"]
            assert key in manifest, f"saved item {item['sk']['S']} points at {key}, which was not saved"
            assert (self.paths.objects / BUCKET / "objects" / manifest[key]["file"]).exists()


@pytest.fixture
def world(tmp_path: Path) -> Iterator[World]:
    server = MotoServer(0)
    server.start()
    session = boto3.Session(aws_access_key_id="k", aws_secret_access_key="s", region_name="us-east-1")
    ddb = session.client("dynamodb", endpoint_url=server.endpoint)
    s3 = session.client("s3", endpoint_url=server.endpoint)
    ddb.create_table(
        TableName=TABLE,
        AttributeDefinitions=[
            {"AttributeName": "pk", "AttributeType": "S"},
            {"AttributeName": "sk", "AttributeType": "S"},
        ],
        KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}, {"AttributeName": "sk", "KeyType": "RANGE"}],
        BillingMode="PAY_PER_REQUEST",
    )
    s3.create_bucket(Bucket=BUCKET)
    yield World(ddb, s3, LocalPaths(tmp_path / "data").ensure())
    server.stop()


def test_a_save_stopped_while_copying_objects_has_not_written_the_items_yet(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    snapshot = Snapshot(world.ddb, world.s3, [TABLE], world.paths)
    world.job_writes(0)
    snapshot.save()
    world.consistent()
    world.job_writes(1)

    def crash(path: Path, data: bytes) -> None:
        raise Crash

    monkeypatch.setattr("cli.local.snapshot.write_bytes", crash)
    with pytest.raises(Crash):
        snapshot.save()
    world.consistent()
    assert len(read_json(world.paths.items / f"{TABLE}.json")) == 1  # the previous save's items, untouched


class _Paginator:
    """A paginator that runs `after` once its last page was read."""

    def __init__(self, inner: Any, after: Callable[[], None]) -> None:
        self._inner, self._after = inner, after

    def paginate(self, **kwargs: Any) -> Iterator[dict[str, Any]]:
        yield from self._inner.paginate(**kwargs)
        self._after()


class _Client:
    """A boto3 client whose paginator `name` runs `after` once it is read through."""

    def __init__(self, inner: Any, name: str, after: Callable[[], None]) -> None:
        self._inner, self._name, self._after = inner, name, after

    def get_paginator(self, name: str) -> Any:
        paginator = self._inner.get_paginator(name)
        return _Paginator(paginator, self._after) if name == self._name else paginator

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)


@pytest.mark.parametrize("between", ["scan", "list_objects_v2"])
def test_a_job_writing_while_the_snapshot_reads_never_leaves_an_item_without_its_object(
    world: World, between: str
) -> None:
    """A job writes its object and its item while the save has read one of the two stores and not the other."""
    written: list[int] = []

    def job() -> None:
        written.append(len(written) + 1)
        world.job_writes(written[-1])

    ddb = _Client(world.ddb, "scan", job) if between == "scan" else world.ddb
    s3 = _Client(world.s3, "list_objects_v2", job) if between == "list_objects_v2" else world.s3
    world.job_writes(0)
    Snapshot(ddb, s3, [TABLE], world.paths).save()
    assert written
    world.consistent()
