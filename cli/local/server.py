"""The moto server of the local stack, inside this process, on 127.0.0.1 only.

moto's own `ThreadedMotoServer` binds inside its thread and waits forever when the port is taken; binding the socket
here first turns "port in use" into one clean error before anything else starts.
"""

from __future__ import annotations

import errno
import io
import json
import logging
import socket
import threading
import urllib.request
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from moto.dynamodb.models import dynamodb_backends
from moto.moto_server.werkzeug_app import DomainDispatcherApplication, MotoRequestHandler, create_backend_app
from werkzeug.serving import BaseWSGIServer, make_server

from cli.local.errors import LocalStackError

HOST = "127.0.0.1"
# Batch and Lambda without Docker: jobs are only recorded, the local executor runs them.
MOTO_CONFIG = {"batch": {"use_docker": False}, "lambda": {"use_docker": False}}
# DynamoDB operations that can add a stream record (X-Amz-Target `DynamoDB_20120810.<operation>`).
DYNAMODB_WRITES = frozenset(
    {"PutItem", "UpdateItem", "DeleteItem", "BatchWriteItem", "TransactWriteItems", "ExecuteStatement",
     "BatchExecuteStatement", "ExecuteTransaction"}
)  # fmt: skip
# Batch calls (REST paths) that change what the local executor must run or kill.
BATCH_JOB_CHANGES = frozenset({"/v1/submitjob", "/v1/terminatejob"})


@dataclass(frozen=True)
class Notices:
    """What the server calls after moto has handled a request that changes something a poller of the stack waits
    for: a DynamoDB write (its stream record exists), a job submitted or terminated."""

    table_written: Callable[[], None] = lambda: None
    jobs_changed: Callable[[], None] = lambda: None


class Gate:
    """WSGI middleware: DynamoDB and DynamoDB Streams requests one at a time, then the `Notices`.

    moto's DynamoDB has no lock: two writes to one item at once can both read it before either writes, and one is
    lost (two counts of a video's chunks counted once). DynamoDB applies the writes to an item one after another; so
    does moto behind this gate. A stream read waits too: it must not see the records of a transaction that is then
    cancelled. Other services pass as they come."""

    def __init__(self, app: Any, notices: Notices | None = None) -> None:
        self._app, self._notices = app, notices or Notices()
        self._dynamodb = threading.Lock()

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        service, _, operation = environ.get("HTTP_X_AMZ_TARGET", "").partition(".")
        if service.startswith(("DynamoDB_", "DynamoDBStreams_")):
            # The body is read before the lock: a client stopped mid-request (a frozen job) must not hold it.
            body = environ["wsgi.input"].read(int(environ.get("CONTENT_LENGTH") or 0))
            environ["wsgi.input"] = io.BytesIO(body)
            with self._dynamodb:
                shards = _stream_shards() if operation == "TransactWriteItems" else {}
                response = self._app(environ, start_response)
                _keep_stream_shards(shards)
        else:
            response = self._app(environ, start_response)
        if service.startswith("DynamoDB_") and operation in DYNAMODB_WRITES:
            self._notices.table_written()
        elif environ.get("PATH_INFO", "").lower() in BATCH_JOB_CHANGES:
            self._notices.jobs_changed()
        return response


def _stream_shards() -> dict[tuple[str, str, str], tuple[Any, int]]:
    """Each table's stream shard and how many records it holds, by account, region and table."""
    return {
        (account, region, name): (table.stream_shard, len(table.stream_shard.items))
        for account, regions in dynamodb_backends.items()
        for region, backend in regions.items()
        for name, table in backend.tables.items()
        if table.stream_shard is not None
    }


def _keep_stream_shards(before: dict[tuple[str, str, str], tuple[Any, int]]) -> None:
    """Undo the stream side of moto's cancelled transaction. moto puts back a deep copy of the table, stream shard
    included, so the shard that readers' iterators point at keeps the cancelled writes' records and sees no new
    ones; a reader that read such a record would then skip the real record that reuses its sequence number. The
    original shard goes back into the table, cut back to its length before the transaction."""
    for (account, region, name), (shard, length) in before.items():
        table = dynamodb_backends[account][region].tables.get(name)
        if table is not None and table.stream_shard is not shard:
            del shard.items[length:]
            shard.table, table.stream_shard = table, shard


class MotoServer:
    """A moto server bound to 127.0.0.1:`port` (0 picks a free port), reset and configured on start. Its `notices`
    wake the stack's stream poller and job executor at once instead of at their next poll."""

    def __init__(self, port: int, notices: Notices | None = None) -> None:
        logging.getLogger("werkzeug").setLevel(logging.ERROR)
        # Bound here, not by werkzeug: on a taken port it prints two lines and calls sys.exit.
        listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        try:
            listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            listener.bind((HOST, port))
            listener.listen(128)
        except OSError as exc:
            listener.close()
            if exc.errno == errno.EADDRINUSE:
                raise LocalStackError(f"port {port} on {HOST} is in use: pick another with --port") from None
            raise
        with listener:
            self._server: BaseWSGIServer = make_server(
                HOST,
                port,
                Gate(DomainDispatcherApplication(create_backend_app), notices),
                threaded=True,
                request_handler=MotoRequestHandler,
                fd=listener.fileno(),
            )
        self._thread = threading.Thread(target=self._server.serve_forever, name="moto-server", daemon=True)

    @property
    def port(self) -> int:
        return int(self._server.server_address[1])

    @property
    def endpoint(self) -> str:
        return f"http://{HOST}:{self.port}"

    def start(self) -> None:
        self._thread.start()
        # moto's state is per process: a previous stack in this process must not leak into this one.
        self._post("/moto-api/reset", None)
        self._post("/moto-api/config", MOTO_CONFIG)

    def stop(self) -> None:
        if self._thread.is_alive():
            self._server.shutdown()
            self._thread.join()
        self._server.server_close()

    def _post(self, path: str, body: object) -> None:
        data = json.dumps(body).encode() if body is not None else b""
        request = urllib.request.Request(self.endpoint + path, data=data, method="POST")
        with urllib.request.urlopen(request, timeout=10) as response:
            response.read()
