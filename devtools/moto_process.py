"""`python -m devtools.moto_process PORT`: the local stack's moto server, made to cost per call what AWS's calls cost.

- moto 5.2 backs a transaction up by deep-copying the whole table once per action, and puts that copy back (stream
included) when the transaction is cancelled. At 10,000 items a chunk's count (a two-action transaction) then takes
seconds, and a scale run would measure moto, not the pipeline. Here the backup is what AWS's transaction touches:
the transaction's own items and the stream's length, restored on cancellation.
- Each request matches its host against every service's URL patterns (a third of the server's time under load):
  the answer is kept per host.

All else, every API's semantics included, is moto's own.
"""

from __future__ import annotations

import copy
import sys
import threading
from typing import Any

import moto.dynamodb.models as models
from moto.dynamodb.models import DynamoDBBackend
from moto.dynamodb.models.dynamo_type import DynamoType
from moto.dynamodb.models.table import Table
from moto.moto_server.werkzeug_app import DomainDispatcherApplication

from cli.local.server import MotoServer

_transact = DynamoDBBackend.transact_write_items


class _NoTableCopy:
    """`copy` as moto's backend module sees it: a table is not copied (items still are, for update images)."""

    @staticmethod
    def deepcopy(value: Any, memo: Any = None) -> Any:
        return value if isinstance(value, Table) else copy.deepcopy(value, memo)


def _key(table: Table, op_type: str, op: dict[str, Any]) -> tuple[DynamoType, DynamoType | None]:
    key = op["Item"] if op_type == "Put" else op["Key"]
    range_value = DynamoType(key[table.range_key_attr]) if table.range_key_attr else None
    return DynamoType(key[table.hash_key_attr]), range_value


def _restore(table: Table, hash_value: DynamoType, range_value: DynamoType | None, item: Any) -> None:
    if range_value is None:
        table.items.pop(hash_value, None) if item is None else table.items.__setitem__(hash_value, item)
    elif item is None:
        table.items[hash_value].pop(range_value, None)
    else:
        table.items[hash_value][range_value] = item


def transact_write_items(self: DynamoDBBackend, transact_items: list[dict[str, Any]]) -> None:
    saved, streams = [], {}
    for entry in transact_items:
        try:
            ((op_type, op),) = entry.items()
            table = self.tables[op["TableName"]]
            hash_value, range_value = _key(table, op_type, op)
        except (KeyError, ValueError, TypeError):
            continue  # moto's own checks answer for a malformed action
        saved.append((table, hash_value, range_value, copy.deepcopy(table.get_item(hash_value, range_value))))
        if table.stream_shard is not None:
            streams[id(table)] = (table.stream_shard, len(table.stream_shard.items))
    try:
        _transact(self, transact_items)
    except Exception:
        for table, hash_value, range_value, item in reversed(saved):
            _restore(table, hash_value, range_value, item)
        for shard, length in streams.values():
            del shard.items[length:]
        raise


_backend_for_host = DomainDispatcherApplication.get_backend_for_host
_hosts: dict[str | None, Any] = {}


def get_backend_for_host(self: DomainDispatcherApplication, host: str | None) -> Any:
    if host not in _hosts:
        _hosts[host] = _backend_for_host(self, host)
    return _hosts[host]


DomainDispatcherApplication.get_backend_for_host = get_backend_for_host  # type: ignore[method-assign]
models.copy = _NoTableCopy  # type: ignore[assignment]
DynamoDBBackend.transact_write_items = transact_write_items  # type: ignore[method-assign]

if __name__ == "__main__":
    MotoServer(int(sys.argv[1])).start()
    threading.Event().wait()
